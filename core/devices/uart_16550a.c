/*
 * core/devices/uart_16550a.c: a 16550A UART (COM1). Transmit is instant (the
 * byte goes to the console backend on the THR write), so THR/TSR are always
 * empty; receive has a FIFO fed from the host console. The IRQ line is
 * gated by MCR.OUT2, as on PC hardware.
 */
#include "core/devices/devices.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UART_FIFO_MAX 64

/* Registers */
enum { RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define MCR_OUT2 0x08
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define IER_RDA 0x01
#define IER_THRE 0x02
#define IIR_NONE 0x01
#define IIR_THRE 0x02
#define IIR_RDA 0x04
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02

/* Guest-visible state: what migration carries. */
struct uart_state {
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr, msr;
	bool thre_pending; /* THR-empty interrupt not yet acknowledged */
	uint8_t rx[UART_FIFO_MAX];
	unsigned rx_head, rx_count;
};

struct uart {
	struct uart_state s;
	unsigned fifo_size; /* from the machine type */
	unsigned irq;
	bool irq_level;
	int out_fd; /* console backend, -1 for none */
	bool own_fd;
};

static uint8_t iir(const struct uart *u)
{
	uint8_t fifo_bits = (u->s.fcr & FCR_ENABLE) ? 0xc0 : 0;
	if ((u->s.ier & IER_RDA) && u->s.rx_count)
		return fifo_bits | IIR_RDA;
	if ((u->s.ier & IER_THRE) && u->s.thre_pending)
		return fifo_bits | IIR_THRE;
	return fifo_bits | IIR_NONE;
}

static void update_irq(struct device *dev)
{
	struct uart *u = dev->state;
	bool level = !(iir(u) & IIR_NONE) && (u->s.mcr & MCR_OUT2);
	if (level != u->irq_level) {
		u->irq_level = level;
		vm_set_irq(dev->vm, u->irq, level);
	}
}

static void rx_push(struct uart *u, uint8_t byte)
{
	unsigned cap = (u->s.fcr & FCR_ENABLE) ? u->fifo_size : 1;
	if (u->s.rx_count >= cap)
		return; /* overrun: the byte is lost, as on hardware */
	u->s.rx[(u->s.rx_head + u->s.rx_count) % UART_FIFO_MAX] = byte;
	u->s.rx_count++;
}

static void transmit(struct uart *u, uint8_t byte)
{
	if (u->s.mcr & MCR_LOOP) {
		rx_push(u, byte);
		return;
	}
	if (u->out_fd < 0)
		return;
	while (write(u->out_fd, &byte, 1) < 0 && errno == EINTR)
		;
}

static void uart_read(struct device *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct uart *u = dev->state;
	uint8_t v = 0;
	switch (off) {
	case RBR_THR:
		if (u->s.lcr & LCR_DLAB) {
			v = u->s.dll;
		} else if (u->s.rx_count) {
			v = u->s.rx[u->s.rx_head];
			u->s.rx_head = (u->s.rx_head + 1) % UART_FIFO_MAX;
			u->s.rx_count--;
		}
		break;
	case IER:
		v = (u->s.lcr & LCR_DLAB) ? u->s.dlm : u->s.ier;
		break;
	case IIR_FCR:
		v = iir(u);
		if ((v & 0x0f) == IIR_THRE)
			u->s.thre_pending = false; /* reading IIR acknowledges THRE */
		break;
	case LCR:
		v = u->s.lcr;
		break;
	case MCR:
		v = u->s.mcr;
		break;
	case LSR:
		v = LSR_THRE | LSR_TEMT | (u->s.rx_count ? LSR_DR : 0);
		break;
	case MSR:
		if (u->s.mcr & MCR_LOOP) /* loopback: outputs appear on the inputs */
			v = (uint8_t)(((u->s.mcr & 0x02) << 3) | ((u->s.mcr & 0x01) << 5) |
				      ((u->s.mcr & 0x04) << 4) | ((u->s.mcr & 0x08) << 4));
		else
			v = u->s.msr;
		break;
	case SCR:
		v = u->s.scr;
		break;
	}
	memset(data, 0, size);
	data[0] = v;
	update_irq(dev);
}

static void uart_write(struct device *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct uart *u = dev->state;
	uint8_t v = data[0];
	(void)size;
	switch (off) {
	case RBR_THR:
		if (u->s.lcr & LCR_DLAB) {
			u->s.dll = v;
		} else {
			transmit(u, v);
			u->s.thre_pending = true; /* sent at once: THR is empty again */
		}
		break;
	case IER:
		if (u->s.lcr & LCR_DLAB) {
			u->s.dlm = v;
		} else {
			if (!(u->s.ier & IER_THRE) && (v & IER_THRE))
				u->s.thre_pending = true; /* enabling THRE with THR empty fires */
			u->s.ier = v & 0x0f;
		}
		break;
	case IIR_FCR:
		u->s.fcr = v & 0xc9;
		if (v & FCR_CLEAR_RX || !(v & FCR_ENABLE))
			u->s.rx_count = 0;
		break;
	case LCR:
		u->s.lcr = v;
		break;
	case MCR:
		u->s.mcr = v & 0x1f;
		break;
	case SCR:
		u->s.scr = v;
		break;
	default:
		break; /* LSR and MSR are read-only */
	}
	update_irq(dev);
}

size_t uart_receive(struct device *dev, const uint8_t *buf, size_t len)
{
	struct uart *u = dev->state;
	size_t n = 0;
	pthread_mutex_lock(&dev->lock);
	unsigned cap = (u->s.fcr & FCR_ENABLE) ? u->fifo_size : 1;
	while (n < len && u->s.rx_count < cap)
		rx_push(u, buf[n++]);
	update_irq(dev);
	pthread_mutex_unlock(&dev->lock);
	return n;
}

static const struct state_field uart_fields[] = {
	STATE_FIELD(struct uart_state, ier, STATE_U8),
	STATE_FIELD(struct uart_state, lcr, STATE_U8),
	STATE_FIELD(struct uart_state, mcr, STATE_U8),
	STATE_FIELD(struct uart_state, scr, STATE_U8),
	STATE_FIELD(struct uart_state, dll, STATE_U8),
	STATE_FIELD(struct uart_state, dlm, STATE_U8),
	STATE_FIELD(struct uart_state, fcr, STATE_U8),
	STATE_FIELD(struct uart_state, msr, STATE_U8),
	STATE_FIELD(struct uart_state, thre_pending, STATE_BOOL),
	STATE_FIELD(struct uart_state, rx, STATE_BYTES),
	STATE_FIELD(struct uart_state, rx_head, STATE_U32),
	STATE_FIELD(struct uart_state, rx_count, STATE_U32),
};
static const struct state_desc uart_state_desc = STATE_DESC(1, 1, uart_fields);

static void *uart_state_ptr(struct device *dev)
{
	return &((struct uart *)dev->state)->s;
}

static int uart_post_load(struct device *dev, struct vmm_error *err)
{
	struct uart *u = dev->state;
	if (u->s.rx_head >= UART_FIFO_MAX || u->s.rx_count > u->fifo_size)
		return vmm_error_set(err, -EINVAL, "%s: receive FIFO head %u count %u out of range",
				     dev->name, u->s.rx_head, u->s.rx_count);
	u->irq_level = false;
	update_irq(dev);
	return 0;
}

static int uart_create(struct vm *vm, struct device *dev, struct vmm_error *err)
{
	uint64_t iobase, irq, fifo;
	int r;
	if ((r = device_prop_u64(dev, "iobase", &iobase, err)) < 0 ||
	    (r = device_prop_u64(dev, "irq", &irq, err)) < 0 ||
	    (r = device_prop_u64(dev, "fifo-size", &fifo, err)) < 0)
		return r;
	if (fifo == 0 || fifo > UART_FIFO_MAX)
		return vmm_error_set(err, -EINVAL, "%s: fifo-size %llu out of range 1..%d", dev->name,
				     (unsigned long long)fifo, UART_FIFO_MAX);
	struct uart *u = calloc(1, sizeof(*u));
	if (!u)
		return vmm_error_set(err, -ENOMEM, "%s: out of memory", dev->name);
	u->fifo_size = (unsigned)fifo;
	u->irq = (unsigned)irq;
	u->s.msr = 0xb0; /* DCD, DSR, CTS: a terminal is attached */
	u->out_fd = -1;

	/* The console backend belongs to the first UART only. */
	if (strcmp(dev->name, "serial0") == 0) {
		switch (vm->spec.serial) {
		case SERIAL_STDIO:
			u->out_fd = STDOUT_FILENO;
			break;
		case SERIAL_FILE:
			u->out_fd = open(vm->spec.serial_path,
					 O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (u->out_fd < 0) {
				r = vmm_error_set(err, -errno, "--serial file:%s: %s",
						  vm->spec.serial_path, strerror(errno));
				free(u);
				return r;
			}
			u->own_fd = true;
			break;
		case SERIAL_NONE:
			break;
		}
	}
	dev->state = u;
	return io_bus_register(&vm->pio, iobase, 8, dev, uart_read, uart_write, err);
}

static void uart_destroy(struct device *dev)
{
	struct uart *u = dev->state;
	if (u && u->own_fd)
		close(u->out_fd);
	free(u);
	dev->state = NULL;
}

const struct device_type device_uart_16550a = {
	.name = "uart-16550a",
	.create = uart_create,
	.destroy = uart_destroy,
	.state = &uart_state_desc,
	.state_ptr = uart_state_ptr,
	.post_load = uart_post_load,
};

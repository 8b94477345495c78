/*
 * core/devices/i8042.c: the PS/2 controller, reduced to what a guest without
 * a keyboard needs: controller commands, the command byte, self tests, and
 * the CPU reset line (command 0xfe, or output port bit 0 cleared).
 * Ports: iobase (data, 0x60) and iobase + 4 (status/command, 0x64).
 */
#include "core/devices/devices.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ST_OBF 0x01
#define ST_SYS 0x04
#define ST_CMD 0x08

struct i8042_state {
	uint8_t status;
	uint8_t command_byte;
	uint8_t output_port;
	uint8_t out;	   /* output buffer */
	uint8_t write_cmd; /* controller command waiting for its data byte, 0 if none */
};

struct i8042 {
	struct i8042_state s;
	unsigned irq;
};

static void put_output(struct device *dev, uint8_t v)
{
	struct i8042 *k = dev->state;
	k->s.out = v;
	k->s.status |= ST_OBF;
	if (k->s.command_byte & 0x01) { /* keyboard interrupt enabled: pulse IRQ 1 */
		vm_set_irq(dev->vm, k->irq, true);
		vm_set_irq(dev->vm, k->irq, false);
	}
}

static void request_reset(struct device *dev, const char *how)
{
	vm_request_exit(dev->vm, VM_EXIT_RESET, 0, "guest requested a reset (i8042 %s)", how);
}

static void i8042_read(struct device *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct i8042 *k = dev->state;
	memset(data, 0, size);
	if (off == 0) {
		data[0] = k->s.out;
		k->s.status &= (uint8_t)~ST_OBF;
	} else if (off == 4) {
		data[0] = k->s.status;
	} else {
		memset(data, 0xff, size);
	}
}

static void command(struct device *dev, uint8_t cmd)
{
	struct i8042 *k = dev->state;
	k->s.status |= ST_CMD;
	switch (cmd) {
	case 0x20:
		put_output(dev, k->s.command_byte);
		break;
	case 0x60: /* write command byte */
	case 0xd1: /* write output port */
	case 0xd2: /* write keyboard output buffer */
		k->s.write_cmd = cmd;
		break;
	case 0xa7:
		k->s.command_byte |= 0x20;
		break;
	case 0xa8:
		k->s.command_byte &= (uint8_t)~0x20;
		break;
	case 0xaa: /* controller self test: passed */
		k->s.status |= ST_SYS;
		put_output(dev, 0x55);
		break;
	case 0xab: /* keyboard interface test: no error */
		put_output(dev, 0x00);
		break;
	case 0xad:
		k->s.command_byte |= 0x10;
		break;
	case 0xae:
		k->s.command_byte &= (uint8_t)~0x10;
		break;
	case 0xd0:
		put_output(dev, k->s.output_port);
		break;
	case 0xfe:
		request_reset(dev, "command 0xfe");
		break;
	default:
		break; /* other commands have no effect here */
	}
}

static void i8042_write(struct device *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct i8042 *k = dev->state;
	(void)size;
	if (off == 4) {
		command(dev, data[0]);
		return;
	}
	if (off != 0)
		return;
	k->s.status &= (uint8_t)~ST_CMD;
	uint8_t cmd = k->s.write_cmd;
	k->s.write_cmd = 0;
	switch (cmd) {
	case 0x60:
		k->s.command_byte = data[0];
		break;
	case 0xd1:
		k->s.output_port = data[0];
		if (!(data[0] & 0x01))
			request_reset(dev, "output port reset line");
		break;
	case 0xd2:
		put_output(dev, data[0]);
		break;
	default:
		put_output(dev, 0xfa); /* a keyboard command: ACK (no keyboard behind it) */
		break;
	}
}

static const struct state_field i8042_fields[] = {
	STATE_FIELD(struct i8042_state, status, STATE_U8),
	STATE_FIELD(struct i8042_state, command_byte, STATE_U8),
	STATE_FIELD(struct i8042_state, output_port, STATE_U8),
	STATE_FIELD(struct i8042_state, out, STATE_U8),
	STATE_FIELD(struct i8042_state, write_cmd, STATE_U8),
};
static const struct state_desc i8042_state_desc = STATE_DESC(1, 1, i8042_fields);

static void *i8042_state_ptr(struct device *dev)
{
	return &((struct i8042 *)dev->state)->s;
}

static int i8042_create(struct vm *vm, struct device *dev, struct vmm_error *err)
{
	uint64_t iobase, irq;
	int r;
	if ((r = device_prop_u64(dev, "iobase", &iobase, err)) < 0 ||
	    (r = device_prop_u64(dev, "irq", &irq, err)) < 0)
		return r;
	struct i8042 *k = calloc(1, sizeof(*k));
	if (!k)
		return vmm_error_set(err, -ENOMEM, "%s: out of memory", dev->name);
	k->irq = (unsigned)irq;
	k->s.status = ST_SYS;
	k->s.command_byte = 0x30; /* keyboard and aux disabled, no interrupts */
	k->s.output_port = 0x01;  /* reset line high */
	dev->state = k;
	/* One range for data and command ports; 0x61 in between is KVM's
	 * (in-kernel PIT speaker port) and never reaches us. */
	return io_bus_register(&vm->pio, iobase, 5, dev, i8042_read, i8042_write, err);
}

static void i8042_destroy(struct device *dev)
{
	free(dev->state);
	dev->state = NULL;
}

const struct device_type device_i8042 = {
	.name = "i8042",
	.create = i8042_create,
	.destroy = i8042_destroy,
	.state = &i8042_state_desc,
	.state_ptr = i8042_state_ptr,
};

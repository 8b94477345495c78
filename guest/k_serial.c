/*
 * k_serial.c: the console (16550A at 0x3f8, 115200 8N1, polled) and the debug
 * exit (32-bit out to 0x501) with the halt of all vCPUs. One lock serialises whole writes, so lines
 * from different vCPUs never interleave. Callers run with IF=0.
 */
#include "kernel.h"
#include "fmt.h"
#include "x86.h"

#define COM1	   0x3f8
#define LSR_THRE   0x20
#define DEBUG_EXIT 0x501

static volatile uint32_t serial_lock;
static volatile uint32_t halting;

void k_serial_init(void)
{
	outb(COM1 + 1, 0x00); /* no interrupts */
	outb(COM1 + 3, 0x80); /* DLAB */
	outb(COM1 + 0, 0x01); /* divisor 1: 115200 */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 2, 0xc7); /* FIFO on, cleared */
	outb(COM1 + 4, 0x03); /* DTR RTS */
}

void k_write(const char *s, uint64_t len)
{
	uint64_t i;

	while (__atomic_exchange_n(&serial_lock, 1, __ATOMIC_ACQUIRE))
		while (serial_lock)
			cpu_relax();
	for (i = 0; i < len; i++) {
		while (!(inb(COM1 + 5) & LSR_THRE))
			cpu_relax();
		outb(COM1, (uint8_t)s[i]);
	}
	__atomic_store_n(&serial_lock, 0, __ATOMIC_RELEASE);
}

void k_halt(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

bool k_halting(void)
{
	return halting;
}

/*
 * The first vCPU to get here prints the exit line, stops the others (an NMI,
 * which k_trap turns into a halt once `halting` is set) so nothing runs on
 * if the VMM ignores the debug exit, writes the status to the debug-exit port
 * and halts. Later callers just halt.
 */
void k_exit(uint32_t status)
{
	char buf[48];
	size_t n = fmt_sn(buf, sizeof(buf), "testguest: exit status=%u\n", status);

	if (__atomic_exchange_n(&halting, 1, __ATOMIC_SEQ_CST))
		k_halt();
	k_write(buf, n);
	if (k_ncpus > 1)
		lapic_write(LAPIC_ICR_LO, ICR_ALL_BUT_ME | ICR_NMI);
	outl(DEBUG_EXIT, status);
	k_halt();
}

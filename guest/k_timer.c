/*
 * k_timer.c: the 100 Hz tick. The 8259s are remapped out of the exception
 * vectors and fully masked; the PIT (channel 0, mode 2) reaches the BSP
 * through the IOAPIC pin the MP table names for ISA IRQ0. The handler
 * (k_isr.S) counts k_ticks and forwards every tick to the APs as an IPI, so
 * every vCPU can sleep with hlt until the next tick.
 */
#include "kernel.h"
#include "x86.h"

#define PIT_HZ		1193182
#define PIT_DIV		((PIT_HZ + HZ / 2) / HZ)
#define IOREDTBL	0x10
#define IOREDTBL_MASKED 0x10000

volatile uint64_t k_ticks;
static uint32_t routed_pin = ~0u;

void k_pic_disable(void)
{
	outb(0x20, 0x11); /* ICW1: init, ICW4 follows */
	outb(0xa0, 0x11);
	outb(0x21, VEC_PIC_BASE); /* ICW2: vectors */
	outb(0xa1, VEC_PIC_BASE + 8);
	outb(0x21, 0x04); /* ICW3: slave on IR2 */
	outb(0xa1, 0x02);
	outb(0x21, 0x01); /* ICW4: 8086 mode */
	outb(0xa1, 0x01);
	outb(0x21, 0xff); /* mask everything */
	outb(0xa1, 0xff);
}

int k_timer_start(uint64_t ioapic, uint32_t pin)
{
	uint32_t maxpin;

	if (ioapic >= (1ull << 32) || (ioapic & 0xfff))
		return -1;
	maxpin = (ioapic_read(ioapic, 1) >> 16) & 0xff;
	if (pin > maxpin)
		return -1;
	if (routed_pin <= maxpin && routed_pin != pin)
		ioapic_write(ioapic, IOREDTBL + 2 * routed_pin, IOREDTBL_MASKED);
	routed_pin = pin;
	/* fixed delivery, physical destination = BSP, edge, active high, unmasked */
	ioapic_write(ioapic, IOREDTBL + 2 * pin + 1, k_bootinfo.bsp_apic_id << 24);
	ioapic_write(ioapic, IOREDTBL + 2 * pin, VEC_TIMER);
	outb(0x43, 0x34); /* channel 0, lo/hi byte, mode 2 (rate generator), binary */
	outb(0x40, PIT_DIV & 0xff);
	outb(0x40, PIT_DIV >> 8);
	return 0;
}

volatile uint64_t k_device_irqs;

int k_irq_route(uint64_t ioapic, uint32_t pin, uint32_t vector)
{
	if (ioapic >= (1ull << 32) || (ioapic & 0xfff) || vector < 0x20 || vector > 0xfe ||
	    pin > ((ioapic_read(ioapic, 1) >> 16) & 0xff) || pin == routed_pin)
		return -1;
	ioapic_write(ioapic, IOREDTBL + 2 * pin + 1, k_bootinfo.bsp_apic_id << 24);
	ioapic_write(ioapic, IOREDTBL + 2 * pin, vector);
	return 0;
}

void k_wait_tick(uint64_t tick)
{
	while (k_ticks < tick)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
}

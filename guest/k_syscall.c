/*
 * k_syscall.c: what CPL3 may ask of CPL0 (see abi.h), and the exception
 * report. Arguments come straight from the CPL3 program of the same image;
 * only lengths are clamped.
 */
#include "kernel.h"
#include "fmt.h"
#include "x86.h"

uint64_t k_syscall(uint64_t nr, uint64_t a1, uint64_t a2, uint64_t a3)
{
	switch (nr) {
	case SYS_WRITE:
		k_write((const char *)(uintptr_t)a1, a2 > 4096 ? 4096 : a2);
		return 0;
	case SYS_EXIT:
		k_exit((uint32_t)a1);
	case SYS_WAIT_TICK:
		k_wait_tick(a1);
		return 0;
	case SYS_CPUID:
		cpuid((uint32_t)a1, (uint32_t)a2, (uint32_t *)(uintptr_t)a3);
		return 0;
	case SYS_TIMER_START:
		return (uint64_t)(int64_t)k_timer_start(a1, (uint32_t)a2);
	case SYS_IRQ_ROUTE:
		return (uint64_t)(int64_t)k_irq_route(a1, (uint32_t)a2, (uint32_t)a3);
	case SYS_START_CPUS:
		return k_start_cpus((const uint32_t *)(uintptr_t)a1, (uint32_t)a2);
	}
	return ~0ull;
}

void k_trap(const struct trapframe *f)
{
	char buf[200];
	uint64_t cr2;
	size_t n;

	if (f->vec == 2 && k_halting())
		k_halt(); /* another vCPU is exiting */
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	n = fmt_sn(buf, sizeof(buf),
		   "testguest: CPU exception vec=%lu err=0x%lx rip=0x%lx cs=0x%lx rsp=0x%lx "
		   "cr2=0x%lx apic=%u\n",
		   f->vec, f->err, f->rip, f->cs, f->rsp, cr2, lapic_id());
	k_write(buf, n);
	k_exit(EXIT_INTERNAL);
}

/*
 * k_cpu.c: per-CPU set-up, run once by each CPU on itself: its TSS (RSP0 for
 * interrupts and system-call traps taken at CPL3) and GDT descriptor, the shared
 * IDT, GS base = its struct pcpu, and its local APIC enabled.
 */
#include "kernel.h"
#include "x86.h"

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iopb;
} __attribute__((packed));

_Static_assert(sizeof(struct tss) == 104, "TSS layout");

static struct tss tss[MAX_CPUS] NOINIT;
static struct pcpu pcpu[MAX_CPUS] NOINIT;

void k_cpu_setup(uint32_t idx)
{
	struct tss *t = &tss[idx];
	struct pcpu *pc = &pcpu[idx];
	uint64_t base = (uint64_t)(uintptr_t)t, limit = sizeof(*t) - 1;
	uint64_t top = (uint64_t)(uintptr_t)k_stacks + (uint64_t)(idx + 1) * KSTACK_SIZE;
	uint16_t sel = (uint16_t)(SEL_TSS0 + 16 * idx);

	*t = (struct tss){.rsp = {top}, .iopb = sizeof(*t)};
	*pc = (struct pcpu){
	    .self = (uint64_t)(uintptr_t)pc, .kstack_top = top, .idx = idx, .apic_id = lapic_id()};

	gdt[SEL_TSS0 / 8 + 2 * idx] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
				      (0x89ull << 40) | (((limit >> 16) & 0xf) << 48) |
				      (((base >> 24) & 0xff) << 56);
	gdt[SEL_TSS0 / 8 + 2 * idx + 1] = base >> 32;
	__asm__ volatile("ltr %0" : : "r"(sel));
	__asm__ volatile("lidt idt_desc" ::: "memory");

	wrmsr(MSR_GS_BASE, (uint64_t)(uintptr_t)pc);

	wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_ENABLE);
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
}

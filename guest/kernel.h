/*
 * kernel.h: the CPL0 part of the guest. It owns the CPU state (GDT/TSS/IDT,
 * MSRs, local APIC), the serial port, the timer and AP start-up, and offers
 * them to the CPL3 program through the syscalls of abi.h. Every instruction
 * here is emulated on our KVM (about 1 µs each), so functions stay short and
 * do no bulk work.
 */
#ifndef GUEST_KERNEL_H
#define GUEST_KERNEL_H

#include <stdbool.h>
#include <stdint.h>
#include "abi.h"

#define NORETURN __attribute__((noreturn))
#define NOINIT	 __attribute__((section(".noinit")))

/* Per-CPU block; GS base points at it (for debugging: gdb shows $gs_base). */
struct pcpu {
	uint64_t self;
	uint64_t kstack_top;
	uint32_t idx;
	uint32_t apic_id;
};

/* Exception frame built by k_isr.S. */
struct trapframe {
	uint64_t vec, err, rip, cs, rflags, rsp, ss;
};

extern uint32_t k_ncpus;	      /* CPUs in k_cpu_apic[] (1 until SYS_START_CPUS) */
extern uint32_t k_cpu_apic[MAX_CPUS]; /* APIC ID of each vCPU index */
extern volatile uint64_t k_started;   /* bit i: CPU i reached its CPL3 entry */
extern uint8_t k_stacks[MAX_CPUS][KSTACK_SIZE];
extern uint8_t k_user_stacks[MAX_CPUS][USTACK_SIZE];

/* k_main.c: C entry points called from assembly */
NORETURN void kmain(uint32_t start_info_paddr);
NORETURN void kap_main(uint32_t idx);

/* k_cpu.c: per-CPU descriptor tables, MSRs, local APIC */
void k_cpu_setup(uint32_t idx);

/* k_serial.c: console and exit */
void k_serial_init(void);
void k_write(const char *s, uint64_t len);
NORETURN void k_exit(uint32_t status); /* also halts the other vCPUs */
NORETURN void k_halt(void);
bool k_halting(void); /* k_exit has begun: an NMI means "halt" */

/* k_timer.c: 8259s off, PIT through the IOAPIC, waiting for ticks */
void k_pic_disable(void);
int k_timer_start(uint64_t ioapic_paddr, uint32_t pin);
void k_wait_tick(uint64_t tick);
int k_irq_route(uint64_t ioapic, uint32_t pin, uint32_t vector);

/* k_smp.c */
uint64_t k_start_cpus(const uint32_t *apic_ids, uint32_t n);

/* k_syscall.c: called from k_isr.S */
uint64_t k_syscall(uint64_t nr, uint64_t a1, uint64_t a2, uint64_t a3);
NORETURN void k_trap(const struct trapframe *f);

/* assembly (k_entry.S, k_isr.S, k_trampoline.S, k_pagetables.S) */
NORETURN void enter_user(uint64_t rip, uint64_t rsp, uint64_t arg);
extern char tramp_start[], tramp_end[];
extern uint64_t gdt[GDT_ENTRIES];
extern uint64_t pdpt[512];
extern char __image_end[];

#endif

/*
 * abi.h: the interface between the CPL0 kernel (k_*.c, *.S) and the CPL3
 * program (u_*.c): syscall numbers and the boot data the kernel publishes.
 *
 * The kernel does only what needs CPL0 (descriptor tables, MSRs, the APIC,
 * port I/O, hlt) because CPL0 is emulated and slow on our KVM; everything
 * else (MP table parsing, command line, workloads) runs natively at CPL3.
 * All memory is identity-mapped and user-accessible, so CPL3 reads the boot
 * data and the tick counter directly.
 *
 * Boot order, on the BSP: kmain() copies start_info, sets the CPU up and
 * enters user_main(0) at CPL3; that parses the MP table (or the MADT), prints
 * the boot line, calls SYS_TIMER_START
 * and then SYS_START_CPUS, after which every AP enters user_main(i) at CPL3.
 */
#ifndef GUEST_ABI_H
#define GUEST_ABI_H

#include <stdint.h>
#include "defs.h"

/* u_syscall (ud2 trap, see k_isr.S): number and three arguments, result. */
enum {
	SYS_WRITE,     /* (const char *buf, u64 len): write bytes to the serial port, atomically */
	SYS_EXIT,      /* (u32 status): print the exit line, debug-exit; never returns */
	SYS_WAIT_TICK, /* (u64 tick): hlt until k_ticks >= tick */
	SYS_CPUID,     /* (u32 leaf, u32 subleaf, u32 out[4]): CPUID executed at CPL0 */
	SYS_TIMER_START, /* (u64 ioapic_paddr, u32 pin): PIT at HZ via the IOAPIC to the BSP;
			    again with another pin: re-route (the old pin is masked) */
	SYS_START_CPUS,	 /* (const u32 *apic_ids, u32 n): INIT/SIPI/SIPI; ids[0] is the BSP.
			    Returns a bitmap (bit i) of the CPUs that reached CPL3 entry. */
	SYS_IRQ_ROUTE,	 /* (u64 ioapic_paddr, u32 pin, u32 vector): edge, active high, to the BSP */
	SYS_COUNT
};

#define MAX_MEMMAP  64
#define CMDLINE_MAX 1024

struct memrange {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* 1 = RAM */
	uint32_t reserved;
};

/* Written once by the BSP kernel before it first enters CPL3. */
struct bootinfo {
	uint32_t memmap_entries;
	uint32_t bsp_apic_id;
	struct memrange memmap[MAX_MEMMAP];
	uint64_t rsdp_paddr;
	uint64_t ram_top;   /* highest RAM end address */
	uint64_t image_end; /* first byte after the image and the kernel's page tables */
	char cmdline[CMDLINE_MAX];
};

extern struct bootinfo k_bootinfo;
/* The CPL3 program's entry on every vCPU (u_main.c), idx = vCPU index. */
void user_main(uint32_t idx) __attribute__((noreturn));
/* Timer ticks (HZ per second) since SYS_TIMER_START; written only by the BSP's handler. */
extern volatile uint64_t k_ticks;
/* Interrupts taken on VEC_DEVICE (k_isr.S); CPL3 reads it. */
extern volatile uint64_t k_device_irqs;

#endif

/*
 * user.h: the CPL3 program. It runs natively on our KVM (CPL0 is emulated),
 * so it does all parsing and all heavy work. It reaches the kernel only via
 * the syscalls of abi.h; it reads k_ticks and k_bootinfo directly.
 *
 * Flow (u_main.c): the BSP parses the MP table (u_mptable.c) and the command
 * line (u_cmdline.c), plans memory (u_mem.c), starts the timer and the APs;
 * then every vCPU reports online, optionally prints CPUID (u_cpuid.c), and
 * runs the dirty/verify workload (u_dirty.c) or idles.
 */
#ifndef GUEST_USER_H
#define GUEST_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "abi.h"
#include "fmt.h"

#define NORETURN __attribute__((noreturn))
/* zero-initialised CPL3 data: cleared by the BSP at CPL3, not by the kernel */
#define UBSS __attribute__((section(".bss.user")))

/* What the firmware tables say (u_mptable.c). */
struct sysinfo {
	uint32_t ncpus;
	uint32_t apic_id[MAX_CPUS]; /* index = vCPU index, [0] = BSP */
	uint64_t ioapic;
	uint32_t irq0_pin;
	const char *source; /* "mptable", "acpi" or "default" */
};

/* The command line (u_cmdline.c). */
struct config {
	bool cpuid;
	bool has_exit, has_runtime, has_dirty;
	uint32_t exit_status;
	uint64_t dirty;	       /* bytes, all vCPUs */
	uint64_t rate;	       /* bytes/s, all vCPUs; 0 = unlimited */
	uint64_t runtime;      /* seconds */
	uint64_t progress;     /* ms */
	uint64_t cpuid_interval; /* s: repeat the cpuid report while working; 0 = once */
	bool fill_mixed;       /* fill=mixed: pages compress ~2.4x with zstd -1, like real memory */
	bool selftest_corrupt; /* hidden: corrupt a page behind the writer's back */
	bool selftest_acpi;    /* hidden: ignore the MP table, use the ACPI MADT */
	const char *dirty_arg; /* the value as written, for messages */
};

/* Per-vCPU slice of the dirty workload (u_mem.c plans, u_dirty.c uses). */
struct slice {
	uint64_t base; /* physical address of the first page */
	uint64_t npages;
	uint64_t *gen; /* npages generation counters, outside the slice */
};

extern struct sysinfo u_sys;
extern struct config u_cfg;
extern struct slice u_slice[MAX_CPUS];

/* A pointer to physical memory (identity mapped). The asm hides the constant
 * from gcc, which otherwise treats low addresses such as 0x40e as null. */
static inline const void *phys(uint64_t paddr)
{
	__asm__("" : "+r"(paddr));
	return (const void *)(uintptr_t)paddr;
}

/* u_lib.c */
uint64_t u_syscall(uint64_t nr, uint64_t a1, uint64_t a2, uint64_t a3);
void u_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
NORETURN void u_exit(uint32_t status);
uint64_t u_ticks(void);
uint64_t u_ms(void); /* ms since the timer started */
void u_sleep_until(uint64_t tick);
void u_barrier(volatile uint32_t *count, uint32_t n);

/* u_mptable.c: fill u_sys; false if neither an MP table nor a MADT was found */
bool mp_find(struct sysinfo *si, uint32_t bsp_apic);
bool acpi_find(struct sysinfo *si, uint32_t bsp_apic);

/* u_cmdline.c: parse k_bootinfo.cmdline into u_cfg; false + message on errors */
bool cmdline_parse(char *err, size_t errsz);
bool parse_size(const char *s, uint64_t *out);

/* u_mem.c */
uint64_t mem_ram_bytes(void);
void mem_plan(uint32_t ncpus); /* fill u_slice[], exit 2 if dirty= does not fit */

/* u_cpuid.c */
void cpuid_report(uint32_t idx);

/* u_dirty.c */
uint64_t dirty_run(uint32_t idx); /* returns after runtime: this vCPU's error count */

#endif

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
	/* virtio (u_virtio.c, u_blk.c, u_rng.c) */
	uint64_t blk;		/* bytes of disk 0 to write and verify; 0 = none */
	uint64_t rng;		/* bytes to read from the entropy device; 0 = none */
	uint32_t blkbench;	/* BLKBENCH_*: measure instead of verify */
	bool net_echo;		/* net=echo: send every received frame back (u_net.c) */
	bool net_announce;	/* negotiate GUEST_ANNOUNCE (net-announce=on, the default) */
	uint32_t nvirtio;	/* virtio_mmio.device= words seen */
	struct virtio_word {
		uint64_t base, size;
		uint32_t irq;
	} virtio[8];
};

enum { BLKBENCH_NONE, BLKBENCH_SEQWRITE, BLKBENCH_SEQREAD, BLKBENCH_RANDWRITE, BLKBENCH_RANDREAD };

/* Per-vCPU slice of the dirty workload (u_mem.c plans, u_dirty.c uses). */
struct slice {
	uint64_t base; /* physical address of the first page */
	uint64_t npages;
	uint64_t *gen; /* npages generation counters, outside the slice */
};

extern struct sysinfo u_sys;
extern struct config u_cfg;
extern struct slice u_slice[MAX_CPUS];

/* splitmix64's finaliser: the memory and disk patterns are made of it */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

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

/* page-aligned memory from what mem_plan() left free; 0 when none is left */
uint64_t mem_alloc(uint64_t bytes);

/* u_virtio.c: a polling virtio-mmio (version 2) driver, split queues */
struct vq {
	volatile uint8_t *desc, *avail, *used;
	uint16_t num;
	uint16_t index;	    /* the queue's number on its device */
	uint16_t avail_idx; /* next avail index we publish */
	uint16_t used_seen; /* used entries consumed */
	bool event_idx;
	bool want_irq; /* ask for an interrupt per used buffer (else none) */
};
struct vdev {
	uint64_t base;
	uint32_t irq;
	uint64_t features; /* negotiated */
	struct vq q;
};
/* Finds the first device of `id` among the virtio_mmio.device= words and
 * brings queue 0 up with at most `qmax` entries. false + message if none. */
bool vdev_open(struct vdev *d, uint32_t id, uint64_t want_features, uint16_t qmax);
/* The same in steps, for a device with several queues: find it and
 * negotiate (FEATURES_OK), set up each queue, then DRIVER_OK. */
bool vdev_begin(struct vdev *d, uint32_t id, uint64_t want_features);
bool vdev_queue(struct vdev *d, struct vq *q, uint16_t index, uint16_t qmax);
void vdev_ready(struct vdev *d);
/* Make head available without notifying; then notify once for everything
 * added since avail index `old` (EVENT_IDX or NO_NOTIFY permitting). */
void vq_add(struct vq *q, uint16_t head);
void vq_notify(struct vdev *d, struct vq *q, uint16_t old);
void vq_kick(struct vdev *d, struct vq *q); /* notify, whatever EVENT_IDX says */
void vq_set_desc(struct vq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next);
void vq_publish(struct vdev *d, uint16_t head); /* make available and notify */
bool vq_take_used(struct vq *q, uint32_t *id, uint32_t *len);
uint32_t vdev_status(struct vdev *d);
uint32_t vdev_config32(struct vdev *d, uint32_t off);
/* Routes the device's IOAPIC pin to VEC_DEVICE and asks for interrupts. */
bool vdev_use_irq(struct vdev *d);
void vdev_ack_irq(struct vdev *d);

/* u_blk.c, u_rng.c */
uint64_t blk_run(void);	  /* returns errors */
void blkbench_run(void);
bool rng_run(void);
uint64_t net_run(void); /* returns errors */

/* u_cpuid.c */
void cpuid_report(uint32_t idx);

/* u_dirty.c */
uint64_t dirty_run(uint32_t idx); /* returns after runtime: this vCPU's error count */

#endif

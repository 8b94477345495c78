/*
 * core/x86/x86.h: x86 boot for a fresh guest: the e820 map, the PVH loader
 * (ELF with XEN_ELFNOTE_PHYS32_ENTRY), boot data (start_info, cmdline,
 * initrd module, GDT), the MP table, and the BSP's initial registers.
 * All addresses come from the machine type ("boot.*", "memory.*").
 *
 * Order: pvh_boot_setup() once, after vm_create() and before vm_start().
 * Only the BSP is set up; APs stay in wait-for-SIPI (KVM's default for
 * vCPUs other than 0 with the in-kernel LAPIC) until the guest's INIT/SIPI.
 */
#ifndef VMM_CORE_X86_H
#define VMM_CORE_X86_H

#include "core/vm.h"

#define E820_RAM 1
#define E820_RESERVED 2
#define E820_MAX 8

struct e820_entry {
	uint64_t addr, size;
	uint32_t type;
};

/* The guest's physical memory map, derived from the machine type and the
 * RAM regions. Returns the number of entries. */
int e820_build(const struct vm *vm, struct e820_entry *out, unsigned max, struct vmm_error *err);

/* What a fresh boot loads (host-side paths, not part of the guest's spec). */
struct vm_boot {
	const char *kernel; /* PVH ELF */
	const char *initrd; /* NULL: none */
	const char *cmdline;
};

/* Loads the kernel (and initrd), writes boot data and the MP table, and
 * sets the BSP's registers for the PVH entry. */
int pvh_boot_setup(struct vm *vm, const struct vm_boot *boot, struct vmm_error *err);

/* Result of loading a PVH ELF. */
struct elf_image {
	uint64_t entry;	    /* 32-bit PVH entry (physical) */
	uint64_t low, high; /* physical range occupied by PT_LOAD segments */
};
/* Loads PT_LOAD segments at p_paddr (all must be at or above `min_addr`)
 * and finds the PVH note. Errors name the file and what is wrong. */
int elf_load_pvh(const struct vm *vm, const char *path, uint64_t min_addr, struct elf_image *img,
		 struct vmm_error *err);

/* Writes the Intel MP 1.4 floating pointer and configuration table. */
int mptable_write(struct vm *vm, struct vmm_error *err);

#endif

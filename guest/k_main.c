/*
 * k_main.c: C entry of the BSP and of each AP. The BSP copies what it needs
 * out of the PVH start_info (before anything could overwrite it), maps RAM
 * above 4 GiB if there is any, sets itself up and drops to CPL3, where the
 * rest of the boot happens (u_main.c).
 */
#include <stddef.h>
#include "kernel.h"
#include "fmt.h"
#include "x86.h"

#define START_INFO_MAGIC 0x336ec578

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct bootinfo k_bootinfo;
uint32_t k_ncpus;
uint32_t k_cpu_apic[MAX_CPUS];
volatile uint64_t k_started;
uint8_t k_stacks[MAX_CPUS][KSTACK_SIZE] NOINIT __attribute__((aligned(4096)));
uint8_t k_user_stacks[MAX_CPUS][USTACK_SIZE] NOINIT __attribute__((aligned(4096)));

/* 16-byte aligned top minus 8, as if user_main had been called */
static uint64_t ustack_top(uint32_t idx)
{
	return (uint64_t)(uintptr_t)k_user_stacks + (uint64_t)(idx + 1) * USTACK_SIZE - 8;
}

static NORETURN void boot_fail(const char *msg)
{
	k_write(msg, strlen(msg));
	k_exit(EXIT_INTERNAL);
}

static void copy_start_info(uint32_t paddr)
{
	const struct hvm_start_info *si = (const struct hvm_start_info *)(uintptr_t)paddr;
	const struct memrange *mm;
	uint32_t i, n;

	if (si->magic != START_INFO_MAGIC)
		boot_fail("testguest: bad PVH start_info magic\n");
	if (si->version < 1 || !si->memmap_paddr || !si->memmap_entries)
		boot_fail("testguest: PVH start_info has no memory map\n");
	n = si->memmap_entries < MAX_MEMMAP ? si->memmap_entries : MAX_MEMMAP;
	mm = (const struct memrange *)(uintptr_t)si->memmap_paddr;
	for (i = 0; i < n; i++) {
		k_bootinfo.memmap[i] = mm[i];
		if (mm[i].type == 1 && mm[i].addr + mm[i].size > k_bootinfo.ram_top)
			k_bootinfo.ram_top = mm[i].addr + mm[i].size;
	}
	k_bootinfo.memmap_entries = n;
	k_bootinfo.rsdp_paddr = si->rsdp_paddr;
	if (si->cmdline_paddr) {
		const char *c = (const char *)(uintptr_t)si->cmdline_paddr;
		for (i = 0; i < CMDLINE_MAX - 1 && c[i]; i++)
			k_bootinfo.cmdline[i] = c[i];
	}
}

/* RAM above 4 GiB: one page directory per GiB right after the image. */
static void map_high_ram(void)
{
	uint64_t top = k_bootinfo.ram_top, pd_base = k_bootinfo.image_end;
	uint64_t gib, ngib = (top + (1ull << 30) - 1) >> 30;

	if (ngib > 512)
		ngib = 512; /* one PDPT: 512 GiB */
	for (gib = 4; gib < ngib; gib++) {
		uint64_t *pd = (uint64_t *)(uintptr_t)pd_base;
		uint64_t i;

		for (i = 0; i < 512; i++) {
			uint64_t a = (gib << 30) + (i << 21);
			pd[i] = a < top ? a | 0xe7 : 0; /* P RW US A D PS */
		}
		pdpt[gib] = pd_base | 0x27; /* P RW US A */
		pd_base += 4096;
	}
	k_bootinfo.image_end = pd_base;
}

void kmain(uint32_t start_info_paddr)
{
	k_pic_disable();
	k_serial_init();
	copy_start_info(start_info_paddr);
	k_bootinfo.image_end = (uint64_t)(uintptr_t)__image_end;
	map_high_ram();
	k_ncpus = 1;
	k_cpu_apic[0] = k_bootinfo.bsp_apic_id = lapic_id();
	k_cpu_setup(0);
	k_started = 1;
	enter_user((uint64_t)(uintptr_t)user_main, ustack_top(0), 0);
}

void kap_main(uint32_t idx)
{
	k_cpu_setup(idx);
	__atomic_fetch_or(&k_started, 1ull << idx, __ATOMIC_SEQ_CST);
	enter_user((uint64_t)(uintptr_t)user_main, ustack_top(idx), idx);
}

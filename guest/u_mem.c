/*
 * u_mem.c: where the dirty workload lives. Free memory is every RAM range of
 * the memory map above the image (and the kernel's page tables); each vCPU
 * gets one contiguous, page-aligned slice, allocated first-fit, and then its
 * generation array (8 bytes per page) outside the slice.
 */
#include "user.h"

#define MIB (UINT64_C(1) << 20)

struct range {
	uint64_t start, end;
};

static struct range freemem[MAX_MEMMAP] UBSS;
static uint32_t nfree UBSS;

uint64_t mem_ram_bytes(void)
{
	uint64_t sum = 0;
	uint32_t i;

	for (i = 0; i < k_bootinfo.memmap_entries; i++)
		if (k_bootinfo.memmap[i].type == 1)
			sum += k_bootinfo.memmap[i].size;
	return sum;
}

static uint64_t free_bytes(void)
{
	uint64_t sum = 0;
	uint32_t i;

	for (i = 0; i < nfree; i++)
		sum += freemem[i].end - freemem[i].start;
	return sum;
}

static void build_free_list(void)
{
	uint64_t floor = k_bootinfo.image_end > MIB ? k_bootinfo.image_end : MIB;
	uint32_t i;

	nfree = 0;
	for (i = 0; i < k_bootinfo.memmap_entries; i++) {
		const struct memrange *m = &k_bootinfo.memmap[i];
		uint64_t s = m->addr, e = m->addr + m->size;

		if (m->type != 1)
			continue;
		s = s < floor ? floor : s;
		s = (s + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
		e &= ~(uint64_t)(PAGE_SIZE - 1);
		if (s < e)
			freemem[nfree++] = (struct range){s, e};
	}
}

static uint64_t alloc(uint64_t bytes)
{
	uint32_t i;

	for (i = 0; i < nfree; i++) {
		if (freemem[i].end - freemem[i].start >= bytes) {
			uint64_t a = freemem[i].start;

			freemem[i].start += bytes;
			return a;
		}
	}
	return 0;
}

void mem_plan(uint32_t ncpus)
{
	uint64_t per, npages, genbytes, avail;
	uint32_t i;

	build_free_list();
	avail = free_bytes();
	if (!u_cfg.has_dirty)
		return;
	per = (u_cfg.dirty / ncpus) & ~(uint64_t)(PAGE_SIZE - 1);
	if (!per)
		per = PAGE_SIZE;
	npages = per / PAGE_SIZE;
	genbytes = (npages * sizeof(uint64_t) + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
	for (i = 0; i < ncpus; i++) {
		u_slice[i].base = alloc(per);
		u_slice[i].npages = npages;
		if (!u_slice[i].base)
			goto no_room;
	}
	for (i = 0; i < ncpus; i++) {
		u_slice[i].gen = (uint64_t *)(uintptr_t)alloc(genbytes);
		if (!u_slice[i].gen)
			goto no_room;
	}
	return;
no_room:
	u_printf("testguest: dirty=%s: only %lu MiB free\n", u_cfg.dirty_arg, avail / MIB);
	u_exit(EXIT_USAGE);
}

uint64_t mem_alloc(uint64_t bytes)
{
	bytes = (bytes + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
	uint64_t a = alloc(bytes);
	if (a)
		memset((void *)(uintptr_t)a, 0, bytes);
	return a;
}

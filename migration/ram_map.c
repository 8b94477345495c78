/*
 * migration/ram_map.c: which guest RAM holds data, at the source. The walk
 * asks the memfd (core: SEEK_DATA/SEEK_HOLE, or the page cache of a hugetlb
 * memfd, where SEEK_DATA sees no holes) and never reads a page, so never
 * touched memory costs nothing. Pass 0 sends these pages; before it, the
 * same ranges go out as RamMap records so the destination can map that
 * memory ahead of the pages (populate.c).
 */
#include "migration/ram.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int64_t mig_page_index(const struct guest_memory *mem, uint64_t pfn)
{
	if (pfn >= (1ull << (64 - MIG_PAGE_SHIFT)))
		return -1;
	uint64_t gpa = pfn << MIG_PAGE_SHIFT;
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct mem_region *rg = &mem->regions[i];
		if (gpa >= rg->gpa && gpa - rg->gpa < rg->size)
			return (int64_t)((rg->offset + gpa - rg->gpa) >> MIG_PAGE_SHIFT);
	}
	return -1;
}

int mig_ram_walk_populated(const struct guest_memory *mem, atomic_bool *cancel, mig_range_fn fn,
			   void *ctx, uint64_t *untouched, struct vmm_error *err)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct mem_region *rg = &mem->regions[i];
		uint64_t off = rg->offset, end = rg->offset + rg->size;
		while (off < end) {
			if (cancel && atomic_load(cancel))
				return vmm_error_set(err, -ECANCELED, "migration cancelled");
			uint64_t data, hole;
			int r = guest_memory_next_data(mem, off, end, &data, &hole, err);
			if (r == -ENXIO) {
				*untouched += (end - off) / MIG_PAGE_SIZE;
				break;
			}
			if (r < 0)
				return r;
			*untouched += (data - off) / MIG_PAGE_SIZE;
			uint64_t first = (rg->gpa + (data - rg->offset)) >> MIG_PAGE_SHIFT;
			if ((r = fn(ctx, first, (hole - data) / MIG_PAGE_SIZE, err)) < 0)
				return r;
			off = hole;
		}
	}
	return 0;
}

struct map_out {
	struct mig_writer *w;
	struct mig_ram_ranges *keep;
	uint64_t first[MIG_MAP_MAX_RANGES], count[MIG_MAP_MAX_RANGES];
	unsigned n;
};

static int map_flush(struct map_out *m, struct vmm_error *err)
{
	if (!m->n)
		return 0;
	Vmm__Migration__RamMap rm = VMM__MIGRATION__RAM_MAP__INIT;
	rm.n_first = rm.n_count = m->n;
	rm.first = m->first;
	rm.count = m->count;
	m->n = 0;
	return mig_write_record(m->w, MIG_REC_RAM_MAP, &rm.base, err);
}

static int map_range(void *ctx, uint64_t first, uint64_t count, struct vmm_error *err)
{
	struct map_out *m = ctx;
	struct mig_ram_ranges *k = m->keep;
	if (k && k->complete) {
		if (k->n == MIG_RANGES_MAX) {
			k->complete = false; /* too fragmented to keep: passes walk again */
		} else {
			k->first[k->n] = first;
			k->count[k->n] = count;
			k->n++;
		}
	}
	m->first[m->n] = first;
	m->count[m->n] = count;
	if (++m->n == MIG_MAP_MAX_RANGES)
		return map_flush(m, err);
	return 0;
}

void mig_ram_ranges_free(struct mig_ram_ranges *r)
{
	free(r->first);
	free(r->count);
	memset(r, 0, sizeof(*r));
}

int mig_ram_send_map(struct vm *vm, struct mig_writer *w, atomic_bool *cancel,
		     struct mig_ram_ranges *keep, struct vmm_error *err)
{
	struct map_out *m = calloc(1, sizeof(*m)); /* 64 KiB: off the stack */
	if (!m)
		return vmm_error_set(err, -ENOMEM, "migration: out of memory for the RAM map");
	m->w = w;
	if (keep) {
		memset(keep, 0, sizeof(*keep));
		keep->first = malloc(MIG_RANGES_MAX * sizeof(uint64_t));
		keep->count = malloc(MIG_RANGES_MAX * sizeof(uint64_t));
		keep->complete = keep->first && keep->count;
		m->keep = keep;
	}
	uint64_t untouched = 0;
	int r = mig_ram_walk_populated(&vm->mem, cancel, map_range, m, &untouched, err);
	if (r == 0)
		r = map_flush(m, err);
	if (keep)
		keep->untouched = untouched;
	free(m);
	return r;
}

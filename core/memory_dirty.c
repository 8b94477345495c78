/*
 * core/memory_dirty.c: pages of guest RAM written by the VMM's own threads.
 * KVM's dirty log only sees writes made through the guest's mappings;
 * virtio devices write guest RAM directly (read data, used rings), so they
 * mark what they wrote here and migration merges these marks into KVM's
 * log at every sync. Writers mark after writing, the sync clears before it
 * reads pages: a page is either taken by this sync (and read after) or
 * stays marked for the next one.
 */
#include "core/vm.h"

#define PAGE_SHIFT 12
#define WORD_BITS  (8 * sizeof(unsigned long))

void guest_memory_mark_dirty(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		return;
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct mem_region *rg = &mem->regions[i];
		if (gpa < rg->gpa || gpa - rg->gpa >= rg->size || !rg->vmm_dirty)
			continue;
		uint64_t first = (gpa - rg->gpa) >> PAGE_SHIFT;
		uint64_t end = gpa - rg->gpa + len;
		if (end > rg->size || end < len)
			end = rg->size;
		uint64_t last = (end - 1) >> PAGE_SHIFT;
		for (uint64_t p = first; p <= last; p++)
			atomic_fetch_or_explicit(&rg->vmm_dirty[p / WORD_BITS],
						 1ul << (p % WORD_BITS), memory_order_release);
		return;
	}
}

void guest_memory_take_dirty(const struct guest_memory *mem, unsigned region, unsigned long *bitmap,
			     size_t words)
{
	if (region >= mem->nregions || !mem->regions[region].vmm_dirty)
		return;
	const struct mem_region *rg = &mem->regions[region];
	size_t have = (rg->size / 4096 + WORD_BITS - 1) / WORD_BITS;
	for (size_t w = 0; w < words && w < have; w++) {
		if (!atomic_load_explicit(&rg->vmm_dirty[w], memory_order_relaxed))
			continue;
		bitmap[w] |= atomic_exchange_explicit(&rg->vmm_dirty[w], 0, memory_order_acq_rel);
	}
}

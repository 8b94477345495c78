/*
 * core/dirty_log.c: KVM's dirty-page log over all RAM slots, merged with the
 * pages the VMM's own devices wrote (memory_dirty.c). Plain
 * KVM_GET_DIRTY_LOG (fetch and re-protect in one ioctl): at the guest sizes
 * measured (bench/dirty-log-cost.c) manual protection saves microseconds
 * per sync and is not worth its chunked clears.
 */
#include "core/state.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define PAGE_SIZE 4096u
#define BITS_PER_WORD (8 * sizeof(unsigned long))

int vm_dirty_log_start(struct vm_dirty_log *d, struct vm *vm, struct vmm_error *err)
{
	memset(d, 0, sizeof(*d));
	d->vm = vm;
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		uint64_t pages = vm->mem.regions[i].size / PAGE_SIZE;
		d->words[i] = (pages + BITS_PER_WORD - 1) / BITS_PER_WORD;
		d->bitmaps[i] = calloc(d->words[i], sizeof(unsigned long));
		d->scratch[i] = calloc(d->words[i], sizeof(unsigned long));
		if (!d->bitmaps[i] || !d->scratch[i]) {
			vm_dirty_log_stop(d);
			return vmm_error_set(err, -ENOMEM, "out of memory for dirty bitmaps");
		}
	}
	int r = guest_memory_register(&vm->mem, vm->vm_fd, KVM_MEM_LOG_DIRTY_PAGES, err);
	if (r < 0) {
		vm_dirty_log_stop(d);
		return vmm_error_prefix(err, "enabling dirty logging");
	}
	d->enabled = true;
	/* Device writes from before are forgotten: the first pass reads after this. */
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		guest_memory_take_dirty(&vm->mem, i, d->bitmaps[i], d->words[i]);
		memset(d->bitmaps[i], 0, d->words[i] * sizeof(unsigned long));
	}
	return 0;
}

int64_t vm_dirty_log_sync(struct vm_dirty_log *d, struct vmm_error *err)
{
	int64_t dirty = 0;
	for (unsigned i = 0; i < d->vm->mem.nregions; i++) {
		struct kvm_dirty_log log = {.slot = d->vm->mem.regions[i].slot,
					    .dirty_bitmap = d->bitmaps[i]};
		if (ioctl(d->vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
			return vmm_error_set(err, -errno, "KVM_GET_DIRTY_LOG slot %u: %s", log.slot,
					     strerror(errno));
		/* Pages the VMM itself wrote (virtio devices): KVM's log cannot see them. */
		guest_memory_take_dirty(&d->vm->mem, i, d->bitmaps[i], d->words[i]);
		for (size_t w = 0; w < d->words[i]; w++)
			dirty += __builtin_popcountl(d->bitmaps[i][w]);
	}
	return dirty;
}

int64_t vm_dirty_log_sync_merge(struct vm_dirty_log *d, struct vmm_error *err)
{
	int64_t dirty = 0;
	for (unsigned i = 0; i < d->vm->mem.nregions; i++) {
		struct kvm_dirty_log log = {.slot = d->vm->mem.regions[i].slot,
					    .dirty_bitmap = d->scratch[i]};
		if (ioctl(d->vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
			return vmm_error_set(err, -errno, "KVM_GET_DIRTY_LOG slot %u: %s", log.slot,
					     strerror(errno));
		for (size_t w = 0; w < d->words[i]; w++)
			d->bitmaps[i][w] |= d->scratch[i][w];
		/* and what the devices wrote: the last pass must carry it too */
		guest_memory_take_dirty(&d->vm->mem, i, d->bitmaps[i], d->words[i]);
		for (size_t w = 0; w < d->words[i]; w++)
			dirty += __builtin_popcountl(d->bitmaps[i][w]);
	}
	return dirty;
}

void vm_dirty_log_stop(struct vm_dirty_log *d)
{
	if (d->enabled) {
		struct vmm_error ignored;
		guest_memory_register(&d->vm->mem, d->vm->vm_fd, 0, &ignored);
		d->enabled = false;
	}
	for (unsigned i = 0; i < GUEST_MEM_MAX_REGIONS; i++) {
		free(d->bitmaps[i]);
		free(d->scratch[i]);
		d->bitmaps[i] = d->scratch[i] = NULL;
	}
}

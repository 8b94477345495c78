/*
 * core/memory.c: guest RAM. All of it lives in one memfd mapped MAP_SHARED,
 * so migration can find never-touched pages with SEEK_DATA/SEEK_HOLE and a
 * second process could map the same memory. RAM is split around the 32-bit
 * MMIO hole as the machine type says.
 */
#include "core/vm.h"

#include <errno.h>
#include <stdlib.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

int guest_memory_create(struct guest_memory *mem, uint64_t size, const struct machine *m,
			struct vmm_error *err)
{
	uint64_t low_max, high_base, min_size, max_size, page;
	int r;
	if ((r = machine_get_u64(m, "memory", "low-ram-max", &low_max, err)) < 0 ||
	    (r = machine_get_u64(m, "memory", "high-ram-base", &high_base, err)) < 0 ||
	    (r = machine_get_u64(m, "memory", "min-size", &min_size, err)) < 0 ||
	    (r = machine_get_u64(m, "memory", "max-size", &max_size, err)) < 0 ||
	    (r = machine_get_u64(m, "memory", "page-size", &page, err)) < 0)
		return r;

	memset(mem, 0, sizeof(*mem));
	mem->fd = -1;
	if (size < min_size)
		return vmm_error_set(err, -EINVAL,
				     "--memory %llu MiB: too small (machine %s needs at least %llu MiB)",
				     (unsigned long long)(size >> 20), m->name,
				     (unsigned long long)(min_size >> 20));
	if (size > max_size)
		return vmm_error_set(err, -EINVAL,
				     "--memory %llu MiB: too large (machine %s allows at most %llu GiB)",
				     (unsigned long long)(size >> 20), m->name,
				     (unsigned long long)(max_size >> 30));
	if (size % page)
		return vmm_error_set(err, -EINVAL,
				     "--memory %llu bytes: not a multiple of the %llu-byte page",
				     (unsigned long long)size, (unsigned long long)page);

	mem->fd = memfd_create("vmm-guest-ram", MFD_CLOEXEC);
	if (mem->fd < 0)
		return vmm_error_set(err, -errno, "guest RAM: memfd_create: %s", strerror(errno));
	if (ftruncate(mem->fd, (off_t)size) < 0) {
		r = vmm_error_set(err, -errno, "guest RAM: cannot size memfd to %llu MiB: %s",
				  (unsigned long long)(size >> 20), strerror(errno));
		goto close_fd;
	}
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, mem->fd, 0);
	if (base == MAP_FAILED) {
		r = vmm_error_set(err, -errno, "guest RAM: cannot map %llu MiB: %s",
				  (unsigned long long)(size >> 20), strerror(errno));
		goto close_fd;
	}
	mem->base = base;
	mem->size = size;

	uint64_t low = size < low_max ? size : low_max;
	mem->regions[0] = (struct mem_region){.gpa = 0, .size = low, .offset = 0, .hva = mem->base,
					      .slot = 0};
	mem->nregions = 1;
	if (size > low) {
		mem->regions[1] = (struct mem_region){.gpa = high_base, .size = size - low,
						      .offset = low, .hva = mem->base + low,
						      .slot = 1};
		mem->nregions = 2;
	}
	for (unsigned i = 0; i < mem->nregions; i++) {
		size_t bits = 8 * sizeof(unsigned long), pages = mem->regions[i].size / page;
		mem->regions[i].vmm_dirty = calloc((pages + bits - 1) / bits, sizeof(unsigned long));
		if (!mem->regions[i].vmm_dirty) {
			r = vmm_error_set(err, -ENOMEM, "guest RAM: out of memory for dirty bitmaps");
			guest_memory_destroy(mem);
			return r;
		}
	}
	return 0;

close_fd:
	close(mem->fd);
	mem->fd = -1;
	return r;
}

int guest_memory_register(struct guest_memory *mem, int vm_fd, uint32_t flags,
			  struct vmm_error *err)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		struct mem_region *rg = &mem->regions[i];
		struct kvm_userspace_memory_region kr = {
			.slot = rg->slot,
			.flags = flags,
			.guest_phys_addr = rg->gpa,
			.memory_size = rg->size,
			.userspace_addr = (uint64_t)(uintptr_t)rg->hva,
		};
		if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &kr) < 0)
			return vmm_error_set(err, -errno,
					     "KVM_SET_USER_MEMORY_REGION slot %u (0x%llx+%llu MiB): %s",
					     rg->slot, (unsigned long long)rg->gpa,
					     (unsigned long long)(rg->size >> 20), strerror(errno));
	}
	return 0;
}

void guest_memory_destroy(struct guest_memory *mem)
{
	for (unsigned i = 0; i < GUEST_MEM_MAX_REGIONS; i++) {
		free((void *)mem->regions[i].vmm_dirty);
		mem->regions[i].vmm_dirty = NULL;
	}
	if (mem->base)
		munmap(mem->base, mem->size);
	if (mem->fd >= 0)
		close(mem->fd);
	mem->base = NULL;
	mem->fd = -1;
}

void *guest_ptr(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct mem_region *rg = &mem->regions[i];
		if (gpa >= rg->gpa && gpa - rg->gpa <= rg->size && len <= rg->size - (gpa - rg->gpa))
			return rg->hva + (gpa - rg->gpa);
	}
	return NULL;
}

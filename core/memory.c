/*
 * core/memory.c: guest RAM. All of it lives in one memfd mapped MAP_SHARED,
 * so migration can find never-touched pages (SEEK_DATA/SEEK_HOLE, or the
 * page cache for hugetlbfs) and a second process can map the same memory
 * (a same-host move passes the memfd). RAM is split around the 32-bit MMIO
 * hole as the machine type says. The backing is a host-side choice: shmem
 * pages, or 2 MiB hugetlb pages (far fewer page faults to fill: on the
 * nested machines this project runs on, a 4 KiB first touch costs
 * microseconds; see README "Measured"). Shmem RAM asks for transparent
 * hugepages (MADV_HUGEPAGE), as QEMU does for its anonymous RAM: the host
 * decides, through /sys/kernel/mm/transparent_hugepage/shmem_enabled
 * (Debian's default "never" keeps 4 KiB pages; "advise" gives 2 MiB ones).
 */
#include "core/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21 << 26) /* log2(2 MiB) << MFD_HUGE_SHIFT */
#endif

/* Best effort: a kernel without THP for shmem answers EINVAL, and the
 * memory is as good with 4 KiB pages. */
static void advise_thp(void *base, uint64_t size)
{
	(void)madvise(base, size, MADV_HUGEPAGE);
}

/* A "Name: N" line of /proc/meminfo, or -1. */
static long meminfo(const char *name)
{
	FILE *f = fopen("/proc/meminfo", "re");
	if (!f)
		return -1;
	char line[128];
	size_t len = strlen(name);
	long n = -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, name, len) == 0 && line[len] == ':') {
			n = strtol(line + len + 1, NULL, 10);
			break;
		}
	fclose(f);
	return n;
}

static int pool_error(uint64_t size, int e, struct vmm_error *err)
{
	long total = meminfo("HugePages_Total"), avail = meminfo("HugePages_Free") -
							 meminfo("HugePages_Rsvd");
	long need = (long)(size / GUEST_HUGEPAGE_SIZE);
	if (avail < 0)
		avail = 0;
	return vmm_error_set(err, -e,
			     "guest RAM: %llu MiB in 2 MiB hugepages needs %ld pages from the host's "
			     "pool, %ld are available (/proc/sys/vm/nr_hugepages = %ld): as root, "
			     "echo %ld > /proc/sys/vm/nr_hugepages (and give them back afterwards)",
			     (unsigned long long)(size >> 20), need, avail, total,
			     total + need - avail);
}

static void split_regions(struct guest_memory *mem, uint64_t low_max, uint64_t high_base)
{
	uint64_t size = mem->size;
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
}

int guest_memory_create(struct guest_memory *mem, uint64_t size, bool hugepages,
			const struct machine *m, struct vmm_error *err)
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
	/* Both regions must be whole huge pages: the split is at low-ram-max. */
	if (hugepages && (size % GUEST_HUGEPAGE_SIZE || low_max % GUEST_HUGEPAGE_SIZE))
		return vmm_error_set(err, -EINVAL,
				     "--memory %llu KiB,hugepages=on: not a multiple of 2 MiB",
				     (unsigned long long)(size >> 10));

	mem->fd = memfd_create("vmm-guest-ram",
			       MFD_CLOEXEC | (hugepages ? MFD_HUGETLB | MFD_HUGE_2MB : 0));
	if (mem->fd < 0) {
		r = errno;
		if (hugepages)
			return vmm_error_set(err, -r,
					     "guest RAM: memfd_create(MFD_HUGETLB): %s (does this "
					     "kernel have hugetlbfs with 2 MiB pages?)",
					     strerror(r));
		return vmm_error_set(err, -r, "guest RAM: memfd_create: %s", strerror(r));
	}
	if (ftruncate(mem->fd, (off_t)size) < 0) {
		r = vmm_error_set(err, -errno, "guest RAM: cannot size memfd to %llu MiB: %s",
				  (unsigned long long)(size >> 20), strerror(errno));
		goto close_fd;
	}
	/* hugetlb: no MAP_NORESERVE, so the whole pool is reserved here and a
	 * short pool fails now, with a message, instead of a SIGBUS in the
	 * middle of a guest's (or a migration's) write. */
	int flags = MAP_SHARED | (hugepages ? 0 : MAP_NORESERVE);
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, mem->fd, 0);
	if (base == MAP_FAILED) {
		if (hugepages && errno == ENOMEM)
			r = pool_error(size, errno, err);
		else
			r = vmm_error_set(err, -errno, "guest RAM: cannot map %llu MiB: %s",
					  (unsigned long long)(size >> 20), strerror(errno));
		goto close_fd;
	}
	mem->base = base;
	mem->size = size;
	if (!hugepages)
		advise_thp(base, size);
	mem->hugetlb = hugepages;
	mem->page_size = hugepages ? GUEST_HUGEPAGE_SIZE : 4096;
	split_regions(mem, low_max, high_base);
	/* What the VMM itself writes (virtio buffers) is dirty too: KVM's log
	 * sees only the guest's writes. */
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

/* hugetlbfs: which 2 MiB pages of [off, end) exist, from the page cache.
 * mincore() on a hugetlb mapping answers per huge page (in 4 KiB units)
 * whether the file has it, whoever touched it (the guest through KVM, or a
 * migration writing it), and touches nothing. */
static int next_data_mincore(const struct guest_memory *mem, uint64_t off, uint64_t end,
			     uint64_t *data, uint64_t *hole, struct vmm_error *err)
{
	const uint64_t hp = GUEST_HUGEPAGE_SIZE;
	off &= ~(hp - 1);
	unsigned char vec[512]; /* 4 KiB units: 2 MiB per vector entry group of 512 */
	bool in_data = false;
	while (off < end) {
		/* One huge page per call keeps the vector small and bounded. */
		uint64_t len = hp < end - off ? hp : end - off;
		if (mincore(mem->base + off, len, vec) < 0)
			return vmm_error_set(err, -errno, "guest RAM: mincore at 0x%llx: %s",
					     (unsigned long long)off, strerror(errno));
		bool present = vec[0] & 1;
		if (present && !in_data) {
			*data = off;
			in_data = true;
		} else if (!present && in_data) {
			*hole = off;
			return 0;
		}
		off += len;
	}
	if (in_data) {
		*hole = end;
		return 0;
	}
	return -ENXIO;
}

int guest_memory_next_data(const struct guest_memory *mem, uint64_t off, uint64_t end,
			   uint64_t *data, uint64_t *hole, struct vmm_error *err)
{
	if (off >= end)
		return -ENXIO;
	if (mem->hugetlb)
		return next_data_mincore(mem, off, end, data, hole, err);
	off_t d = lseek(mem->fd, (off_t)off, SEEK_DATA);
	if (d < 0 && errno == ENXIO)
		return -ENXIO;
	if (d < 0)
		return vmm_error_set(err, -errno, "guest RAM: SEEK_DATA: %s", strerror(errno));
	if ((uint64_t)d >= end)
		return -ENXIO;
	off_t h = lseek(mem->fd, d, SEEK_HOLE);
	*data = (uint64_t)d;
	*hole = h < 0 || (uint64_t)h > end ? end : (uint64_t)h;
	return 0;
}

static int delete_slots(const struct guest_memory *mem, int vm_fd, struct vmm_error *err)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		struct kvm_userspace_memory_region kr = {.slot = mem->regions[i].slot};
		if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &kr) < 0)
			return vmm_error_set(err, -errno, "KVM: deleting memory slot %u: %s",
					     mem->regions[i].slot, strerror(errno));
	}
	return 0;
}

int vm_memory_adopt(struct vm *vm, int fd, struct vmm_error *err)
{
	struct guest_memory *mem = &vm->mem;
	struct stat st;
	struct statfs sfs;
	if (fstat(fd, &st) < 0 || fstatfs(fd, &sfs) < 0)
		return vmm_error_set(err, -errno, "the source's RAM descriptor: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return vmm_error_set(err, -EINVAL,
				     "the source's RAM descriptor is not a memory file (mode 0%o)",
				     (unsigned)st.st_mode);
	if ((uint64_t)st.st_size != mem->size)
		return vmm_error_set(err, -EINVAL,
				     "the source's RAM file holds %llu bytes, this guest has %llu",
				     (unsigned long long)st.st_size, (unsigned long long)mem->size);
	bool hugetlb = (unsigned long)sfs.f_type == HUGETLBFS_MAGIC;
	if (!hugetlb && (unsigned long)sfs.f_type != TMPFS_MAGIC)
		return vmm_error_set(err, -EINVAL,
				     "the source's RAM descriptor is not a memfd (filesystem 0x%lx)",
				     (unsigned long)sfs.f_type);
	/* Map first: if this fails, nothing has changed. The source's pool
	 * reservation covers hugetlb pages; MAP_NORESERVE keeps a second one
	 * from being charged here. */
	void *probe = mmap(NULL, mem->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd,
			   0);
	if (probe == MAP_FAILED)
		return vmm_error_set(err, -errno, "cannot map the source's RAM (%llu MiB%s): %s",
				     (unsigned long long)(mem->size >> 20),
				     hugetlb ? ", hugetlb" : "", strerror(errno));
	struct guest_memory next = *mem;
	next.fd = fd;
	next.hugetlb = hugetlb;
	next.page_size = hugetlb ? GUEST_HUGEPAGE_SIZE : 4096;
	/* Best: the new memory where the old was. KVM's slots keep their
	 * addresses (no slot ioctls, each of which waits for an RCU grace
	 * period), and nothing of the old mapping was ever touched. A hugetlb
	 * file needs a 2 MiB-aligned address the old mapping may not have. */
	void *fixed = mmap(mem->base, mem->size, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_NORESERVE | MAP_FIXED, fd, 0);
	if (fixed != MAP_FAILED) {
		if (!hugetlb)
			advise_thp(fixed, mem->size);
		munmap(probe, mem->size);
		close(mem->fd);
		*mem = next;
		return 0;
	}
	/* Else the probe mapping stays, and the slots move to it. */
	if (!hugetlb)
		advise_thp(probe, mem->size);
	next.base = probe;
	for (unsigned i = 0; i < next.nregions; i++)
		next.regions[i].hva = (uint8_t *)probe + next.regions[i].offset;
	struct vmm_error ignored;
	int r = delete_slots(mem, vm->vm_fd, err);
	if (r == 0 && (r = guest_memory_register(&next, vm->vm_fd, 0, err)) == 0) {
		for (unsigned i = 0; i < GUEST_MEM_MAX_REGIONS; i++)
			mem->regions[i].vmm_dirty = NULL; /* `next` owns the bitmaps now */
		guest_memory_destroy(mem);
		*mem = next;
		return 0;
	}
	/* Put the old slots back; the VM stays as it was. */
	delete_slots(mem, vm->vm_fd, &ignored);
	guest_memory_register(mem, vm->vm_fd, 0, &ignored);
	munmap(probe, mem->size);
	return r;
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

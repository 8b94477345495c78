/*
 * bench/dirty-log-cost.c: the fixed cost of one dirty-log sync on this
 * host's KVM, by RAM size, for the pre-copy loop's choice of mechanism:
 *   A) KVM_GET_DIRTY_LOG (fetch and re-protect in one call), and
 *   B) KVM_GET_DIRTY_LOG + KVM_CLEAR_DIRTY_LOG with manual protection
 *      (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, re-protecting only dirty runs).
 * The slot is idle (nothing dirty): this is what every pre-copy iteration
 * and the stop-and-copy pay however little the guest wrote. With dirty
 * pages both re-protect the same pages, once each. Prints the median of 15.
 *
 * build: cc -O2 -o /tmp/dirty-log-cost bench/dirty-log-cost.c
 * run:   /tmp/dirty-log-cost
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double sync_cost(int vm, int slot, size_t bitmap_bytes, int manual, unsigned long *bm)
{
	uint64_t t[15];
	for (int i = 0; i < 15; i++) {
		uint64_t t0 = now_ns();
		struct kvm_dirty_log log = {.slot = (uint32_t)slot, .dirty_bitmap = bm};
		if (ioctl(vm, KVM_GET_DIRTY_LOG, &log) < 0) {
			perror("KVM_GET_DIRTY_LOG");
			exit(1);
		}
		if (manual) {
			/* clear what was dirty, in 64-page aligned runs */
			size_t words = bitmap_bytes / sizeof(unsigned long);
			for (size_t w = 0; w < words; w++) {
				if (!bm[w])
					continue;
				struct kvm_clear_dirty_log c = {.slot = (uint32_t)slot,
								.first_page = w * 64,
								.num_pages = 64,
								.dirty_bitmap = &bm[w]};
				ioctl(vm, KVM_CLEAR_DIRTY_LOG, &c);
			}
		}
		t[i] = now_ns() - t0;
	}
	qsort(t, 15, sizeof(t[0]), cmp);
	return (double)t[7] / 1000.0;
}

int main(void)
{
	int kvm = open("/dev/kvm", O_RDWR);
	if (kvm < 0) {
		perror("/dev/kvm");
		return 1;
	}
	printf("%-8s %-28s %12s\n", "RAM", "mechanism", "us/sync");
	const unsigned gib[] = {1, 4, 16};
	for (unsigned g = 0; g < sizeof(gib) / sizeof(gib[0]); g++) {
		for (int manual = 0; manual < 2; manual++) {
			int vm = ioctl(kvm, KVM_CREATE_VM, 0);
			if (manual) {
				struct kvm_enable_cap cap = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
							     .args = {1}};
				if (ioctl(vm, KVM_ENABLE_CAP, &cap) < 0) {
					perror("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2");
					return 1;
				}
			}
			size_t size = (size_t)gib[g] << 30;
			int fd = memfd_create("ram", 0);
			if (ftruncate(fd, (off_t)size) < 0)
				return 1;
			void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_NORESERVE, fd, 0);
			struct kvm_userspace_memory_region r = {
				.slot = 0,
				.flags = KVM_MEM_LOG_DIRTY_PAGES,
				.guest_phys_addr = 0,
				.memory_size = size,
				.userspace_addr = (uint64_t)(uintptr_t)mem,
			};
			if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
				perror("KVM_SET_USER_MEMORY_REGION");
				return 1;
			}
			size_t bytes = size / 4096 / 8;
			unsigned long *bm = calloc(1, bytes);
			printf("%-8s %-28s %12.1f\n", gib[g] == 1 ? "1 GiB" : gib[g] == 4 ? "4 GiB" : "16 GiB",
			       manual ? "GET + CLEAR (manual protect)" : "GET_DIRTY_LOG",
			       sync_cost(vm, 0, bytes, manual, bm));
			free(bm);
			munmap(mem, size);
			close(fd);
			close(vm);
		}
	}
	return 0;
}

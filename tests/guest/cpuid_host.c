/*
 * cpuid_host.c: prints the host's own CPUID, walked exactly like the guest's
 * `cpuid` report (guest/cpuid_enum.c), as "cpuid[host] leaf subleaf eax ebx
 * ecx edx" lines, for test_guest_qemu.py to compare with the guest's CPL3 view.
 */
#include <cpuid.h>
#include <stdio.h>
#include "cpuid_enum.h"

static void query(uint32_t leaf, uint32_t subleaf, uint32_t r[4])
{
	__cpuid_count(leaf, subleaf, r[0], r[1], r[2], r[3]);
}

static void emit(void *ctx, uint32_t leaf, uint32_t subleaf, const uint32_t r[4])
{
	(void)ctx;
	printf("cpuid[host] 0x%08x 0x%08x 0x%08x 0x%08x 0x%08x 0x%08x\n", leaf, subleaf, r[0], r[1],
	       r[2], r[3]);
}

int main(void)
{
	cpuid_enumerate(query, emit, NULL);
	printf("cpuid[host] end\n");
	return 0;
}

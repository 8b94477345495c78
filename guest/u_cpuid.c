/*
 * u_cpuid.c: the `cpuid` report. Each vCPU prints every leaf it sees at CPL3
 * as "cpuid[i] leaf subleaf eax ebx ecx edx", then "cpuid[i] end". It also
 * asks the kernel to execute the same leaf at CPL0 (one cheap syscall) and
 * prints "cpuid-cpl0[i] ..." only where that differs from the CPL3 value,
 * closing with "cpuid-cpl0[i] end differ=<n>": on VMX/SVM both are the
 * VMM's table; on our paravirtual KVM CPL3 gets the raw host values.
 */
#include "cpuid_enum.h"
#include "user.h"
#include "x86.h"

struct ctx {
	uint32_t idx;
	uint32_t differ;
};

static void query_cpl3(uint32_t leaf, uint32_t subleaf, uint32_t r[4])
{
	cpuid(leaf, subleaf, r);
}

static void emit(void *opaque, uint32_t leaf, uint32_t subleaf, const uint32_t r[4])
{
	struct ctx *c = opaque;
	uint32_t k[4];

	u_printf("cpuid[%u] 0x%08x 0x%08x 0x%08x 0x%08x 0x%08x 0x%08x\n", c->idx, leaf, subleaf,
		 r[0], r[1], r[2], r[3]);
	u_syscall(SYS_CPUID, leaf, subleaf, (uint64_t)(uintptr_t)k);
	if (k[0] != r[0] || k[1] != r[1] || k[2] != r[2] || k[3] != r[3]) {
		c->differ++;
		u_printf("cpuid-cpl0[%u] 0x%08x 0x%08x 0x%08x 0x%08x 0x%08x 0x%08x\n", c->idx, leaf,
			 subleaf, k[0], k[1], k[2], k[3]);
	}
}

void cpuid_report(uint32_t idx)
{
	struct ctx c = {idx, 0};

	cpuid_enumerate(query_cpl3, emit, &c);
	u_printf("cpuid[%u] end\n", idx);
	u_printf("cpuid-cpl0[%u] end differ=%u\n", idx, c.differ);
}

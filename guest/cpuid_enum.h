/*
 * cpuid_enum.h: the list of CPUID leaves/subleaves the guest reports, as one
 * function shared by the guest (u_cpuid.c) and the host-side test helper
 * (tests/guest/cpuid_host.c), so both walk exactly the same leaves.
 */
#ifndef GUEST_CPUID_ENUM_H
#define GUEST_CPUID_ENUM_H

#include <stdint.h>

typedef void (*cpuid_query_fn)(uint32_t leaf, uint32_t subleaf, uint32_t r[4]);
typedef void (*cpuid_emit_fn)(void *ctx, uint32_t leaf, uint32_t subleaf, const uint32_t r[4]);

/*
 * Basic leaves 0..max, hypervisor leaves 0x40000000..max (if leaf 0x40000000
 * looks valid), extended leaves 0x80000000..max. Subleaves: 4 and 0x8000001d
 * until cache type 0; 7, 0x14, 0x17, 0x18 up to subleaf 0's EAX; 0xb and
 * 0x1f until level type 0; 0xd: 0, 1 and each bit 2..63 set in the XCR0|XSS
 * masks; 0x10 and 0x80000020: 0 and each resource bit of subleaf 0's EBX;
 * 0x12: 0, 1 and then until type 0. Subleaf 0 is always reported.
 */
void cpuid_enumerate(cpuid_query_fn query, cpuid_emit_fn emit, void *ctx);

#endif

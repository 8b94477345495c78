/*
 * cpuid_enum.c: walks the CPUID leaves described in cpuid_enum.h. Loops are
 * capped so a strange CPUID can never make the walk endless.
 */
#include "cpuid_enum.h"

#define SUB_CAP 64

static void leaf_walk(cpuid_query_fn q, cpuid_emit_fn emit, void *ctx, uint32_t leaf)
{
	uint32_t r[4], r1[4], sub, max;
	uint64_t mask;

	q(leaf, 0, r);
	emit(ctx, leaf, 0, r);
	switch (leaf) {
	case 0x4:
	case 0x8000001d: /* until cache type 0 */
		for (sub = 1; sub < SUB_CAP; sub++) {
			q(leaf, sub, r1);
			if (!(r1[0] & 0x1f))
				break;
			emit(ctx, leaf, sub, r1);
		}
		break;
	case 0x7:
	case 0x14:
	case 0x17:
	case 0x18: /* subleaf 0 EAX = max subleaf */
		max = r[0] < SUB_CAP ? r[0] : SUB_CAP - 1;
		for (sub = 1; sub <= max; sub++) {
			q(leaf, sub, r1);
			emit(ctx, leaf, sub, r1);
		}
		break;
	case 0xb:
	case 0x1f: /* until level type 0 */
		for (sub = 1; sub < SUB_CAP; sub++) {
			q(leaf, sub, r1);
			if (!((r1[2] >> 8) & 0xff))
				break;
			emit(ctx, leaf, sub, r1);
		}
		break;
	case 0xd: /* XCR0 | XSS components */
		q(leaf, 1, r1);
		emit(ctx, leaf, 1, r1);
		mask = ((uint64_t)r[3] << 32 | r[0]) | ((uint64_t)r1[3] << 32 | r1[2]);
		for (sub = 2; sub < 64; sub++) {
			if (!(mask >> sub & 1))
				continue;
			q(leaf, sub, r1);
			emit(ctx, leaf, sub, r1);
		}
		break;
	case 0x10:
	case 0x80000020: /* subleaf 0 EBX = bitmap of resources */
		for (sub = 1; sub < 32; sub++) {
			if (!(r[1] >> sub & 1))
				continue;
			q(leaf, sub, r1);
			emit(ctx, leaf, sub, r1);
		}
		break;
	case 0x12: /* SGX: 0, 1, then EPC sections until type 0 */
		q(leaf, 1, r1);
		emit(ctx, leaf, 1, r1);
		for (sub = 2; sub < SUB_CAP; sub++) {
			q(leaf, sub, r1);
			if (!(r1[0] & 0xf))
				break;
			emit(ctx, leaf, sub, r1);
		}
		break;
	default:
		break;
	}
}

static void range_walk(cpuid_query_fn q, cpuid_emit_fn emit, void *ctx, uint32_t base)
{
	uint32_t r[4], leaf, max;

	q(base, 0, r);
	max = r[0];
	if (base == 0) {
		if (max > 0xff)
			max = 0xff;
	} else if (max < base || max > base + 0xff) {
		if (base == 0x40000000)
			return; /* no hypervisor leaves */
		max = base;	/* report the range's leaf 0 only */
	}
	for (leaf = base; leaf <= max; leaf++)
		leaf_walk(q, emit, ctx, leaf);
}

void cpuid_enumerate(cpuid_query_fn query, cpuid_emit_fn emit, void *ctx)
{
	range_walk(query, emit, ctx, 0);
	range_walk(query, emit, ctx, 0x40000000);
	range_walk(query, emit, ctx, 0x80000000);
}

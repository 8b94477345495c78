/*
 * cpumodels/cpuid_build.c: the CPUID table one vCPU sees.
 *
 * Everything comes from the resolved guest_cpu, ncpus and the vCPU index;
 * nothing is read from the host (the host only decided, earlier, whether the
 * model may run). So every host that accepts a model builds the same table,
 * which is what live migration compares.
 *
 * Topology: one socket, ncpus cores, one thread per core; APIC ID = vCPU
 * index. Caches: a fixed hierarchy (below) shared by every model, L1/L2 per
 * core, L3 per socket. XSAVE: leaf 0xD from the enabled components in the
 * model vendor's standard layout; the "size for XCR0 now" fields (0xD.0 EBX,
 * 0xD.1 EBX) hold their reset value (XCR0 = x87), which is also what KVM
 * writes there when the table is set. OSXSAVE/OSPKE are 0 (KVM sets them
 * when the guest enables CR4 bits).
 */
#include <errno.h>
#include <string.h>

#include "cpumodels/engine.h"

/* The engine's cache hierarchy (every model, both vendors). */
struct cache_desc {
	unsigned level, type; /* type: 1 data, 2 instruction, 3 unified */
	uint32_t size, ways, line;
	bool per_socket;
};
static const struct cache_desc caches[] = {
    {1, 1, 32 * 1024, 8, 64, false},
    {1, 2, 32 * 1024, 8, 64, false},
    {2, 3, 1024 * 1024, 16, 64, false},
    {3, 3, 32 * 1024 * 1024, 16, 64, true},
};
#define NCACHES (sizeof(caches) / sizeof(caches[0]))

/* AMD's 4-bit associativity code for 0x80000006 (also used by Intel there). */
static uint32_t amd_assoc(uint32_t ways)
{
	static const struct {
		uint32_t ways, code;
	} codes[] = {{1, 1}, {2, 2}, {4, 4}, {8, 6}, {16, 8}, {32, 0xa}, {48, 0xb}, {64, 0xc}};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].ways == ways)
			return codes[i].code;
	return 0xf; /* fully associative */
}

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

struct build {
	const struct guest_cpu *g;
	struct cpuid_table *t;
	unsigned ncpus, core_bits;
	uint32_t apic_id, level, xlevel;
	int rc;
};

static void put(struct build *b, uint32_t leaf, uint32_t subleaf, uint32_t eax, uint32_t ebx,
		uint32_t ecx, uint32_t edx)
{
	if (!b->rc)
		b->rc = cpuid_table_set(b->t, leaf, subleaf, eax, ebx, ecx, edx);
}

static uint32_t word(const struct build *b, enum cpufeat_word_id w)
{
	return b->g->features.w[w];
}

static bool has(const struct build *b, const char *name)
{
	return cpufeat_set_has_name(&b->g->features, name);
}

static bool any_in(const struct build *b, enum cpufeat_word_id w)
{
	return word(b, w) != 0;
}

static uint32_t feature_bit(const char *name)
{
	const struct cpufeat *f = cpufeat_find(name);
	return f ? 1u << f->bit : 0;
}

/* Levels: the model's minimum, raised to cover the leaves its features need. */
static void levels(struct build *b)
{
	const struct cpumodel_props *p = &b->g->props;
	b->level = p->level;
	b->xlevel = p->xlevel < 0x80000008 ? 0x80000008 : p->xlevel;
	if (any_in(b, FW_6_EAX) && b->level < 6)
		b->level = 6;
	if ((any_in(b, FW_7_0_EBX) || any_in(b, FW_7_0_ECX) || any_in(b, FW_7_0_EDX) ||
	     any_in(b, FW_7_1_EAX) || any_in(b, FW_7_1_EDX)) &&
	    b->level < 7)
		b->level = 7;
	if (has(b, "xsave") && b->level < 0xd)
		b->level = 0xd;
	if (has(b, "intel_pt") && b->level < 0x14)
		b->level = 0x14;
	if (has(b, "keylocker") && b->level < 0x19)
		b->level = 0x19;
	if (has(b, "amx_tile") && b->level < 0x1e)
		b->level = 0x1e;
	if (has(b, "topoext") && b->xlevel < 0x8000001e)
		b->xlevel = 0x8000001e;
	if (any_in(b, FW_8000_0021_EAX) && b->xlevel < 0x80000021)
		b->xlevel = 0x80000021;
}

static uint32_t signature(const struct cpumodel_props *p)
{
	uint32_t fam = p->family, base = fam > 0xf ? 0xf : fam, ext = fam > 0xf ? fam - 0xf : 0;
	return (ext << 20) | ((p->model >> 4 & 0xf) << 16) | (base << 8) | ((p->model & 0xf) << 4) |
	       (p->stepping & 0xf);
}

static void vendor_regs(enum cpu_vendor v, uint32_t *ebx, uint32_t *ecx, uint32_t *edx)
{
	const char *s = cpu_vendor_string(v);
	memcpy(ebx, s, 4);
	memcpy(edx, s + 4, 4);
	memcpy(ecx, s + 8, 4);
}

static void basic_leaves(struct build *b)
{
	const struct guest_cpu *g = b->g;
	uint32_t vb, vc, vd;
	vendor_regs(g->props.vendor, &vb, &vc, &vd);
	put(b, 0, 0, b->level, vb, vc, vd);

	uint32_t ebx = b->apic_id << 24;
	uint32_t edx = word(b, FW_1_EDX), ecx = word(b, FW_1_ECX);
	if (has(b, "clflush"))
		ebx |= 8 << 8; /* CLFLUSH line size in 8-byte units */
	if (b->ncpus > 1) {
		/* addressable logical processor IDs, an 8-bit field */
		uint32_t ids = 1u << b->core_bits;
		ebx |= (ids > 0xff ? 0xff : ids) << 16;
		edx |= feature_bit("ht");
	}
	ecx |= feature_bit("hypervisor");
	put(b, 1, 0, signature(&g->props), ebx, ecx, edx);

	if (g->props.vendor == VENDOR_INTEL) {
		put(b, 2, 0, 0x0000ff01, 0, 0, 0); /* one round; 0xff: use leaf 4 */
		if (b->level >= 4) {
			/* EAX[31:26]: addressable core IDs - 1, a 6-bit field */
			uint32_t cores = (1u << b->core_bits) - 1;
			if (cores > 0x3f)
				cores = 0x3f;
			for (unsigned i = 0; i < NCACHES; i++) {
				const struct cache_desc *c = &caches[i];
				uint32_t share = c->per_socket ? (1u << b->core_bits) - 1 : 0;
				uint32_t sets = c->size / (c->ways * c->line);
				put(b, 4, i,
				    c->type | c->level << 5 | 1u << 8 | share << 14 | cores << 26,
				    (c->line - 1) | (c->ways - 1) << 22, sets - 1, 0);
			}
			put(b, 4, NCACHES, 0, 0, 0, 0);
		}
	}
	if (b->level >= 6)
		put(b, 6, 0, word(b, FW_6_EAX), 0, 0, 0);
	if (b->level >= 7) {
		bool sub1 = any_in(b, FW_7_1_EAX) || any_in(b, FW_7_1_EDX);
		put(b, 7, 0, sub1 ? 1 : 0, word(b, FW_7_0_EBX), word(b, FW_7_0_ECX),
		    word(b, FW_7_0_EDX));
		if (sub1)
			put(b, 7, 1, word(b, FW_7_1_EAX), 0, 0, word(b, FW_7_1_EDX));
	}
}

static void topology_leaf(struct build *b, uint32_t leaf)
{
	put(b, leaf, 0, 0, 1, 1u << 8 | 0, b->apic_id);			  /* SMT */
	put(b, leaf, 1, b->core_bits, b->ncpus, 2u << 8 | 1, b->apic_id); /* core */
	put(b, leaf, 2, 0, 0, 2, b->apic_id);				  /* end */
}

static void xsave_leaves(struct build *b, uint64_t xcr0)
{
	enum cpu_vendor v = b->g->props.vendor;
	uint32_t d1 = word(b, FW_D_1_EAX);
	bool compact = has(b, "xsavec") || has(b, "xsaves");
	put(b, 0xd, 0, (uint32_t)xcr0, xsave_reset_size(), xsave_size(v, xcr0),
	    (uint32_t)(xcr0 >> 32));
	put(b, 0xd, 1, d1, compact ? xsave_reset_size() : 0, 0, 0);
	unsigned n;
	const struct xsave_comp *l = xsave_layout(v, &n);
	for (unsigned c = 0; c < n; c++) {
		if (!(xcr0 >> l[c].id & 1))
			continue;
		uint32_t ecx = l[c].ecx;
		if (l[c].id == 18 && has(b, "xfd"))
			ecx |= 4; /* XFD supported for tile data */
		put(b, 0xd, l[c].id, l[c].size, l[c].offset, ecx, 0);
	}
}

static void feature_leaves(struct build *b, uint64_t xcr0)
{
	if (b->level >= 0xb)
		topology_leaf(b, 0xb);
	if (b->level >= 0xd && has(b, "xsave"))
		xsave_leaves(b, xcr0);
	if (b->level >= 0x14 && has(b, "intel_pt"))
		put(b, 0x14, 0, 0, word(b, FW_14_0_EBX), word(b, FW_14_0_ECX), 0);
	if (b->level >= 0x19 && has(b, "keylocker"))
		put(b, 0x19, 0, 0, word(b, FW_19_0_EBX), 0, 0);
	if (b->level >= 0x1e && has(b, "amx_tile")) {
		/* palette 1: 8 KiB of tiles, 1 KiB each, 64-byte rows, 8 names,
		 * 16 rows; TMUL: K up to 16, N up to 64 */
		put(b, 0x1d, 0, 1, 0, 0, 0);
		put(b, 0x1d, 1, 8192 | 1024u << 16, 64 | 8u << 16, 16, 0);
		put(b, 0x1e, 0, 0, 16 | 64u << 8, 0, 0);
	}
	if (b->level >= 0x1f)
		topology_leaf(b, 0x1f);
}

/* Leaf 1 EDX bits AMD repeats in 0x80000001 EDX. */
#define AMD_EDX_MIRROR 0x0183f3ffu

static void extended_leaves(struct build *b)
{
	const struct guest_cpu *g = b->g;
	bool amd = g->props.vendor == VENDOR_AMD;
	uint32_t vb = 0, vc = 0, vd = 0;
	if (amd)
		vendor_regs(g->props.vendor, &vb, &vc, &vd);
	put(b, 0x80000000, 0, b->xlevel, vb, vc, vd);
	uint32_t edx = word(b, FW_8000_0001_EDX);
	if (amd)
		edx |= word(b, FW_1_EDX) & AMD_EDX_MIRROR;
	put(b, 0x80000001, 0, amd ? signature(&g->props) : 0, 0, word(b, FW_8000_0001_ECX), edx);

	char id[48] = {0};
	memcpy(id, g->props.model_id, strnlen(g->props.model_id, sizeof(id) - 1));
	for (uint32_t i = 0; i < 3; i++) {
		uint32_t r[4];
		memcpy(r, id + i * 16, 16);
		put(b, 0x80000002 + i, 0, r[0], r[1], r[2], r[3]);
	}

	const struct cache_desc *l1d = &caches[0], *l1i = &caches[1], *l2 = &caches[2],
				*l3 = &caches[3];
	if (amd) {
		/* L1 TLBs: 64 entries each, fully associative; L1 caches */
		put(b, 0x80000005, 0, 0xff40ff40, 0xff40ff40,
		    (l1d->size / 1024) << 24 | l1d->ways << 16 | 1u << 8 | l1d->line,
		    (l1i->size / 1024) << 24 | l1i->ways << 16 | 1u << 8 | l1i->line);
		put(b, 0x80000006, 0, 0, 0,
		    (l2->size / 1024) << 16 | amd_assoc(l2->ways) << 12 | 1u << 8 | l2->line,
		    (l3->size / (512 * 1024)) << 18 | amd_assoc(l3->ways) << 12 | 1u << 8 |
			l3->line);
	} else {
		put(b, 0x80000006, 0, 0, 0,
		    (l2->size / 1024) << 16 | amd_assoc(l2->ways) << 12 | l2->line, 0);
	}
	put(b, 0x80000007, 0, 0, 0, 0, word(b, FW_8000_0007_EDX));
	uint32_t vaddr = has(b, "la57") ? 57 : 48;
	put(b, 0x80000008, 0, g->props.phys_bits | vaddr << 8, word(b, FW_8000_0008_EBX),
	    amd ? (b->ncpus - 1) | b->core_bits << 12 : 0, 0);

	if (has(b, "topoext") && b->xlevel >= 0x8000001e) {
		for (unsigned i = 0; i < NCACHES; i++) {
			const struct cache_desc *c = &caches[i];
			uint32_t share = c->per_socket ? b->ncpus - 1 : 0;
			uint32_t sets = c->size / (c->ways * c->line);
			put(b, 0x8000001d, i, c->type | c->level << 5 | 1u << 8 | share << 14,
			    (c->line - 1) | (c->ways - 1) << 22, sets - 1, 0);
		}
		put(b, 0x8000001d, NCACHES, 0, 0, 0, 0);
		put(b, 0x8000001e, 0, b->apic_id, b->apic_id & 0xff, 0, 0);
	}
	if (b->xlevel >= 0x80000021)
		put(b, 0x80000021, 0, word(b, FW_8000_0021_EAX), 0, 0, 0);
}

static void pv_leaves(struct build *b)
{
	/* "KVMKVMKVM\0\0\0" */
	put(b, 0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x0000004d);
	put(b, 0x40000001, 0, word(b, FW_4000_0001_EAX), 0, 0, word(b, FW_4000_0001_EDX));
}

int guest_cpu_build_cpuid(const struct guest_cpu *g, unsigned ncpus, unsigned vcpu_index,
			  struct cpuid_table *out, struct vmm_error *err)
{
	if (ncpus < 1 || ncpus > CPUMODEL_MAX_CPUS)
		return vmm_error_set(err, -EINVAL, "cpu model %s: %u vCPUs (supported: 1..%d)",
				     g->name, ncpus, CPUMODEL_MAX_CPUS);
	if (vcpu_index >= ncpus)
		return vmm_error_set(err, -EINVAL, "cpu model %s: vCPU %u of %u", g->name,
				     vcpu_index, ncpus);
	uint64_t xcr0;
	int rc = xsave_components(g->props.vendor, &g->features, &xcr0, err);
	if (rc)
		return vmm_error_prefix(err, "cpu model %s", g->name);
	memset(out, 0, sizeof(*out));
	struct build b = {
	    .g = g,
	    .t = out,
	    .ncpus = ncpus,
	    .core_bits = bits_for(ncpus),
	    .apic_id = guest_cpu_apic_id(g, ncpus, vcpu_index),
	};
	levels(&b);
	basic_leaves(&b);
	feature_leaves(&b, xcr0);
	extended_leaves(&b);
	pv_leaves(&b);
	if (b.rc)
		return vmm_error_set(err, b.rc, "cpu model %s: CPUID table over %d entries",
				     g->name, CPUID_TABLE_MAX);
	return 0;
}

/*
 * Unit tests: the guest's CPUID table. Properties every table must have
 * (Intel SDM / AMD APM encodings, KVM's rules), independence from the host,
 * and the frozen expansions of every released version.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

#include "helpers.h"

static struct cpumodel_db *db;
static struct host_cpu *ref;

static int setup(void **state)
{
	(void)state;
	db = th_db();
	ref = th_reference_host();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	host_cpu_free(ref);
	cpumodel_db_free(db);
	return 0;
}

static struct guest_cpu *resolve(const char *spec)
{
	struct guest_cpu *g = NULL;
	struct vmm_error err = {0};
	if (guest_cpu_resolve(db, spec, ref, &g, &err) < 0)
		fail_msg("%s: %s", spec, err.msg);
	return g;
}

static struct cpuid_table *build(const struct guest_cpu *g, unsigned ncpus, unsigned vcpu)
{
	struct cpuid_table *t = calloc(1, sizeof(*t));
	struct vmm_error err = {0};
	assert_non_null(t);
	if (guest_cpu_build_cpuid(g, ncpus, vcpu, t, &err) < 0)
		fail_msg("%s: %s", guest_cpu_name(g), err.msg);
	return t;
}

static uint32_t reg(const struct cpuid_table *t, uint32_t leaf, uint32_t sub, enum cpuid_reg r)
{
	if (!cpuid_table_find(t, leaf, sub))
		fail_msg("no leaf 0x%x subleaf %u", leaf, sub);
	return cpuid_table_reg(t, leaf, sub, r);
}

/* The same reading of leaf 1 EAX as a guest kernel does. */
static void decode_signature(uint32_t eax, unsigned *family, unsigned *model, unsigned *stepping)
{
	unsigned base = eax >> 8 & 0xf;
	*family = base == 0xf ? base + (eax >> 20 & 0xff) : base;
	*model = (eax >> 4 & 0xf) | ((base == 6 || base == 0xf) ? (eax >> 12 & 0xf0) : 0);
	*stepping = eax & 0xf;
}

static void check_table(const struct guest_cpu *g, const struct cpuid_table *t, unsigned ncpus,
			unsigned vcpu)
{
	const struct cpumodel_props *p = &g->props;
	uint32_t apic = guest_cpu_apic_id(g, ncpus, vcpu);
	assert_true(t->n > 0 && t->n <= CPUID_TABLE_MAX);
	for (unsigned i = 0; i < t->n; i++) {
		const struct cpuid_leaf *l = &t->leaves[i];
		if (i) { /* sorted, unique */
			const struct cpuid_leaf *k = &t->leaves[i - 1];
			assert_true(k->leaf < l->leaf ||
				    (k->leaf == l->leaf && k->subleaf < l->subleaf));
		}
		assert_int_equal(l->subleaf_significant, cpuid_leaf_has_subleaves(l->leaf));
	}
	/* vendor, signature, brand */
	char vendor[13] = {0};
	uint32_t ebx = reg(t, 0, 0, CPUID_EBX), ecx = reg(t, 0, 0, CPUID_ECX),
		 edx = reg(t, 0, 0, CPUID_EDX);
	memcpy(vendor, &ebx, 4);
	memcpy(vendor + 4, &edx, 4);
	memcpy(vendor + 8, &ecx, 4);
	assert_string_equal(vendor, cpu_vendor_string(p->vendor));
	unsigned fam, mod, step;
	decode_signature(reg(t, 1, 0, CPUID_EAX), &fam, &mod, &step);
	assert_int_equal(fam, p->family);
	assert_int_equal(mod, p->model);
	assert_int_equal(step, p->stepping);
	char brand[49] = {0};
	for (uint32_t i = 0; i < 3; i++) {
		uint32_t r[4] = {
		    reg(t, 0x80000002 + i, 0, CPUID_EAX), reg(t, 0x80000002 + i, 0, CPUID_EBX),
		    reg(t, 0x80000002 + i, 0, CPUID_ECX), reg(t, 0x80000002 + i, 0, CPUID_EDX)};
		memcpy(brand + 16 * i, r, 16);
	}
	assert_string_equal(brand, p->model_id);
	/* levels cover every leaf present */
	uint32_t level = reg(t, 0, 0, CPUID_EAX), xlevel = reg(t, 0x80000000, 0, CPUID_EAX);
	assert_true(level >= p->level && xlevel >= p->xlevel);
	for (unsigned i = 0; i < t->n; i++) {
		uint32_t l = t->leaves[i].leaf;
		if (l < 0x40000000)
			assert_true(l <= level);
		else if (l >= 0x80000000)
			assert_true(l <= xlevel);
	}
	/* features: exactly the model's bits in every feature word, plus the
	 * computed ones */
	struct cpufeat_set got;
	cpufeat_set_from_table(t, &got);
	cpufeat_set_del(&got, cpufeat_find("hypervisor"));
	cpufeat_set_del(&got, cpufeat_find("ht"));
	if (!cpufeat_set_equal(&got, &g->features)) {
		struct cpumodel_compare c;
		char a[512], b[512];
		cpumodel_compare_sets(&got, NULL, &g->features, NULL, &c);
		cpufeat_set_format(&c.only_a, a, sizeof(a));
		cpufeat_set_format(&c.only_b, b, sizeof(b));
		fail_msg("%s: table has [%s] more, [%s] fewer than the model", guest_cpu_name(g), a,
			 b);
	}
	assert_true(reg(t, 1, 0, CPUID_ECX) >> 31 & 1);		/* hypervisor */
	assert_int_equal(reg(t, 1, 0, CPUID_ECX) >> 27 & 1, 0); /* OSXSAVE: the guest's */
	/* topology: APIC IDs, counts */
	assert_int_equal(reg(t, 1, 0, CPUID_EBX) >> 24, apic);
	assert_int_equal(reg(t, 1, 0, CPUID_EDX) >> 28 & 1, ncpus > 1); /* HTT */
	if (ncpus > 1)
		assert_true((reg(t, 1, 0, CPUID_EBX) >> 16 & 0xff) >= ncpus);
	if (level >= 0xb) {
		for (uint32_t s = 0; s < 3; s++)
			assert_int_equal(reg(t, 0xb, s, CPUID_EDX), apic);
		assert_int_equal(reg(t, 0xb, 1, CPUID_EBX), ncpus);
		assert_true((1u << reg(t, 0xb, 1, CPUID_EAX)) >= ncpus);
		assert_int_equal(reg(t, 0xb, 2, CPUID_ECX) >> 8 & 0xff, 0); /* end */
	}
	/* KVM: virtual address width 48 or 57; physical bits as the model */
	uint32_t ax = reg(t, 0x80000008, 0, CPUID_EAX);
	assert_true((ax >> 8 & 0xff) == 48 || (ax >> 8 & 0xff) == 57);
	assert_int_equal(ax & 0xff, p->phys_bits);
	/* paravirtual leaves */
	assert_int_equal(reg(t, 0x40000000, 0, CPUID_EBX), 0x4b4d564b);
	assert_int_equal(reg(t, 0x40000000, 0, CPUID_ECX), 0x564b4d56);
	assert_int_equal(reg(t, 0x40000000, 0, CPUID_EDX), 0x4d);
	/* AMD: 0x80000001 EDX repeats leaf 1 EDX's common bits */
	uint32_t e1 = reg(t, 1, 0, CPUID_EDX), e81 = reg(t, 0x80000001, 0, CPUID_EDX);
	if (p->vendor == VENDOR_AMD) {
		assert_int_equal(e81 & 0x0183f3ffu, e1 & 0x0183f3ffu);
		assert_int_equal(reg(t, 0x80000008, 0, CPUID_ECX) & 0xff, ncpus - 1);
		if (cpufeat_set_has_name(&g->features, "topoext"))
			assert_int_equal(reg(t, 0x8000001e, 0, CPUID_EAX), apic);
	} else {
		assert_int_equal(e81 & 0x0183f3ffu, 0);
		uint32_t cores = (1u << reg(t, 0xb, 1, CPUID_EAX)) - 1;
		assert_int_equal(reg(t, 4, 0, CPUID_EAX) >> 26, cores > 0x3f ? 0x3f : cores);
	}
	/* XSAVE: the 0xD leaves exactly when xsave is on */
	assert_int_equal(cpuid_table_find(t, 0xd, 0) != NULL,
			 cpufeat_set_has_name(&g->features, "xsave"));
}

/* Every released version, several vCPU counts, first and last vCPU. */
static void test_every_version_builds_valid_tables(void **state)
{
	(void)state;
	static const unsigned counts[] = {1, 2, 3, 8, 255};
	for (unsigned i = 0; i < db->nmodels; i++)
		for (unsigned v = 0; v < db->models[i].nversions; v++) {
			struct guest_cpu *g = resolve(db->models[i].versions[v].name);
			for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
				unsigned idx[2] = {0, counts[c] - 1};
				for (int k = 0; k < 2; k++) {
					struct cpuid_table *t = build(g, counts[c], idx[k]);
					check_table(g, t, counts[c], idx[k]);
					free(t);
				}
			}
			guest_cpu_free(g);
		}
}

/* Two hosts that accept a model build the same table (what migration
 * compares); vCPUs differ only in their APIC IDs. */
static void test_host_independent(void **state)
{
	(void)state;
	struct host_cpu *kvmlike = NULL;
	struct vmm_error err = {0};
	/* a second host: the reference host's table as KVM would report it */
	struct cpuid_table *raw = malloc(sizeof(*raw));
	*raw = ref->raw;
	assert_int_equal(cpuid_table_set(raw, 0x40000000, 0, 0x40000001, 0, 0, 0), 0);
	assert_int_equal(cpuid_table_set(raw, 0x40000001, 0, 0x0103ffff, 0, 0, 1), 0);
	assert_int_equal(cpuid_table_reg(raw, 0x80000008, 0, CPUID_EAX) & 0xff, 52);
	assert_int_equal(host_cpu_from_table("other", raw, true, NULL, &kvmlike, &err), 0);
	free(raw);
	struct guest_cpu *a = resolve("Skylake-Server-v4,+avx512_vnni"), *b = NULL;
	assert_int_equal(guest_cpu_resolve(db, "Skylake-Server-v4,+avx512_vnni", kvmlike, &b, &err),
			 0);
	struct cpuid_table *ta = build(a, 4, 2), *tb = build(b, 4, 2);
	assert_int_equal(cpuid_table_diff(ta, tb, NULL, 0), 0);
	assert_int_equal(memcmp(ta, tb, sizeof(*ta)), 0);
	/* the no-host resolve (tools) builds the same table too */
	struct guest_cpu *c = NULL;
	assert_int_equal(
	    guest_cpu_resolve_spec(db, "Skylake-Server-v4,+avx512_vnni", NULL, &c, &err), 0);
	struct cpuid_table *tc = build(c, 4, 2), *t0 = build(a, 4, 0);
	assert_int_equal(cpuid_table_diff(ta, tc, NULL, 0), 0);
	/* vCPU 0 vs 2: APIC ID fields only */
	char buf[512];
	int n = cpuid_table_diff(t0, ta, buf, sizeof(buf));
	assert_true(n > 0);
	assert_contains(buf, "CPUID.01H:EBX 0x");
	assert_contains(buf, "CPUID.0BH:EDX");
	assert_null(strstr(buf, "CPUID.07H")); /* no feature differs */
	free(ta);
	free(tb);
	free(tc);
	free(t0);
	guest_cpu_free(a);
	guest_cpu_free(b);
	guest_cpu_free(c);
	host_cpu_free(kvmlike);
}

/* XSAVE sizes and offsets: the SDM/APM values, spelled out. */
static void test_xsave_layout(void **state)
{
	(void)state;
	struct guest_cpu *g = resolve("Skylake-Server-v5");
	struct cpuid_table *t = build(g, 1, 0);
	/* XCR0: x87 SSE AVX opmask ZMM_Hi256 Hi16_ZMM PKRU = bits 0,1,2,5,6,7,9 */
	assert_int_equal(reg(t, 0xd, 0, CPUID_EAX), 0x2e7);
	/* the standard area ends after PKRU: 2688 + 8 */
	assert_int_equal(reg(t, 0xd, 0, CPUID_ECX), 2688 + 8);
	assert_int_equal(reg(t, 0xd, 0, CPUID_EBX), 512 + 64); /* XCR0 = x87 at reset */
	assert_int_equal(reg(t, 0xd, 1, CPUID_EBX), 512 + 64); /* xsaves: XCR0|XSS at reset */
	assert_int_equal(reg(t, 0xd, 1, CPUID_EAX), 0xf);
	assert_int_equal(reg(t, 0xd, 5, CPUID_EBX), 1088);
	assert_null(cpuid_table_find(t, 0xd, 3)); /* no MPX in the model */
	free(t);
	guest_cpu_free(g);
	/* xsave without AVX: legacy + header only */
	g = resolve("x86-64-v2,+xsave");
	t = build(g, 1, 0);
	assert_int_equal(reg(t, 0xd, 0, CPUID_EAX), 0x3);
	assert_int_equal(reg(t, 0xd, 0, CPUID_ECX), 576);
	free(t);
	guest_cpu_free(g);
	/* x86-64-v4-amd: AMD's packed layout (APM vol. 2 ch. 11): no MPX slots,
	 * opmask at 832, ZMM_Hi256 at 896, Hi16_ZMM at 1408, 2432 bytes in all */
	g = resolve("x86-64-v4-amd");
	t = build(g, 1, 0);
	assert_int_equal(reg(t, 0xd, 0, CPUID_EAX), 0xe7);
	assert_int_equal(reg(t, 0xd, 5, CPUID_EBX), 832);
	assert_int_equal(reg(t, 0xd, 6, CPUID_EBX), 896);
	assert_int_equal(reg(t, 0xd, 7, CPUID_EBX), 1408);
	assert_int_equal(reg(t, 0xd, 0, CPUID_ECX), 2432);
	free(t);
	guest_cpu_free(g);
	/* SapphireRapids: AMX tiles, 8 KiB of tile data after the config */
	g = resolve("SapphireRapids");
	t = build(g, 1, 0);
	assert_int_equal(reg(t, 0xd, 0, CPUID_EAX), 0x602e7);
	assert_int_equal(reg(t, 0xd, 18, CPUID_EAX), 8192);
	assert_int_equal(reg(t, 0xd, 18, CPUID_ECX), 6); /* aligned, XFD */
	assert_int_equal(reg(t, 0xd, 0, CPUID_ECX), 0xb00 + 8192);
	assert_int_equal(reg(t, 0x1d, 1, CPUID_EAX), 8192 | 1024u << 16);
	free(t);
	guest_cpu_free(g);
}

/* The same layouts as the real CPUs report (dumps): Intel Skylake-SP and AMD
 * Genoa; the dumps are independent of the engine's table. */
static void test_xsave_layout_matches_real_cpus(void **state)
{
	(void)state;
	th_need_dumps();
	struct guest_cpu *g = resolve("Skylake-Server-v5");
	struct cpuid_table *t = build(g, 1, 0);
	struct host_cpu *skx = th_dump("intel-skylake-sp-xeon-platinum-8180");
	for (uint32_t c = 2; c <= 9; c++)
		if (cpuid_table_find(t, 0xd, c)) {
			assert_int_equal(reg(t, 0xd, c, CPUID_EAX),
					 reg(&skx->raw, 0xd, c, CPUID_EAX));
			assert_int_equal(reg(t, 0xd, c, CPUID_EBX),
					 reg(&skx->raw, 0xd, c, CPUID_EBX));
		}
	assert_int_equal(reg(t, 0xd, 0, CPUID_ECX), reg(&skx->raw, 0xd, 0, CPUID_ECX));
	host_cpu_free(skx);
	struct guest_cpu *genoa = resolve("EPYC-Genoa");
	struct cpuid_table *tg = build(genoa, 1, 0);
	struct host_cpu *gh = th_dump("amd-zen4-genoa-epyc-9654");
	for (uint32_t c = 2; c <= 9; c++)
		if (cpuid_table_find(tg, 0xd, c)) {
			assert_int_equal(reg(tg, 0xd, c, CPUID_EAX),
					 reg(&gh->raw, 0xd, c, CPUID_EAX));
			assert_int_equal(reg(tg, 0xd, c, CPUID_EBX),
					 reg(&gh->raw, 0xd, c, CPUID_EBX));
		}
	assert_int_equal(reg(tg, 0xd, 0, CPUID_ECX), reg(&gh->raw, 0xd, 0, CPUID_ECX));
	/* an Intel-layout AVX-512 model does not run on Genoa */
	struct cpufeat_set need;
	struct cpumodel_check chk;
	guest_cpu_required(g, &need);
	cpumodel_check_host(&g->props, &need, gh, &chk);
	assert_true(chk.xsave_bad > 0);
	/* in words: what, where the model puts it, where this CPU does, why not */
	assert_contains(chk.xsave_msg, "the model keeps AVX-512 state (opmask, ZMM_Hi256, "
				       "Hi16_ZMM) at 0x440, 0x480, 0x680, where Intel CPUs do");
	assert_contains(chk.xsave_msg, "this host's CPU keeps it at 0x340, 0x380, 0x580, where "
				       "AMD CPUs do");
	assert_contains(chk.xsave_msg, "KVM cannot move a guest's XSAVE state");
	/* and the AMD-layout psABI v4 model runs there, but not on an Intel one */
	struct guest_cpu *amd = resolve("x86-64-v4-amd");
	guest_cpu_required(amd, &need);
	cpumodel_check_host(&amd->props, &need, gh, &chk);
	assert_true(chk.runnable);
	struct host_cpu *spr = th_dump("intel-sapphirerapids-xeon-w9-3475x");
	cpumodel_check_host(&amd->props, &need, spr, &chk);
	assert_false(chk.runnable);
	assert_int_equal(cpufeat_set_count(&chk.missing), 0); /* only the layout */
	assert_contains(chk.xsave_msg, "at 0x340, 0x380, 0x580, where AMD CPUs do; this host's CPU "
				       "keeps it at 0x440, 0x480, 0x680, where Intel CPUs do");
	host_cpu_free(spr);
	guest_cpu_free(amd);
	host_cpu_free(gh);
	free(tg);
	guest_cpu_free(genoa);
	free(t);
	guest_cpu_free(g);
}

static void test_adjustments_and_errors(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	struct guest_cpu *g = resolve("x86-64-v2,-pni,+movbe");
	struct cpuid_table *t = build(g, 1, 0);
	assert_int_equal(reg(t, 1, 0, CPUID_ECX) & 1, 0);
	assert_int_equal(reg(t, 1, 0, CPUID_ECX) >> 22 & 1, 1);
	assert_int_equal(guest_cpu_build_cpuid(g, 0, 0, t, &err), -EINVAL);
	assert_contains(err.msg, "0 vCPUs");
	assert_int_equal(guest_cpu_build_cpuid(g, CPUMODEL_MAX_CPUS + 1, 0, t, &err), -EINVAL);
	assert_int_equal(guest_cpu_build_cpuid(g, 2, 2, t, &err), -EINVAL);
	assert_contains(err.msg, "vCPU 2 of 2");
	free(t);
	guest_cpu_free(g);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 16);
	size_t n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Frozen means frozen: every released version's expansion (vCPU 1 of 2) on
 * the reference host equals its checked-in file, byte for byte. */
static void test_frozen_expansions(void **state)
{
	(void)state;
	const char *data = th_env("CPUMODEL_TEST_DATA");
	unsigned bad = 0, n = 0;
	for (unsigned i = 0; i < db->nmodels; i++)
		for (unsigned v = 0; v < db->models[i].nversions; v++) {
			const char *name = db->models[i].versions[v].name;
			char path[1024];
			snprintf(path, sizeof(path), "%s/expected/%s.cpuid", data, name);
			char *want = slurp(path);
			if (!want) {
				printf("%s: no expected expansion (%s); new versions are frozen "
				       "with tests/cpumodels/freeze-new-versions.sh\n",
				       name, path);
				bad++;
				continue;
			}
			struct guest_cpu *g = resolve(name);
			struct cpuid_table *t = build(g, 2, 1);
			char *got = NULL;
			size_t len = 0;
			FILE *m = open_memstream(&got, &len);
			assert_int_equal(cpuid_table_write(t, m), 0);
			fclose(m);
			if (strcmp(got, want) != 0) {
				struct cpuid_table *w = calloc(1, sizeof(*w));
				char diff[1024] = "";
				if (cpuid_table_read(path, w, NULL, 0, NULL) == 0)
					cpuid_table_diff(w, t, diff, sizeof(diff));
				printf("%s: the expansion changed (a released version must never "
				       "change; add a new version): %s\n",
				       name, diff);
				free(w);
				bad++;
			}
			n++;
			free(got);
			free(want);
			free(t);
			guest_cpu_free(g);
		}
	/* and no expected file without its version (a deleted release) */
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/expected", data);
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		char name[256];
		size_t l = strlen(e->d_name);
		if (l < 7 || strcmp(e->d_name + l - 6, ".cpuid") != 0)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(l - 6), e->d_name);
		const struct cpumodel_version *v = cpumodel_db_lookup(db, name, NULL);
		if (!v || strcmp(v->name, name) != 0) {
			printf("%s is frozen but no longer defined\n", name);
			bad++;
		}
	}
	closedir(d);
	assert_true(n > 0);
	assert_int_equal(bad, 0);
}

/* The reference host is full-featured: every feature a model may name. */
static void test_reference_host_is_full(void **state)
{
	(void)state;
	for (size_t i = 0; i < cpufeat_count(); i++) {
		const struct cpufeat *f = cpufeat_at(i);
		if (f->flags & (CPUFEAT_COMPUTED | CPUFEAT_DYNAMIC | CPUFEAT_NOKVM))
			continue;
		/* a profile has the paravirtual features every KVM offers only */
		if ((f->flags & CPUFEAT_PV) && !(f->flags & CPUFEAT_KVM_EMU))
			continue;
		if (!cpufeat_set_has(&ref->features, f))
			fail_msg("reference host lacks %s", f->name);
	}
	assert_int_equal(cpufeat_set_count(&ref->unknown), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_version_builds_valid_tables),
	    cmocka_unit_test(test_host_independent),
	    cmocka_unit_test(test_xsave_layout),
	    cmocka_unit_test(test_xsave_layout_matches_real_cpus),
	    cmocka_unit_test(test_adjustments_and_errors),
	    cmocka_unit_test(test_frozen_expansions),
	    cmocka_unit_test(test_reference_host_is_full),
	};
	return th_exit(cmocka_run_group_tests(tests, setup, teardown));
}

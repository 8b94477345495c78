/* Unit tests: the feature table, feature sets and CPUID tables. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static void test_rows_are_consistent(void **state)
{
	(void)state;
	for (size_t i = 0; i < cpufeat_count(); i++) {
		const struct cpufeat *f = cpufeat_at(i);
		if (cpufeat_word_of(f) >= CPUFEAT_NWORDS)
			fail_msg("%s: leaf 0x%x.%u reg %u is not a feature word", f->name, f->leaf,
				 f->subleaf, f->reg);
		assert_true(f->bit < 32);
		if ((f->flags & CPUFEAT_PV) != (f->leaf == 0x40000001 ? CPUFEAT_PV : 0))
			fail_msg("%s: paravirt flag and leaf disagree", f->name);
		for (size_t j = i + 1; j < cpufeat_count(); j++) {
			const struct cpufeat *g = cpufeat_at(j);
			if (cpufeat_word_of(f) == cpufeat_word_of(g) && f->bit == g->bit)
				fail_msg("%s and %s name the same bit", f->name, g->name);
		}
		/* every spelling finds this very row */
		if (cpufeat_find(f->name) != f)
			fail_msg("name %s finds another row", f->name);
		char al[128];
		snprintf(al, sizeof(al), "%s", f->aliases ? f->aliases : "");
		for (char *s = NULL, *a = strtok_r(al, " ", &s); a; a = strtok_r(NULL, " ", &s))
			if (cpufeat_find(a) != f)
				fail_msg("alias %s of %s finds another row", a, f->name);
	}
	for (size_t i = 0; i < cpufeat_dep_count(); i++) {
		const struct cpufeat_dep *d = cpufeat_dep_at(i);
		if (!cpufeat_find(d->feature) || !cpufeat_find(d->needs))
			fail_msg("dependency %s -> %s names an unknown feature", d->feature,
				 d->needs);
	}
}

/* The leaves the issue asks the table to cover. */
static void test_required_leaves_covered(void **state)
{
	(void)state;
	static const struct {
		uint32_t leaf, subleaf;
	} need[] = {{0x1, 0},	     {0x6, 0},	      {0x7, 0},	       {0x7, 1},
		    {0xd, 1},	     {0x14, 0},	      {0x19, 0},       {0x80000001, 0},
		    {0x80000007, 0}, {0x80000008, 0}, {0x80000021, 0}, {0x40000001, 0}};
	for (size_t n = 0; n < sizeof(need) / sizeof(need[0]); n++) {
		bool found = false;
		for (size_t i = 0; i < cpufeat_count() && !found; i++)
			found = cpufeat_at(i)->leaf == need[n].leaf &&
				cpufeat_at(i)->subleaf == need[n].subleaf;
		if (!found)
			fail_msg("no feature in leaf 0x%x subleaf %u", need[n].leaf,
				 need[n].subleaf);
	}
}

static void test_spellings(void **state)
{
	(void)state;
	static const char *const same[][4] = {
	    {"sse4_1", "sse4.1", "SSE4-1", "sse4_1"},
	    {"pni", "sse3", "PNI", "sse3"},
	    {"lahf_lm", "lahf-lm", "LAHF_LM", "lahf.lm"},
	    {"tsc_deadline_timer", "tsc-deadline", "tsc_deadline", "TSC-DEADLINE-TIMER"},
	    {"fxsr_opt", "fxsr-opt", "ffxsr", "fxsr_opt"},
	    {"sha_ni", "sha-ni", "sha", "SHA_NI"},
	    {"avx512_vnni", "avx512vnni", "avx512-vnni", "AVX512_VNNI"},
	    {"spec_ctrl_ssbd", "ssbd", "spec-ctrl-ssbd", "ssbd"},
	    {"amd_ibpb", "ibpb", "amd-ibpb", "ibpb"},
	    {"nx", "xd", "NX", "xd"},
	    {"kvm_pv_eoi", "kvm-pv-eoi", "KVM_PV_EOI", "kvm.pv.eoi"},
	};
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		const struct cpufeat *f = cpufeat_find(same[i][0]);
		assert_non_null(f);
		assert_string_equal(f->name, same[i][0]);
		for (int j = 1; j < 4; j++)
			if (cpufeat_find(same[i][j]) != f)
				fail_msg("%s is not %s", same[i][j], same[i][0]);
	}
	assert_null(cpufeat_find("avx9000"));
	assert_null(cpufeat_find(""));
	assert_null(cpufeat_find(NULL));
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_null(cpufeat_find(longname));
}

static void expect_describe(const char *name, const char *want)
{
	char buf[96];
	const struct cpufeat *f = cpufeat_find(name);
	assert_non_null(f);
	cpufeat_describe(f, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_describe(void **state)
{
	(void)state;
	expect_describe("avx512f", "CPUID.07H:EBX.avx512f [bit 16]");
	expect_describe("lahf_lm", "CPUID.80000001H:ECX.lahf_lm [bit 0]");
	expect_describe("avx512_bf16", "CPUID.07H.01H:EAX.avx512_bf16 [bit 5]");
	expect_describe("xsaveopt", "CPUID.0DH.01H:EAX.xsaveopt [bit 0]");
	expect_describe("pni", "CPUID.01H:ECX.pni [bit 0]");
	expect_describe("kvmclock", "CPUID.40000001H:EAX.kvmclock [bit 0]");
}

static void test_sets(void **state)
{
	(void)state;
	struct cpufeat_set a = {0}, b = {0};
	cpufeat_set_add(&a, cpufeat_find("avx"));
	cpufeat_set_add(&a, cpufeat_find("xsave"));
	b = a;
	assert_true(cpufeat_set_equal(&a, &b));
	cpufeat_set_add(&b, cpufeat_find("avx2"));
	assert_true(cpufeat_set_subset(&a, &b));
	assert_false(cpufeat_set_subset(&b, &a));
	assert_int_equal(cpufeat_set_count(&b), 3);
	assert_int_equal(cpufeat_set_check_deps(&b, NULL), 0);
	struct vmm_error err = {0};
	cpufeat_set_del(&b, cpufeat_find("xsave"));
	assert_int_equal(cpufeat_set_check_deps(&b, &err), -EINVAL);
	assert_string_equal(err.msg, "avx needs xsave");
	char buf[64];
	cpufeat_set_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "xsave avx");
	cpufeat_set_all(&a);
	cpufeat_set_format(&a, buf, sizeof(buf));
	assert_int_equal(strlen(buf) < sizeof(buf), 1);
	assert_contains(buf, "...");
}

/* Bits of leaves beyond the table's max level do not count. */
static void test_set_from_table_respects_levels(void **state)
{
	(void)state;
	struct cpuid_table t = {0};
	struct cpufeat_set s;
	assert_int_equal(cpuid_table_set(&t, 0, 0, 6, 0, 0, 0), 0); /* max leaf 6 */
	assert_int_equal(cpuid_table_set(&t, 1, 0, 0, 0, 1u << 0, 1u << 0), 0);
	assert_int_equal(cpuid_table_set(&t, 7, 0, 0, 1u << 16, 0, 0), 0);
	assert_int_equal(cpuid_table_set(&t, 0x80000000, 0, 0x80000001, 0, 0, 0), 0);
	assert_int_equal(cpuid_table_set(&t, 0x80000001, 0, 0, 0, 1u << 0, 0), 0);
	assert_int_equal(cpuid_table_set(&t, 0x80000008, 0, 0, 1u << 0, 0, 0), 0);
	cpufeat_set_from_table(&t, &s);
	assert_true(cpufeat_set_has_name(&s, "pni"));
	assert_true(cpufeat_set_has_name(&s, "fpu"));
	assert_true(cpufeat_set_has_name(&s, "lahf_lm"));
	assert_false(cpufeat_set_has_name(&s, "avx512f")); /* leaf 7 > max 6 */
	assert_false(cpufeat_set_has_name(&s, "clzero"));  /* 0x80000008 > max ext */
	/* leaf 7 subleaf 1 only exists when 7.0 EAX >= 1 */
	t.leaves[0].eax = 7;
	assert_int_equal(cpuid_table_set(&t, 7, 1, 1u << 5, 0, 0, 0), 0);
	cpufeat_set_from_table(&t, &s);
	assert_true(cpufeat_set_has_name(&s, "avx512f"));
	assert_false(cpufeat_set_has_name(&s, "avx512_bf16"));
}

static void test_table_insert_and_limits(void **state)
{
	(void)state;
	struct cpuid_table *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	assert_int_equal(cpuid_table_set(t, 7, 1, 1, 0, 0, 0), 0);
	assert_int_equal(cpuid_table_set(t, 0, 0, 2, 0, 0, 0), 0);
	assert_int_equal(cpuid_table_set(t, 7, 0, 3, 0, 0, 0), 0);
	assert_int_equal(cpuid_table_set(t, 7, 0, 4, 0, 0, 0), 0); /* replaces */
	assert_int_equal(t->n, 3);
	assert_int_equal(t->leaves[1].leaf, 7);
	assert_int_equal(t->leaves[1].subleaf, 0);
	assert_int_equal(t->leaves[1].eax, 4);
	assert_true(t->leaves[1].subleaf_significant);
	assert_false(t->leaves[0].subleaf_significant);
	assert_non_null(cpuid_table_find(t, 7, 1));
	assert_null(cpuid_table_find(t, 7, 2));
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < CPUID_TABLE_MAX; i++)
		assert_int_equal(cpuid_table_set(t, 0x100 + i, 0, 0, 0, 0, 0), 0);
	assert_int_equal(cpuid_table_set(t, 0x1000, 0, 0, 0, 0, 0), -ENOSPC);
	assert_int_equal(t->n, CPUID_TABLE_MAX);
	free(t);
}

static void test_table_text_round_trip(void **state)
{
	(void)state;
	struct cpuid_table a = {0}, *b = calloc(1, sizeof(*b));
	assert_non_null(b);
	assert_int_equal(cpuid_table_set(&a, 0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69), 0);
	assert_int_equal(cpuid_table_set(&a, 0xd, 1, 0xf, 0x240, 0, 0), 0);
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);
	assert_int_equal(cpuid_table_write(&a, m), 0);
	fclose(m);
	assert_string_equal(text, "0x00000000 0x00000000 0x0000000d 0x756e6547 0x6c65746e "
				  "0x49656e69\n0x0000000d 0x00000001 0x0000000f 0x00000240 "
				  "0x00000000 0x00000000\n");
	char *dir = th_tempdir();
	char path[1024], name[64];
	th_write(dir, "t.txt", text);
	snprintf(path, sizeof(path), "%s/t.txt", dir);
	assert_int_equal(cpuid_table_read(path, b, name, sizeof(name), NULL), 0);
	assert_int_equal(cpuid_table_diff(&a, b, NULL, 0), 0);
	free(text);
	th_rmdir(dir);
	free(b);
}

static void expect_read_error(const char *text, const char *want)
{
	struct cpuid_table *t = calloc(1, sizeof(*t));
	struct vmm_error err = {0};
	char *dir = th_tempdir(), path[1024];
	th_write(dir, "bad.txt", text);
	snprintf(path, sizeof(path), "%s/bad.txt", dir);
	assert_true(cpuid_table_read(path, t, NULL, 0, &err) < 0);
	assert_contains(err.msg, want);
	th_rmdir(dir);
	free(t);
}

static void test_table_read_errors(void **state)
{
	(void)state;
	expect_read_error("# c\n0x00000000 0x00000000 0x0 0x0 0x0 0x0\n",
			  "bad.txt:2: expected six 0x%08x fields");
	expect_read_error("0x00000001 0x00000000 0x00000000 0x00000000 0x00000000 0x00000000\n"
			  "0x00000000 0x00000000 0x00000000 0x00000000 0x00000000 0x00000000\n",
			  "bad.txt:2: leaf 0x00000000 subleaf 0x00000000 out of order");
	expect_read_error("0x00000001 0x00000000 0x00000000 0x00000000 0x00000000 0x00000000\n"
			  "0x00000001 0x00000000 0x00000000 0x00000000 0x00000000 0x00000000\n",
			  "bad.txt:2: leaf 0x00000001 subleaf 0x00000000 out of order or repeated");
	expect_read_error("0x00000000 0x00000000 0x0000000g 0x00000000 0x00000000 0x00000000\n",
			  "bad.txt:1:");
	expect_read_error("# only a comment\n", "no CPUID lines");
	char *big = malloc(400);
	memset(big, '1', 399);
	big[399] = '\0';
	expect_read_error(big, "bad.txt:1: line longer than");
	free(big);
	/* more than 256 leaves */
	char *many = malloc(300 * 70), *p = many;
	for (int i = 0; i < 300; i++)
		p += sprintf(p, "0x%08x 0x00000000 0x00000000 0x00000000 0x00000000 0x00000000\n",
			     i);
	expect_read_error(many, "bad.txt:257: more than 256 leaves");
	free(many);
}

static void test_table_diff_names_bits(void **state)
{
	(void)state;
	struct cpuid_table a = {0}, b = {0};
	char buf[512];
	assert_int_equal(cpuid_table_set(&a, 7, 0, 0, 1u << 4, 0, 0), 0); /* hle */
	assert_int_equal(cpuid_table_set(&b, 7, 0, 0, 1u << 16 | 1u << 22, 0, 0), 0);
	assert_int_equal(cpuid_table_set(&b, 0xd, 0, 0, 0, 0, 0), 0);
	/* -hle, +avx512f, +pcommit (named), extra leaf 0xd */
	assert_int_equal(cpuid_table_diff(&a, &b, buf, sizeof(buf)), 4);
	assert_contains(buf, "-CPUID.07H:EBX.hle [bit 4]");
	assert_contains(buf, "+CPUID.07H:EBX.avx512f [bit 16]");
	assert_contains(buf, "extra leaf 0x0000000d subleaf 0x0");
	/* unnamed bits: raw register */
	struct cpuid_table c = {0}, d = {0};
	assert_int_equal(cpuid_table_set(&c, 0xd, 0, 0, 0x240, 0, 0), 0);
	assert_int_equal(cpuid_table_set(&d, 0xd, 0, 0, 0x980, 0, 0), 0);
	assert_int_equal(cpuid_table_diff(&c, &d, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "CPUID.0DH:EBX 0x00000240 != 0x00000980");
	/* a short buffer is cut with "..." but every difference is counted */
	assert_int_equal(cpuid_table_diff(&a, &b, buf, 40), 4);
	assert_true(strlen(buf) < 40);
	assert_contains(buf, "...");
}

/* The host rule's table names known features, known facts, and says why;
 * fact names round-trip (they are written into host profiles). */
static void test_host_rule_table(void **state)
{
	(void)state;
	assert_true(host_rule_count() >= 5);
	for (size_t i = 0; i < host_rule_count(); i++) {
		const struct host_rule *r = host_rule_at(i);
		const struct cpufeat *f = cpufeat_find(r->feature);
		if (!f)
			fail_msg("host rule names unknown feature %s", r->feature);
		assert_ptr_equal(host_rule_for(f), r);
		assert_true(r->kind == HOST_RULE_PROVIDE || r->kind == HOST_RULE_BACKED);
		assert_int_equal(r->needs >> KVM_NFACTS, 0);
		assert_true(r->why && strlen(r->why) > 10);
		/* a host-only bit is never offered, so no rule may provide one */
		assert_false(f->flags & CPUFEAT_NOKVM);
	}
	for (int fact = 0; fact < KVM_NFACTS; fact++)
		assert_int_equal(kvm_fact_find(kvm_fact_name((enum kvm_fact)fact)), fact);
	assert_int_equal(kvm_fact_find("nonsense"), -1);
	assert_null(host_rule_for(cpufeat_find("avx")));
}

/* A downgrade removes dependent features until the set is consistent. */
static void test_downgrade(void **state)
{
	(void)state;
	struct cpufeat_set s = {0}, dropped = {0};
	static const char *const in[] = {"xsave", "avx512f", "avx512vl", "avx512bw", "fma", "sse2"};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		cpufeat_set_add(&s, cpufeat_find(in[i]));
	struct vmm_error err = {0};
	assert_int_equal(cpufeat_set_check_deps(&s, &err), -EINVAL);
	assert_int_equal(cpufeat_set_downgrade(&s, &dropped), 4);
	assert_int_equal(cpufeat_set_check_deps(&s, &err), 0);
	assert_true(cpufeat_set_has_name(&s, "xsave") && cpufeat_set_has_name(&s, "sse2"));
	assert_true(cpufeat_set_has_name(&dropped, "avx512vl")); /* via avx512f, via avx2 */
	assert_true(cpufeat_set_has_name(&dropped, "fma"));
	assert_ptr_equal(cpufeat_missing_dep(&s, cpufeat_find("fma")), cpufeat_find("avx"));
	assert_int_equal(cpufeat_set_downgrade(&s, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rows_are_consistent),
	    cmocka_unit_test(test_required_leaves_covered),
	    cmocka_unit_test(test_spellings),
	    cmocka_unit_test(test_describe),
	    cmocka_unit_test(test_sets),
	    cmocka_unit_test(test_set_from_table_respects_levels),
	    cmocka_unit_test(test_table_insert_and_limits),
	    cmocka_unit_test(test_table_text_round_trip),
	    cmocka_unit_test(test_table_read_errors),
	    cmocka_unit_test(test_table_diff_names_bits),
	    cmocka_unit_test(test_host_rule_table),
	    cmocka_unit_test(test_downgrade),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

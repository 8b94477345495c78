/*
 * Unit tests: the model data of the tree: the models the issue asks for,
 * versions and aliases, specs, compare, and the frozen-version digests.
 * Expectations come from the x86-64 psABI and the public feature lists of
 * each generation, not from the engine's output.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static struct cpumodel_db *db;

static int setup(void **state)
{
	(void)state;
	db = th_db();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cpumodel_db_free(db);
	return 0;
}

static const struct cpumodel_version *version(const char *name)
{
	const struct cpumodel_version *v = cpumodel_db_lookup(db, name, NULL);
	if (!v)
		fail_msg("no model version '%s'", name);
	return v;
}

static bool has(const char *model, const char *feature)
{
	return cpufeat_set_has_name(&version(model)->features, feature);
}

static void test_required_models_exist(void **state)
{
	(void)state;
	static const char *const names[] = {
	    "x86-64-v1",      "x86-64-v2",	    "x86-64-v3",
	    "x86-64-v4",      "x86-64-v4-amd",	    "Nehalem",
	    "Westmere",	      "SandyBridge",	    "IvyBridge",
	    "Haswell",	      "Broadwell",	    "Skylake-Client",
	    "Skylake-Server", "Cascadelake-Server", "Icelake-Server",
	    "SapphireRapids", "Opteron_G1",	    "Opteron_G2",
	    "Opteron_G3",     "Opteron_G4",	    "Opteron_G5",
	    "EPYC",	      "EPYC-Naples",	    "EPYC-Rome",
	    "EPYC-Milan",     "EPYC-Genoa",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		version(names[i]);
	/* the deployments' variants: Skylake without TSX, with and without IBRS */
	assert_true(has("Skylake-Server-v1", "hle") && !has("Skylake-Server-v1", "spec_ctrl"));
	assert_true(has("Skylake-Server-IBRS", "spec_ctrl") && has("Skylake-Server-IBRS", "rtm"));
	assert_true(!has("Skylake-Server-noTSX-IBRS", "rtm") &&
		    has("Skylake-Server-noTSX-IBRS", "spec_ctrl"));
}

/* A model's name and model-level aliases mean its newest version; the name a
 * guest records is that version's. */
static void test_aliases_resolve_to_newest(void **state)
{
	(void)state;
	for (unsigned i = 0; i < db->nmodels; i++) {
		const struct cpumodel *m = &db->models[i];
		const struct cpumodel_version *newest = &m->versions[m->nversions - 1];
		assert_ptr_equal(cpumodel_db_lookup(db, m->name, NULL), newest);
		for (unsigned a = 0; a < m->naliases; a++)
			assert_ptr_equal(cpumodel_db_lookup(db, m->aliases[a], NULL), newest);
		struct guest_cpu *g;
		struct vmm_error err = {0};
		if (guest_cpu_resolve_spec(db, m->name, NULL, &g, &err) < 0)
			fail_msg("%s", err.msg);
		char want[96];
		snprintf(want, sizeof(want), "%s-v%u", m->name, m->nversions);
		assert_string_equal(guest_cpu_name(g), want);
		assert_string_equal(guest_cpu_spec(g), want);
		guest_cpu_free(g);
		/* every version by its full name */
		for (unsigned v = 0; v < m->nversions; v++)
			assert_ptr_equal(cpumodel_db_lookup(db, m->versions[v].name, NULL),
					 &m->versions[v]);
	}
}

/* Version aliases say what they mean: "noTSX" has no TSX, "IBRS" has IBRS. */
static void test_version_aliases_are_honest(void **state)
{
	(void)state;
	unsigned checked = 0;
	for (unsigned i = 0; i < db->nmodels; i++)
		for (unsigned v = 0; v < db->models[i].nversions; v++) {
			const struct cpumodel_version *ver = &db->models[i].versions[v];
			for (unsigned a = 0; a < ver->naliases; a++) {
				const char *al = ver->aliases[a];
				assert_ptr_equal(cpumodel_db_lookup(db, al, NULL), ver);
				if (strstr(al, "noTSX")) {
					assert_false(cpufeat_set_has_name(&ver->features, "hle"));
					assert_false(cpufeat_set_has_name(&ver->features, "rtm"));
					checked++;
				}
				if (strstr(al, "IBRS")) {
					assert_true(
					    cpufeat_set_has_name(&ver->features, "spec_ctrl"));
					checked++;
				}
				if (strstr(al, "IBPB")) {
					assert_true(
					    cpufeat_set_has_name(&ver->features, "amd_ibpb"));
					checked++;
				}
			}
		}
	assert_true(checked >= 10);
}

/* Each version is the previous one plus its recorded changes, and obeys
 * the dependency rules. */
static void test_versions_are_deltas(void **state)
{
	(void)state;
	for (unsigned i = 0; i < db->nmodels; i++) {
		const struct cpumodel *m = &db->models[i];
		for (unsigned v = 1; v < m->nversions; v++) {
			struct cpufeat_set s = m->versions[v - 1].features;
			cpufeat_set_or(&s, &m->versions[v].added);
			cpufeat_set_andnot(&s, &m->versions[v].removed);
			if (!cpufeat_set_equal(&s, &m->versions[v].features))
				fail_msg("%s is not %s plus its changes", m->versions[v].name,
					 m->versions[v - 1].name);
		}
		for (unsigned v = 0; v < m->nversions; v++) {
			struct vmm_error err = {0};
			if (cpufeat_set_check_deps(&m->versions[v].features, &err) < 0)
				fail_msg("%s: %s", m->versions[v].name, err.msg);
		}
	}
}

/* The psABI levels: each adds exactly the document's list to the previous. */
static void test_psabi_levels(void **state)
{
	(void)state;
	static const char *const v1[] = {"cmov",    "cx8", "fpu",  "fxsr", "mmx",
					 "syscall", "sse", "sse2", "lm",   "nx"};
	static const char *const v2[] = {"cx16",   "lahf_lm", "popcnt", "pni",
					 "sse4_1", "sse4_2",  "ssse3"};
	static const char *const v3[] = {"avx", "avx2", "bmi1",	 "bmi2", "f16c",
					 "fma", "abm",	"movbe", "xsave"};
	static const char *const v4[] = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"};
	const char *const *lists[] = {v1, v2, v3, v4};
	const size_t counts[] = {10, 7, 9, 5};
	const char *names[] = {"x86-64-v1", "x86-64-v2", "x86-64-v3", "x86-64-v4"};
	for (int l = 0; l < 4; l++) {
		for (size_t i = 0; i < counts[l]; i++)
			if (!has(names[l], lists[l][i]))
				fail_msg("%s lacks %s", names[l], lists[l][i]);
		if (l == 0)
			continue;
		struct cpufeat_set extra = version(names[l])->features;
		cpufeat_set_andnot(&extra, &version(names[l - 1])->features);
		assert_true(cpufeat_set_subset(&version(names[l - 1])->features,
					       &version(names[l])->features));
		assert_int_equal(cpufeat_set_count(&extra), counts[l]);
	}
	/* the AMD-layout v4: the same features as x86-64-v4, an AMD identity */
	const struct cpumodel_version *p4 = version("x86-64-v4"), *p4a = version("x86-64-v4-amd");
	assert_true(cpufeat_set_equal(&p4->features, &p4a->features));
	assert_int_equal(p4->props.vendor, VENDOR_INTEL);
	assert_int_equal(p4a->props.vendor, VENDOR_AMD);
}

static enum cpumodel_relation relation(const char *a, const char *b, struct cpumodel_compare *c)
{
	const struct cpumodel_version *va = version(a), *vb = version(b);
	cpumodel_compare_sets(&va->features, &va->props, &vb->features, &vb->props, c);
	return c->relation;
}

/* compare, with facts of the generations: Cascade Lake is Skylake-SP plus
 * VNNI (and the speculation fixes); a noTSX version drops exactly TSX. */
static void test_compare(void **state)
{
	(void)state;
	struct cpumodel_compare c;
	assert_int_equal(relation("Skylake-Server-v1", "Skylake-Server-v1", &c), REL_IDENTICAL);
	assert_false(c.props_differ);
	assert_int_equal(relation("Cascadelake-Server-v2", "Cascadelake-Server-noTSX", &c),
			 REL_SUPERSET);
	assert_int_equal(cpufeat_set_count(&c.only_a), 2);
	assert_true(cpufeat_set_has_name(&c.only_a, "hle"));
	assert_true(cpufeat_set_has_name(&c.only_a, "rtm"));
	assert_int_equal(relation("Skylake-Server-v5", "Cascadelake-Server-v5", &c), REL_SUBSET);
	assert_true(cpufeat_set_has_name(&c.only_b, "avx512_vnni"));
	assert_true(c.props_differ);
	assert_contains(c.prop_diffs, "stepping 0x4 != 0x6");
	assert_int_equal(relation("EPYC-Rome", "Skylake-Server", &c), REL_INCOMPATIBLE);
	assert_true(cpufeat_set_has_name(&c.only_a, "sse4a"));
	assert_true(cpufeat_set_has_name(&c.only_b, "avx512f"));
	assert_contains(c.prop_diffs, "vendor AuthenticAMD != GenuineIntel");
	/* Zen 4 adds AVX-512 to Zen 3 */
	assert_int_equal(relation("EPYC-Milan", "EPYC-Genoa", &c), REL_SUBSET);
	assert_true(cpufeat_set_has_name(&c.only_b, "avx512f"));
	assert_string_equal(cpumodel_relation_name(REL_INCOMPATIBLE), "incompatible");
}

static void expect_spec(const char *spec, int rc, const char *want)
{
	struct guest_cpu *g = NULL;
	struct vmm_error err = {0};
	int got = guest_cpu_resolve_spec(db, spec, NULL, &g, &err);
	if (got != rc)
		fail_msg("%s: rc %d, want %d (%s)", spec, got, rc, err.msg);
	if (rc == 0) {
		assert_string_equal(guest_cpu_spec(g), want);
		guest_cpu_free(g);
	} else {
		assert_null(g);
		assert_contains(err.msg, want);
	}
}

static void test_specs(void **state)
{
	(void)state;
	const char *newest = version("Skylake-Server")->name;
	char want[128];
	/* no-ops drop out, the rest sorted by name, last word wins */
	expect_spec("Skylake-Server-v4,+avx512_vnni,-hle,+abm", 0,
		    "Skylake-Server-v4,+avx512_vnni");
	expect_spec("Skylake-Server-v4,-pcid,+sse4.1,+avx512vnni,-avx512vnni", 0,
		    "Skylake-Server-v4,-pcid");
	expect_spec("Skylake-Server-v4,rtm=on,pcid=off", 0, "Skylake-Server-v4,-pcid,+rtm");
	snprintf(want, sizeof(want), "%s,-pku", newest);
	expect_spec("Skylake-Server,-pku", 0, want);
	expect_spec("Skylake-Server-v4,-avx512f", -EINVAL, "avx512dq needs avx512f");
	expect_spec("Skylake-Server-v4,+avx9000", -EINVAL, "unknown feature 'avx9000'");
	expect_spec("Skylake-Server-v4,+ht", -EINVAL, "set by the engine");
	expect_spec("Skylake-Server-v4,avx", -EINVAL, "expected +feature");
	expect_spec("Skylake-Server-v99", -ENOENT, "no such version (Skylake-Server has v1..v");
	expect_spec("Pentium5", -ENOENT, "unknown cpu model Pentium5");
	expect_spec("", -EINVAL, "empty");
	expect_spec(",+avx", -EINVAL, "no model name");
	expect_spec("EPYC-Rome,+mpx", -EINVAL, "mpx has no XSAVE state layout on AuthenticAMD");
	/* bounded: a spec too long, too many adjustments */
	char *big = malloc(16384);
	strcpy(big, "Skylake-Server");
	for (int i = 0; i < 2000; i++)
		strcat(big, ",+pku");
	expect_spec(big, -EINVAL, "longer than");
	strcpy(big, "Skylake-Server");
	for (int i = 0; i < 600; i++)
		strcat(big, ",-fpu");
	expect_spec(big, -EINVAL, "more than 512 feature adjustments");
	free(big);
}

/* Released versions never change: each one's digest is recorded. */
static void test_released_versions_frozen(void **state)
{
	(void)state;
	char path[1024], line[256];
	snprintf(path, sizeof(path), "%s/released.txt", th_env("CPUMODEL_TEST_DATA"));
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	unsigned recorded = 0, bad = 0;
	char *seen = calloc(1, 65536);
	seen[0] = ' ';
	while (fgets(line, sizeof(line), f)) {
		char name[128];
		uint64_t digest;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%127s %" SCNx64, name, &digest) != 2)
			fail_msg("%s: bad line '%s'", path, line);
		recorded++;
		const struct cpumodel_version *v = cpumodel_db_lookup(db, name, NULL);
		if (!v || strcmp(v->name, name) != 0) {
			printf("released version %s was deleted or renamed\n", name);
			bad++;
			continue;
		}
		if (v->digest != digest) {
			printf("released version %s was edited in place (%s:%u): its definition "
			       "digest is %016" PRIx64 ", frozen as %016" PRIx64
			       "; released versions are frozen, add a new version instead\n",
			       name, v->file, v->line, v->digest, digest);
			bad++;
		}
		strncat(seen, name, 65536 - strlen(seen) - 3);
		strcat(seen, " ");
	}
	fclose(f);
	for (unsigned i = 0; i < db->nmodels; i++)
		for (unsigned v = 0; v < db->models[i].nversions; v++) {
			char key[128];
			snprintf(key, sizeof(key), " %s ", db->models[i].versions[v].name);
			if (!strstr(seen, key)) {
				printf("version %s is not frozen: run "
				       "tests/cpumodels/freeze-new-versions.sh\n",
				       db->models[i].versions[v].name);
				bad++;
			}
		}
	free(seen);
	assert_true(recorded > 0);
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_required_models_exist),
	    cmocka_unit_test(test_aliases_resolve_to_newest),
	    cmocka_unit_test(test_version_aliases_are_honest),
	    cmocka_unit_test(test_versions_are_deltas),
	    cmocka_unit_test(test_psabi_levels),
	    cmocka_unit_test(test_compare),
	    cmocka_unit_test(test_specs),
	    cmocka_unit_test(test_released_versions_frozen),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

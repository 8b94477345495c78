/* Unit tests: the model data format, good files and malformed ones. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define HEADER                                                                                     \
	"model Demo\n"                                                                             \
	"    vendor GenuineIntel\n"                                                                \
	"    family 6\n"                                                                           \
	"    model 0x55\n"                                                                         \
	"    stepping 4\n"                                                                         \
	"    model-id Demo CPU\n"

static const char good[] = "# a comment\n"
			   "\n" HEADER "    alias DemoNewest\n"
			   "    level 0xb\n"
			   "    features fpu cx8 sse sse2 xsave\n"
			   "    features avx lm nx syscall hle rtm\n"
			   "version 1\n"
			   "    note the first\n"
			   "version 2\n"
			   "    alias Demo-noTSX\n"
			   "    model-id Demo CPU (no TSX)\n"
			   "    stepping 7\n"
			   "    remove hle rtm\n"
			   "    add sse4.1 lahf-lm\n"
			   "version 3\n"
			   "    add avx2\n";

static struct cpumodel_db *load_text(const char *name, const char *text, int *rc,
				     struct vmm_error *err)
{
	char *dir = th_tempdir();
	struct cpumodel_db *db = NULL;
	th_write(dir, name, text);
	*rc = cpumodel_db_load(dir, &db, err);
	th_rmdir(dir);
	return db;
}

static void test_good_file(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	int rc;
	struct cpumodel_db *db = load_text("demo.cpumodel", good, &rc, &err);
	if (rc)
		fail_msg("%s", err.msg);
	assert_int_equal(db->nmodels, 1);
	const struct cpumodel *m = &db->models[0];
	assert_string_equal(m->name, "Demo");
	assert_int_equal(m->nversions, 3);
	const struct cpumodel_version *v1 = &m->versions[0], *v2 = &m->versions[1],
				      *v3 = &m->versions[2];
	assert_string_equal(v1->name, "Demo-v1");
	assert_string_equal(v1->note, "the first");
	assert_int_equal(v1->props.model, 0x55);
	assert_int_equal(v1->props.level, 0xb);
	assert_int_equal(v1->props.phys_bits, 39);
	assert_true(cpufeat_set_has_name(&v1->features, "hle"));
	/* every model starts with the default paravirtual set */
	struct cpufeat_set pv;
	cpufeat_set_with_flags(&pv, CPUFEAT_PV_DEFAULT);
	assert_true(cpufeat_set_subset(&pv, &v1->features));
	/* version 2 = version 1 + changes */
	assert_string_equal(v2->props.model_id, "Demo CPU (no TSX)");
	assert_int_equal(v2->props.stepping, 7);
	assert_int_equal(v1->props.stepping, 4);
	assert_false(cpufeat_set_has_name(&v2->features, "rtm"));
	assert_true(cpufeat_set_has_name(&v2->features, "sse4_1"));
	assert_true(cpufeat_set_has_name(&v2->added, "lahf_lm"));
	assert_true(cpufeat_set_has_name(&v2->removed, "hle"));
	assert_int_equal(cpufeat_set_count(&v2->added), 2);
	assert_true(cpufeat_set_has_name(&v3->features, "avx2"));
	assert_string_equal(v3->props.model_id, "Demo CPU (no TSX)"); /* carried on */
	assert_int_not_equal(v1->digest, v2->digest);
	/* names */
	const struct cpumodel *mo;
	assert_ptr_equal(cpumodel_db_lookup(db, "Demo", &mo), v3);
	assert_ptr_equal(mo, m);
	assert_ptr_equal(cpumodel_db_lookup(db, "DemoNewest", NULL), v3);
	assert_ptr_equal(cpumodel_db_lookup(db, "Demo-noTSX", NULL), v2);
	assert_ptr_equal(cpumodel_db_lookup(db, "Demo-v1", NULL), v1);
	assert_null(cpumodel_db_lookup(db, "Demo-v4", &mo));
	assert_ptr_equal(mo, m); /* known model, unknown version */
	assert_null(cpumodel_db_lookup(db, "Nope", &mo));
	assert_null(mo);
	assert_null(cpumodel_db_lookup(db, "Demo-v0", NULL));
	assert_null(cpumodel_db_lookup(db, "Demo-vx", NULL));
	cpumodel_db_free(db);
}

/* The digest covers what the guest sees and nothing else. */
static void test_digest(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	int rc;
	struct cpumodel_db *a = load_text("a.cpumodel", good, &rc, &err);
	assert_int_equal(rc, 0);
	char *text = strdup(good), *p = strstr(text, "the first");
	memcpy(p, "THE FIRST", 9); /* a note is not guest-visible */
	struct cpumodel_db *b = load_text("a.cpumodel", text, &rc, &err);
	assert_int_equal(rc, 0);
	assert_true(a->models[0].versions[0].digest == b->models[0].versions[0].digest);
	cpumodel_db_free(b);
	p = strstr(text, "Demo CPU\n"); /* the model-id is */
	p[0] = 'd';
	b = load_text("a.cpumodel", text, &rc, &err);
	assert_int_equal(rc, 0);
	assert_true(a->models[0].versions[0].digest != b->models[0].versions[0].digest);
	cpumodel_db_free(a);
	cpumodel_db_free(b);
	free(text);
}

struct bad_case {
	const char *text;
	const char *want; /* substring of the message, starting at "file:line" */
};

static const struct bad_case bad_cases[] = {
    {HEADER "    colour blue\n", "bad.cpumodel:7: unknown key 'colour'"},
    {HEADER "    features fpu avx9000\nversion 1\n", "bad.cpumodel:7: unknown feature 'avx9000'"},
    {HEADER "    features fpu\nversion 1\nversion 3\n",
     "bad.cpumodel:9: version 3: expected version 2"},
    {HEADER "    features fpu\nversion 1\nversion 2\n    add fpu\n",
     "bad.cpumodel:10: add fpu: already in version 1"},
    {HEADER "    features fpu\nversion 1\nversion 2\n    remove avx\n",
     "bad.cpumodel:10: remove avx: not in version 1"},
    {"model Demo\n    family 6\n    model 1\n    stepping 1\n    model-id x\n"
     "    features fpu\nversion 1\n",
     "bad.cpumodel:7: model Demo: missing 'vendor'"},
    {"model Demo\n    vendor CyrixInstead\n", "bad.cpumodel:2: vendor: expected GenuineIntel"},
    {"model Demo\n    family six\n", "bad.cpumodel:2: family: expected a number, got 'six'"},
    {"model Demo\n    family 0x200\n", "bad.cpumodel:2: family: 0x200 out of range"},
    {"model Demo\n    stepping -1\n", "bad.cpumodel:2: stepping: expected a number"},
    {"model Demo\n    model-id 0123456789012345678901234567890123456789012345678\n",
     "bad.cpumodel:2: model-id: must be 1..47 characters, got 49"},
    {"    vendor GenuineIntel\n", "bad.cpumodel:1: 'vendor' before the first 'model NAME'"},
    {HEADER "    features fpu\nversion 1\nversion 2\n    features sse\n",
     "bad.cpumodel:10: 'features' is not allowed in a version block"},
    {HEADER "    features fpu\nversion 1\n    add sse\n",
     "bad.cpumodel:9: 'add' is not allowed in version 1"},
    {HEADER "    features fpu avx\nversion 1\n", "bad.cpumodel:8: Demo-v1: avx needs xsave"},
    {HEADER "    features fpu xsave avx\nversion 1\nversion 2\n    remove xsave\n",
     "bad.cpumodel:9: Demo-v2: avx needs xsave"},
    {HEADER "    features fpu\n", "bad.cpumodel:1: model Demo has no 'version 1'"},
    {HEADER "    features fpu ht\n", "bad.cpumodel:7: feature 'ht' is set by the engine"},
    {HEADER "    features fpu sse fpu\n", "bad.cpumodel:7: feature 'fpu' listed twice"},
    {HEADER "    features fpu\n    vendor AuthenticAMD\n", "bad.cpumodel:8: 'vendor' given twice"},
    {HEADER "    xlevel 0x7\n", "bad.cpumodel:7: xlevel: 0x7 out of range"},
    {HEADER "    features fpu\nversion 1\n    alias Demo-v1\n",
     "bad.cpumodel:8: name 'Demo-v1' already used at"},
    {HEADER "    features fpu\nversion 1\nmodel demo\n",
     "bad.cpumodel:9: model demo has no 'version 1'"},
    {"model Demo\n    vendor AuthenticAMD\n    family 23\n    model 1\n    stepping 1\n"
     "    model-id x\n    features fpu xsave mpx\nversion 1\n",
     "bad.cpumodel:8: Demo-v1: mpx has no XSAVE state layout on AuthenticAMD CPUs"},
    {"model Bad Name\n", "bad.cpumodel:1: model name 'Bad Name'"},
    {"model\n", "bad.cpumodel:1: model: missing value"},
    {HEADER "    features fpu\nversion 1\n    note\n", "bad.cpumodel:9: 'note' needs a value"},
};

static void test_malformed_files(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct vmm_error err = {0};
		int rc;
		struct cpumodel_db *db = load_text("bad.cpumodel", bad_cases[i].text, &rc, &err);
		if (rc >= 0)
			fail_msg("case %zu loaded but should fail with '%s'", i, bad_cases[i].want);
		assert_null(db);
		if (!strstr(err.msg, bad_cases[i].want))
			fail_msg("case %zu: got '%s', want '%s'", i, err.msg, bad_cases[i].want);
		assert_null(strchr(err.msg, '\n'));
	}
}

static void test_file_level_errors(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	struct cpumodel_db *db = NULL;
	char *dir = th_tempdir();
	/* no model files at all */
	th_write(dir, "README", "not a model file\n");
	assert_int_equal(cpumodel_db_load(dir, &db, &err), -ENOENT);
	assert_contains(err.msg, "no *.cpumodel files");
	/* a NUL byte */
	char path[1024];
	snprintf(path, sizeof(path), "%s/nul.cpumodel", dir);
	FILE *f = fopen(path, "w");
	fwrite("model A\0\n", 1, 9, f);
	fclose(f);
	assert_int_equal(cpumodel_db_load(dir, &db, &err), -EINVAL);
	assert_contains(err.msg, "nul.cpumodel: contains a NUL byte");
	unlink(path);
	/* a line too long */
	char *longline = malloc(5000);
	memset(longline, 'x', 4999);
	longline[4999] = '\0';
	th_write(dir, "long.cpumodel", longline);
	free(longline);
	assert_int_equal(cpumodel_db_load(dir, &db, &err), -EINVAL);
	assert_contains(err.msg, "long.cpumodel:1: line longer than 4095 characters");
	snprintf(path, sizeof(path), "%s/long.cpumodel", dir);
	unlink(path);
	/* the same name in two files names both places */
	th_write(dir, "a.cpumodel", HEADER "    features fpu\nversion 1\n");
	th_write(dir, "b.cpumodel", "\n" HEADER "    features fpu\nversion 1\n");
	assert_int_equal(cpumodel_db_load(dir, &db, &err), -EINVAL);
	assert_contains(err.msg, "b.cpumodel:2: name 'Demo' already used at ");
	assert_contains(err.msg, "a.cpumodel:1");
	assert_null(db);
	th_rmdir(dir);
	assert_int_equal(cpumodel_db_load("/nonexistent/dir", &db, &err), -ENOENT);
	assert_contains(err.msg, "/nonexistent/dir");
}

/* Files load in name order; models of later files follow. */
static void test_multiple_files(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	struct cpumodel_db *db = NULL;
	char *dir = th_tempdir();
	th_write(dir, "20-b.cpumodel", HEADER "    features fpu\nversion 1\n");
	th_write(dir, "10-a.cpumodel", HEADER "    features fpu\nversion 1\n");
	assert_int_equal(cpumodel_db_load(dir, &db, &err), -EINVAL); /* both are Demo */
	th_write(dir, "20-b.cpumodel",
		 "model Other\n    vendor AuthenticAMD\n    family 23\n    model 1\n"
		 "    stepping 2\n    model-id O\n    features fpu\nversion 1\n");
	if (cpumodel_db_load(dir, &db, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(db->nmodels, 2);
	assert_string_equal(db->models[0].name, "Demo");
	assert_string_equal(db->models[1].name, "Other");
	assert_int_equal(db->models[1].versions[0].props.vendor, VENDOR_AMD);
	cpumodel_db_free(db);
	th_rmdir(dir);
}

/* Untrusted input: cut and mangled versions of the real data files either
 * load or fail with a file:line message; never crash (run under ASan too). */
static void test_mangled_input(void **state)
{
	(void)state;
	char path[1024];
	snprintf(path, sizeof(path), "%s/21-intel-skylake.cpumodel", th_env("VMM_CPU_MODEL_DIR"));
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *text = calloc(1, 1 << 17);
	size_t n = fread(text, 1, (1 << 17) - 1, f);
	fclose(f);
	assert_true(n > 1000);
	char *buf = malloc(n + 1);
	unsigned ok = 0, failed = 0;
	for (size_t cut = 0; cut < n; cut += 37) {
		memcpy(buf, text, cut);
		buf[cut] = '\0';
		struct cpumodel_db *db = cpumodel_db_new();
		struct vmm_error err = {0};
		int rc = cpumodel_db_parse(db, "cut.cpumodel", buf, &err);
		if (rc < 0) {
			assert_int_equal(strncmp(err.msg, "cut.cpumodel:", 13), 0);
			failed++;
		} else {
			ok++;
		}
		cpumodel_db_free(db);
	}
	static const char junk[] = " \t\n#-+.,=0x9azAZ_\x01\x7f\xff";
	srand(1);
	for (int iter = 0; iter < 400; iter++) {
		memcpy(buf, text, n + 1);
		for (int k = 0; k < 1 + iter % 7; k++)
			buf[(size_t)rand() % n] = junk[(size_t)rand() % (sizeof(junk) - 1)];
		struct cpumodel_db *db = cpumodel_db_new();
		struct vmm_error err = {0};
		int rc = cpumodel_db_parse(db, "junk.cpumodel", buf, &err);
		if (rc < 0) {
			assert_int_equal(strncmp(err.msg, "junk.cpumodel:", 14), 0);
			assert_null(strchr(err.msg, '\n'));
			failed++;
		} else {
			ok++;
		}
		cpumodel_db_free(db);
	}
	assert_true(ok > 0 && failed > 0);
	free(buf);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_file),	    cmocka_unit_test(test_digest),
	    cmocka_unit_test(test_malformed_files), cmocka_unit_test(test_file_level_errors),
	    cmocka_unit_test(test_multiple_files),  cmocka_unit_test(test_mangled_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

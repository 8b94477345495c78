/*
 * Unit tests: host profiles (cpumodels/host_profile.c). A profile written
 * from a KVM table reads back to the same table, facts and identity, and
 * the host it makes equals the one made from the table directly. Cut and
 * mangled profiles are refused with path:line errors. The mutations re-hash
 * the text with their own FNV-1a 64 where a test needs a valid digest, so
 * each error is the one under test, not the digest's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static struct cpuid_table *ref_table; /* the reference host's rows, as a KVM table */
static char *ref_text;		      /* its profile text */
static char *dir;

static const struct host_profile_info info = {"node-17.example", "6.1.0-28-amd64", "0.1.0"};

static char *write_profile(const struct cpuid_table *t, const struct kvm_facts *f,
			   const char *brand)
{
	char *text = NULL;
	size_t len = 0;
	struct vmm_error err = {0};
	FILE *m = open_memstream(&text, &len);
	assert_non_null(m);
	if (host_profile_write(m, t, f, brand, &info, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(fclose(m), 0);
	return text;
}

static int setup(void **state)
{
	(void)state;
	struct host_cpu *ref = th_reference_host();
	struct kvm_facts facts;
	kvm_facts_all(&facts);
	facts.has[KVM_FACT_TSC_DEADLINE] = false; /* a fact that is not there, too */
	ref_table = malloc(sizeof(*ref_table));
	*ref_table = ref->raw;
	ref_text = write_profile(ref_table, &facts, "vmm reference CPU");
	host_cpu_free(ref);
	dir = th_tempdir();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(ref_table);
	free(ref_text);
	th_rmdir(dir);
	return 0;
}

static int parse(const char *text, struct cpuid_table *t, struct kvm_facts *f, char *brand,
		 struct host_profile_info *in, struct vmm_error *err)
{
	return host_profile_parse("P", text, strlen(text), t, f, brand, 49, in, err);
}

static void test_round_trip(void **state)
{
	(void)state;
	struct cpuid_table *t = malloc(sizeof(*t));
	struct kvm_facts f;
	struct host_profile_info in;
	char brand[49];
	struct vmm_error err = {0};
	assert_true(host_profile_detect(ref_text, strlen(ref_text)));
	if (parse(ref_text, t, &f, brand, &in, &err) < 0)
		fail_msg("%s\n%s", err.msg, ref_text);
	assert_int_equal(t->n, ref_table->n);
	assert_int_equal(memcmp(t->leaves, ref_table->leaves, t->n * sizeof(t->leaves[0])), 0);
	assert_true(f.has[KVM_FACT_IRQCHIP] && f.has[KVM_FACT_ARCH_CAPS_MSR]);
	assert_false(f.has[KVM_FACT_TSC_DEADLINE]);
	assert_string_equal(brand, "vmm reference CPU");
	assert_string_equal(in.hostname, info.hostname);
	assert_string_equal(in.kernel, info.kernel);
	assert_string_equal(in.vmm_version, info.vmm_version);
	/* the documented header lines are there, derived from the rows */
	assert_contains(ref_text, "\nvmm-host-profile 1\n");
	assert_contains(ref_text, "\nvendor GenuineIntel\nfamily 6\nmodel 143\nstepping 8\n");
	assert_contains(ref_text, "\nphys-bits 52\n");
	assert_contains(ref_text, "\nkvm-facts irqchip arch-capabilities-msr\n");
	/* the file on disk: the same host as the table itself */
	char path[1024];
	snprintf(path, sizeof(path), "%s/ref.profile", dir);
	th_write(dir, "ref.profile", ref_text);
	struct host_cpu *a = NULL, *b = NULL;
	assert_int_equal(host_cpu_from_profile(path, NULL, &a, &err), 0);
	assert_int_equal(host_cpu_from_kvm_table("x", ref_table, &f, NULL, &b, &err), 0);
	assert_true(a->is_kvm && a->is_profile);
	assert_string_equal(host_cpu_name(a), "ref");
	assert_true(cpufeat_set_equal(&a->features, &b->features));
	assert_true(cpufeat_set_equal(&a->usable, &b->usable));
	/* the reference reports the TSC-deadline bit: offered without the fact */
	assert_true(cpufeat_set_has_name(&a->features, "tsc_deadline_timer"));
	assert_int_equal(a->phys_bits, 52);
	/* a raw dump is not a profile */
	assert_false(
	    host_profile_detect("# CPU: x\n0x00000000 0x00000000 0x00000001 0x0 0x0 0x0\n", 50));
	host_cpu_free(a);
	host_cpu_free(b);
	free(t);
}

/* FNV-1a 64, written out again here: the digest the format documents. */
static uint64_t fnv(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	while (n--) {
		h ^= (unsigned char)*p++;
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Replaces the end line's digest (and row count) by correct ones. */
static char *rehash(const char *text)
{
	const char *end = strstr(text, "\nend ");
	assert_non_null(end);
	size_t body = (size_t)(end - text) + 1;
	unsigned rows = 0;
	for (const char *p = text; p < text + body; p = strchr(p, '\n') + 1)
		rows += strncmp(p, "cpuid ", 6) == 0;
	char *out = malloc(body + 64);
	memcpy(out, text, body);
	snprintf(out + body, 64, "end %u 0x%016" PRIx64 "\n", rows, fnv(text, body));
	return out;
}

static char *replace(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	if (!at)
		fail_msg("mutation: '%s' not in the profile", from);
	size_t n = strlen(text) - strlen(from) + strlen(to);
	char *out = malloc(n + 1);
	size_t pre = (size_t)(at - text);
	memcpy(out, text, pre);
	strcpy(out + pre, to);
	strcat(out, at + strlen(from));
	return out;
}

/* The 1-based line of the first occurrence of `what` in text. */
static unsigned line_of(const char *text, const char *what)
{
	const char *at = strstr(text, what);
	unsigned line = 1;
	assert_non_null(at);
	for (const char *p = text; p < at; p++)
		line += *p == '\n';
	return line;
}

static void expect_refused(const char *text, unsigned line, const char *why)
{
	struct cpuid_table *t = malloc(sizeof(*t));
	struct kvm_facts f;
	struct host_profile_info in;
	char brand[49], where[32];
	struct vmm_error err = {0};
	int rc = parse(text, t, &f, brand, &in, &err);
	free(t);
	if (rc == 0)
		fail_msg("accepted, expected line %u: %s", line, why);
	snprintf(where, sizeof(where), "host profile P:%u: ", line);
	assert_contains(err.msg, where);
	assert_contains(err.msg, why);
	assert_null(strchr(err.msg, '\n'));
}

static void test_cut_profiles(void **state)
{
	(void)state;
	size_t len = strlen(ref_text);
	unsigned lines = line_of(ref_text, "\nend ") + 1, line = 0;
	/* every cut at a line boundary before the end line: no 'end' line,
	 * reported at the last line there is */
	for (size_t n = 0; n < len && line + 1 < lines; n++) {
		if (ref_text[n] != '\n')
			continue;
		char *cut = strndup(ref_text, n + 1);
		expect_refused(cut, ++line, "the file ends before its 'end' line (cut short?)");
		free(cut);
	}
	assert_int_equal(line, lines - 1);
	/* cut in the middle of a row */
	const char *row = strstr(ref_text, "\ncpuid 0x00000007");
	char *cut = strndup(ref_text, (size_t)(row - ref_text) + 20);
	expect_refused(cut, line_of(ref_text, "\ncpuid 0x00000007") + 1, "cpuid: expected six");
	free(cut);
	/* the end line cut: digest incomplete */
	cut = strndup(ref_text, len - 5);
	expect_refused(cut, lines, "end: digest");
	free(cut);
}

static void test_mangled_profiles(void **state)
{
	(void)state;
	const char *t = ref_text;
	unsigned end = line_of(t, "\nend ") + 1;
	unsigned vendor = line_of(t, "\nvendor ") + 1;
	char *m, *r;
	/* a value flipped inside a valid row: only the digest can tell */
	m = replace(t, "cpuid 0x00000007 0x00000000 0x00000001 0xffffffff",
		    "cpuid 0x00000007 0x00000000 0x00000001 0xfffffffe");
	expect_refused(m, end, "digest mismatch");
	free(m);
	/* a row dropped (and the digest fixed, the count not) */
	char was[32], now[32], why[96];
	m = replace(t, "cpuid 0x00000006 0x00000000 0x00080fd7 0x00000000 0x00000000 0x00000000\n",
		    "");
	r = rehash(m);
	free(m);
	snprintf(was, sizeof(was), "\nend %u ", ref_table->n - 1);
	snprintf(now, sizeof(now), "\nend %u ", ref_table->n);
	m = replace(r, was, now);
	free(r);
	snprintf(why, sizeof(why), "end says %u cpuid rows, the file has %u", ref_table->n,
		 ref_table->n - 1);
	expect_refused(m, end - 1, why);
	free(m);
	static const struct {
		const char *from, *to, *at, *why;
	} cases[] = {
	    {"vmm-host-profile 1", "vmm-host-profile 2", "vmm-host-profile", "format version 2"},
	    {"vmm-host-profile 1", "vmm-host-profile one", "vmm-host-profile", "expected a number"},
	    {"\nvendor GenuineIntel", "\nvendor AuthenticAMD", "\nvendor ",
	     "vendor disagrees with the vendor in leaf 0"},
	    {"\nfamily 6", "\nfamily 7", "\nfamily", "family disagrees"},
	    {"\nphys-bits 52", "\nphys-bits 46", "\nphys-bits", "phys-bits disagrees"},
	    {"\nvendor GenuineIntel", "\nvendor GenuineIntel\nvendor  GenuineIntel",
	     "\nvendor  GenuineIntel", "second 'vendor' line"},
	    {"\nkernel ", "\nkernal ", "\nkernal", "unknown keyword 'kernal'"},
	    {"\nkernel 6.1.0-28-amd64", "\nkernel 6.1.0 28", "\nkernel", "not allowed"},
	    {"\nkvm-facts irqchip", "\nkvm-facts irqchip bogus", "\nkvm-facts",
	     "unknown fact 'bogus'"},
	    {"\ncpuid 0x00000006",
	     "\ncpuid 0x00000006 0x00000000 0x0 0x0 0x0 0x0\ncpuid 0x00000006",
	     "\ncpuid 0x00000006", "expected six"},
	    {"\ncpuid 0x80000000",
	     "\ncpuid 0x00000001 0x00000000 0x00000000 0x00000000 0x00000000 0x00000000"
	     "\ncpuid 0x80000000",
	     "\ncpuid 0x00000001 0x00000000 0x00000000", "out of order or repeated"},
	    {"\nhostname node-17.example", "\nhostname node 17", "\nhostname", "not allowed"},
	    {"\nmodel-name vmm reference CPU", "\nmodel-name vmm\x01reference", "\nmodel-name",
	     "not printable"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		m = replace(t, cases[i].from, cases[i].to);
		r = rehash(m);
		expect_refused(r, line_of(r, cases[i].at) + (cases[i].at[0] == '\n'), cases[i].why);
		free(m);
		free(r);
	}
	/* rows out of order */
	m = replace(t, "cpuid 0x00000006 0x00000000 0x00080fd7",
		    "cpuid 0x00000016 0x00000000 0x00080fd7");
	r = rehash(m);
	expect_refused(r, line_of(r, "\ncpuid 0x00000007") + 1, "out of order");
	free(m);
	free(r);
	/* a required line missing */
	m = replace(t, "\nkernel 6.1.0-28-amd64", "");
	r = rehash(m);
	expect_refused(r, line_of(r, "\nend ") + 1, "no 'kernel' line before 'end'");
	free(m);
	free(r);
	/* an xsave line that disagrees with leaf 0xD (the reference has none:
	 * add one) */
	m = replace(t, "\ncpuid 0x00000000", "\nxsave 2 0x240 256\ncpuid 0x00000000");
	r = rehash(m);
	expect_refused(r, line_of(r, "\nxsave") + 1, "xsave lines disagree");
	free(m);
	free(r);
	/* something after end */
	m = malloc(strlen(t) + 16);
	sprintf(m, "%scpuid 0x0\n", t);
	expect_refused(m, end + 1, "text after the 'end' line");
	free(m);
	/* a line too long */
	m = replace(
	    t, "\nhostname node-17.example",
	    "\nhostname node-17.example"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	expect_refused(m, line_of(m, "\nhostname") + 1, "line longer than 254");
	free(m);
	/* a NUL byte: the parser is given the whole length */
	struct cpuid_table *tb = malloc(sizeof(*tb));
	struct kvm_facts f;
	struct host_profile_info in;
	char brand[49];
	struct vmm_error err = {0};
	char *nul = strdup(t);
	nul[strstr(nul, "\nvendor") - nul + 3] = '\0';
	assert_int_equal(host_profile_parse("P", nul, strlen(t), tb, &f, brand, 49, &in, &err),
			 -EINVAL);
	snprintf(brand, sizeof(brand), "P:%u: byte 0x00", vendor);
	assert_contains(err.msg, brand);
	free(nul);
	free(tb);
}

/* Bounds: more rows than KVM_SET_CPUID2 takes, a file over the size cap. */
static void test_profile_bounds(void **state)
{
	(void)state;
	size_t cap = 300 * 80 + strlen(ref_text);
	char *big = malloc(cap), *p = big;
	const char *rows = strstr(ref_text, "\ncpuid ") + 1;
	p += sprintf(p, "%.*s", (int)(rows - ref_text), ref_text);
	for (unsigned i = 0; i < 300; i++)
		p += sprintf(
		    p, "cpuid 0x%08x 0x00000000 0x00000000 0x00000000 0x00000000 0x00000000\n",
		    0x40000100 + i);
	sprintf(p, "end 300 0x0000000000000000\n");
	expect_refused(big, line_of(big, "cpuid 0x40000200"), "more than 256 rows");
	free(big);
	/* over 64 KiB: refused before parsing, from the file too */
	size_t n = HOST_PROFILE_MAX_BYTES + 2;
	char *huge = malloc(n + 1);
	memset(huge, '#', n);
	huge[n] = '\0';
	for (size_t i = 79; i < n; i += 80)
		huge[i] = '\n';
	memcpy(huge, "vmm-host-profile 1\n", 19);
	th_write(dir, "huge.profile", huge);
	char path[1024];
	struct host_cpu *h = NULL;
	struct vmm_error err = {0};
	snprintf(path, sizeof(path), "%s/huge.profile", dir);
	assert_int_equal(host_cpu_from_profile(path, NULL, &h, &err), -EFBIG);
	assert_contains(err.msg, "larger than 65536 bytes");
	free(huge);
	/* an error from a file names the file and the line */
	char *bad = replace(ref_text, "vmm-host-profile 1", "vmm-host-profile 9");
	th_write(dir, "bad.profile", bad);
	snprintf(path, sizeof(path), "%s/bad.profile", dir);
	assert_int_equal(host_cpu_from_profile(path, NULL, &h, &err), -EINVAL);
	char want[1100];
	snprintf(want, sizeof(want), "host profile %s:%u: ", path,
		 line_of(bad, "vmm-host-profile 9"));
	assert_contains(err.msg, want);
	free(bad);
}

/* The real CPUs as KVM tables: every dump written as a profile reads back
 * to a host with the same offered and usable features. */
static void test_dumps_as_profiles(void **state)
{
	(void)state;
	th_need_dumps();
	static const char *const names[] = {
	    "amd-zen4-genoa-epyc-9654", "intel-sapphirerapids-xeon-w9-3475x",
	    "intel-raptorlake-s-core-i9-13900k", "intel-westmere-ep-xeon-x5667"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct host_cpu *d = th_dump(names[i]), *a = NULL, *b = NULL;
		struct kvm_facts f;
		struct vmm_error err = {0};
		kvm_facts_all(&f);
		char *text = write_profile(&d->raw, &f, d->brand);
		char fname[128], path[1024];
		snprintf(fname, sizeof(fname), "%s.profile", names[i]);
		snprintf(path, sizeof(path), "%s/%s", dir, fname);
		th_write(dir, fname, text);
		if (host_cpu_from_profile(path, NULL, &a, &err) < 0)
			fail_msg("%s: %s", names[i], err.msg);
		assert_int_equal(host_cpu_from_kvm_table("x", &d->raw, &f, NULL, &b, &err), 0);
		assert_true(cpufeat_set_equal(&a->features, &b->features));
		assert_true(cpufeat_set_equal(&a->usable, &b->usable));
		assert_string_equal(a->brand, d->brand);
		assert_string_equal(a->vendor, d->vendor);
		free(text);
		host_cpu_free(a);
		host_cpu_free(b);
		host_cpu_free(d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),	      cmocka_unit_test(test_cut_profiles),
	    cmocka_unit_test(test_mangled_profiles),  cmocka_unit_test(test_profile_bounds),
	    cmocka_unit_test(test_dumps_as_profiles),
	};
	return th_exit(cmocka_run_group_tests(tests, setup, teardown));
}

/*
 * Unit tests with the real CPUID dumps of ../shared/cpuid-hosts as hosts:
 * runnable checks, baseline, compare and the matrix. The expected facts are
 * public facts of each generation (and the dumps' README), e.g. no Intel CPU
 * has SSE4a, Zen 3 introduced PKU on EPYC, Cascade Lake added AVX512-VNNI.
 * Exits 77 when the dumps are not there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static const char *const dump_names[] = {
    "amd-bulldozer-opteron-6238",
    "amd-piledriver-opteron-6376",
    "amd-zen-naples-epyc-7551p",
    "amd-zen2-rome-epyc-7742",
    "amd-zen3-milan-epyc-7763",
    "amd-zen4-genoa-epyc-9654",
    "intel-broadwell-ep-xeon-e5-2620-v4",
    "intel-cascadelake-sp-xeon-gold-5215",
    "intel-emeraldrapids-xeon-platinum-8570",
    "intel-haswell-ep-xeon-e5-2699-v3",
    "intel-icelake-sp-xeon-platinum-8351n",
    "intel-ivybridge-ep-xeon-e5-2697-v2",
    "intel-raptorlake-s-core-i9-13900k",
    "intel-sandybridge-ep-xeon-es-8c-2600mhz",
    "intel-sapphirerapids-xeon-w9-3475x",
    "intel-skylake-s-core-i7-6700k",
    "intel-skylake-sp-xeon-platinum-8180",
    "intel-westmere-ep-xeon-x5667",
};
#define NDUMPS (sizeof(dump_names) / sizeof(dump_names[0]))

static struct cpumodel_db *db;
static struct host_cpu *hosts[NDUMPS];

static struct host_cpu *host(const char *name)
{
	for (size_t i = 0; i < NDUMPS; i++)
		if (strcmp(dump_names[i], name) == 0)
			return hosts[i];
	fail_msg("no dump %s", name);
	return NULL;
}

static int setup(void **state)
{
	(void)state;
	db = th_db();
	for (size_t i = 0; i < NDUMPS; i++)
		hosts[i] = th_dump(dump_names[i]);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < NDUMPS; i++)
		host_cpu_free(hosts[i]);
	cpumodel_db_free(db);
	return 0;
}

static struct cpumodel_check check(const struct cpumodel_version *v, const struct host_cpu *h)
{
	struct cpufeat_set need;
	struct cpumodel_check c;
	cpumodel_version_required(v, &need);
	cpumodel_check_host(&v->props, &need, h, &c);
	return c;
}

static bool runs(const char *model, const char *hostname)
{
	const struct cpumodel_version *v = cpumodel_db_lookup(db, model, NULL);
	if (!v)
		fail_msg("no model %s", model);
	return check(v, host(hostname)).runnable;
}

static bool is_intel(const struct host_cpu *h)
{
	return strcmp(h->vendor, "GenuineIntel") == 0;
}

static void test_profiles_load(void **state)
{
	(void)state;
	for (size_t i = 0; i < NDUMPS; i++) {
		const struct host_cpu *h = hosts[i];
		assert_string_equal(host_cpu_name(h), dump_names[i]);
		assert_true(h->is_profile && !h->is_kvm);
		assert_string_equal(h->vendor, strncmp(dump_names[i], "intel", 5) == 0
						   ? "GenuineIntel"
						   : "AuthenticAMD");
		assert_true(h->brand[0] != ' ' && h->brand[0] != '\0');
		/* a profile stands for a KVM host on that CPU: x2apic, the
		 * TSC deadline timer and the default PV features are there;
		 * host-only bits (est, tm2, monitor) are not */
		assert_true(cpufeat_set_has_name(&h->features, "x2apic"));
		assert_true(cpufeat_set_has_name(&h->features, "tsc_deadline_timer"));
		assert_true(cpufeat_set_has_name(&h->features, "kvmclock"));
		assert_false(cpufeat_set_has_name(&h->features, "est"));
		assert_false(cpufeat_set_has_name(&h->features, "monitor"));
	}
}

/* Caveat 1 of the dumps' README: SYSCALL reads 0 to 32-bit tools on Intel. */
static void test_syscall_caveat(void **state)
{
	(void)state;
	const struct host_cpu *skx = host("intel-skylake-sp-xeon-platinum-8180");
	uint32_t edx = cpuid_table_reg(&skx->raw, 0x80000001, 0, CPUID_EDX);
	assert_int_equal(edx >> 11 & 1, 0); /* as recorded */
	assert_true(cpufeat_set_has_name(&skx->features, "syscall"));
	/* so every 64-bit host runs the psABI baseline */
	for (size_t i = 0; i < NDUMPS; i++)
		if (!check(cpumodel_db_lookup(db, "x86-64-v1", NULL), hosts[i]).runnable)
			fail_msg("%s does not run x86-64-v1", dump_names[i]);
}

/* Caveat: Sandy/Ivy Bridge-EP dumps record no leaf 0xD.1; their xsaveopt
 * counts as present, and the check says it was assumed. */
static void test_unrecorded_subleaf(void **state)
{
	(void)state;
	const struct host_cpu *snb = host("intel-sandybridge-ep-xeon-es-8c-2600mhz");
	assert_null(cpuid_table_find(&snb->raw, 0xd, 1));
	struct cpumodel_check c = check(cpumodel_db_lookup(db, "SandyBridge-v1", NULL), snb);
	assert_true(c.runnable);
	assert_true(cpufeat_set_has_name(&c.assumed, "xsaveopt"));
	/* Skylake-SP records 0xD.1: nothing assumed */
	c = check(cpumodel_db_lookup(db, "Skylake-Server-v1", NULL),
		  host("intel-skylake-sp-xeon-platinum-8180"));
	assert_true(c.runnable);
	assert_int_equal(cpufeat_set_count(&c.assumed), 0);
}

/* SSE4a, misaligned SSE and the AMD-only bits of EPYC models: no Intel CPU. */
static void test_no_intel_host_runs_epyc(void **state)
{
	(void)state;
	unsigned epyc = 0;
	for (unsigned i = 0; i < db->nmodels; i++) {
		const struct cpumodel *m = &db->models[i];
		if (strncmp(m->name, "EPYC", 4) != 0)
			continue;
		for (unsigned v = 0; v < m->nversions; v++, epyc++)
			for (size_t h = 0; h < NDUMPS; h++)
				if (is_intel(hosts[h]) && check(&m->versions[v], hosts[h]).runnable)
					fail_msg("%s runs on %s", m->versions[v].name,
						 dump_names[h]);
	}
	assert_true(epyc >= 7);
}

static void test_rome(void **state)
{
	(void)state;
	const char *rome = "amd-zen2-rome-epyc-7742";
	const struct cpumodel *m;
	cpumodel_db_lookup(db, "EPYC-Rome", &m);
	for (unsigned v = 0; v < m->nversions; v++)
		assert_true(check(&m->versions[v], host(rome)).runnable);
	cpumodel_db_lookup(db, "EPYC-Milan", &m);
	for (unsigned v = 0; v < m->nversions; v++) {
		struct cpumodel_check c = check(&m->versions[v], host(rome));
		assert_false(c.runnable);
		/* Zen 3 brought PKU and INVPCID to EPYC */
		assert_true(cpufeat_set_has_name(&c.missing, "pku"));
		assert_true(cpufeat_set_has_name(&c.missing, "invpcid"));
	}
	assert_true(runs("EPYC-Milan", "amd-zen3-milan-epyc-7763"));
	assert_true(runs("EPYC-Genoa", "amd-zen4-genoa-epyc-9654"));
	assert_false(runs("EPYC-Genoa", "amd-zen3-milan-epyc-7763")); /* AVX-512: Zen 4 */
}

static void test_skylake_sp(void **state)
{
	(void)state;
	const struct host_cpu *skx = host("intel-skylake-sp-xeon-platinum-8180");
	const char *later[] = {"Cascadelake-Server", "Icelake-Server", "Cooperlake",
			       "SapphireRapids"};
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		const struct cpumodel *m;
		assert_non_null(cpumodel_db_lookup(db, later[i], &m));
		for (unsigned v = 0; v < m->nversions; v++) {
			struct cpumodel_check c = check(&m->versions[v], skx);
			if (c.runnable)
				fail_msg("%s runs on Skylake-SP", m->versions[v].name);
			/* AVX512-VNNI arrived with Cascade Lake */
			assert_true(cpufeat_set_has_name(&c.missing, "avx512_vnni"));
		}
	}
	assert_true(runs("Skylake-Server-v1", "intel-skylake-sp-xeon-platinum-8180"));
	assert_true(runs("Cascadelake-Server", "intel-cascadelake-sp-xeon-gold-5215"));
	assert_true(runs("Icelake-Server", "intel-icelake-sp-xeon-platinum-8351n"));
	assert_true(runs("SapphireRapids", "intel-sapphirerapids-xeon-w9-3475x"));
	assert_false(runs("Skylake-Server-v1", "intel-skylake-s-core-i7-6700k")); /* no AVX-512 */
	assert_true(runs("Skylake-Client-v1", "intel-skylake-s-core-i7-6700k"));
	/* the dump of Haswell-EP has TSX off (README caveat 6) */
	assert_false(runs("Haswell-v1", "intel-haswell-ep-xeon-e5-2699-v3"));
	assert_true(runs("Haswell-noTSX", "intel-haswell-ep-xeon-e5-2699-v3"));
}

/* The message vmm prints when it refuses to start. */
static void test_resolve_messages(void **state)
{
	(void)state;
	struct guest_cpu *g = NULL;
	struct vmm_error err = {0};
	const struct host_cpu *skx = host("intel-skylake-sp-xeon-platinum-8180");
	assert_int_equal(guest_cpu_resolve(db, "Cascadelake-Server-v1", skx, &g, &err), -ENOTSUP);
	assert_null(g);
	assert_contains(err.msg, "cpu model Cascadelake-Server-v1: host lacks ");
	assert_contains(err.msg, "CPUID.07H:ECX.avx512_vnni [bit 11]");
	assert_contains(err.msg, "(host intel-skylake-sp-xeon-platinum-8180)");
	/* adjusting the missing features away makes it start */
	assert_int_equal(guest_cpu_resolve(db,
					   "Cascadelake-Server-v1,-avx512_vnni,-spec_ctrl,"
					   "-spec_ctrl_ssbd",
					   skx, &g, &err),
			 0);
	assert_string_equal(guest_cpu_spec(g),
			    "Cascadelake-Server-v1,-avx512_vnni,-spec_ctrl,-spec_ctrl_ssbd");
	guest_cpu_free(g);
	/* a long list still fits one line: grouped by register, with a count */
	assert_int_equal(
	    guest_cpu_resolve(db, "SapphireRapids", host("intel-westmere-ep-xeon-x5667"), &g, &err),
	    -ENOTSUP);
	assert_contains(err.msg, "features: CPUID.01H:ECX.{");
	assert_true(strlen(err.msg) < VMM_ERROR_MAX - 1 || strstr(err.msg, "..."));
	assert_null(strchr(err.msg, '\n'));
}

static void test_baseline_skylake_family(void **state)
{
	(void)state;
	struct host_cpu *three[] = {host("intel-skylake-sp-xeon-platinum-8180"),
				    host("intel-cascadelake-sp-xeon-gold-5215"),
				    host("intel-icelake-sp-xeon-platinum-8351n")};
	struct cpumodel_baseline b;
	struct vmm_error err = {0};
	if (cpumodel_baseline(db, three, 3, &b, &err) < 0)
		fail_msg("%s", err.msg);
	assert_non_null(b.best);
	assert_string_equal(b.model->name, "Skylake-Server");
	/* the result runs everywhere, with its extras, and nothing with more
	 * features does */
	for (int h = 0; h < 3; h++)
		assert_true(check(b.best, three[h]).runnable);
	for (unsigned i = 0; i < db->nmodels; i++)
		for (unsigned v = 0; v < db->models[i].nversions; v++) {
			const struct cpumodel_version *ver = &db->models[i].versions[v];
			bool all = true;
			for (int h = 0; h < 3; h++)
				all = all && check(ver, three[h]).runnable;
			if (all && cpufeat_set_count(&ver->features) >
				       cpufeat_set_count(&b.best->features))
				fail_msg("%s runs everywhere and has more features than %s",
					 ver->name, b.best->name);
		}
	struct guest_cpu *g;
	for (int h = 0; h < 3; h++) {
		if (guest_cpu_resolve(db, b.spec, three[h], &g, &err) < 0)
			fail_msg("baseline spec %s: %s", b.spec, err.msg);
		guest_cpu_free(g);
	}
	/* all three have xsaves, which Skylake-Server-v1 lacks */
	assert_true(cpufeat_set_has_name(&b.extra, "xsaves"));
	/* what the VMM provides on every host is no extra: the model decides */
	assert_false(cpufeat_set_has_name(&b.extra, "topoext"));
	assert_false(cpufeat_set_has_name(&b.extra, "avx512_vnni")); /* not on Skylake-SP */
}

static void test_baseline_other_clusters(void **state)
{
	(void)state;
	struct cpumodel_baseline b;
	struct vmm_error err = {0};
	/* every EPYC generation: Naples is the oldest, so a Naples model */
	struct host_cpu *epycs[] = {
	    host("amd-zen-naples-epyc-7551p"), host("amd-zen2-rome-epyc-7742"),
	    host("amd-zen3-milan-epyc-7763"), host("amd-zen4-genoa-epyc-9654")};
	assert_int_equal(cpumodel_baseline(db, epycs, 4, &b, &err), 0);
	assert_non_null(b.best);
	assert_string_equal(b.model->name, "EPYC");
	/* a single host's baseline is a model of that host's generation */
	struct host_cpu *one[] = {host("amd-zen3-milan-epyc-7763")};
	assert_int_equal(cpumodel_baseline(db, one, 1, &b, &err), 0);
	assert_string_equal(b.model->name, "EPYC-Milan");
	/* all eighteen: something still runs everywhere, and does */
	assert_int_equal(cpumodel_baseline(db, hosts, NDUMPS, &b, &err), 0);
	assert_non_null(b.best);
	for (size_t h = 0; h < NDUMPS; h++)
		assert_true(check(b.best, hosts[h]).runnable);
	assert_int_equal(cpumodel_baseline(db, hosts, 0, &b, &err), -EINVAL);
}

/* compare also takes hosts: two hosts, and a model against a host. */
static void test_compare_hosts(void **state)
{
	(void)state;
	struct cpumodel_compare c;
	const struct host_cpu *skx = host("intel-skylake-sp-xeon-platinum-8180");
	const struct cpumodel_version *v = cpumodel_db_lookup(db, "Skylake-Server-v1", NULL);
	struct cpufeat_set need;
	cpumodel_version_required(v, &need);
	cpumodel_compare_sets(&need, &v->props, &skx->features, NULL, &c);
	assert_int_equal(c.relation, REL_SUBSET);
	assert_false(c.props_differ);
	const struct host_cpu *cx = host("intel-cascadelake-sp-xeon-gold-5215");
	cpumodel_compare_sets(&skx->features, NULL, &cx->features, NULL, &c);
	assert_true(cpufeat_set_has_name(&c.only_b, "avx512_vnni"));
	const struct host_cpu *rome = host("amd-zen2-rome-epyc-7742");
	cpumodel_compare_sets(&skx->features, NULL, &rome->features, NULL, &c);
	assert_int_equal(c.relation, REL_INCOMPATIBLE);
	assert_true(cpufeat_set_has_name(&c.only_b, "sse4a"));
	assert_true(cpufeat_set_has_name(&c.only_a, "avx512f"));
}

/* The matrix agrees cell by cell with single checks and with resolve. */
static void test_matrix(void **state)
{
	(void)state;
	struct cpumodel_matrix m;
	struct vmm_error err = {0};
	unsigned nversions = 0;
	for (unsigned i = 0; i < db->nmodels; i++)
		nversions += db->models[i].nversions;
	assert_int_equal(cpumodel_matrix_build(db, hosts, NDUMPS, false, &m, &err), 0);
	assert_int_equal(m.nrows, nversions);
	assert_int_equal(m.ncols, NDUMPS);
	unsigned runnable = 0;
	for (unsigned r = 0; r < m.nrows; r++)
		for (unsigned c = 0; c < m.ncols; c++) {
			const struct cpumodel_matrix_cell *cell = &m.cells[r * m.ncols + c];
			struct cpumodel_check k = check(m.rows[r], hosts[c]);
			assert_int_equal(cell->runnable, k.runnable);
			assert_true(cpufeat_set_equal(&cell->check.missing, &k.missing));
			struct guest_cpu *g = NULL;
			int rc = guest_cpu_resolve(db, m.rows[r]->name, hosts[c], &g, &err);
			assert_int_equal(rc, cell->runnable ? 0 : -ENOTSUP);
			guest_cpu_free(g);
			runnable += cell->runnable;
		}
	/* every model version stands for real CPUs: it runs on some dump */
	for (unsigned r = 0; r < m.nrows; r++) {
		bool any = false;
		for (unsigned c = 0; c < m.ncols; c++)
			any = any || m.cells[r * m.ncols + c].runnable;
		if (!any)
			fail_msg("%s runs on no host", m.rows[r]->name);
	}
	assert_true(runnable > 0 && runnable < m.nrows * m.ncols);
	cpumodel_matrix_free(&m);
	assert_int_equal(cpumodel_matrix_build(db, hosts, NDUMPS, true, &m, &err), 0);
	assert_int_equal(m.nrows, db->nmodels);
	cpumodel_matrix_free(&m);
}

/* --with-kvm: a profile limited by another host has only what both have. */
static void test_profile_limited_by_host(void **state)
{
	(void)state;
	char path[1024];
	struct host_cpu *lim = NULL, *h = NULL;
	struct vmm_error err = {0};
	const struct host_cpu *rome = host("amd-zen2-rome-epyc-7742");
	snprintf(path, sizeof(path), "%s/intel-skylake-sp-xeon-platinum-8180.txt",
		 th_env("CPUID_HOSTS_DIR"));
	assert_int_equal(host_cpu_from_table("rome-as-kvm", &rome->raw, true, NULL, &lim, &err), 0);
	assert_int_equal(host_cpu_from_profile(path, lim, &h, &err), 0);
	const struct host_cpu *skx = host("intel-skylake-sp-xeon-platinum-8180");
	struct cpufeat_set both = skx->features;
	cpufeat_set_and(&both, &lim->features);
	assert_true(cpufeat_set_equal(&h->features, &both));
	assert_true(h->is_kvm);
	assert_false(cpufeat_set_has_name(&h->features, "avx512f"));
	assert_contains(host_cpu_name(h), "+kvm");
	host_cpu_free(h);
	host_cpu_free(lim);
	assert_int_equal(host_cpu_from_profile("/nonexistent.txt", NULL, &h, &err), -ENOENT);
	assert_contains(err.msg, "host CPU profile: /nonexistent.txt");
}

/* Real CPUs never break the engine: for every dump, baseline gives a model
 * that runs there (its spec too), every version gets an answer from check,
 * the host compares with a model, and the matrix of all of them builds. */
static void test_every_dump_gets_answers(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	const struct cpumodel_version *v1 = cpumodel_db_lookup(db, "x86-64-v1", NULL);
	for (size_t h = 0; h < NDUMPS; h++) {
		struct host_cpu *one[] = {hosts[h]};
		struct cpumodel_baseline b;
		if (cpumodel_baseline(db, one, 1, &b, &err) < 0)
			fail_msg("baseline %s: %s", dump_names[h], err.msg);
		if (!b.best)
			fail_msg("baseline %s: no model", dump_names[h]);
		assert_true(check(b.best, hosts[h]).runnable);
		struct guest_cpu *g = NULL;
		if (guest_cpu_resolve(db, b.spec, hosts[h], &g, &err) < 0)
			fail_msg("baseline %s: spec %s does not run there: %s", dump_names[h],
				 b.spec, err.msg);
		guest_cpu_free(g);
		printf("%-40s baseline %s (+%u features)\n", dump_names[h], b.best->name,
		       cpufeat_set_count(&b.extra));
		/* usable respects every dependency row */
		assert_int_equal(cpufeat_set_check_deps(&hosts[h]->usable, &err), 0);
		struct cpumodel_compare c;
		struct cpufeat_set need;
		cpumodel_version_required(v1, &need);
		cpumodel_compare_sets(&need, &v1->props, &hosts[h]->usable, NULL, &c);
		assert_true(c.relation == REL_SUBSET || c.relation == REL_IDENTICAL);
	}
	struct cpumodel_matrix m;
	assert_int_equal(cpumodel_matrix_build(db, hosts, NDUMPS, false, &m, &err), 0);
	cpumodel_matrix_free(&m);
}

/* Key Locker: the Raptor Lake dump has wide_kl set and aeskle clear (AESKLE
 * reads 1 only after the OS enables Key Locker). KVM does not give Key
 * Locker to guests: host-only, never offered, no model may name it; the
 * answer is a Skylake-Client-class model. */
static void test_raptorlake_key_locker(void **state)
{
	(void)state;
	const struct host_cpu *rpl = host("intel-raptorlake-s-core-i9-13900k");
	uint32_t kl = cpuid_table_reg(&rpl->raw, 0x19, 0, CPUID_EBX);
	assert_int_equal(kl >> 2 & 1, 1); /* wide_kl, as recorded */
	assert_int_equal(kl & 1, 0);	  /* aeskle, as recorded */
	static const char *const locker[] = {"keylocker", "aeskle", "wide_kl", "kl_iwkey_backup"};
	for (size_t i = 0; i < 4; i++) {
		const struct cpufeat *f = cpufeat_find(locker[i]);
		assert_true(f->flags & CPUFEAT_NOKVM);
		assert_false(cpufeat_set_has(&rpl->features, f));
	}
	struct host_cpu *one[] = {host("intel-raptorlake-s-core-i9-13900k")};
	struct cpumodel_baseline b;
	struct vmm_error err = {0};
	assert_int_equal(cpumodel_baseline(db, one, 1, &b, &err), 0);
	assert_string_equal(b.model->name, "Skylake-Client");
}

/* A host reporting a feature without the one it needs (here a Skylake-SP
 * table with avx2 cleared) offers the bits it reports, but cannot use the
 * dependent ones: they are downgraded, and baseline still answers. */
static void test_dependency_downgrade(void **state)
{
	(void)state;
	struct cpuid_table *t = malloc(sizeof(*t));
	struct host_cpu *odd = NULL;
	struct vmm_error err = {0};
	*t = host("intel-skylake-sp-xeon-platinum-8180")->raw;
	const struct cpuid_leaf *l7 = cpuid_table_find(t, 7, 0);
	assert_int_equal(cpuid_table_set(t, 7, 0, l7->eax, l7->ebx & ~(1u << 5), l7->ecx, l7->edx),
			 0);
	assert_int_equal(host_cpu_from_table("no-avx2", t, false, NULL, &odd, &err), 0);
	assert_true(cpufeat_set_has_name(&odd->features, "avx512f"));
	assert_false(cpufeat_set_has_name(&odd->usable, "avx512f"));
	assert_false(cpufeat_set_has_name(&odd->usable, "avx512vl")); /* via avx512f */
	assert_true(cpufeat_set_has_name(&odd->usable, "avx"));
	struct host_cpu *one[] = {odd};
	struct cpumodel_baseline b;
	assert_int_equal(cpumodel_baseline(db, one, 1, &b, &err), 0);
	assert_non_null(b.best);
	assert_false(cpufeat_set_has_name(&b.extra, "avx512f"));
	/* a model that needs avx512f says so, avx2 too */
	struct cpumodel_check c = check(cpumodel_db_lookup(db, "Skylake-Server-v1", NULL), odd);
	assert_false(c.runnable);
	assert_true(cpufeat_set_has_name(&c.missing, "avx2"));
	host_cpu_free(odd);
	free(t);
}

/* The host rule: the VMM provides topoext (leaf 0x8000001E), x2apic, the
 * TSC-deadline timer, ARAT and the hypervisor bit on every host, whatever
 * the CPU reports: Intel CPUs never report topoext. */
static void test_host_rule(void **state)
{
	(void)state;
	static const char *const provided[] = {"topoext", "x2apic", "tsc_deadline_timer", "arat",
					       "hypervisor"};
	for (size_t h = 0; h < NDUMPS; h++)
		for (size_t i = 0; i < 5; i++)
			if (!cpufeat_set_has_name(&hosts[h]->features, provided[i]))
				fail_msg("%s does not offer %s", dump_names[h], provided[i]);
	const struct host_cpu *skx = host("intel-skylake-sp-xeon-platinum-8180");
	assert_int_equal(cpuid_table_reg(&skx->raw, 0x80000001, 0, CPUID_ECX) >> 22 & 1, 0);
	/* a KVM table as bare-metal KVM reports it on Intel: no topoext, no
	 * TSC-deadline bit (KVM_CAP_TSC_DEADLINE_TIMER says it instead) */
	struct cpuid_table *t = malloc(sizeof(*t));
	struct host_cpu *k = NULL;
	struct vmm_error err = {0};
	struct kvm_facts facts;
	*t = host("intel-cascadelake-sp-xeon-gold-5215")->raw;
	const struct cpuid_leaf *l1 = cpuid_table_find(t, 1, 0);
	assert_int_equal(cpuid_table_set(t, 1, 0, l1->eax, l1->ebx, l1->ecx & ~(1u << 24), l1->edx),
			 0);
	assert_true(cpuid_table_reg(t, 1, 0, CPUID_ECX) >> 21 & 1); /* x2apic reported */
	assert_true(cpuid_table_reg(t, 7, 0, CPUID_EDX) >> 29 & 1); /* arch_capabilities */
	assert_false(cpuid_table_reg(t, 0x80000001, 0, CPUID_ECX) >> 22 & 1); /* no topoext */
	kvm_facts_all(&facts);
	assert_int_equal(host_cpu_from_kvm_table("k", t, &facts, NULL, &k, &err), 0);
	static const char *const all_facts[] = {
	    "tsc_deadline_timer", "arch_capabilities", "topoext", "x2apic", "arat",
	    "kvm_hint_realtime"};
	for (size_t i = 0; i < sizeof(all_facts) / sizeof(all_facts[0]); i++)
		if (!cpufeat_set_has_name(&k->features, all_facts[i]))
			fail_msg("KVM host with every fact does not offer %s", all_facts[i]);
	host_cpu_free(k);
	/* PROVIDE rows need their facts; BACKED rows are withdrawn without */
	facts.has[KVM_FACT_TSC_DEADLINE] = false;
	facts.has[KVM_FACT_ARCH_CAPS_MSR] = false;
	assert_int_equal(host_cpu_from_kvm_table("k", t, &facts, NULL, &k, &err), 0);
	assert_false(cpufeat_set_has_name(&k->features, "tsc_deadline_timer"));
	assert_false(cpufeat_set_has_name(&k->features, "arch_capabilities"));
	assert_true(cpufeat_set_has_name(&k->features, "topoext"));
	assert_true(cpufeat_set_has_name(&k->features, "x2apic"));
	host_cpu_free(k);
	facts.has[KVM_FACT_IRQCHIP] = false;
	facts.has[KVM_FACT_TSC_DEADLINE] = true;
	assert_int_equal(host_cpu_from_kvm_table("k", t, &facts, NULL, &k, &err), 0);
	assert_false(cpufeat_set_has_name(&k->features, "x2apic"));
	assert_false(cpufeat_set_has_name(&k->features, "tsc_deadline_timer"));
	assert_true(cpufeat_set_has_name(&k->features, "arat"));
	host_cpu_free(k);
	/* a PROVIDE row only adds: a bit KVM reports stays (as QEMU keeps it) */
	assert_int_equal(cpuid_table_set(t, 1, 0, l1->eax, l1->ebx, l1->ecx | 1u << 24, l1->edx),
			 0);
	facts.has[KVM_FACT_IRQCHIP] = true;
	facts.has[KVM_FACT_TSC_DEADLINE] = false;
	assert_int_equal(host_cpu_from_kvm_table("k", t, &facts, NULL, &k, &err), 0);
	assert_true(cpufeat_set_has_name(&k->features, "tsc_deadline_timer"));
	host_cpu_free(k);
	free(t);
}

/* psABI v4 on AMD: a Genoa-only fleet gets a runnable v4-class model, and
 * x86-64-v4-amd runs there; a Genoa + Sapphire Rapids fleet shares no
 * AVX-512 layout, so its baseline adds no AVX-512 state. */
static void test_v4_on_amd(void **state)
{
	(void)state;
	struct host_cpu *genoa = host("amd-zen4-genoa-epyc-9654");
	struct host_cpu *spr = host("intel-sapphirerapids-xeon-w9-3475x");
	struct cpumodel_baseline b;
	struct vmm_error err = {0};
	struct host_cpu *fleet[] = {genoa};
	assert_int_equal(cpumodel_baseline(db, fleet, 1, &b, &err), 0);
	struct cpufeat_set v4, need;
	cpumodel_version_required(cpumodel_db_lookup(db, "x86-64-v4", NULL), &v4);
	struct guest_cpu *g;
	assert_int_equal(guest_cpu_resolve(db, b.spec, genoa, &g, &err), 0);
	guest_cpu_required(g, &need);
	guest_cpu_free(g);
	assert_true(cpufeat_set_has_name(&v4, "avx512f"));
	if (!cpufeat_set_subset(&v4, &need))
		fail_msg("Genoa baseline %s is not psABI-v4 class", b.spec);
	assert_true(runs("x86-64-v4-amd", "amd-zen4-genoa-epyc-9654"));
	assert_false(runs("x86-64-v4", "amd-zen4-genoa-epyc-9654"));
	assert_true(runs("x86-64-v4", "intel-sapphirerapids-xeon-w9-3475x"));
	assert_false(runs("x86-64-v4-amd", "intel-sapphirerapids-xeon-w9-3475x"));
	struct host_cpu *mixed[] = {genoa, spr};
	assert_int_equal(cpumodel_baseline(db, mixed, 2, &b, &err), 0);
	assert_non_null(b.best);
	assert_false(cpufeat_set_has_name(&b.extra, "avx512f"));
	assert_true(cpufeat_set_has_name(&b.withheld, "avx512f"));
	for (int h = 0; h < 2; h++) {
		assert_int_equal(guest_cpu_resolve(db, b.spec, mixed[h], &g, &err), 0);
		guest_cpu_free(g);
	}
}

int main(void)
{
	if (!th_have_dumps())
		return SKIP_EXIT;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_profiles_load),
	    cmocka_unit_test(test_syscall_caveat),
	    cmocka_unit_test(test_unrecorded_subleaf),
	    cmocka_unit_test(test_no_intel_host_runs_epyc),
	    cmocka_unit_test(test_rome),
	    cmocka_unit_test(test_skylake_sp),
	    cmocka_unit_test(test_resolve_messages),
	    cmocka_unit_test(test_baseline_skylake_family),
	    cmocka_unit_test(test_baseline_other_clusters),
	    cmocka_unit_test(test_compare_hosts),
	    cmocka_unit_test(test_matrix),
	    cmocka_unit_test(test_profile_limited_by_host),
	    cmocka_unit_test(test_every_dump_gets_answers),
	    cmocka_unit_test(test_raptorlake_key_locker),
	    cmocka_unit_test(test_dependency_downgrade),
	    cmocka_unit_test(test_host_rule),
	    cmocka_unit_test(test_v4_on_amd),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * cpumodels/ops.c: the questions asked of the database: does a model run on a
 * host (check), how do two models relate (compare), which model runs on all
 * of a cluster's hosts (baseline), and everything against everything (matrix).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpumodels/engine.h"

void cpumodel_check_host(const struct cpumodel_props *props, const struct cpufeat_set *need,
			 const struct host_cpu *host, struct cpumodel_check *out)
{
	uint64_t xcr0 = 0;
	memset(out, 0, sizeof(*out));
	out->missing = *need;
	cpufeat_set_andnot(&out->missing, &host->features);
	out->assumed = *need;
	cpufeat_set_and(&out->assumed, &host->unknown);
	out->need_phys_bits = props->phys_bits;
	out->host_phys_bits = host->phys_bits;
	out->phys_bits_short = host->phys_bits && props->phys_bits > host->phys_bits;
	/* a model whose features have no layout fails to resolve; here just
	 * compare what has one */
	xsave_components(props->vendor, need, &xcr0, NULL);
	out->xsave_bad =
	    xsave_host_mismatch(props->vendor, xcr0, host, out->xsave_msg, sizeof(out->xsave_msg));
	out->runnable =
	    !cpufeat_set_count(&out->missing) && !out->phys_bits_short && !out->xsave_bad;
}

struct out_buf {
	char *buf;
	size_t len, used;
	bool full;
};

static void put(struct out_buf *o, const char *s)
{
	size_t n = strlen(s);
	if (o->full || !o->len)
		return;
	if (o->used + n + 1 > o->len) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->used, s, n + 1);
	o->used += n;
}

/* Long form: every feature as "CPUID.07H:EBX.avx512f [bit 16]". */
static void format_long(const struct cpumodel_check *c, struct out_buf *o)
{
	size_t i = 0;
	const struct cpufeat *f;
	bool first = true;
	while ((f = cpufeat_set_next(&c->missing, &i))) {
		char d[96];
		cpufeat_describe(f, d, sizeof(d));
		put(o, first ? "host lacks " : ", ");
		put(o, d);
		first = false;
	}
}

/* Short form, grouped by register: "CPUID.01H:ECX.{pni,ssse3} ...". */
static void format_grouped(const struct cpumodel_check *c, struct out_buf *o)
{
	char head[64];
	snprintf(head, sizeof(head), "host lacks %u features: ", cpufeat_set_count(&c->missing));
	put(o, head);
	for (int w = 0; w < CPUFEAT_NWORDS; w++) {
		if (!c->missing.w[w])
			continue;
		char r[48];
		const struct cpufeat_word *cw = &cpufeat_words[w];
		cpufeat_reg_describe(cw->leaf, cw->subleaf, cw->reg, r, sizeof(r));
		put(o, o->used > strlen(head) ? " " : "");
		put(o, r);
		put(o, ".{");
		bool first = true;
		for (unsigned b = 0; b < 32; b++) {
			const struct cpufeat *f = cpufeat_by_bit((enum cpufeat_word_id)w, b);
			if (!(c->missing.w[w] >> b & 1) || !f)
				continue;
			put(o, first ? "" : ",");
			put(o, f->name);
			first = false;
		}
		put(o, "}");
	}
}

void cpumodel_check_format(const struct cpumodel_check *c, char *buf, size_t len)
{
	struct out_buf o = {.buf = buf, .len = len};
	if (!len)
		return;
	buf[0] = '\0';
	if (cpufeat_set_count(&c->missing)) {
		format_long(c, &o);
		if (o.full) {
			o = (struct out_buf){.buf = buf, .len = len};
			buf[0] = '\0';
			format_grouped(c, &o);
		}
	}
	if (c->phys_bits_short && !o.full) {
		char p[96];
		snprintf(p, sizeof(p), "%sneeds %u physical address bits, host has %u",
			 o.used ? "; " : "", c->need_phys_bits, c->host_phys_bits);
		put(&o, p);
	}
	if (c->xsave_bad && !o.full) {
		put(&o, o.used ? "; " : "");
		put(&o, c->xsave_msg);
	}
	if (o.full && len > 5)
		memcpy(buf + (o.used < len - 5 ? o.used : len - 5), " ...", 5);
	if (!buf[0])
		snprintf(buf, len, "runnable");
}

const char *cpumodel_relation_name(enum cpumodel_relation r)
{
	static const char *const names[] = {"identical", "subset", "superset", "incompatible"};
	return (unsigned)r < 4 ? names[r] : "?";
}

static void prop_diff(struct cpumodel_compare *out, const struct cpumodel_props *a,
		      const struct cpumodel_props *b)
{
	struct out_buf o = {.buf = out->prop_diffs, .len = sizeof(out->prop_diffs)};
	char s[160];
#define DIFF_U(field, label)                                                                       \
	if (a->field != b->field) {                                                                \
		snprintf(s, sizeof(s), "%s%s 0x%x != 0x%x", o.used ? "; " : "", label,             \
			 (unsigned)a->field, (unsigned)b->field);                                  \
		put(&o, s);                                                                        \
	}
	if (a->vendor != b->vendor) {
		snprintf(s, sizeof(s), "vendor %s != %s", cpu_vendor_string(a->vendor),
			 cpu_vendor_string(b->vendor));
		put(&o, s);
	}
	DIFF_U(family, "family")
	DIFF_U(model, "model")
	DIFF_U(stepping, "stepping")
	DIFF_U(level, "level")
	DIFF_U(xlevel, "xlevel")
	DIFF_U(phys_bits, "phys-bits")
#undef DIFF_U
	if (strcmp(a->model_id, b->model_id)) {
		snprintf(s, sizeof(s), "%smodel-id \"%s\" != \"%s\"", o.used ? "; " : "",
			 a->model_id, b->model_id);
		put(&o, s);
	}
	out->props_differ = o.used > 0;
}

void cpumodel_compare_sets(const struct cpufeat_set *a, const struct cpumodel_props *pa,
			   const struct cpufeat_set *b, const struct cpumodel_props *pb,
			   struct cpumodel_compare *out)
{
	memset(out, 0, sizeof(*out));
	out->only_a = *a;
	cpufeat_set_andnot(&out->only_a, b);
	out->only_b = *b;
	cpufeat_set_andnot(&out->only_b, a);
	bool ea = !cpufeat_set_count(&out->only_a), eb = !cpufeat_set_count(&out->only_b);
	out->relation = ea && eb ? REL_IDENTICAL
			: ea	 ? REL_SUBSET
			: eb	 ? REL_SUPERSET
				 : REL_INCOMPATIBLE;
	if (pa && pb)
		prop_diff(out, pa, pb);
}

/* ---- baseline ---- */

struct rank {
	bool vendor_match;
	unsigned nfeatures, position, version;
};

static bool better(const struct rank *a, const struct rank *b)
{
	if (a->vendor_match != b->vendor_match)
		return a->vendor_match;
	if (a->nfeatures != b->nfeatures)
		return a->nfeatures > b->nfeatures;
	if (a->position != b->position)
		return a->position > b->position;
	return a->version > b->version;
}

static bool runs_everywhere(const struct cpumodel_version *v, struct host_cpu *const *hosts,
			    unsigned nhosts)
{
	struct cpufeat_set need;
	struct cpumodel_check c;
	cpumodel_version_required(v, &need);
	for (unsigned h = 0; h < nhosts; h++) {
		cpumodel_check_host(&v->props, &need, hosts[h], &c);
		if (!c.runnable)
			return false;
	}
	return true;
}

/* Features a baseline never adds by itself: bits no guest is given from a
 * host (host-only, computed, guest-OS controlled), paravirtual ones (models
 * carry their own set), invtsc (ties a guest to its host), and what the VMM
 * provides on every host (the host rule's PROVIDE rows): those say nothing
 * about the fleet, so whether a guest has them is the model's choice. */
static void never_extra(struct cpufeat_set *s)
{
	cpufeat_set_with_flags(s, CPUFEAT_NOKVM | CPUFEAT_COMPUTED | CPUFEAT_DYNAMIC | CPUFEAT_PV |
				      CPUFEAT_NOMIGRATE);
	for (size_t i = 0; i < host_rule_count(); i++) {
		const struct host_rule *r = host_rule_at(i);
		const struct cpufeat *f = cpufeat_find(r->feature);
		if (f && r->kind == HOST_RULE_PROVIDE)
			cpufeat_set_add(s, f);
	}
}

/* Extras whose XSAVE state the model's vendor lays out elsewhere than some
 * host does (or cannot lay out at all) would break the guest's XSAVE area:
 * moved from `extra` to `withheld`. */
static void withhold_bad_layouts(const struct cpumodel_version *best, struct host_cpu *const *hosts,
				 unsigned nhosts, struct cpumodel_baseline *out)
{
	size_t i = 0;
	const struct cpufeat *f;
	struct cpufeat_set extras = out->extra;
	while ((f = cpufeat_set_next(&extras, &i))) {
		struct cpufeat_set one = {0};
		uint64_t mask;
		char msg[8];
		cpufeat_set_add(&one, cpufeat_find("xsave"));
		cpufeat_set_add(&one, f);
		bool bad = xsave_components(best->props.vendor, &one, &mask, NULL) < 0;
		for (unsigned h = 0; h < nhosts && !bad; h++)
			bad = xsave_host_mismatch(best->props.vendor, mask, hosts[h], msg,
						  sizeof(msg)) > 0;
		if (bad) {
			cpufeat_set_del(&out->extra, f);
			cpufeat_set_add(&out->withheld, f);
		}
	}
}

static bool spec_runs_everywhere(const struct cpumodel_db *db, const char *spec,
				 struct host_cpu *const *hosts, unsigned nhosts)
{
	struct guest_cpu *g;
	struct vmm_error err = {0};
	bool ok = true;
	for (unsigned h = 0; h < nhosts && ok; h++) {
		ok = guest_cpu_resolve_spec(db, spec, hosts[h], &g, &err) == 0;
		if (ok)
			guest_cpu_free(g);
	}
	return ok;
}

static int write_spec(struct cpumodel_baseline *out)
{
	struct out_buf o = {.buf = out->spec, .len = sizeof(out->spec)};
	put(&o, out->best->name);
	size_t i = 0;
	const struct cpufeat *f;
	while ((f = cpufeat_set_next(&out->extra, &i))) {
		put(&o, ",+");
		put(&o, f->name);
	}
	return o.full ? -E2BIG : 0;
}

int cpumodel_baseline(const struct cpumodel_db *db, struct host_cpu *const *hosts, unsigned nhosts,
		      struct cpumodel_baseline *out, struct vmm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!nhosts)
		return vmm_error_set(err, -EINVAL, "baseline: no hosts given");
	cpufeat_set_all(&out->common);
	bool same_vendor = true;
	for (unsigned h = 0; h < nhosts; h++) {
		cpufeat_set_and(&out->common, &hosts[h]->usable);
		same_vendor = same_vendor && strcmp(hosts[h]->vendor, hosts[0]->vendor) == 0;
	}
	struct rank best_rank = {0};
	for (unsigned i = 0; i < db->nmodels; i++) {
		const struct cpumodel *m = &db->models[i];
		for (unsigned vi = 0; vi < m->nversions; vi++) {
			const struct cpumodel_version *v = &m->versions[vi];
			if (!runs_everywhere(v, hosts, nhosts))
				continue;
			out->candidates++;
			struct rank r = {
			    .vendor_match =
				same_vendor &&
				strcmp(cpu_vendor_string(v->props.vendor), hosts[0]->vendor) == 0,
			    .nfeatures = cpufeat_set_count(&v->features),
			    .position = i,
			    .version = v->version,
			};
			if (!out->best || better(&r, &best_rank)) {
				out->best = v;
				out->model = m;
				best_rank = r;
			}
		}
	}
	if (!out->best)
		return 0;
	/* The extras: what every host can use and the model lacks. Each step
	 * downgrades (withholds a feature) instead of failing: real hosts report
	 * combinations no model has. */
	struct cpufeat_set skip, all;
	never_extra(&skip);
	out->extra = out->common;
	cpufeat_set_andnot(&out->extra, &out->best->features);
	cpufeat_set_andnot(&out->extra, &skip);
	withhold_bad_layouts(out->best, hosts, nhosts, out);
	all = out->best->features;
	cpufeat_set_or(&all, &out->extra);
	cpufeat_set_downgrade(&all, &out->withheld);
	cpufeat_set_and(&out->extra, &all);
	if (write_spec(out) < 0)
		return vmm_error_set(err, -E2BIG, "baseline spec longer than %d characters",
				     CPUMODEL_SPEC_MAX - 1);
	/* The answer must run on every host as written; if the extras somehow
	 * do not, the model alone does (it was chosen for that). */
	if (!spec_runs_everywhere(db, out->spec, hosts, nhosts)) {
		cpufeat_set_or(&out->withheld, &out->extra);
		memset(&out->extra, 0, sizeof(out->extra));
		write_spec(out);
	}
	/* the canonical form */
	struct guest_cpu *g;
	int rc = guest_cpu_resolve_spec(db, out->spec, NULL, &g, err);
	if (rc < 0)
		return vmm_error_prefix(err, "baseline");
	snprintf(out->spec, sizeof(out->spec), "%s", guest_cpu_spec(g));
	guest_cpu_free(g);
	return 0;
}

/* ---- matrix ---- */

void cpumodel_matrix_free(struct cpumodel_matrix *m)
{
	free(m->rows);
	free(m->row_models);
	free(m->cells);
	memset(m, 0, sizeof(*m));
}

int cpumodel_matrix_build(const struct cpumodel_db *db, struct host_cpu *const *hosts,
			  unsigned nhosts, bool newest_only, struct cpumodel_matrix *out,
			  struct vmm_error *err)
{
	memset(out, 0, sizeof(*out));
	unsigned n = 0;
	for (unsigned i = 0; i < db->nmodels; i++)
		n += newest_only ? 1 : db->models[i].nversions;
	out->rows = calloc(n ? n : 1, sizeof(*out->rows));
	out->row_models = calloc(n ? n : 1, sizeof(*out->row_models));
	out->cells = calloc((size_t)(n ? n : 1) * (nhosts ? nhosts : 1), sizeof(*out->cells));
	if (!out->rows || !out->row_models || !out->cells) {
		cpumodel_matrix_free(out);
		return vmm_error_set(err, -ENOMEM, "out of memory");
	}
	out->ncols = nhosts;
	for (unsigned i = 0; i < db->nmodels; i++) {
		const struct cpumodel *m = &db->models[i];
		for (unsigned v = newest_only ? m->nversions - 1 : 0; v < m->nversions; v++) {
			out->row_models[out->nrows] = m;
			out->rows[out->nrows++] = &m->versions[v];
		}
	}
	for (unsigned r = 0; r < out->nrows; r++) {
		struct cpufeat_set need;
		cpumodel_version_required(out->rows[r], &need);
		for (unsigned c = 0; c < nhosts; c++) {
			struct cpumodel_matrix_cell *cell = &out->cells[(size_t)r * nhosts + c];
			cpumodel_check_host(&out->rows[r]->props, &need, hosts[c], &cell->check);
			cell->runnable = cell->check.runnable;
		}
	}
	return 0;
}

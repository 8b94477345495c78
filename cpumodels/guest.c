/*
 * cpumodels/guest.c: a user's model spec ("NAME[-vN][,+feat,-feat...]") plus
 * a host -> a resolved guest_cpu. The `host` pseudo-model passes the host's
 * features through (not migratable, like QEMU's -cpu host).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpumodels/engine.h"

#define MAX_ADJUST 512
#define HOST_MODEL "host"

const char *guest_cpu_name(const struct guest_cpu *g)
{
	return g->name;
}

const char *guest_cpu_spec(const struct guest_cpu *g)
{
	return g->spec;
}

void guest_cpu_free(struct guest_cpu *g)
{
	free(g);
}

uint32_t guest_cpu_apic_id(const struct guest_cpu *g, unsigned ncpus, unsigned vcpu_index)
{
	/* One socket, one thread per core, cores numbered from 0: the core ID
	 * field starts at bit 0, so the APIC ID is the vCPU index. */
	(void)g;
	(void)ncpus;
	return vcpu_index;
}

void guest_cpu_required(const struct guest_cpu *g, struct cpufeat_set *out)
{
	struct cpufeat_set skip;
	*out = g->features;
	cpufeat_set_with_flags(&skip, CPUFEAT_COMPUTED | CPUFEAT_DYNAMIC);
	cpufeat_set_andnot(out, &skip);
}

void cpumodel_version_required(const struct cpumodel_version *v, struct cpufeat_set *out)
{
	struct cpufeat_set skip;
	*out = v->features;
	cpufeat_set_with_flags(&skip, CPUFEAT_COMPUTED | CPUFEAT_DYNAMIC);
	cpufeat_set_andnot(out, &skip);
}

/* The `host` pseudo-model: identity and features of the host itself. */
static int resolve_host_model(const struct host_cpu *host, struct guest_cpu *g,
			      struct vmm_error *err)
{
	if (!host)
		return vmm_error_set(err, -EINVAL, "cpu model host: needs a host to copy");
	struct cpumodel_props *p = &g->props;
	uint32_t sig = host->signature;
	p->vendor =
	    (strcmp(host->vendor, "AuthenticAMD") == 0 || strcmp(host->vendor, "HygonGenuine") == 0)
		? VENDOR_AMD
		: VENDOR_INTEL;
	p->family = (sig >> 8 & 0xf) + ((sig >> 8 & 0xf) == 0xf ? (sig >> 20 & 0xff) : 0);
	p->model = (sig >> 4 & 0xf) | (sig >> 12 & 0xf0);
	p->stepping = sig & 0xf;
	if (!p->family)
		p->family = 6;
	const char *b = host->brand;
	while (*b == ' ')
		b++;
	if (!*b)
		b = "vmm host CPU";
	size_t n = strnlen(b, sizeof(p->model_id) - 1);
	memcpy(p->model_id, b, n);
	p->model_id[n] = '\0';
	p->level = 0xd;
	p->xlevel = 0x80000008;
	p->phys_bits = host->phys_bits >= 32 && host->phys_bits <= 52 ? host->phys_bits : 39;
	struct cpufeat_set skip;
	g->features = host->usable;
	cpufeat_set_with_flags(&skip, CPUFEAT_NOKVM | CPUFEAT_COMPUTED | CPUFEAT_DYNAMIC);
	cpufeat_set_andnot(&g->features, &skip);
	g->migratable = false;
	snprintf(g->name, sizeof(g->name), HOST_MODEL);
	return 0;
}

struct adjust {
	const struct cpufeat *f;
	bool on;
};

static int parse_adjust(const char *tok, struct adjust *a, struct vmm_error *err)
{
	char name[64];
	bool on;
	const char *eq = strchr(tok, '=');
	if (tok[0] == '+' || tok[0] == '-') {
		on = tok[0] == '+';
		snprintf(name, sizeof(name), "%s", tok + 1);
	} else if (eq && (strcmp(eq, "=on") == 0 || strcmp(eq, "=off") == 0)) {
		on = strcmp(eq, "=on") == 0;
		snprintf(name, sizeof(name), "%.*s", (int)(eq - tok) < 63 ? (int)(eq - tok) : 63,
			 tok);
	} else {
		return vmm_error_set(err, -EINVAL,
				     "'%s': expected +feature, -feature, feature=on or feature=off",
				     tok);
	}
	const struct cpufeat *f = cpufeat_find(name);
	if (!f)
		return vmm_error_set(err, -EINVAL, "unknown feature '%s'", name);
	if (f->flags & (CPUFEAT_COMPUTED | CPUFEAT_DYNAMIC))
		return vmm_error_set(err, -EINVAL,
				     "feature '%s' is set by the engine or the guest OS", f->name);
	a->f = f;
	a->on = on;
	return 0;
}

static int cmp_adjust(const void *x, const void *y)
{
	const struct adjust *a = x, *b = y;
	return strcmp(a->f->name, b->f->name);
}

/* Applies the adjustments; writes the canonical spec (only effective changes,
 * sorted by feature name). */
static int apply_adjustments(struct guest_cpu *g, const struct cpufeat_set *base,
			     struct adjust *adj, unsigned n, struct vmm_error *err)
{
	for (unsigned i = 0; i < n; i++) {
		if (adj[i].on)
			cpufeat_set_add(&g->features, adj[i].f);
		else
			cpufeat_set_del(&g->features, adj[i].f);
	}
	/* keep the last word on each feature, drop no-ops, sort */
	unsigned m = 0;
	for (unsigned i = 0; i < n; i++) {
		bool later = false;
		for (unsigned j = i + 1; j < n && !later; j++)
			later = adj[j].f == adj[i].f;
		if (!later && cpufeat_set_has(base, adj[i].f) != adj[i].on)
			adj[m++] = adj[i];
	}
	qsort(adj, m, sizeof(*adj), cmp_adjust);
	size_t used = strlen(g->spec);
	for (unsigned i = 0; i < m; i++) {
		int w = snprintf(g->spec + used, sizeof(g->spec) - used, ",%c%s",
				 adj[i].on ? '+' : '-', adj[i].f->name);
		if (w < 0 || (size_t)w >= sizeof(g->spec) - used)
			return vmm_error_set(err, -EINVAL, "spec longer than %d characters",
					     CPUMODEL_SPEC_MAX - 1);
		used += (size_t)w;
	}
	return 0;
}

static int check_host(const struct guest_cpu *g, const struct host_cpu *host, struct vmm_error *err)
{
	struct cpufeat_set need;
	struct cpumodel_check c;
	char msg[VMM_ERROR_MAX];
	guest_cpu_required(g, &need);
	cpumodel_check_host(&g->props, &need, host, &c);
	if (c.runnable)
		return 0;
	cpumodel_check_format(&c, msg, sizeof(msg) - 160);
	return vmm_error_set(err, -ENOTSUP, "cpu model %s: %s (host %s)", g->name, msg,
			     host_cpu_name(host));
}

int guest_cpu_resolve_spec(const struct cpumodel_db *db, const char *spec,
			   const struct host_cpu *host, struct guest_cpu **out,
			   struct vmm_error *err)
{
	*out = NULL;
	if (!spec || !spec[0])
		return vmm_error_set(err, -EINVAL, "empty cpu model spec");
	if (strlen(spec) >= CPUMODEL_SPEC_MAX)
		return vmm_error_set(err, -EINVAL, "cpu model spec longer than %d characters",
				     CPUMODEL_SPEC_MAX - 1);
	char buf[CPUMODEL_SPEC_MAX];
	snprintf(buf, sizeof(buf), "%s", spec);
	char *save = NULL, *name = strtok_r(buf, ",", &save);
	if (!name || spec[0] == ',')
		return vmm_error_set(err, -EINVAL, "cpu model spec '%s': no model name", spec);
	struct guest_cpu *g = calloc(1, sizeof(*g));
	struct adjust *adj = calloc(MAX_ADJUST, sizeof(*adj));
	int rc = 0;
	unsigned nadj = 0;
	if (!g || !adj) {
		rc = vmm_error_set(err, -ENOMEM, "out of memory");
		goto out_free;
	}
	for (char *tok = strtok_r(NULL, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (nadj >= MAX_ADJUST) {
			rc = vmm_error_set(err, -EINVAL, "more than %d feature adjustments",
					   MAX_ADJUST);
			goto out_free;
		}
		if ((rc = parse_adjust(tok, &adj[nadj++], err)) < 0) {
			vmm_error_prefix(err, "cpu model spec");
			goto out_free;
		}
	}
	if (strcmp(name, HOST_MODEL) == 0) {
		if ((rc = resolve_host_model(host, g, err)) < 0)
			goto out_free;
	} else {
		const struct cpumodel *m;
		const struct cpumodel_version *v = cpumodel_db_lookup(db, name, &m);
		if (!v) {
			if (m)
				rc = vmm_error_set(err, -ENOENT,
						   "cpu model %s: no such version (%s has v1..v%u)",
						   name, m->name, m->nversions);
			else
				rc = vmm_error_set(
				    err, -ENOENT, "unknown cpu model %s (see `vmm cpu-model list`)",
				    name);
			goto out_free;
		}
		g->version = v;
		g->props = v->props;
		g->features = v->features;
		g->migratable = true;
		snprintf(g->name, sizeof(g->name), "%s", v->name);
	}
	snprintf(g->spec, sizeof(g->spec), "%s", g->name);
	struct cpufeat_set base = g->features;
	if ((rc = apply_adjustments(g, &base, adj, nadj, err)) < 0)
		goto out_free;
	if ((rc = cpufeat_set_check_deps(&g->features, err)) < 0) {
		vmm_error_prefix(err, "cpu model %s", g->spec);
		goto out_free;
	}
	uint64_t xcr0;
	if ((rc = xsave_components(g->props.vendor, &g->features, &xcr0, err)) < 0) {
		vmm_error_prefix(err, "cpu model %s", g->spec);
		goto out_free;
	}
	if (host && (rc = check_host(g, host, err)) < 0)
		goto out_free;
	*out = g;
	g = NULL;
out_free:
	free(adj);
	free(g);
	return rc;
}

int guest_cpu_resolve(const struct cpumodel_db *db, const char *spec, const struct host_cpu *host,
		      struct guest_cpu **out, struct vmm_error *err)
{
	return guest_cpu_resolve_spec(db, spec, host, out, err);
}

/*
 * vmm/cpu_model/models.c: `vmm cpu-model list|check|show|features|expand`:
 * questions about models against one host.
 */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/cpu_model/cli.h"

static void host_line(struct cpumodel_cli *c)
{
	if (!c->host)
		fprintf(c->out, "host: none (--no-host-check)\n");
	else
		fprintf(c->out, "host: %s (%s%s%s)\n", host_cpu_name(c->host), c->host->vendor,
			c->host->brand[0] ? ", " : "", c->host->brand);
}

static struct json_object *json_host(const struct host_cpu *h)
{
	struct json_object *o = json_object_new_object();
	if (!o || !h)
		return o;
	json_object_object_add(o, "name", json_object_new_string(h->name));
	json_object_object_add(o, "vendor", json_object_new_string(h->vendor));
	json_object_object_add(o, "brand", json_object_new_string(h->brand));
	json_object_object_add(o, "kvm", json_object_new_boolean(h->is_kvm));
	json_object_object_add(o, "profile", json_object_new_boolean(h->is_profile));
	json_object_object_add(o, "phys_bits", json_object_new_int((int)h->phys_bits));
	return o;
}

static void version_check(const struct cpumodel_version *v, const struct host_cpu *h,
			  struct cpumodel_check *chk)
{
	struct cpufeat_set need;
	cpumodel_version_required(v, &need);
	cpumodel_check_host(&v->props, &need, h, chk);
}

static void aliases_text(const struct cpumodel *m, const struct cpumodel_version *v, char *buf,
			 size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	bool newest = v == cpumodel_newest(m);
	for (unsigned a = 0; newest && a <= m->naliases; a++) {
		const char *name = a == 0 ? m->name : m->aliases[a - 1];
		used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s",
					 used ? " " : "", name);
	}
	for (unsigned a = 0; a < v->naliases; a++)
		used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s",
					 used ? " " : "", v->aliases[a]);
}

int cli_list(struct cpumodel_cli *c)
{
	const struct cpumodel_db *db = c->db;
	struct json_object *root = NULL, *arr = NULL;
	if (c->json) {
		root = json_object_new_object();
		arr = json_object_new_array();
		json_object_object_add(root, "host", json_host(c->host));
		json_object_object_add(root, "models", arr);
	} else {
		host_line(c);
		fprintf(c->out, "%-30s %-8s %-7s %s\n", "VERSION", "RUNNABLE", "MISSING",
			"ALIASES (a model's name and its aliases mean its newest version)");
	}
	for (unsigned i = 0; i < db->nmodels; i++) {
		const struct cpumodel *m = &db->models[i];
		struct json_object *mo = NULL, *va = NULL;
		if (c->json) {
			mo = json_object_new_object();
			va = json_object_new_array();
			json_object_object_add(mo, "name", json_object_new_string(m->name));
			struct json_object *al = json_object_new_array();
			for (unsigned a = 0; a < m->naliases; a++)
				json_object_array_add(al, json_object_new_string(m->aliases[a]));
			json_object_object_add(mo, "aliases", al);
			json_object_object_add(mo, "newest",
					       json_object_new_string(cpumodel_newest(m)->name));
			json_object_object_add(mo, "versions", va);
			json_object_array_add(arr, mo);
		}
		for (unsigned vi = 0; vi < m->nversions; vi++) {
			const struct cpumodel_version *v = &m->versions[vi];
			struct cpumodel_check chk = {0};
			if (c->host)
				version_check(v, c->host, &chk);
			if (c->json) {
				struct json_object *vo = json_object_new_object();
				json_object_object_add(vo, "name", json_object_new_string(v->name));
				json_object_object_add(vo, "version",
						       json_object_new_int((int)v->version));
				struct json_object *al = json_object_new_array();
				for (unsigned a = 0; a < v->naliases; a++)
					json_object_array_add(
					    al, json_object_new_string(v->aliases[a]));
				json_object_object_add(vo, "aliases", al);
				json_object_object_add(vo, "note", json_object_new_string(v->note));
				if (c->host) {
					json_object_object_add(
					    vo, "runnable", json_object_new_boolean(chk.runnable));
					json_object_object_add(
					    vo, "missing", cli_json_features(&chk.missing, false));
				}
				json_object_array_add(va, vo);
				continue;
			}
			char al[512], miss[16];
			aliases_text(m, v, al, sizeof(al));
			snprintf(miss, sizeof(miss), "%u", cpufeat_set_count(&chk.missing));
			fprintf(c->out, "%-30s %-8s %-7s %s\n", v->name,
				!c->host       ? "?"
				: chk.runnable ? "yes"
					       : "no",
				!c->host ? "-" : miss, al);
		}
	}
	if (c->json)
		return cli_print_json(c, root);
	fprintf(c->out, "%-30s %-8s %-7s %s\n", "host", "-", "-",
		"pseudo-model: this host's own CPU (not migratable)");
	return 0;
}

static int resolve(struct cpumodel_cli *c, const char *spec, struct guest_cpu **g,
		   struct vmm_error *err)
{
	return guest_cpu_resolve_spec(c->db, spec, NULL, g, err);
}

/* Versions with exactly the features of g that run on the host: for a model
 * refused only for its XSAVE layout, the same model in this host's layout. */
static struct json_object *same_features_here(struct cpumodel_cli *c, const struct guest_cpu *g,
					      char *text, size_t len)
{
	struct json_object *a = json_object_new_array();
	struct cpufeat_set need;
	size_t used = 0;
	guest_cpu_required(g, &need);
	text[0] = '\0';
	for (unsigned i = 0; i < c->db->nmodels; i++)
		for (unsigned vi = 0; vi < c->db->models[i].nversions; vi++) {
			const struct cpumodel_version *v = &c->db->models[i].versions[vi];
			struct cpufeat_set vneed;
			struct cpumodel_check chk;
			cpumodel_version_required(v, &vneed);
			if (v == g->version || !cpufeat_set_equal(&vneed, &need))
				continue;
			version_check(v, c->host, &chk);
			if (!chk.runnable)
				continue;
			json_object_array_add(a, json_object_new_string(v->name));
			used += (size_t)snprintf(text + used, used < len ? len - used : 0, "%s%s",
						 used ? ", " : "", v->name);
		}
	return a;
}

int cli_check(struct cpumodel_cli *c)
{
	struct vmm_error err = {0};
	struct guest_cpu *g;
	if (!c->host) {
		fprintf(stderr, "vmm cpu-model: check needs a host (drop --no-host-check)\n");
		return 2;
	}
	if (resolve(c, c->pos[0], &g, &err) < 0)
		return cli_error(&err);
	struct cpufeat_set need;
	struct cpumodel_check chk;
	guest_cpu_required(g, &need);
	cpumodel_check_host(&g->props, &need, c->host, &chk);
	int rc = chk.runnable ? 0 : 1;
	char alt[512] = "";
	struct json_object *alts =
	    chk.xsave_bad ? same_features_here(c, g, alt, sizeof(alt)) : NULL;
	if (c->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "model", json_object_new_string(guest_cpu_name(g)));
		json_object_object_add(o, "spec", json_object_new_string(guest_cpu_spec(g)));
		json_object_object_add(o, "host", json_host(c->host));
		json_object_object_add(o, "runnable", json_object_new_boolean(chk.runnable));
		json_object_object_add(o, "missing", cli_json_features(&chk.missing, false));
		json_object_object_add(o, "missing_described",
				       cli_json_features(&chk.missing, true));
		json_object_object_add(o, "phys_bits_short",
				       json_object_new_boolean(chk.phys_bits_short));
		json_object_object_add(o, "xsave_layout_mismatch",
				       json_object_new_string(chk.xsave_msg));
		json_object_object_add(o, "assumed", cli_json_features(&chk.assumed, false));
		json_object_object_add(o, "same_features_runnable_here",
				       alts ? alts : json_object_new_array());
		guest_cpu_free(g);
		return cli_print_json(c, o) ? 2 : rc;
	}
	host_line(c);
	fprintf(c->out, "cpu model %s: %s\n", guest_cpu_spec(g),
		chk.runnable ? "runnable" : "NOT runnable");
	size_t i = 0;
	const struct cpufeat *f;
	if (!chk.runnable && cpufeat_set_count(&chk.missing))
		fprintf(c->out, "host lacks %u features:\n", cpufeat_set_count(&chk.missing));
	while ((f = cpufeat_set_next(&chk.missing, &i))) {
		char d[96];
		cpufeat_describe(f, d, sizeof(d));
		fprintf(c->out, "  %s\n", d);
	}
	if (chk.phys_bits_short)
		fprintf(c->out, "needs %u physical address bits, host has %u\n", chk.need_phys_bits,
			chk.host_phys_bits);
	if (chk.xsave_bad)
		fprintf(c->out, "%s\n", chk.xsave_msg);
	if (alt[0])
		fprintf(c->out, "the same features in this host's XSAVE layout: %s\n", alt);
	json_object_put(alts);
	i = 0;
	if (cpufeat_set_count(&chk.assumed))
		fprintf(c->out, "assumed present (the host profile does not record them):\n");
	while ((f = cpufeat_set_next(&chk.assumed, &i))) {
		char d[96];
		cpufeat_describe(f, d, sizeof(d));
		fprintf(c->out, "  %s\n", d);
	}
	guest_cpu_free(g);
	return rc;
}

static void print_delta(FILE *out, const char *label, const struct cpufeat_set *s)
{
	char buf[2048];
	if (!cpufeat_set_count(s))
		return;
	cpufeat_set_format(s, buf, sizeof(buf));
	fprintf(out, "%-10s %s\n", label, buf);
}

int cli_show(struct cpumodel_cli *c)
{
	const struct cpumodel *m;
	const struct cpumodel_version *v = cpumodel_db_lookup(c->db, c->pos[0], &m);
	if (!v) {
		fprintf(stderr, "vmm cpu-model: unknown model or version '%s'\n", c->pos[0]);
		return 2;
	}
	const struct cpumodel_props *p = &v->props;
	char digest[24];
	snprintf(digest, sizeof(digest), "%016" PRIx64, v->digest);
	if (c->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(v->name));
		json_object_object_add(o, "model", json_object_new_string(m->name));
		json_object_object_add(o, "version", json_object_new_int((int)v->version));
		json_object_object_add(o, "vendor",
				       json_object_new_string(cpu_vendor_string(p->vendor)));
		json_object_object_add(o, "family", json_object_new_int((int)p->family));
		json_object_object_add(o, "model_number", json_object_new_int((int)p->model));
		json_object_object_add(o, "stepping", json_object_new_int((int)p->stepping));
		json_object_object_add(o, "model_id", json_object_new_string(p->model_id));
		json_object_object_add(o, "level", json_object_new_int64(p->level));
		json_object_object_add(o, "xlevel", json_object_new_int64(p->xlevel));
		json_object_object_add(o, "phys_bits", json_object_new_int((int)p->phys_bits));
		json_object_object_add(o, "features", cli_json_features(&v->features, false));
		json_object_object_add(o, "added", cli_json_features(&v->added, false));
		json_object_object_add(o, "removed", cli_json_features(&v->removed, false));
		json_object_object_add(o, "note", json_object_new_string(v->note));
		json_object_object_add(o, "digest", json_object_new_string(digest));
		json_object_object_add(o, "defined_at", json_object_new_string(v->file));
		json_object_object_add(o, "line", json_object_new_int((int)v->line));
		return cli_print_json(c, o);
	}
	char feats[4096];
	cpufeat_set_format(&v->features, feats, sizeof(feats));
	fprintf(c->out,
		"%s (model %s, version %u of %u, %s:%u)\n"
		"vendor     %s\nfamily     %u\nmodel      %u\nstepping   %u\n"
		"model-id   %s\nlevel      0x%x (at least)\nxlevel     0x%x (at least)\n"
		"phys-bits  %u\ndigest     %s\n",
		v->name, m->name, v->version, m->nversions, v->file, v->line,
		cpu_vendor_string(p->vendor), p->family, p->model, p->stepping, p->model_id,
		p->level, p->xlevel, p->phys_bits, digest);
	if (v->note[0])
		fprintf(c->out, "note       %s\n", v->note);
	print_delta(c->out, "added", &v->added);
	print_delta(c->out, "removed", &v->removed);
	fprintf(c->out, "features   (%u) %s\n", cpufeat_set_count(&v->features), feats);
	return 0;
}

static void flags_text(unsigned fl, char *buf, size_t len)
{
	static const struct {
		unsigned flag;
		const char *name;
	} names[] = {{CPUFEAT_COMPUTED, "computed"},   {CPUFEAT_DYNAMIC, "guest-os"},
		     {CPUFEAT_NOKVM, "host-only"},     {CPUFEAT_KVM_EMU, "kvm-any-cpu"},
		     {CPUFEAT_PV, "paravirt"},	       {CPUFEAT_PV_DEFAULT, "default"},
		     {CPUFEAT_NOMIGRATE, "no-migrate"}};
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (fl & names[i].flag)
			used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s",
						 used ? "," : "", names[i].name);
}

/* "vmm-provided" / "kvm-backed": the feature's row in the host rule */
static void rule_text(const struct cpufeat *f, char *buf, size_t len)
{
	const struct host_rule *r = host_rule_for(f);
	size_t used = strlen(buf);
	if (!r || used >= len)
		return;
	snprintf(buf + used, len - used, "%s%s", used ? "," : "",
		 r->kind == HOST_RULE_PROVIDE ? "vmm-provided" : "kvm-backed");
}

int cli_features(struct cpumodel_cli *c)
{
	struct json_object *arr = c->json ? json_object_new_array() : NULL;
	if (!c->json)
		fprintf(c->out, "%-36s %-22s %-26s %s\n", "LOCATION", "NAME", "ALIASES", "FLAGS");
	for (size_t i = 0; i < cpufeat_count(); i++) {
		const struct cpufeat *f = cpufeat_at(i);
		char d[96], fl[96];
		cpufeat_describe(f, d, sizeof(d));
		flags_text(f->flags, fl, sizeof(fl));
		rule_text(f, fl, sizeof(fl));
		if (!c->json) {
			fprintf(c->out, "%-36s %-22s %-26s %s\n", d, f->name,
				f->aliases ? f->aliases : "", fl);
			continue;
		}
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(f->name));
		json_object_object_add(o, "aliases",
				       json_object_new_string(f->aliases ? f->aliases : ""));
		json_object_object_add(o, "leaf", json_object_new_int64(f->leaf));
		json_object_object_add(o, "subleaf", json_object_new_int64(f->subleaf));
		json_object_object_add(o, "register",
				       json_object_new_string(cpuid_reg_name(f->reg)));
		json_object_object_add(o, "bit", json_object_new_int(f->bit));
		json_object_object_add(o, "flags", json_object_new_string(fl));
		json_object_object_add(o, "description", json_object_new_string(d));
		json_object_array_add(arr, o);
	}
	return c->json ? cli_print_json(c, arr) : 0;
}

int cli_expand(struct cpumodel_cli *c)
{
	struct vmm_error err = {0};
	struct guest_cpu *g;
	struct cpuid_table *t = calloc(1, sizeof(*t));
	int rc = 2;
	if (!t)
		return 2;
	if (c->vcpu >= c->cpus) {
		fprintf(stderr, "vmm cpu-model: --vcpu %u: must be below --cpus %u\n", c->vcpu,
			c->cpus);
		goto out_free;
	}
	if (guest_cpu_resolve_spec(c->db, c->pos[0], c->host, &g, &err) < 0) {
		cli_error(&err);
		goto out_free;
	}
	if (guest_cpu_build_cpuid(g, c->cpus, c->vcpu, t, &err) < 0) {
		cli_error(&err);
		goto out_guest;
	}
	if (!c->json) {
		rc = cpuid_table_write(t, c->out) < 0 ? 2 : 0;
		goto out_guest;
	}
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	json_object_object_add(o, "model", json_object_new_string(guest_cpu_name(g)));
	json_object_object_add(o, "spec", json_object_new_string(guest_cpu_spec(g)));
	json_object_object_add(o, "cpus", json_object_new_int((int)c->cpus));
	json_object_object_add(o, "vcpu", json_object_new_int((int)c->vcpu));
	json_object_object_add(o, "apic_id",
			       json_object_new_int64(guest_cpu_apic_id(g, c->cpus, c->vcpu)));
	json_object_object_add(o, "migratable", json_object_new_boolean(g->migratable));
	json_object_object_add(o, "leaves", a);
	for (unsigned i = 0; i < t->n; i++) {
		const struct cpuid_leaf *l = &t->leaves[i];
		struct json_object *e = json_object_new_object();
		char hex[6][16];
		uint32_t v[6] = {l->leaf, l->subleaf, l->eax, l->ebx, l->ecx, l->edx};
		static const char *const keys[6] = {"leaf", "subleaf", "eax", "ebx", "ecx", "edx"};
		for (int k = 0; k < 6; k++) {
			snprintf(hex[k], sizeof(hex[k]), "0x%08" PRIx32, v[k]);
			json_object_object_add(e, keys[k], json_object_new_string(hex[k]));
		}
		json_object_object_add(e, "subleaf_significant",
				       json_object_new_boolean(l->subleaf_significant));
		json_object_array_add(a, e);
	}
	rc = cli_print_json(c, o);
out_guest:
	guest_cpu_free(g);
out_free:
	free(t);
	return rc;
}

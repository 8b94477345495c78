/*
 * vmm/cpu_model/ops.c: `vmm cpu-model compare|baseline|matrix`: questions
 * across several models or hosts.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vmm/cpu_model/cli.h"

/* One side of a comparison: a model spec or a host profile file. */
struct side {
	char label[CPUMODEL_SPEC_MAX];
	bool is_host;
	struct cpufeat_set features;
	struct cpumodel_props props;
};

static bool is_profile_path(const char *arg)
{
	struct stat st;
	return (strchr(arg, '/') || strstr(arg, ".txt") || strstr(arg, ".profile")) &&
	       stat(arg, &st) == 0 && S_ISREG(st.st_mode);
}

static int load_side(struct cpumodel_cli *c, const char *arg, struct side *s, struct vmm_error *err)
{
	memset(s, 0, sizeof(*s));
	if (is_profile_path(arg)) {
		struct host_cpu *h;
		int rc = host_cpu_from_profile(arg, NULL, &h, err);
		if (rc < 0)
			return rc;
		s->is_host = true;
		s->features = h->usable;
		/* a host is compared as a model would need it: no host-only bits */
		struct cpufeat_set skip;
		cpufeat_set_with_flags(&skip, CPUFEAT_NOKVM | CPUFEAT_COMPUTED | CPUFEAT_DYNAMIC);
		cpufeat_set_andnot(&s->features, &skip);
		snprintf(s->label, sizeof(s->label), "host %s", host_cpu_name(h));
		host_cpu_free(h);
		return 0;
	}
	struct guest_cpu *g;
	int rc = guest_cpu_resolve_spec(c->db, arg, NULL, &g, err);
	if (rc < 0)
		return rc;
	guest_cpu_required(g, &s->features);
	s->props = g->props;
	snprintf(s->label, sizeof(s->label), "%s", guest_cpu_spec(g));
	guest_cpu_free(g);
	return 0;
}

static void print_only(FILE *out, const char *who, const struct cpufeat_set *s)
{
	size_t i = 0;
	const struct cpufeat *f;
	if (!cpufeat_set_count(s))
		return;
	fprintf(out, "only in %s (%u):\n", who, cpufeat_set_count(s));
	while ((f = cpufeat_set_next(s, &i))) {
		char d[96];
		cpufeat_describe(f, d, sizeof(d));
		fprintf(out, "  %s\n", d);
	}
}

int cli_compare(struct cpumodel_cli *c)
{
	struct vmm_error err = {0};
	struct side *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	struct cpumodel_compare cmp;
	int rc = 2;
	if (!a || !b)
		goto out_free;
	if (load_side(c, c->pos[0], a, &err) < 0 || load_side(c, c->pos[1], b, &err) < 0) {
		cli_error(&err);
		goto out_free;
	}
	cpumodel_compare_sets(&a->features, a->is_host ? NULL : &a->props, &b->features,
			      b->is_host ? NULL : &b->props, &cmp);
	if (c->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "a", json_object_new_string(a->label));
		json_object_object_add(o, "b", json_object_new_string(b->label));
		json_object_object_add(
		    o, "relation", json_object_new_string(cpumodel_relation_name(cmp.relation)));
		json_object_object_add(o, "only_a", cli_json_features(&cmp.only_a, false));
		json_object_object_add(o, "only_b", cli_json_features(&cmp.only_b, false));
		json_object_object_add(o, "properties_differ",
				       json_object_new_boolean(cmp.props_differ));
		json_object_object_add(o, "property_differences",
				       json_object_new_string(cmp.prop_diffs));
		rc = cli_print_json(c, o);
		goto out_free;
	}
	static const char *const sentence[] = {
	    [REL_IDENTICAL] = "A and B have identical features",
	    [REL_SUBSET] = "A is a subset of B (a guest of A can run where B runs)",
	    [REL_SUPERSET] = "A is a superset of B (a guest of B can run where A runs)",
	    [REL_INCOMPATIBLE] = "A and B are incompatible (each has features the other lacks)",
	};
	fprintf(c->out, "A: %s\nB: %s\nrelation: %s: %s\n", a->label, b->label,
		cpumodel_relation_name(cmp.relation), sentence[cmp.relation]);
	print_only(c->out, "A", &cmp.only_a);
	print_only(c->out, "B", &cmp.only_b);
	if (cmp.props_differ)
		fprintf(c->out, "properties differ: %s\n", cmp.prop_diffs);
	rc = 0;
out_free:
	free(a);
	free(b);
	return rc;
}

int cli_baseline(struct cpumodel_cli *c)
{
	struct vmm_error err = {0};
	struct host_cpu *hosts[CLI_MAX_HOSTS];
	unsigned n;
	struct cpumodel_baseline *bl = malloc(sizeof(*bl));
	int rc = 2;
	if (!bl)
		return 2;
	if (cli_load_hosts(c, 0, hosts, &n, &err) < 0) {
		free(bl);
		return cli_error(&err);
	}
	if (cpumodel_baseline(c->db, hosts, n, bl, &err) < 0) {
		cli_error(&err);
		goto out;
	}
	rc = bl->best ? 0 : 1;
	if (c->json) {
		struct json_object *o = json_object_new_object(), *ha = json_object_new_array();
		for (unsigned i = 0; i < n; i++)
			json_object_array_add(ha, json_object_new_string(host_cpu_name(hosts[i])));
		json_object_object_add(o, "hosts", ha);
		json_object_object_add(o, "baseline",
				       bl->best ? json_object_new_string(bl->best->name) : NULL);
		json_object_object_add(o, "model",
				       bl->model ? json_object_new_string(bl->model->name) : NULL);
		json_object_object_add(o, "candidates", json_object_new_int((int)bl->candidates));
		json_object_object_add(o, "extra", cli_json_features(&bl->extra, false));
		json_object_object_add(o, "withheld", cli_json_features(&bl->withheld, false));
		json_object_object_add(o, "spec",
				       bl->best ? json_object_new_string(bl->spec) : NULL);
		if (cli_print_json(c, o))
			rc = 2;
		goto out;
	}
	fprintf(c->out, "hosts:");
	for (unsigned i = 0; i < n; i++)
		fprintf(c->out, " %s", host_cpu_name(hosts[i]));
	fprintf(c->out, "\n");
	if (!bl->best) {
		fprintf(c->out, "no model version runs on all of these hosts\n");
		goto out;
	}
	char extra[2048], withheld[2048];
	cpufeat_set_format(&bl->extra, extra, sizeof(extra));
	cpufeat_set_format(&bl->withheld, withheld, sizeof(withheld));
	fprintf(c->out,
		"baseline: %s (best of %u model versions that every host can run)\n"
		"extra features every host has: %s\n",
		bl->best->name, bl->candidates, extra[0] ? extra : "(none)");
	if (withheld[0])
		fprintf(c->out,
			"not added (the model's XSAVE layout differs from a host's, or a "
			"feature they need is missing): %s\n",
			withheld);
	fprintf(c->out, "spec: %s\n", bl->spec);
out:
	cli_free_hosts(hosts, n);
	free(bl);
	return rc;
}

static struct json_object *matrix_json(const struct cpumodel_matrix *m,
				       struct host_cpu *const *hosts)
{
	struct json_object *o = json_object_new_object(), *ha = json_object_new_array(),
			   *rows = json_object_new_array();
	for (unsigned h = 0; h < m->ncols; h++) {
		struct json_object *ho = json_object_new_object();
		json_object_object_add(ho, "name", json_object_new_string(host_cpu_name(hosts[h])));
		json_object_object_add(ho, "brand", json_object_new_string(hosts[h]->brand));
		json_object_object_add(ho, "vendor", json_object_new_string(hosts[h]->vendor));
		json_object_array_add(ha, ho);
	}
	json_object_object_add(o, "hosts", ha);
	json_object_object_add(o, "models", rows);
	for (unsigned r = 0; r < m->nrows; r++) {
		struct json_object *ro = json_object_new_object(), *cells = json_object_new_array();
		json_object_object_add(ro, "model", json_object_new_string(m->rows[r]->name));
		json_object_object_add(ro, "cells", cells);
		for (unsigned h = 0; h < m->ncols; h++) {
			const struct cpumodel_matrix_cell *cell =
			    &m->cells[(size_t)r * m->ncols + h];
			struct json_object *co = json_object_new_object();
			json_object_object_add(co, "host",
					       json_object_new_string(host_cpu_name(hosts[h])));
			json_object_object_add(co, "runnable",
					       json_object_new_boolean(cell->runnable));
			json_object_object_add(co, "missing",
					       cli_json_features(&cell->check.missing, false));
			json_object_object_add(co, "assumed",
					       cli_json_features(&cell->check.assumed, false));
			if (cell->check.phys_bits_short || cell->check.xsave_bad) {
				char why[VMM_ERROR_MAX];
				cpumodel_check_format(&cell->check, why, sizeof(why));
				json_object_object_add(co, "reason", json_object_new_string(why));
			}
			json_object_array_add(cells, co);
		}
		json_object_array_add(rows, ro);
	}
	return o;
}

static void matrix_text(struct cpumodel_cli *c, const struct cpumodel_matrix *m,
			struct host_cpu *const *hosts)
{
	FILE *out = c->out;
	fprintf(out, "hosts:\n");
	for (unsigned h = 0; h < m->ncols; h++)
		fprintf(out, "  [%2u] %s  %s\n", h + 1, host_cpu_name(hosts[h]), hosts[h]->brand);
	fprintf(out, "cells: ok = runnable, ok* = runnable if the features the profile does not "
		     "record are present,\n       -N = N features missing, x = other reason "
		     "(--verbose says which)\n\n");
	fprintf(out, "%-30s", "MODEL VERSION");
	for (unsigned h = 0; h < m->ncols; h++)
		fprintf(out, " %4u", h + 1);
	fprintf(out, "\n");
	for (unsigned r = 0; r < m->nrows; r++) {
		fprintf(out, "%-30s", m->rows[r]->name);
		for (unsigned h = 0; h < m->ncols; h++) {
			const struct cpumodel_matrix_cell *cell =
			    &m->cells[(size_t)r * m->ncols + h];
			unsigned miss = cpufeat_set_count(&cell->check.missing);
			if (cell->runnable)
				fprintf(out, " %4s",
					cpufeat_set_count(&cell->check.assumed) ? "ok*" : "ok");
			else if (miss)
				fprintf(out, " %4d", -(int)miss);
			else
				fprintf(out, " %4s", "x");
		}
		fprintf(out, "\n");
	}
	if (!c->verbose)
		return;
	fprintf(out, "\n");
	for (unsigned r = 0; r < m->nrows; r++)
		for (unsigned h = 0; h < m->ncols; h++) {
			const struct cpumodel_matrix_cell *cell =
			    &m->cells[(size_t)r * m->ncols + h];
			char why[VMM_ERROR_MAX];
			if (cell->runnable)
				continue;
			cpumodel_check_format(&cell->check, why, sizeof(why));
			fprintf(out, "%s on [%u] %s: %s\n", m->rows[r]->name, h + 1,
				host_cpu_name(hosts[h]), why);
		}
}

int cli_matrix(struct cpumodel_cli *c)
{
	struct vmm_error err = {0};
	struct host_cpu *hosts[CLI_MAX_HOSTS];
	unsigned n;
	struct cpumodel_matrix m;
	int rc = 0;
	if (cli_load_hosts(c, 0, hosts, &n, &err) < 0)
		return cli_error(&err);
	if (cpumodel_matrix_build(c->db, hosts, n, c->newest, &m, &err) < 0) {
		cli_free_hosts(hosts, n);
		return cli_error(&err);
	}
	if (c->json)
		rc = cli_print_json(c, matrix_json(&m, hosts));
	else
		matrix_text(c, &m, hosts);
	if (!rc && c->html && cli_matrix_html(&m, hosts, c->html, &err) < 0)
		rc = cli_error(&err);
	cpumodel_matrix_free(&m);
	cli_free_hosts(hosts, n);
	return rc;
}

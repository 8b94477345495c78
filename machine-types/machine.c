/* machine-types/machine.c: resolving a machine type version into properties. */
#include "machine-types/machine.h"
#include "machine-types/registry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHAIN 64

static const struct machine_alias aliases[] = {
	{"microvm", NULL}, /* target filled from the newest microvm version */
};

const struct machine_version *machine_versions(unsigned *count)
{
	*count = machine_microvm_nversions;
	return machine_microvm_versions;
}

static const char *newest_microvm(void)
{
	return machine_microvm_versions[machine_microvm_nversions - 1].name;
}

const struct machine_alias *machine_aliases(unsigned *count)
{
	static struct machine_alias resolved[sizeof(aliases) / sizeof(aliases[0])];
	for (unsigned i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		resolved[i].alias = aliases[i].alias;
		resolved[i].target = newest_microvm();
	}
	*count = sizeof(aliases) / sizeof(aliases[0]);
	return resolved;
}

const char *machine_default_name(void)
{
	return "microvm";
}

static const struct machine_version *find_version(const char *name)
{
	unsigned n;
	const struct machine_version *v = machine_versions(&n);
	for (unsigned i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

static int prop_cmp(const void *a, const void *b)
{
	const struct machine_prop *x = a, *y = b;
	int c = strcmp(x->device, y->device);
	return c ? c : strcmp(x->prop, y->prop);
}

static int set_prop(struct machine *m, const struct machine_prop *p, struct vmm_error *err)
{
	for (unsigned i = 0; i < m->nprops; i++) {
		if (strcmp(m->props[i].device, p->device) == 0 &&
		    strcmp(m->props[i].prop, p->prop) == 0) {
			m->props[i].value = p->value;
			return 0;
		}
	}
	if (m->nprops >= MACHINE_MAX_PROPS)
		return vmm_error_set(err, -E2BIG, "machine %s: more than %d properties", m->name,
				     MACHINE_MAX_PROPS);
	m->props[m->nprops++] = *p;
	return 0;
}

int machine_resolve(const char *name, struct machine *out, struct vmm_error *err)
{
	unsigned na;
	const struct machine_alias *al = machine_aliases(&na);
	for (unsigned i = 0; i < na; i++)
		if (strcmp(al[i].alias, name) == 0)
			name = al[i].target;

	const struct machine_version *v = find_version(name);
	if (!v) {
		char known[512] = "";
		unsigned n;
		const struct machine_version *all = machine_versions(&n);
		for (unsigned i = 0; i < n; i++) {
			strncat(known, i ? ", " : "", sizeof(known) - strlen(known) - 1);
			strncat(known, all[i].name, sizeof(known) - strlen(known) - 1);
		}
		return vmm_error_set(err, -ENOENT, "machine type %s: unknown (known: %s, alias microvm)",
				     name, known);
	}

	/* Walk to the root, then apply changes oldest first. */
	const struct machine_version *chain[MAX_CHAIN];
	unsigned depth = 0;
	for (const struct machine_version *c = v; c; c = c->parent ? find_version(c->parent) : NULL) {
		if (depth == MAX_CHAIN)
			return vmm_error_set(err, -ELOOP, "machine type %s: parent chain too long", name);
		chain[depth++] = c;
	}

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", v->name);
	while (depth--) {
		for (const struct machine_prop *p = chain[depth]->changes; p && p->device; p++) {
			int r = set_prop(out, p, err);
			if (r < 0)
				return r;
		}
	}
	qsort(out->props, out->nprops, sizeof(out->props[0]), prop_cmp);
	return 0;
}

static const struct machine_prop *lookup(const struct machine *m, const char *device,
					 const char *prop)
{
	for (unsigned i = 0; i < m->nprops; i++)
		if (strcmp(m->props[i].device, device) == 0 && strcmp(m->props[i].prop, prop) == 0)
			return &m->props[i];
	return NULL;
}

int machine_get_str(const struct machine *m, const char *device, const char *prop,
		    const char **out, struct vmm_error *err)
{
	const struct machine_prop *p = lookup(m, device, prop);
	if (!p)
		return vmm_error_set(err, -ENOENT, "machine %s: no property %s.%s", m->name, device,
				     prop);
	*out = p->value;
	return 0;
}

int machine_get_u64(const struct machine *m, const char *device, const char *prop, uint64_t *out,
		    struct vmm_error *err)
{
	const char *s;
	int r = machine_get_str(m, device, prop, &s, err);
	if (r < 0)
		return r;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		return vmm_error_set(err, -EINVAL, "machine %s: property %s.%s = \"%s\" is not a number",
				     m->name, device, prop, s);
	*out = v;
	return 0;
}

bool machine_has_device(const struct machine *m, const char *device)
{
	const struct machine_prop *p = lookup(m, device, "present");
	if (p && strcmp(p->value, "no") == 0)
		return false;
	return lookup(m, device, "type") != NULL;
}

void machine_dump(const struct machine *m, FILE *out)
{
	for (unsigned i = 0; i < m->nprops; i++)
		fprintf(out, "%s.%s = %s\n", m->props[i].device, m->props[i].prop,
			m->props[i].value);
}

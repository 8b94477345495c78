/*
 * cpumodels/names.c: what a model name stands for, for callers that pin
 * unversioned names themselves (the machine type decides which version
 * "Skylake-Server" means, so a guest's CPU never changes under the same
 * command line), and small questions about a resolved guest CPU.
 */
#include "cpumodels/engine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int cpumodel_name_info(const struct cpumodel_db *db, const char *name, struct cpumodel_name *out,
		       struct vmm_error *err)
{
	memset(out, 0, sizeof(*out));
	const struct cpumodel *m;
	const struct cpumodel_version *v = cpumodel_db_lookup(db, name, &m);
	if (!v || !m)
		return vmm_error_set(err, -ENOENT, "cpu model %s: unknown", name);
	bool model_level = strcmp(m->name, name) == 0;
	for (unsigned a = 0; a < m->naliases && !model_level; a++)
		model_level = strcmp(m->aliases[a], name) == 0;
	snprintf(out->model, sizeof(out->model), "%s", m->name);
	snprintf(out->version, sizeof(out->version), "%s", v->name);
	snprintf(out->first, sizeof(out->first), "%s", m->versions[0].name);
	out->versioned = !model_level;
	return 0;
}

unsigned guest_cpu_phys_bits(const struct guest_cpu *g)
{
	return g->props.phys_bits;
}

uint64_t guest_cpu_xcr0(const struct guest_cpu *g)
{
	uint64_t xcr0 = 0;
	struct vmm_error ignored;
	/* Resolution already checked the components, so this cannot fail here. */
	if (xsave_components(g->props.vendor, &g->features, &xcr0, &ignored) < 0)
		return 0;
	return xcr0;
}

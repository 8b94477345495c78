/*
 * vmm/cpu_model/fleet.c: `vmm cpu-model host-profile|labels`: what a fleet
 * operator and a scheduler need from each host. host-profile writes this
 * host as a guest would get it, for collecting one per host and asking
 * `baseline *.profile`; labels prints Kubernetes node labels in the shape
 * KubeVirt's node labeller uses, for the runnable model versions and the
 * usable features of this host (or of a profile).
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "config.h"
#include "vmm/cpu_model/cli.h"

#define LABEL_MODEL    "cpu-model.node.kubevirt.io/"
#define LABEL_FEATURE  "cpu-feature.node.kubevirt.io/"
#define LABEL_NAME_MAX 63 /* the name part of a Kubernetes label key */

/* Keeps [A-Za-z0-9._+~-] of s (the profile's word syntax), at most len-1. */
static void word_only(const char *s, char *out, size_t len)
{
	size_t n = 0;
	for (; *s && n + 1 < len; s++)
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+~-",
			   *s))
			out[n++] = *s;
	out[n] = '\0';
}

static void this_host_info(struct host_profile_info *info)
{
	struct utsname u;
	char name[256] = "";
	memset(info, 0, sizeof(*info));
	if (gethostname(name, sizeof(name) - 1) == 0)
		word_only(name, info->hostname, sizeof(info->hostname));
	if (uname(&u) == 0)
		word_only(u.release, info->kernel, sizeof(info->kernel));
	word_only(VMM_VERSION, info->vmm_version, sizeof(info->vmm_version));
}

static int open_kvm(struct vmm_error *err)
{
	const char *dev = getenv("VMM_KVM_DEV");
	if (!dev || !dev[0])
		dev = "/dev/kvm";
	int fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return vmm_error_set(
		    err, -errno,
		    "host-profile: cannot open %s (%s): a host profile is what this "
		    "host's KVM offers, so it needs KVM",
		    dev, strerror(errno));
	return fd;
}

/* Writes to path.tmp, then renames: a reader never sees half a profile. */
static int write_file(const char *path, const struct cpuid_table *t, const struct kvm_facts *f,
		      const char *brand, const struct host_profile_info *info,
		      struct vmm_error *err)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return vmm_error_set(err, -ENAMETOOLONG, "host-profile -o %s: path too long", path);
	FILE *out = fopen(tmp, "w");
	if (!out)
		return vmm_error_set(err, -errno, "host-profile: %s: %s", tmp, strerror(errno));
	int rc = host_profile_write(out, t, f, brand, info, err);
	if (fclose(out) != 0 && !rc)
		rc = vmm_error_set(err, -errno, "host-profile: %s: %s", tmp, strerror(errno));
	if (!rc && rename(tmp, path) != 0)
		rc = vmm_error_set(err, -errno, "host-profile: rename to %s: %s", path,
				   strerror(errno));
	if (rc)
		unlink(tmp);
	return rc;
}

int cli_host_profile(struct cpumodel_cli *c)
{
	struct vmm_error err = {0};
	struct cpuid_table *t = calloc(1, sizeof(*t));
	struct host_cpu *h = NULL;
	struct host_profile_info info;
	struct kvm_facts facts = {0};
	int rc = 2, fd;
	if (!t)
		return 2;
	if ((fd = open_kvm(&err)) < 0) {
		cli_error(&err);
		goto out_free;
	}
	int r = host_kvm_read(fd, t, &facts, &err);
	close(fd);
	/* the brand as the KVM host has it (the CPU's own when KVM gives none) */
	if (!r)
		r = host_cpu_from_kvm_table("kvm", t, &facts, NULL, &h, &err);
	if (r < 0) {
		cli_error(&err);
		goto out_free;
	}
	if (!h->brand[0])
		host_cpu_brand_here(h->brand, sizeof(h->brand));
	this_host_info(&info);
	r = c->output ? write_file(c->output, t, &facts, h->brand, &info, &err)
		      : host_profile_write(c->out, t, &facts, h->brand, &info, &err);
	rc = r < 0 ? cli_error(&err) : 0;
out_free:
	host_cpu_free(h);
	free(t);
	return rc;
}

/* A label key's name part: 1..63 characters, [A-Za-z0-9] at both ends,
 * [-_.A-Za-z0-9] between. */
static bool label_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > LABEL_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9');
		if (!alnum && ((i == 0 || i == n - 1) || !strchr("-_.", ch)))
			return false;
	}
	return true;
}

struct labels {
	struct cpumodel_cli *c;
	struct json_object *json;
};

static void label(struct labels *l, const char *prefix, const char *name)
{
	char key[128];
	if (!label_name_ok(name)) {
		fprintf(stderr, "vmm cpu-model: labels: '%s' is not a valid label name, left out\n",
			name);
		return;
	}
	snprintf(key, sizeof(key), "%s%s", prefix, name);
	if (l->json)
		json_object_object_add(l->json, key, json_object_new_string("true"));
	else
		fprintf(l->c->out, "%s=true\n", key);
}

static bool runnable(const struct cpumodel_version *v, const struct host_cpu *h)
{
	struct cpufeat_set need;
	struct cpumodel_check chk;
	cpumodel_version_required(v, &need);
	cpumodel_check_host(&v->props, &need, h, &chk);
	return chk.runnable;
}

int cli_labels(struct cpumodel_cli *c)
{
	if (!c->host) {
		fprintf(stderr, "vmm cpu-model: labels needs a host (drop --no-host-check)\n");
		return 2;
	}
	struct labels l = {.c = c, .json = c->json ? json_object_new_object() : NULL};
	if (c->json && !l.json)
		return 2;
	/* models: every runnable version by its NAME-vN and its version aliases;
	 * the model's name and aliases when the newest version (what they
	 * resolve to) runs here */
	for (unsigned i = 0; i < c->db->nmodels; i++) {
		const struct cpumodel *m = &c->db->models[i];
		for (unsigned vi = 0; vi < m->nversions; vi++) {
			const struct cpumodel_version *v = &m->versions[vi];
			if (!runnable(v, c->host))
				continue;
			label(&l, LABEL_MODEL, v->name);
			for (unsigned a = 0; a < v->naliases; a++)
				label(&l, LABEL_MODEL, v->aliases[a]);
			if (v != cpumodel_newest(m))
				continue;
			label(&l, LABEL_MODEL, m->name);
			for (unsigned a = 0; a < m->naliases; a++)
				label(&l, LABEL_MODEL, m->aliases[a]);
		}
	}
	/* features: what a guest can be given here with +feat */
	struct cpufeat_set feats = c->host->usable, skip;
	cpufeat_set_with_flags(&skip, CPUFEAT_COMPUTED | CPUFEAT_DYNAMIC | CPUFEAT_NOKVM);
	cpufeat_set_andnot(&feats, &skip);
	size_t i = 0;
	const struct cpufeat *f;
	while ((f = cpufeat_set_next(&feats, &i)))
		label(&l, LABEL_FEATURE, f->name);
	/* a name that is no valid label was reported and left out: a guest
	 * asking for it is then placed nowhere, never on a wrong host */
	return l.json ? (cli_print_json(c, l.json) ? 2 : 0) : 0;
}

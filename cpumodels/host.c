/*
 * cpumodels/host.c: what a host can give a guest.
 *
 * Three kinds of host, one rule (host_rule.c) for all of them:
 *   - this machine: KVM_GET_SUPPORTED_CPUID and its kvm facts (host_kvm.c);
 *   - a host profile written by `vmm cpu-model host-profile` on another host:
 *     exactly the same data, from a file (host_profile.c);
 *   - a raw CPUID dump (../shared/cpuid-hosts format) standing for "a KVM
 *     host on that CPU", adjusted the way KVM adjusts a real CPU's bits:
 *       - host-only bits (CPUFEAT_NOKVM: est, tm2, monitor, Key Locker, ...)
 *         are dropped: KVM never gives them to a guest;
 *       - bits every KVM reports on any CPU (CPUFEAT_KVM_EMU: the paravirtual
 *         features) are added: a dump cannot record them;
 *       - syscall is added when lm is set: Intel reports SYSCALL only to
 *         64-bit code, so dumps taken by 32-bit tools read 0 there;
 *       - a word the dump did not record although its leaf exists (0xD.1 in
 *         the Sandy/Ivy Bridge-EP dumps) is "unknown": its features count as
 *         present and every check relying on one says so (assumed);
 *       - every kvm fact counts as true (a current KVM).
 * Then, for every kind: the host rule (features the VMM provides itself),
 * and the downgrade that makes a feature whose dependency is missing
 * unusable (host->usable). With a limit (the real KVM host), a profile or
 * dump is intersected with it: what this VMM could give a guest here if the
 * CPU were that one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpumodels/engine.h"

const char *host_cpu_name(const struct host_cpu *host)
{
	return host ? host->name : "(none)";
}

void host_cpu_free(struct host_cpu *host)
{
	free(host);
}

static void read_identity(struct host_cpu *h, const struct cpuid_table *t)
{
	const struct cpuid_leaf *l0 = cpuid_table_find(t, 0, 0);
	if (l0) {
		memcpy(h->vendor, &l0->ebx, 4);
		memcpy(h->vendor + 4, &l0->edx, 4);
		memcpy(h->vendor + 8, &l0->ecx, 4);
	}
	h->vendor[12] = '\0';
	for (int i = 0; i < 12; i++)
		if (h->vendor[i] < 0x20 || h->vendor[i] > 0x7e)
			h->vendor[i] = '?';
	h->signature = cpuid_table_reg(t, 1, 0, CPUID_EAX);
	const struct cpuid_leaf *x0 = cpuid_table_find(t, 0x80000000, 0);
	uint32_t xlevel = x0 ? x0->eax : 0;
	if (xlevel >= 0x80000004) {
		for (uint32_t i = 0; i < 3; i++) {
			const struct cpuid_leaf *b = cpuid_table_find(t, 0x80000002 + i, 0);
			uint32_t r[4] = {b ? b->eax : 0, b ? b->ebx : 0, b ? b->ecx : 0,
					 b ? b->edx : 0};
			memcpy(h->brand + i * 16, r, 16);
		}
	}
	h->brand[48] = '\0';
	size_t lead = strspn(h->brand, " ");
	memmove(h->brand, h->brand + lead, sizeof(h->brand) - lead);
	for (size_t n = strlen(h->brand); n && h->brand[n - 1] == ' ';)
		h->brand[--n] = '\0';
	for (int i = 0; i < 48 && h->brand[i]; i++)
		if (h->brand[i] < 0x20 || h->brand[i] > 0x7e)
			h->brand[i] = '?';
	if (xlevel >= 0x80000008)
		h->phys_bits = cpuid_table_reg(t, 0x80000008, 0, CPUID_EAX) & 0xff;
}

/* Feature words whose leaf exists (within the max levels, leaf 7 subleaf
 * within 7.0 EAX, leaf 0xD only with xsave) but which the table lacks. */
static void unknown_words(const struct cpuid_table *t, struct cpufeat_set *out)
{
	uint32_t level = cpuid_table_reg(t, 0, 0, CPUID_EAX);
	uint32_t xlevel = cpuid_table_reg(t, 0x80000000, 0, CPUID_EAX);
	uint32_t leaf7_max = cpuid_table_reg(t, 7, 0, CPUID_EAX);
	bool xsave = cpuid_table_reg(t, 1, 0, CPUID_ECX) >> 26 & 1;
	struct cpufeat_set all;
	cpufeat_set_all(&all);
	memset(out, 0, sizeof(*out));
	for (int w = 0; w < CPUFEAT_NWORDS; w++) {
		const struct cpufeat_word *cw = &cpufeat_words[w];
		if (cw->leaf >= 0x40000000 && cw->leaf < 0x80000000)
			continue; /* paravirt leaves are never in a dump */
		bool exists = cw->leaf >= 0x80000000 ? cw->leaf <= xlevel : cw->leaf <= level;
		if (cw->leaf == 7 && cw->subleaf > leaf7_max)
			exists = false;
		if (cw->leaf == 0xd && !xsave)
			exists = false;
		if (exists && !cpuid_table_find(t, cw->leaf, cw->subleaf))
			out->w[w] = all.w[w];
	}
}

static struct host_cpu *host_new(const char *name, const struct cpuid_table *t)
{
	struct host_cpu *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->raw = *t;
	read_identity(h, t);
	cpufeat_set_from_table(t, &h->features);
	return h;
}

/* The last steps for every kind: the limit, then what is usable. */
static int host_finish(struct host_cpu *h, const struct host_cpu *limit, struct host_cpu **out)
{
	if (limit) {
		cpufeat_set_and(&h->features, &limit->features);
		cpufeat_set_and(&h->unknown, &limit->features);
		for (int f = 0; f < KVM_NFACTS; f++)
			h->facts.has[f] = h->facts.has[f] && limit->facts.has[f];
		if (limit->phys_bits && (!h->phys_bits || limit->phys_bits < h->phys_bits))
			h->phys_bits = limit->phys_bits;
		h->is_kvm = true;
		size_t n = strlen(h->name);
		if (n + 5 < sizeof(h->name))
			memcpy(h->name + n, "+kvm", 5);
	}
	h->usable = h->features;
	cpufeat_set_downgrade(&h->usable, NULL);
	*out = h;
	return 0;
}

int host_cpu_from_kvm_table(const char *name, const struct cpuid_table *t,
			    const struct kvm_facts *facts, const struct host_cpu *limit,
			    struct host_cpu **out, struct vmm_error *err)
{
	*out = NULL;
	struct host_cpu *h = host_new(name, t);
	if (!h)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	h->is_kvm = true;
	h->facts = *facts;
	host_rule_apply(&h->features, &h->facts);
	return host_finish(h, limit, out);
}

int host_cpu_from_table(const char *name, const struct cpuid_table *t, bool is_kvm,
			const struct host_cpu *limit, struct host_cpu **out, struct vmm_error *err)
{
	struct kvm_facts all;
	kvm_facts_all(&all);
	if (is_kvm)
		return host_cpu_from_kvm_table(name, t, &all, limit, out, err);
	*out = NULL;
	struct host_cpu *h = host_new(name, t);
	if (!h)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	struct cpufeat_set s;
	h->is_profile = true;
	h->facts = all;
	cpufeat_set_with_flags(&s, CPUFEAT_NOKVM);
	cpufeat_set_andnot(&h->features, &s);
	cpufeat_set_with_flags(&s, CPUFEAT_KVM_EMU);
	cpufeat_set_or(&h->features, &s);
	if (cpufeat_set_has_name(&h->features, "lm"))
		cpufeat_set_add(&h->features, cpufeat_find("syscall"));
	unknown_words(t, &h->unknown);
	cpufeat_set_with_flags(&s, CPUFEAT_NOKVM);
	cpufeat_set_andnot(&h->unknown, &s);
	cpufeat_set_or(&h->features, &h->unknown);
	host_rule_apply(&h->features, &h->facts);
	return host_finish(h, limit, out);
}

/* "dir/intel-foo.txt" -> "intel-foo" */
static void short_name(const char *path, char *out, size_t len)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	size_t n = strlen(b);
	const char *dot = strrchr(b, '.');
	if (dot && dot != b)
		n = (size_t)(dot - b);
	if (n >= len)
		n = len - 1;
	memcpy(out, b, n);
	out[n] = '\0';
}

/* Reads at most max bytes of a file; -EFBIG if it is longer. */
static int read_bounded(const char *path, char **text, size_t *len, size_t max,
			struct vmm_error *err)
{
	FILE *f = fopen(path, "rb");
	*text = NULL;
	if (!f)
		return vmm_error_set(err, -errno, "host CPU profile: %s: %s", path,
				     strerror(errno));
	char *buf = malloc(max + 1);
	size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
	int rc = 0;
	if (!buf)
		rc = vmm_error_set(err, -ENOMEM, "out of memory");
	else if (ferror(f))
		rc = vmm_error_set(err, -EIO, "host CPU profile: %s: read error", path);
	else if (n > max)
		rc = vmm_error_set(err, -EFBIG, "host CPU profile %s: larger than %zu bytes", path,
				   max);
	fclose(f);
	if (rc) {
		free(buf);
		return rc;
	}
	*text = buf;
	*len = n;
	return 0;
}

static int from_host_profile(const char *path, const char *text, size_t len,
			     const struct host_cpu *limit, struct host_cpu **out,
			     struct vmm_error *err)
{
	struct cpuid_table *t = malloc(sizeof(*t));
	struct host_profile_info info;
	struct kvm_facts facts;
	char brand[49], name[96];
	if (!t)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	int rc = host_profile_parse(path, text, len, t, &facts, brand, sizeof(brand), &info, err);
	if (!rc) {
		short_name(path, name, sizeof(name));
		rc = host_cpu_from_kvm_table(name, t, &facts, limit, out, err);
	}
	if (!rc) {
		/* the profile is KVM's view; it was read from a file */
		(*out)->is_profile = true;
		if (brand[0])
			snprintf((*out)->brand, sizeof((*out)->brand), "%s", brand);
	}
	free(t);
	return rc;
}

int host_cpu_from_profile(const char *path, const struct host_cpu *limit, struct host_cpu **out,
			  struct vmm_error *err)
{
	char *text;
	size_t len = 0;
	*out = NULL;
	/* a raw dump is a few KiB, a host profile at most HOST_PROFILE_MAX_BYTES */
	int rc = read_bounded(path, &text, &len, HOST_PROFILE_MAX_BYTES, err);
	if (rc)
		return rc;
	bool profile = host_profile_detect(text, len);
	if (profile)
		rc = from_host_profile(path, text, len, limit, out, err);
	free(text);
	if (profile)
		return rc;
	struct cpuid_table *t = malloc(sizeof(*t));
	char name[96], cpu[128];
	if (!t)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	rc = cpuid_table_read(path, t, cpu, sizeof(cpu), err);
	if (rc) {
		free(t);
		return vmm_error_prefix(err, "host CPU profile");
	}
	if (!cpuid_table_find(t, 0, 0) || !cpuid_table_find(t, 1, 0)) {
		free(t);
		return vmm_error_set(err, -EINVAL, "host CPU profile %s: no leaf 0 or leaf 1",
				     path);
	}
	short_name(path, name, sizeof(name));
	rc = host_cpu_from_table(name, t, false, limit, out, err);
	free(t);
	return rc;
}

/*
 * cpumodels/host_profile.c: host profiles, the file `vmm cpu-model
 * host-profile` writes for a fleet operator to collect from every host:
 * this host as a guest would get it (KVM_GET_SUPPORTED_CPUID as read, the
 * kvm facts the host rule consults, the XSAVE layout and identity). The
 * format (version 1) is documented in cpumodels/README.md, "Host profiles".
 *
 * A profile is untrusted input: the file is at most HOST_PROFILE_MAX_BYTES,
 * every line at most CPUID_LINE_MAX - 2 characters of printable ASCII, at
 * most CPUID_TABLE_MAX rows; every error names path:line. A cut file lacks
 * its `end` line; a mangled one fails a field's syntax, the row count, the
 * FNV-1a 64 digest in `end`, or the cross-checks of the header lines against
 * the rows.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpumodels/engine.h"

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull

static uint64_t fnv1a(uint64_t h, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= FNV_PRIME;
	}
	return h;
}

/* ---- identity derived from the rows (written, and checked on reading) ---- */

static void vendor_of(const struct cpuid_table *t, char out[13])
{
	const struct cpuid_leaf *l = cpuid_table_find(t, 0, 0);
	memset(out, 0, 13);
	if (!l)
		return;
	memcpy(out, &l->ebx, 4);
	memcpy(out + 4, &l->edx, 4);
	memcpy(out + 8, &l->ecx, 4);
}

struct signature {
	unsigned family, model, stepping;
};

static struct signature signature_of(uint32_t eax)
{
	unsigned base = eax >> 8 & 0xf;
	struct signature s = {
	    .family = base == 0xf ? base + (eax >> 20 & 0xff) : base,
	    .model = (eax >> 4 & 0xf) | ((base == 6 || base == 0xf) ? (eax >> 12 & 0xf0) : 0),
	    .stepping = eax & 0xf,
	};
	return s;
}

static unsigned phys_bits_of(const struct cpuid_table *t)
{
	return cpuid_table_reg(t, 0x80000008, 0, CPUID_EAX) & 0xff;
}

/* XSAVE components (2 and up) the rows describe: size and offset. */
struct xsave_row {
	uint32_t id, offset, size;
};
#define XSAVE_MAX_COMPONENTS 64

static unsigned xsave_rows_of(const struct cpuid_table *t, struct xsave_row *out)
{
	unsigned n = 0;
	for (unsigned i = 0; i < t->n && n < XSAVE_MAX_COMPONENTS; i++) {
		const struct cpuid_leaf *l = &t->leaves[i];
		if (l->leaf == 0xd && l->subleaf >= 2 && l->subleaf < 64 && l->eax)
			out[n++] = (struct xsave_row){l->subleaf, l->ebx, l->eax};
	}
	return n;
}

/* ---- writing ---- */

int host_profile_write(FILE *out, const struct cpuid_table *t, const struct kvm_facts *facts,
		       const char *brand, const struct host_profile_info *info,
		       struct vmm_error *err)
{
	char *text = NULL, vendor[13];
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);
	if (!m)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	vendor_of(t, vendor);
	struct signature sig = signature_of(cpuid_table_reg(t, 1, 0, CPUID_EAX));
	fprintf(
	    m,
	    "# vmm host profile: what KVM on this host offers a guest. Written by\n"
	    "# `vmm cpu-model host-profile`; give it to `vmm cpu-model baseline|matrix|compare|\n"
	    "# labels` or `--host-cpu-profile`. Format: cpumodels/README.md, \"Host profiles\".\n"
	    "%s %d\n",
	    HOST_PROFILE_MAGIC, HOST_PROFILE_VERSION);
	if (info->hostname[0])
		fprintf(m, "hostname %s\n", info->hostname);
	fprintf(m, "vendor %s\nfamily %u\nmodel %u\nstepping %u\nmodel-name %s\nphys-bits %u\n",
		vendor, sig.family, sig.model, sig.stepping, brand[0] ? brand : "-",
		phys_bits_of(t));
	fprintf(m, "kernel %s\nvmm %s\nkvm-facts", info->kernel[0] ? info->kernel : "-",
		info->vmm_version[0] ? info->vmm_version : "-");
	for (int f = 0; f < KVM_NFACTS; f++)
		if (facts->has[f])
			fprintf(m, " %s", kvm_fact_name((enum kvm_fact)f));
	fprintf(m, "\n");
	struct xsave_row xs[XSAVE_MAX_COMPONENTS];
	unsigned nxs = xsave_rows_of(t, xs);
	for (unsigned i = 0; i < nxs; i++)
		fprintf(m, "xsave %" PRIu32 " 0x%" PRIx32 " %" PRIu32 "\n", xs[i].id, xs[i].offset,
			xs[i].size);
	for (unsigned i = 0; i < t->n; i++) {
		const struct cpuid_leaf *e = &t->leaves[i];
		fprintf(m,
			"cpuid 0x%08" PRIx32 " 0x%08" PRIx32 " 0x%08" PRIx32 " 0x%08" PRIx32
			" 0x%08" PRIx32 " 0x%08" PRIx32 "\n",
			e->leaf, e->subleaf, e->eax, e->ebx, e->ecx, e->edx);
	}
	if (fclose(m) != 0) {
		free(text);
		return vmm_error_set(err, -ENOMEM, "out of memory");
	}
	int rc = 0;
	if (fwrite(text, 1, len, out) != len ||
	    fprintf(out, "end %u 0x%016" PRIx64 "\n", t->n, fnv1a(FNV_OFFSET, text, len)) < 0 ||
	    fflush(out) != 0)
		rc = vmm_error_set(err, -EIO, "writing the host profile: %s", strerror(errno));
	free(text);
	return rc;
}

/* ---- reading ---- */

bool host_profile_detect(const char *text, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t end = i;
		while (end < len && text[end] != '\n')
			end++;
		size_t s = i;
		while (s < end && (text[s] == ' ' || text[s] == '\t' || text[s] == '\r'))
			s++;
		if (s < end && text[s] != '#') {
			size_t n = strlen(HOST_PROFILE_MAGIC);
			return end - s > n && memcmp(text + s, HOST_PROFILE_MAGIC, n) == 0 &&
			       (text[s + n] == ' ' || text[s + n] == '\t');
		}
		i = end + 1;
	}
	return false;
}

enum key {
	K_MAGIC,
	K_HOSTNAME,
	K_VENDOR,
	K_FAMILY,
	K_MODEL,
	K_STEPPING,
	K_MODEL_NAME,
	K_PHYS_BITS,
	K_KERNEL,
	K_VMM,
	K_KVM_FACTS,
	K_XSAVE,
	K_CPUID,
	K_END,
	NKEYS
};

struct parser {
	const char *path;
	unsigned line;
	struct vmm_error *err;
	unsigned seen[NKEYS]; /* line of the key's (last) occurrence, 0 = none */
	char vendor[16];
	unsigned family, model, stepping, phys_bits;
	struct xsave_row xs[XSAVE_MAX_COMPONENTS];
	unsigned nxs;
	struct cpuid_table *t;
	struct kvm_facts *facts;
	char *brand;
	size_t brand_len;
	struct host_profile_info *info;
};

static int perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct parser *p, const char *fmt, ...)
{
	char msg[VMM_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return vmm_error_set(p->err, -EINVAL, "host profile %s:%u: %s", p->path, p->line, msg);
}

static int parse_uint(struct parser *p, const char *key, const char *v, unsigned max, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 0);
	if (errno || *end || !v[0] || v[0] == '-' || v[0] == '+' || n > max)
		return perr(p, "%s '%s': expected a number 0..%u", key, v, max);
	*out = (unsigned)n;
	return 0;
}

/* A word of [A-Za-z0-9._+~-] (hostnames, kernel releases, versions). */
static int parse_word(struct parser *p, const char *key, const char *v, char *out, size_t len)
{
	size_t n = strlen(v);
	if (!n || n >= len)
		return perr(p, "%s: expected 1..%zu characters", key, len - 1);
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+~-",
			    v[i]))
			return perr(p, "%s '%s': character '%c' not allowed", key, v, v[i]);
	memcpy(out, v, n + 1);
	return 0;
}

static int key_magic(struct parser *p, char *v)
{
	unsigned version;
	if (parse_uint(p, HOST_PROFILE_MAGIC " version", v, 1000000, &version))
		return -EINVAL;
	if (version != HOST_PROFILE_VERSION)
		return perr(p, "host profile format version %u; this vmm reads version %d", version,
			    HOST_PROFILE_VERSION);
	return 0;
}

static int key_hostname(struct parser *p, char *v)
{
	return parse_word(p, "hostname", v, p->info->hostname, sizeof(p->info->hostname));
}

static int key_vendor(struct parser *p, char *v)
{
	if (strlen(v) != 12)
		return perr(p, "vendor '%s': expected 12 characters (GenuineIntel, AuthenticAMD)",
			    v);
	return parse_word(p, "vendor", v, p->vendor, sizeof(p->vendor));
}

static int key_family(struct parser *p, char *v)
{
	return parse_uint(p, "family", v, 0xff + 0xf, &p->family);
}

static int key_model(struct parser *p, char *v)
{
	return parse_uint(p, "model", v, 0xff, &p->model);
}

static int key_stepping(struct parser *p, char *v)
{
	return parse_uint(p, "stepping", v, 0xf, &p->stepping);
}

static int key_model_name(struct parser *p, char *v)
{
	size_t n = strlen(v);
	if (!n || n >= p->brand_len || n > 48)
		return perr(p, "model-name: expected 1..48 characters");
	memcpy(p->brand, strcmp(v, "-") == 0 ? "" : v, strcmp(v, "-") == 0 ? 1 : n + 1);
	return 0;
}

static int key_phys_bits(struct parser *p, char *v)
{
	return parse_uint(p, "phys-bits", v, 64, &p->phys_bits);
}

static int key_kernel(struct parser *p, char *v)
{
	return parse_word(p, "kernel", v, p->info->kernel, sizeof(p->info->kernel));
}

static int key_vmm(struct parser *p, char *v)
{
	return parse_word(p, "vmm", v, p->info->vmm_version, sizeof(p->info->vmm_version));
}

static int key_kvm_facts(struct parser *p, char *v)
{
	char *save = NULL;
	memset(p->facts, 0, sizeof(*p->facts));
	for (char *w = strtok_r(v, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		int f = kvm_fact_find(w);
		if (f < 0)
			return perr(p, "kvm-facts: unknown fact '%s'", w);
		if (p->facts->has[f])
			return perr(p, "kvm-facts: '%s' listed twice", w);
		p->facts->has[f] = true;
	}
	return 0;
}

static int key_xsave(struct parser *p, char *v)
{
	char *save = NULL, *w[4];
	unsigned n = 0, id, offset, size;
	for (char *t = strtok_r(v, " \t", &save); t && n < 4; t = strtok_r(NULL, " \t", &save))
		w[n++] = t;
	if (n != 3)
		return perr(p, "xsave: expected COMPONENT OFFSET SIZE");
	if (parse_uint(p, "xsave component", w[0], 63, &id) ||
	    parse_uint(p, "xsave offset", w[1], 1u << 20, &offset) ||
	    parse_uint(p, "xsave size", w[2], 1u << 20, &size))
		return -EINVAL;
	if (id < 2 || !size)
		return perr(p, "xsave: component %u of %u bytes (components start at 2)", id, size);
	if (p->nxs && p->xs[p->nxs - 1].id >= id)
		return perr(p, "xsave: component %u out of order or repeated", id);
	if (p->nxs >= XSAVE_MAX_COMPONENTS)
		return perr(p, "xsave: more than %d components", XSAVE_MAX_COMPONENTS);
	p->xs[p->nxs++] = (struct xsave_row){id, offset, size};
	return 0;
}

static int key_cpuid(struct parser *p, char *v)
{
	uint32_t r[6];
	struct cpuid_table *t = p->t;
	if (!cpuid_line_parse(v, r))
		return perr(p, "cpuid: expected six 0x%%08x fields (LEAF SUBLEAF EAX EBX ECX EDX)");
	if (t->n && (t->leaves[t->n - 1].leaf > r[0] ||
		     (t->leaves[t->n - 1].leaf == r[0] && t->leaves[t->n - 1].subleaf >= r[1])))
		return perr(p, "cpuid: leaf 0x%08x subleaf 0x%08x out of order or repeated", r[0],
			    r[1]);
	if (t->n >= CPUID_TABLE_MAX)
		return perr(p, "cpuid: more than %d rows", CPUID_TABLE_MAX);
	return cpuid_table_set(t, r[0], r[1], r[2], r[3], r[4], r[5]);
}

static const struct keyword {
	const char *name;
	int (*parse)(struct parser *p, char *value);
	bool repeat, required;
} keys[NKEYS] = {
    [K_MAGIC] = {HOST_PROFILE_MAGIC, key_magic, false, true},
    [K_HOSTNAME] = {"hostname", key_hostname, false, false},
    [K_VENDOR] = {"vendor", key_vendor, false, true},
    [K_FAMILY] = {"family", key_family, false, true},
    [K_MODEL] = {"model", key_model, false, true},
    [K_STEPPING] = {"stepping", key_stepping, false, true},
    [K_MODEL_NAME] = {"model-name", key_model_name, false, true},
    [K_PHYS_BITS] = {"phys-bits", key_phys_bits, false, true},
    [K_KERNEL] = {"kernel", key_kernel, false, true},
    [K_VMM] = {"vmm", key_vmm, false, true},
    [K_KVM_FACTS] = {"kvm-facts", key_kvm_facts, false, true},
    [K_XSAVE] = {"xsave", key_xsave, true, false},
    [K_CPUID] = {"cpuid", key_cpuid, true, true},
    [K_END] = {"end", NULL, false, true},
};

/* The header lines must say what the rows say; an error names the header. */
static int cross_check(struct parser *p)
{
	const struct cpuid_table *t = p->t;
	char vendor[13];
	if (!cpuid_table_find(t, 0, 0) || !cpuid_table_find(t, 1, 0) ||
	    !cpuid_table_find(t, 0x80000000, 0))
		return perr(p, "the rows lack leaf 0, 1 or 0x80000000");
	vendor_of(t, vendor);
	struct signature s = signature_of(cpuid_table_reg(t, 1, 0, CPUID_EAX));
	const struct {
		enum key k;
		bool ok;
		const char *what;
	} checks[] = {
	    {K_VENDOR, strcmp(vendor, p->vendor) == 0, "the vendor in leaf 0"},
	    {K_FAMILY, s.family == p->family, "the family in leaf 1 EAX"},
	    {K_MODEL, s.model == p->model, "the model in leaf 1 EAX"},
	    {K_STEPPING, s.stepping == p->stepping, "the stepping in leaf 1 EAX"},
	    {K_PHYS_BITS, phys_bits_of(t) == p->phys_bits, "CPUID.80000008H:EAX[7:0]"},
	};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		if (!checks[i].ok) {
			p->line = p->seen[checks[i].k];
			return perr(p, "%s disagrees with %s", keys[checks[i].k].name,
				    checks[i].what);
		}
	struct xsave_row rows[XSAVE_MAX_COMPONENTS];
	unsigned n = xsave_rows_of(t, rows);
	bool same = n == p->nxs;
	for (unsigned i = 0; same && i < n; i++)
		same = rows[i].id == p->xs[i].id && rows[i].offset == p->xs[i].offset &&
		       rows[i].size == p->xs[i].size;
	if (!same) {
		p->line = p->seen[K_XSAVE] ? p->seen[K_XSAVE] : p->seen[K_END];
		return perr(p, "the xsave lines disagree with the leaf 0xD rows");
	}
	return 0;
}

static int parse_end(struct parser *p, char *v, uint64_t digest)
{
	char *save = NULL;
	char *count = strtok_r(v, " \t", &save), *sum = strtok_r(NULL, " \t", &save);
	unsigned n;
	uint64_t want;
	char *endp;
	if (!count || !sum || strtok_r(NULL, " \t", &save))
		return perr(p, "end: expected ROWS DIGEST");
	if (parse_uint(p, "end rows", count, CPUID_TABLE_MAX, &n))
		return -EINVAL;
	if (n != p->t->n)
		return perr(p, "end says %u cpuid rows, the file has %u (cut or edited?)", n,
			    p->t->n);
	errno = 0;
	want = strtoull(sum, &endp, 16);
	if (errno || *endp || strncmp(sum, "0x", 2) != 0 || strlen(sum) != 18)
		return perr(p, "end: digest '%s': expected 0x and 16 hex digits", sum);
	if (want != digest)
		return perr(p,
			    "digest mismatch: the file says 0x%016" PRIx64 ", its text hashes to "
			    "0x%016" PRIx64 " (edited or damaged)",
			    want, digest);
	for (int k = 0; k < NKEYS; k++)
		if (keys[k].required && !p->seen[k] && k != K_END)
			return perr(p, "no '%s' line before 'end'", keys[k].name);
	return cross_check(p);
}

/* One line (without its newline): printable ASCII and tabs, bounded. */
static int check_chars(struct parser *p, const char *s, size_t n)
{
	if (n > CPUID_LINE_MAX - 2)
		return perr(p, "line longer than %d characters", CPUID_LINE_MAX - 2);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t' && !(c == '\r' && i == n - 1)) || c > 0x7e)
			return perr(p, "byte 0x%02x is not printable ASCII", c);
	}
	return 0;
}

int host_profile_parse(const char *path, const char *text, size_t len, struct cpuid_table *t,
		       struct kvm_facts *facts, char *brand, size_t brand_len,
		       struct host_profile_info *info, struct vmm_error *err)
{
	struct parser p = {.path = path,
			   .err = err,
			   .t = t,
			   .facts = facts,
			   .brand = brand,
			   .brand_len = brand_len,
			   .info = info};
	uint64_t digest = FNV_OFFSET;
	memset(t, 0, sizeof(*t));
	memset(info, 0, sizeof(*info));
	memset(facts, 0, sizeof(*facts));
	if (brand_len)
		brand[0] = '\0';
	if (len > HOST_PROFILE_MAX_BYTES)
		return vmm_error_set(err, -EFBIG, "host profile %s: larger than %d bytes", path,
				     HOST_PROFILE_MAX_BYTES);
	size_t pos = 0;
	while (pos < len) {
		size_t eol = pos;
		while (eol < len && text[eol] != '\n')
			eol++;
		size_t n = eol - pos;
		char line[CPUID_LINE_MAX];
		p.line++;
		if (check_chars(&p, text + pos, n))
			return -EINVAL;
		memcpy(line, text + pos, n);
		line[n] = '\0';
		if (n && line[n - 1] == '\r')
			line[--n] = '\0';
		size_t next = eol < len ? eol + 1 : eol;
		char *s = line + strspn(line, " \t");
		if (p.seen[K_END]) {
			if (*s && *s != '#')
				return perr(&p, "text after the 'end' line");
			pos = next;
			continue;
		}
		if (!*s || *s == '#') {
			digest = fnv1a(digest, text + pos, next - pos);
			pos = next;
			continue;
		}
		size_t kl = strcspn(s, " \t");
		char *v = s + kl + strspn(s + kl, " \t");
		for (size_t e = strlen(v); e && (v[e - 1] == ' ' || v[e - 1] == '\t');)
			v[--e] = '\0';
		int k = -1;
		for (int i = 0; i < NKEYS; i++)
			if (strlen(keys[i].name) == kl && memcmp(s, keys[i].name, kl) == 0)
				k = i;
		if (k < 0)
			return perr(&p, "unknown keyword '%.*s'", (int)(kl < 40 ? kl : 40), s);
		if (k != K_MAGIC && !p.seen[K_MAGIC])
			return perr(&p, "expected '%s %d' first", HOST_PROFILE_MAGIC,
				    HOST_PROFILE_VERSION);
		if (p.seen[k] && !keys[k].repeat)
			return perr(&p, "second '%s' line (first at line %u)", keys[k].name,
				    p.seen[k]);
		p.seen[k] = p.line;
		if (k == K_END) {
			if (parse_end(&p, v, digest))
				return -EINVAL;
		} else {
			int rc = keys[k].parse(&p, v);
			if (rc)
				return rc == -ENOSPC ? perr(&p, "too many rows") : rc;
			digest = fnv1a(digest, text + pos, next - pos);
		}
		pos = next;
	}
	if (!p.seen[K_END])
		return perr(&p, "the file ends before its 'end' line (cut short?)");
	return 0;
}

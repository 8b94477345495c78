/*
 * cpumodels/db_parse.c: the model data file format (see README.md) into
 * struct cpumodel / cpumodel_version. Line-oriented; every error names
 * "file:line: what was wrong".
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpumodels/engine.h"

#define LINE_MAX_LEN 4096

struct parser {
	struct cpumodel_db *db;
	const char *fname;
	unsigned line;
	struct vmm_error *err;
	struct cpumodel *m;	      /* model being parsed, NULL before the first */
	struct cpumodel_version *v;   /* version block being parsed, NULL in the header */
	struct cpumodel_version base; /* the header's definition */
	unsigned seen;		      /* header keys seen (bit per key) */
};

static int perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int perr(struct parser *p, const char *fmt, ...)
{
	char msg[VMM_ERROR_MAX - 80];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return vmm_error_set(p->err, -EINVAL, "%s:%u: %s", p->fname, p->line, msg);
}

/* ---- values ---- */

static int parse_uint(struct parser *p, const char *key, const char *val, unsigned long min,
		      unsigned long max, unsigned long *out)
{
	char *end;
	if (!val[0] || val[0] == '-' || val[0] == '+')
		return perr(p, "%s: expected a number, got '%s'", key, val);
	errno = 0;
	unsigned long v = strtoul(val, &end, 0);
	if (errno || *end)
		return perr(p, "%s: expected a number, got '%s'", key, val);
	if (v < min || v > max)
		return perr(p, "%s: %s out of range [0x%lx, 0x%lx]", key, val, min, max);
	*out = v;
	return 0;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (!n || n >= CPUMODEL_NAME_MAX || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
			return false;
	return true;
}

static int parse_model_id(struct parser *p, const char *val, char *out)
{
	size_t n = strlen(val);
	if (!n || n >= CPUMODEL_MODEL_ID_MAX)
		return perr(p, "model-id: must be 1..%d characters, got %zu",
			    CPUMODEL_MODEL_ID_MAX - 1, n);
	for (size_t i = 0; i < n; i++)
		if (val[i] < 0x20 || val[i] > 0x7e)
			return perr(p, "model-id: only printable ASCII allowed");
	memcpy(out, val, n + 1);
	return 0;
}

/* Calls fn for every whitespace-separated word of val. */
static int each_word(struct parser *p, char *val,
		     int (*fn)(struct parser *p, const char *word, void *ctx), void *ctx)
{
	char *save = NULL;
	for (char *w = strtok_r(val, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		int rc = fn(p, w, ctx);
		if (rc)
			return rc;
	}
	return 0;
}

static int lookup_feature(struct parser *p, const char *word, const struct cpufeat **out)
{
	const struct cpufeat *f = cpufeat_find(word);
	if (!f)
		return perr(p, "unknown feature '%s' (see `vmm cpu-model features`)", word);
	if (f->flags & (CPUFEAT_COMPUTED | CPUFEAT_DYNAMIC))
		return perr(p, "feature '%s' is set by the engine or the guest OS, not by models",
			    word);
	if (f->flags & CPUFEAT_NOKVM)
		return perr(p, "feature '%s' is host-only: KVM never gives it to a guest", word);
	*out = f;
	return 0;
}

static int add_base_feature(struct parser *p, const char *word, void *ctx)
{
	struct cpufeat_set *s = ctx, pv;
	const struct cpufeat *f;
	int rc = lookup_feature(p, word, &f);
	if (rc)
		return rc;
	cpufeat_set_with_flags(&pv, CPUFEAT_PV_DEFAULT);
	if (cpufeat_set_has(s, f) && !cpufeat_set_has(&pv, f))
		return perr(p, "feature '%s' listed twice", word);
	cpufeat_set_add(s, f);
	return 0;
}

static int delta_feature(struct parser *p, const char *word, void *ctx)
{
	bool add = ctx != NULL;
	struct cpumodel_version *v = p->v;
	const struct cpufeat *f;
	int rc = lookup_feature(p, word, &f);
	if (rc)
		return rc;
	if (cpufeat_set_has(&v->added, f) || cpufeat_set_has(&v->removed, f))
		return perr(p, "feature '%s' changed twice in version %u", word, v->version);
	if (add && cpufeat_set_has(&v->features, f))
		return perr(p, "add %s: already in version %u", word, v->version - 1);
	if (!add && !cpufeat_set_has(&v->features, f))
		return perr(p, "remove %s: not in version %u", word, v->version - 1);
	if (add) {
		cpufeat_set_add(&v->features, f);
		cpufeat_set_add(&v->added, f);
	} else {
		cpufeat_set_del(&v->features, f);
		cpufeat_set_add(&v->removed, f);
	}
	return 0;
}

/* ---- keys ---- */

enum key_scope { IN_HEADER = 1, IN_VERSION = 2, IN_V1 = 4 };

enum key_id {
	K_VENDOR,
	K_FAMILY,
	K_MODEL,
	K_STEPPING,
	K_MODEL_ID,
	K_LEVEL,
	K_XLEVEL,
	K_PHYS_BITS,
	K_FEATURES,
	K_ALIAS,
	K_NOTE,
	K_ADD,
	K_REMOVE,
};

static const struct {
	const char *name;
	enum key_id id;
	unsigned scope;
	bool required; /* in the header */
} keys[] = {
    {"vendor", K_VENDOR, IN_HEADER, true},
    {"family", K_FAMILY, IN_HEADER | IN_VERSION, true},
    {"model", K_MODEL, IN_HEADER | IN_VERSION, true},
    {"stepping", K_STEPPING, IN_HEADER | IN_VERSION, true},
    {"model-id", K_MODEL_ID, IN_HEADER | IN_VERSION, true},
    {"level", K_LEVEL, IN_HEADER | IN_VERSION, false},
    {"xlevel", K_XLEVEL, IN_HEADER | IN_VERSION, false},
    {"phys-bits", K_PHYS_BITS, IN_HEADER | IN_VERSION, false},
    {"features", K_FEATURES, IN_HEADER, true},
    {"alias", K_ALIAS, IN_HEADER | IN_VERSION | IN_V1, false},
    {"note", K_NOTE, IN_HEADER | IN_VERSION | IN_V1, false},
    {"add", K_ADD, IN_VERSION, false},
    {"remove", K_REMOVE, IN_VERSION, false},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static int add_alias(struct parser *p, char (*list)[CPUMODEL_NAME_MAX], unsigned *n,
		     const char *val)
{
	if (!valid_name(val))
		return perr(p, "alias '%s': names are 1..%d characters of [A-Za-z0-9_.-]", val,
			    CPUMODEL_NAME_MAX - 1);
	if (*n >= CPUMODEL_MAX_ALIASES)
		return perr(p, "more than %d aliases", CPUMODEL_MAX_ALIASES);
	snprintf(list[(*n)++], CPUMODEL_NAME_MAX, "%s", val);
	return 0;
}

static int apply_key(struct parser *p, unsigned k, char *val)
{
	struct cpumodel_version *t = p->v ? p->v : &p->base;
	struct cpumodel_props *pr = &t->props;
	unsigned long n;
	int rc = 0;
	switch (keys[k].id) {
	case K_VENDOR:
		if (strcmp(val, "GenuineIntel") == 0)
			pr->vendor = VENDOR_INTEL;
		else if (strcmp(val, "AuthenticAMD") == 0)
			pr->vendor = VENDOR_AMD;
		else
			rc =
			    perr(p, "vendor: expected GenuineIntel or AuthenticAMD, got '%s'", val);
		break;
	case K_FAMILY:
		if (!(rc = parse_uint(p, "family", val, 1, 0xf + 0xff, &n)))
			pr->family = (unsigned)n;
		break;
	case K_MODEL:
		if (!(rc = parse_uint(p, "model", val, 0, 0xff, &n)))
			pr->model = (unsigned)n;
		break;
	case K_STEPPING:
		if (!(rc = parse_uint(p, "stepping", val, 0, 0xf, &n)))
			pr->stepping = (unsigned)n;
		break;
	case K_MODEL_ID:
		rc = parse_model_id(p, val, pr->model_id);
		break;
	case K_LEVEL:
		if (!(rc = parse_uint(p, "level", val, 1, 0x20, &n)))
			pr->level = (uint32_t)n;
		break;
	case K_XLEVEL:
		if (!(rc = parse_uint(p, "xlevel", val, 0x80000008, 0x80000021, &n)))
			pr->xlevel = (uint32_t)n;
		break;
	case K_PHYS_BITS:
		if (!(rc = parse_uint(p, "phys-bits", val, 32, 52, &n)))
			pr->phys_bits = (unsigned)n;
		break;
	case K_FEATURES:
		rc = each_word(p, val, add_base_feature, &p->base.features);
		break;
	case K_ALIAS:
		if (p->v)
			rc = add_alias(p, p->v->aliases, &p->v->naliases, val);
		else
			rc = add_alias(p, p->m->aliases, &p->m->naliases, val);
		break;
	case K_NOTE:
		if (strlen(val) >= CPUMODEL_NOTE_MAX)
			rc = perr(p, "note: longer than %d characters", CPUMODEL_NOTE_MAX - 1);
		else
			snprintf(t->note, sizeof(t->note), "%s", val);
		break;
	case K_ADD:
	case K_REMOVE:
		rc = each_word(p, val, delta_feature, keys[k].id == K_ADD ? p : NULL);
		break;
	}
	return rc;
}

/* ---- blocks ---- */

static void version_name(struct cpumodel_version *v, const char *model)
{
	snprintf(v->name, sizeof(v->name), "%s-v%u", model, v->version);
}

static int finish_header(struct parser *p)
{
	for (unsigned k = 0; k < NKEYS; k++)
		if (keys[k].required && !(p->seen & (1u << k)))
			return perr(p, "model %s: missing '%s' before the first version",
				    p->m->name, keys[k].name);
	return 0;
}

/* Checks that make a version usable; called when its block ends. */
static int finish_version(struct parser *p)
{
	struct cpumodel_version *v = p->v;
	struct vmm_error e = {0};
	if (!v)
		return 0;
	uint64_t xcr0;
	if (cpufeat_set_check_deps(&v->features, &e) < 0 ||
	    xsave_components(v->props.vendor, &v->features, &xcr0, &e) < 0)
		return vmm_error_set(p->err, -EINVAL, "%s:%u: %s: %s", v->file, v->line, v->name,
				     e.msg);
	v->digest = cpumodel_version_digest(v);
	return 0;
}

static int start_model(struct parser *p, const char *name)
{
	struct cpumodel_db *db = p->db;
	if (!valid_name(name))
		return perr(p, "model name '%s': 1..%d characters of [A-Za-z0-9_.-]", name,
			    CPUMODEL_NAME_MAX - 1);
	if (db->nmodels >= CPUMODEL_MAX_MODELS)
		return perr(p, "more than %d models", CPUMODEL_MAX_MODELS);
	struct cpumodel *nm = realloc(db->models, (db->nmodels + 1) * sizeof(*nm));
	if (!nm)
		return vmm_error_set(p->err, -ENOMEM, "out of memory");
	db->models = nm;
	p->m = &db->models[db->nmodels++];
	memset(p->m, 0, sizeof(*p->m));
	snprintf(p->m->name, sizeof(p->m->name), "%s", name);
	snprintf(p->m->file, sizeof(p->m->file), "%s", p->fname);
	p->m->line = p->line;
	p->v = NULL;
	p->seen = 0;
	memset(&p->base, 0, sizeof(p->base));
	p->base.props.level = 1;
	p->base.props.xlevel = 0x80000008;
	p->base.props.phys_bits = 39;
	cpufeat_set_with_flags(&p->base.features, CPUFEAT_PV_DEFAULT);
	return 0;
}

static int start_version(struct parser *p, const char *val)
{
	struct cpumodel *m = p->m;
	unsigned long n;
	int rc = parse_uint(p, "version", val, 1, CPUMODEL_MAX_VERSIONS, &n);
	if (rc)
		return rc;
	if (n != m->nversions + 1)
		return perr(p, "version %lu: expected version %u (versions count up from 1)", n,
			    m->nversions + 1);
	if (n == 1 && (rc = finish_header(p)))
		return rc;
	if ((rc = finish_version(p)))
		return rc;
	struct cpumodel_version *nv = realloc(m->versions, n * sizeof(*nv));
	if (!nv)
		return vmm_error_set(p->err, -ENOMEM, "out of memory");
	m->versions = nv;
	struct cpumodel_version *v = &nv[n - 1];
	*v = n == 1 ? p->base : nv[n - 2];
	v->version = (unsigned)n;
	memset(&v->added, 0, sizeof(v->added));
	memset(&v->removed, 0, sizeof(v->removed));
	v->naliases = 0;
	v->note[0] = '\0';
	v->line = p->line;
	snprintf(v->file, sizeof(v->file), "%s", p->fname);
	version_name(v, m->name);
	m->nversions = (unsigned)n;
	p->v = v;
	p->seen = 0;
	return 0;
}

static int end_model(struct parser *p)
{
	if (!p->m)
		return 0;
	if (!p->m->nversions) {
		p->line = p->m->line;
		return perr(p, "model %s has no 'version 1'", p->m->name);
	}
	return finish_version(p);
}

static int parse_line(struct parser *p, char *line)
{
	/* trim */
	while (isspace((unsigned char)*line))
		line++;
	size_t n = strlen(line);
	while (n && isspace((unsigned char)line[n - 1]))
		line[--n] = '\0';
	if (!n || line[0] == '#')
		return 0;
	char *val = line + strcspn(line, " \t");
	if (*val) {
		*val++ = '\0';
		while (isspace((unsigned char)*val))
			val++;
	}
	if (!*val && strcmp(line, "model") == 0)
		return perr(p, "model: missing value");
	/* "model NAME" starts a block unless we are inside a header/version,
	 * where "model N" is the CPUID model number. A number can never be a
	 * block start: names must not be plain numbers. */
	bool numeric = *val && strspn(val, "0123456789abcdefxABCDEFX") == strlen(val) &&
		       isdigit((unsigned char)val[0]);
	if (strcmp(line, "model") == 0 && !numeric) {
		int rc = end_model(p);
		return rc ? rc : start_model(p, val);
	}
	if (!p->m)
		return perr(p, "'%s' before the first 'model NAME' line", line);
	if (strcmp(line, "version") == 0)
		return start_version(p, val);
	for (unsigned k = 0; k < NKEYS; k++) {
		if (strcmp(keys[k].name, line) != 0)
			continue;
		unsigned scope = !p->v ? IN_HEADER : p->v->version == 1 ? IN_V1 : IN_VERSION;
		if (!(keys[k].scope & scope))
			return perr(p, "'%s' is not allowed %s", line,
				    scope == IN_HEADER ? "in a model header (before 'version 1')"
				    : scope == IN_V1
					? "in version 1 (it is the header's definition)"
					: "in a version block (use add/remove)");
		if (!*val)
			return perr(p, "'%s' needs a value", line);
		bool repeatable = keys[k].id == K_FEATURES || keys[k].id == K_ALIAS ||
				  keys[k].id == K_ADD || keys[k].id == K_REMOVE;
		if ((p->seen & 1u << k) && !repeatable)
			return perr(p, "'%s' given twice", line);
		p->seen |= 1u << k;
		return apply_key(p, k, val);
	}
	return perr(p,
		    "unknown key '%s' (expected model, version, vendor, family, model, "
		    "stepping, model-id, level, xlevel, phys-bits, features, alias, note, add, "
		    "remove)",
		    line);
}

int cpumodel_db_parse(struct cpumodel_db *db, const char *fname, const char *text,
		      struct vmm_error *err)
{
	struct parser p = {.db = db, .fname = fname, .err = err};
	const char *s = text;
	char line[LINE_MAX_LEN];
	while (*s) {
		size_t n = strcspn(s, "\n");
		p.line++;
		if (n >= sizeof(line))
			return perr(&p, "line longer than %d characters", LINE_MAX_LEN - 1);
		memcpy(line, s, n);
		line[n] = '\0';
		s += n + (s[n] == '\n');
		int rc = parse_line(&p, line);
		if (rc)
			return rc;
	}
	p.line++;
	return end_model(&p);
}

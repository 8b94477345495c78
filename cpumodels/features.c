/* cpumodels/features.c: looking up named CPUID features; feature sets. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cpumodels/engine.h"

#define NAME_MAX_LEN 64

/* Lower case, with '-' and '.' folded to '_'. Returns false if too long. */
static bool normalize(const char *in, size_t n, char *out, size_t outlen)
{
	if (n + 1 > outlen)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = (char)tolower((unsigned char)in[i]);
		out[i] = (c == '-' || c == '.') ? '_' : c;
	}
	out[n] = '\0';
	return true;
}

static bool name_matches(const char *want_norm, const char *cand, size_t cand_len)
{
	char norm[NAME_MAX_LEN];
	return normalize(cand, cand_len, norm, sizeof(norm)) && strcmp(norm, want_norm) == 0;
}

static bool aliases_match(const char *want_norm, const char *aliases)
{
	const char *p = aliases;
	while (p && *p) {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		if (n && name_matches(want_norm, p, n))
			return true;
		p += n;
	}
	return false;
}

const struct cpufeat *cpufeat_find(const char *name)
{
	char want[NAME_MAX_LEN];
	if (!name || !normalize(name, strlen(name), want, sizeof(want)) || !want[0])
		return NULL;
	for (size_t i = 0; i < cpufeat_count(); i++) {
		const struct cpufeat *f = cpufeat_at(i);
		if (name_matches(want, f->name, strlen(f->name)))
			return f;
	}
	for (size_t i = 0; i < cpufeat_count(); i++) {
		const struct cpufeat *f = cpufeat_at(i);
		if (aliases_match(want, f->aliases))
			return f;
	}
	return NULL;
}

enum cpufeat_word_id cpufeat_word_of(const struct cpufeat *f)
{
	for (int w = 0; w < CPUFEAT_NWORDS; w++) {
		const struct cpufeat_word *cw = &cpufeat_words[w];
		if (cw->leaf == f->leaf && cw->subleaf == f->subleaf && cw->reg == f->reg)
			return (enum cpufeat_word_id)w;
	}
	return CPUFEAT_NWORDS; /* the table test makes sure this never happens */
}

const struct cpufeat *cpufeat_by_bit(enum cpufeat_word_id w, unsigned bit)
{
	if (w >= CPUFEAT_NWORDS || bit > 31)
		return NULL;
	const struct cpufeat_word *cw = &cpufeat_words[w];
	for (size_t i = 0; i < cpufeat_count(); i++) {
		const struct cpufeat *f = cpufeat_at(i);
		if (f->leaf == cw->leaf && f->subleaf == cw->subleaf && f->reg == cw->reg &&
		    f->bit == bit)
			return f;
	}
	return NULL;
}

const char *cpuid_reg_name(enum cpuid_reg reg)
{
	static const char *const names[] = {"EAX", "EBX", "ECX", "EDX"};
	return (unsigned)reg < 4 ? names[reg] : "?";
}

static int leaf_text(uint32_t v, char *buf, size_t len)
{
	/* Intel's notation: at least two hex digits, upper case, 'H' suffix */
	return snprintf(buf, len, "%02X", v);
}

int cpufeat_reg_describe(uint32_t leaf, uint32_t subleaf, enum cpuid_reg reg, char *buf, size_t len)
{
	char l[16], s[16];
	leaf_text(leaf, l, sizeof(l));
	if (subleaf == 0)
		return snprintf(buf, len, "CPUID.%sH:%s", l, cpuid_reg_name(reg));
	leaf_text(subleaf, s, sizeof(s));
	return snprintf(buf, len, "CPUID.%sH.%sH:%s", l, s, cpuid_reg_name(reg));
}

int cpufeat_describe(const struct cpufeat *f, char *buf, size_t len)
{
	char r[48];
	cpufeat_reg_describe(f->leaf, f->subleaf, f->reg, r, sizeof(r));
	return snprintf(buf, len, "%s.%s [bit %u]", r, f->name, f->bit);
}

/* ---- feature sets ---- */

static bool locate(const struct cpufeat *f, unsigned *w)
{
	enum cpufeat_word_id id = cpufeat_word_of(f);
	if (id >= CPUFEAT_NWORDS)
		return false;
	*w = id;
	return true;
}

void cpufeat_set_add(struct cpufeat_set *s, const struct cpufeat *f)
{
	unsigned w;
	if (locate(f, &w))
		s->w[w] |= 1u << f->bit;
}

void cpufeat_set_del(struct cpufeat_set *s, const struct cpufeat *f)
{
	unsigned w;
	if (locate(f, &w))
		s->w[w] &= ~(1u << f->bit);
}

bool cpufeat_set_has(const struct cpufeat_set *s, const struct cpufeat *f)
{
	unsigned w;
	return locate(f, &w) && (s->w[w] >> f->bit & 1);
}

bool cpufeat_set_has_name(const struct cpufeat_set *s, const char *name)
{
	const struct cpufeat *f = cpufeat_find(name);
	return f && cpufeat_set_has(s, f);
}

bool cpufeat_set_equal(const struct cpufeat_set *a, const struct cpufeat_set *b)
{
	return memcmp(a->w, b->w, sizeof(a->w)) == 0;
}

bool cpufeat_set_subset(const struct cpufeat_set *a, const struct cpufeat_set *b)
{
	for (int w = 0; w < CPUFEAT_NWORDS; w++)
		if (a->w[w] & ~b->w[w])
			return false;
	return true;
}

void cpufeat_set_and(struct cpufeat_set *a, const struct cpufeat_set *b)
{
	for (int w = 0; w < CPUFEAT_NWORDS; w++)
		a->w[w] &= b->w[w];
}

void cpufeat_set_andnot(struct cpufeat_set *a, const struct cpufeat_set *b)
{
	for (int w = 0; w < CPUFEAT_NWORDS; w++)
		a->w[w] &= ~b->w[w];
}

void cpufeat_set_or(struct cpufeat_set *a, const struct cpufeat_set *b)
{
	for (int w = 0; w < CPUFEAT_NWORDS; w++)
		a->w[w] |= b->w[w];
}

unsigned cpufeat_set_count(const struct cpufeat_set *s)
{
	unsigned n = 0;
	for (int w = 0; w < CPUFEAT_NWORDS; w++)
		n += (unsigned)__builtin_popcount(s->w[w]);
	return n;
}

void cpufeat_set_all(struct cpufeat_set *s)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < cpufeat_count(); i++)
		cpufeat_set_add(s, cpufeat_at(i));
}

void cpufeat_set_with_flags(struct cpufeat_set *s, unsigned flags)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < cpufeat_count(); i++)
		if (cpufeat_at(i)->flags & flags)
			cpufeat_set_add(s, cpufeat_at(i));
}

const struct cpufeat *cpufeat_set_next(const struct cpufeat_set *s, size_t *i)
{
	while (*i < cpufeat_count()) {
		const struct cpufeat *f = cpufeat_at((*i)++);
		if (cpufeat_set_has(s, f))
			return f;
	}
	return NULL;
}

void cpufeat_set_from_table(const struct cpuid_table *t, struct cpufeat_set *out)
{
	memset(out, 0, sizeof(*out));
	const struct cpuid_leaf *l0 = cpuid_table_find(t, 0, 0);
	const struct cpuid_leaf *x0 = cpuid_table_find(t, 0x80000000, 0);
	const struct cpuid_leaf *h0 = cpuid_table_find(t, 0x40000000, 0);
	uint32_t level = l0 ? l0->eax : 0;
	uint32_t xlevel = x0 ? x0->eax : 0;
	uint32_t hlevel = h0 ? h0->eax : 0;
	uint32_t leaf7_max = cpuid_table_reg(t, 7, 0, CPUID_EAX);
	for (int w = 0; w < CPUFEAT_NWORDS; w++) {
		const struct cpufeat_word *cw = &cpufeat_words[w];
		uint32_t max = cw->leaf >= 0x80000000	? xlevel
			       : cw->leaf >= 0x40000000 ? hlevel
							: level;
		if (cw->leaf > max)
			continue;
		if (cw->leaf == 7 && cw->subleaf > leaf7_max)
			continue;
		out->w[w] = cpuid_table_reg(t, cw->leaf, cw->subleaf, cw->reg);
	}
	/* keep named bits only */
	struct cpufeat_set named;
	cpufeat_set_all(&named);
	cpufeat_set_and(out, &named);
}

int cpufeat_set_check_deps(const struct cpufeat_set *s, struct vmm_error *err)
{
	for (size_t i = 0; i < cpufeat_dep_count(); i++) {
		const struct cpufeat_dep *d = cpufeat_dep_at(i);
		const struct cpufeat *f = cpufeat_find(d->feature);
		const struct cpufeat *n = cpufeat_find(d->needs);
		if (!f || !n)
			return vmm_error_set(err, -EINVAL, "dependency table names unknown %s",
					     f ? d->needs : d->feature);
		if (cpufeat_set_has(s, f) && !cpufeat_set_has(s, n))
			return vmm_error_set(err, -EINVAL, "%s needs %s", f->name, n->name);
	}
	return 0;
}

const struct cpufeat *cpufeat_missing_dep(const struct cpufeat_set *s, const struct cpufeat *f)
{
	for (size_t i = 0; i < cpufeat_dep_count(); i++) {
		const struct cpufeat_dep *d = cpufeat_dep_at(i);
		const struct cpufeat *n = cpufeat_find(d->needs);
		if (cpufeat_find(d->feature) == f && n && !cpufeat_set_has(s, n))
			return n;
	}
	return NULL;
}

unsigned cpufeat_set_downgrade(struct cpufeat_set *s, struct cpufeat_set *dropped)
{
	unsigned n = 0;
	bool changed = true;
	/* a chain (avx512vl -> avx512f -> avx2 -> avx -> xsave) unwinds one link
	 * per pass; the dependency rows are acyclic, so this ends */
	while (changed) {
		changed = false;
		for (size_t i = 0; i < cpufeat_dep_count(); i++) {
			const struct cpufeat_dep *d = cpufeat_dep_at(i);
			const struct cpufeat *f = cpufeat_find(d->feature);
			const struct cpufeat *need = cpufeat_find(d->needs);
			if (!f || !need || !cpufeat_set_has(s, f) || cpufeat_set_has(s, need))
				continue;
			cpufeat_set_del(s, f);
			if (dropped)
				cpufeat_set_add(dropped, f);
			n++;
			changed = true;
		}
	}
	return n;
}

void cpufeat_set_format(const struct cpufeat_set *s, char *buf, size_t len)
{
	size_t used = 0, i = 0;
	const struct cpufeat *f;
	if (!len)
		return;
	buf[0] = '\0';
	while ((f = cpufeat_set_next(s, &i))) {
		size_t need = strlen(f->name) + (used ? 1 : 0);
		if (used + need + 4 >= len) {
			snprintf(buf + used, len - used, "%s...", used ? " " : "");
			return;
		}
		used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? " " : "", f->name);
	}
}

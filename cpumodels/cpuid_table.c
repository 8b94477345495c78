/*
 * cpumodels/cpuid_table.c: CPUID tables: lookup, insertion, the canonical
 * text format (read and write) and naming the differences between two tables.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpumodels/engine.h"

/* Leaves whose output depends on ECX (Intel SDM / AMD APM), as KVM treats them. */
static const uint32_t subleaf_leaves[] = {0x4,	0x7,  0xb,	  0xd,	      0xf,	 0x10, 0x12,
					  0x14, 0x17, 0x18,	  0x1d,	      0x1e,	 0x1f, 0x20,
					  0x23, 0x24, 0x8000001d, 0x80000020, 0x80000026};

bool cpuid_leaf_has_subleaves(uint32_t leaf)
{
	for (size_t i = 0; i < sizeof(subleaf_leaves) / sizeof(subleaf_leaves[0]); i++)
		if (subleaf_leaves[i] == leaf)
			return true;
	return false;
}

static int cmp_key(uint32_t la, uint32_t sa, uint32_t lb, uint32_t sb)
{
	if (la != lb)
		return la < lb ? -1 : 1;
	if (sa != sb)
		return sa < sb ? -1 : 1;
	return 0;
}

const struct cpuid_leaf *cpuid_table_find(const struct cpuid_table *t, uint32_t leaf,
					  uint32_t subleaf)
{
	unsigned lo = 0, hi = t->n < CPUID_TABLE_MAX ? t->n : CPUID_TABLE_MAX;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct cpuid_leaf *e = &t->leaves[mid];
		int c = cmp_key(e->leaf, e->subleaf, leaf, subleaf);
		if (c == 0)
			return e;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

uint32_t cpuid_table_reg(const struct cpuid_table *t, uint32_t leaf, uint32_t subleaf,
			 enum cpuid_reg reg)
{
	const struct cpuid_leaf *e = cpuid_table_find(t, leaf, subleaf);
	if (!e)
		return 0;
	switch (reg) {
	case CPUID_EAX:
		return e->eax;
	case CPUID_EBX:
		return e->ebx;
	case CPUID_ECX:
		return e->ecx;
	case CPUID_EDX:
		return e->edx;
	}
	return 0;
}

int cpuid_table_set(struct cpuid_table *t, uint32_t leaf, uint32_t subleaf, uint32_t eax,
		    uint32_t ebx, uint32_t ecx, uint32_t edx)
{
	unsigned pos = 0;
	while (pos < t->n &&
	       cmp_key(t->leaves[pos].leaf, t->leaves[pos].subleaf, leaf, subleaf) < 0)
		pos++;
	if (pos == t->n || cmp_key(t->leaves[pos].leaf, t->leaves[pos].subleaf, leaf, subleaf)) {
		if (t->n >= CPUID_TABLE_MAX)
			return -ENOSPC;
		memmove(&t->leaves[pos + 1], &t->leaves[pos], (t->n - pos) * sizeof(t->leaves[0]));
		t->n++;
	}
	t->leaves[pos] = (struct cpuid_leaf){
	    .leaf = leaf,
	    .subleaf = subleaf,
	    .eax = eax,
	    .ebx = ebx,
	    .ecx = ecx,
	    .edx = edx,
	    .subleaf_significant = cpuid_leaf_has_subleaves(leaf),
	};
	return 0;
}

int cpuid_table_write(const struct cpuid_table *t, FILE *out)
{
	for (unsigned i = 0; i < t->n && i < CPUID_TABLE_MAX; i++) {
		const struct cpuid_leaf *e = &t->leaves[i];
		if (fprintf(out,
			    "0x%08" PRIx32 " 0x%08" PRIx32 " 0x%08" PRIx32 " 0x%08" PRIx32
			    " 0x%08" PRIx32 " 0x%08" PRIx32 "\n",
			    e->leaf, e->subleaf, e->eax, e->ebx, e->ecx, e->edx) < 0)
			return -EIO;
	}
	return ferror(out) ? -EIO : 0;
}

/* One "0x%08x" field: exactly 10 characters. */
static bool parse_hex_field(const char *p, uint32_t *v)
{
	if (p[0] != '0' || p[1] != 'x')
		return false;
	uint32_t r = 0;
	for (int i = 2; i < 10; i++) {
		char c = p[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return false;
		r = r << 4 | d;
	}
	*v = r;
	return true;
}

bool cpuid_line_parse(const char *line, uint32_t v[6])
{
	/* "0x........ 0x........ ... " : 6 fields of 10 chars, single spaces */
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
		n--;
	if (n != 6 * 10 + 5)
		return false;
	for (int i = 0; i < 6; i++) {
		if (i && line[i * 11 - 1] != ' ')
			return false;
		if (!parse_hex_field(line + i * 11, &v[i]))
			return false;
	}
	return true;
}

static void header_name(const char *line, char *name, size_t len)
{
	/* "# CPU: Intel(R) Xeon(R) ..." names the profile */
	if (!name || !len || name[0] || strncmp(line, "# CPU:", 6) != 0)
		return;
	const char *p = line + 6;
	while (*p == ' ')
		p++;
	size_t n = strcspn(p, "\r\n");
	if (n >= len)
		n = len - 1;
	memcpy(name, p, n);
	name[n] = '\0';
}

/* Reads one line into buf (truncated to len-1); *long_line tells whether it
 * was longer. Returns false at end of file. */
static bool read_line(FILE *f, char *buf, size_t len, bool *long_line)
{
	*long_line = false;
	if (!fgets(buf, (int)len, f))
		return false;
	if (!strchr(buf, '\n') && !feof(f)) {
		int c;
		*long_line = true;
		while ((c = fgetc(f)) != EOF && c != '\n')
			;
	}
	return true;
}

int cpuid_table_read(const char *path, struct cpuid_table *t, char *comment_name,
		     size_t comment_name_len, struct vmm_error *err)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return vmm_error_set(err, -errno, "%s: %s", path, strerror(errno));
	char line[CPUID_LINE_MAX];
	unsigned lineno = 0;
	int rc = 0;
	memset(t, 0, sizeof(*t));
	if (comment_name && comment_name_len)
		comment_name[0] = '\0';
	bool long_line;
	while (read_line(f, line, sizeof(line), &long_line)) {
		lineno++;
		if (long_line && line[0] != '#') {
			rc = vmm_error_set(err, -EINVAL, "%s:%u: line longer than %d characters",
					   path, lineno, CPUID_LINE_MAX - 2);
			goto out_close;
		}
		if (line[0] == '#') {
			header_name(line, comment_name, comment_name_len);
			continue;
		}
		if (line[strspn(line, " \t\r\n")] == '\0')
			continue;
		uint32_t v[6];
		if (!cpuid_line_parse(line, v)) {
			rc = vmm_error_set(err, -EINVAL,
					   "%s:%u: expected six 0x%%08x fields "
					   "(LEAF SUBLEAF EAX EBX ECX EDX)",
					   path, lineno);
			goto out_close;
		}
		if (t->n && cmp_key(t->leaves[t->n - 1].leaf, t->leaves[t->n - 1].subleaf, v[0],
				    v[1]) >= 0) {
			rc = vmm_error_set(err, -EINVAL,
					   "%s:%u: leaf 0x%08x subleaf 0x%08x out of order or "
					   "repeated (lines must be sorted, unique)",
					   path, lineno, v[0], v[1]);
			goto out_close;
		}
		if (t->n >= CPUID_TABLE_MAX) {
			rc = vmm_error_set(err, -E2BIG, "%s:%u: more than %d leaves", path, lineno,
					   CPUID_TABLE_MAX);
			goto out_close;
		}
		t->leaves[t->n++] = (struct cpuid_leaf){
		    .leaf = v[0],
		    .subleaf = v[1],
		    .eax = v[2],
		    .ebx = v[3],
		    .ecx = v[4],
		    .edx = v[5],
		    .subleaf_significant = cpuid_leaf_has_subleaves(v[0]),
		};
	}
	if (ferror(f)) {
		rc = vmm_error_set(err, -EIO, "%s: read error", path);
		goto out_close;
	}
	if (!t->n)
		rc = vmm_error_set(err, -EINVAL, "%s: no CPUID lines", path);
out_close:
	fclose(f);
	return rc;
}

/* ---- differences ---- */

struct diff_out {
	char *buf;
	size_t len, used;
	int count;
	bool truncated;
};

static void diff_add(struct diff_out *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void diff_add(struct diff_out *d, const char *fmt, ...)
{
	char item[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(item, sizeof(item), fmt, ap);
	va_end(ap);
	d->count++;
	if (!d->buf || !d->len || d->truncated)
		return;
	const char *sep = d->used ? ", " : "";
	size_t need = strlen(sep) + strlen(item);
	if (d->used + need + 4 >= d->len) {
		snprintf(d->buf + d->used, d->len - d->used, "%s...", sep);
		d->truncated = true;
		return;
	}
	d->used += (size_t)snprintf(d->buf + d->used, d->len - d->used, "%s%s", sep, item);
}

static int word_of(uint32_t leaf, uint32_t subleaf, enum cpuid_reg reg)
{
	for (int w = 0; w < CPUFEAT_NWORDS; w++)
		if (cpufeat_words[w].leaf == leaf && cpufeat_words[w].subleaf == subleaf &&
		    cpufeat_words[w].reg == reg)
			return w;
	return -1;
}

static void diff_reg(struct diff_out *d, uint32_t leaf, uint32_t subleaf, enum cpuid_reg reg,
		     uint32_t want, uint32_t got)
{
	uint32_t changed = want ^ got;
	int w = word_of(leaf, subleaf, reg);
	if (!changed)
		return;
	if (w >= 0) {
		for (unsigned bit = 0; bit < 32; bit++) {
			const struct cpufeat *f = cpufeat_by_bit((enum cpufeat_word_id)w, bit);
			if (!(changed >> bit & 1) || !f)
				continue;
			char desc[96];
			cpufeat_describe(f, desc, sizeof(desc));
			diff_add(d, "%c%s", (got >> bit & 1) ? '+' : '-', desc);
			changed &= ~(1u << bit);
		}
	}
	if (changed) {
		char r[48];
		cpufeat_reg_describe(leaf, subleaf, reg, r, sizeof(r));
		diff_add(d, "%s 0x%08x != 0x%08x", r, want, got);
	}
}

int cpuid_table_diff(const struct cpuid_table *expected, const struct cpuid_table *got, char *buf,
		     size_t len)
{
	struct diff_out d = {.buf = buf, .len = len};
	unsigned i = 0, j = 0;
	unsigned ne = expected->n < CPUID_TABLE_MAX ? expected->n : CPUID_TABLE_MAX;
	unsigned ng = got->n < CPUID_TABLE_MAX ? got->n : CPUID_TABLE_MAX;
	if (buf && len)
		buf[0] = '\0';
	while (i < ne || j < ng) {
		const struct cpuid_leaf *a = i < ne ? &expected->leaves[i] : NULL;
		const struct cpuid_leaf *b = j < ng ? &got->leaves[j] : NULL;
		int c = !a ? 1 : !b ? -1 : cmp_key(a->leaf, a->subleaf, b->leaf, b->subleaf);
		if (c < 0) {
			diff_add(&d, "missing leaf 0x%08x subleaf 0x%x", a->leaf, a->subleaf);
			i++;
			continue;
		}
		if (c > 0) {
			diff_add(&d, "extra leaf 0x%08x subleaf 0x%x", b->leaf, b->subleaf);
			j++;
			continue;
		}
		diff_reg(&d, a->leaf, a->subleaf, CPUID_EAX, a->eax, b->eax);
		diff_reg(&d, a->leaf, a->subleaf, CPUID_EBX, a->ebx, b->ebx);
		diff_reg(&d, a->leaf, a->subleaf, CPUID_ECX, a->ecx, b->ecx);
		diff_reg(&d, a->leaf, a->subleaf, CPUID_EDX, a->edx, b->edx);
		if (a->subleaf_significant != b->subleaf_significant)
			diff_add(&d, "leaf 0x%08x subleaf 0x%x: subleaf-significant flag differs",
				 a->leaf, a->subleaf);
		i++;
		j++;
	}
	return d.count;
}

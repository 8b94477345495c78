/*
 * u_cmdline.c: the command line, space-separated key=value words:
 *   cpuid  cpuid-interval=SECONDS  dirty=SIZE  rate=SIZE  runtime=SECONDS  exit=N
 *   progress=MS  fill=random|mixed
 * plus the hidden self-tests selftest-corrupt and selftest-acpi. SIZE is a
 * decimal number with an optional K, M or G suffix (powers of 1024).
 */
#include "user.h"

static char words[CMDLINE_MAX] UBSS;

bool parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul = 1;

	if (!s || !*s)
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (~0ull - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	switch (*s) {
	case 'k':
	case 'K':
		mul = 1ull << 10;
		s++;
		break;
	case 'm':
	case 'M':
		mul = 1ull << 20;
		s++;
		break;
	case 'g':
	case 'G':
		mul = 1ull << 30;
		s++;
		break;
	}
	if (*s || (v && mul > ~0ull / v))
		return false;
	*out = v * mul;
	return true;
}

static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (max - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

static bool streq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/* One word; false with a message in err on errors. */
static bool option(const char *key, const char *val, char *err, size_t errsz)
{
	uint64_t v = 0;
	bool ok = true;

	if (streq(key, "cpuid")) {
		ok = !val || streq(val, "1") || streq(val, "0");
		u_cfg.cpuid = !val || streq(val, "1");
	} else if (streq(key, "dirty")) {
		ok = parse_size(val, &u_cfg.dirty);
		u_cfg.has_dirty = ok && u_cfg.dirty > 0;
		u_cfg.dirty_arg = val;
	} else if (streq(key, "rate")) {
		ok = parse_size(val, &u_cfg.rate);
	} else if (streq(key, "runtime")) {
		ok = parse_uint(val, 100ull * 365 * 86400, &u_cfg.runtime);
		u_cfg.has_runtime = ok;
	} else if (streq(key, "exit")) {
		ok = parse_uint(val, 255, &v);
		u_cfg.exit_status = (uint32_t)v;
		u_cfg.has_exit = ok;
	} else if (streq(key, "cpuid-interval")) {
		ok = parse_uint(val, 86400, &u_cfg.cpuid_interval);
	} else if (streq(key, "progress")) {
		ok = parse_uint(val, 86400000, &u_cfg.progress);
	} else if (streq(key, "fill")) {
		ok = val && (streq(val, "random") || streq(val, "mixed"));
		u_cfg.fill_mixed = ok && streq(val, "mixed");
	} else if (streq(key, "selftest-corrupt") && !val) {
		u_cfg.selftest_corrupt = true;
	} else if (streq(key, "selftest-acpi") && !val) {
		u_cfg.selftest_acpi = true;
	} else {
		fmt_sn(err, errsz, "testguest: unknown option %s", key);
		return false;
	}
	if (!ok)
		fmt_sn(err, errsz, "testguest: bad value for %s: \"%s\"", key, val ? val : "");
	return ok;
}

bool cmdline_parse(char *err, size_t errsz)
{
	char *p = words;

	u_cfg.progress = 1000;
	memcpy(words, k_bootinfo.cmdline, CMDLINE_MAX);
	words[CMDLINE_MAX - 1] = '\0';
	while (*p) {
		char *key, *val = NULL;

		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (!*p)
			break;
		key = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
			if (*p == '=' && !val) {
				*p = '\0';
				val = p + 1;
			}
			p++;
		}
		if (*p)
			*p++ = '\0';
		if (!option(key, val, err, errsz))
			return false;
	}
	return true;
}

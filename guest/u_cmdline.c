/*
 * u_cmdline.c: the command line, space-separated key=value words:
 *   cpuid  cpuid-interval=SECONDS  dirty=SIZE  rate=SIZE  runtime=SECONDS  exit=N
 *   progress=MS  fill=random|mixed  blk=SIZE  rng=N  blkbench=MODE  net=echo
 *   net-announce=on|off  virtio_mmio.device=SIZE@ADDR:IRQ
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

/* SIZE@ADDR:IRQ[:ID] as Linux's virtio_mmio.device= takes it (SIZE and
 * ADDR in decimal or 0x hex, SIZE with an optional K/M/G). */
static bool parse_num(const char **s, uint64_t *out)
{
	uint64_t v = 0, base = 10;
	const char *p = *s;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (;; p++) {
		uint64_t d;
		if (*p >= '0' && *p <= '9')
			d = (uint64_t)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (uint64_t)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (uint64_t)(*p - 'A' + 10);
		else
			break;
		if (v > (~0ull - d) / base)
			return false;
		v = v * base + d;
	}
	if (p == *s)
		return false;
	if (*p == 'K' || *p == 'k')
		v <<= 10, p++;
	else if (*p == 'M' || *p == 'm')
		v <<= 20, p++;
	*s = p;
	*out = v;
	return true;
}

static bool virtio_word(const char *val)
{
	uint64_t size, base, irq;
	const char *p = val;

	if (!p || !parse_num(&p, &size) || *p++ != '@' || !parse_num(&p, &base) || *p++ != ':' ||
	    !parse_num(&p, &irq) || (*p && *p != ':') || irq > 255)
		return false;
	if (u_cfg.nvirtio < sizeof(u_cfg.virtio) / sizeof(u_cfg.virtio[0]))
		u_cfg.virtio[u_cfg.nvirtio++] = (struct virtio_word){base, size, (uint32_t)irq};
	return true;
}

static bool blkbench_mode(const char *val)
{
	static const char *const names[] = {"seqwrite", "seqread", "randwrite", "randread"};
	uint32_t i;

	for (i = 0; val && i < 4; i++)
		if (streq(val, names[i])) {
			u_cfg.blkbench = BLKBENCH_SEQWRITE + i;
			return true;
		}
	return false;
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
	} else if (streq(key, "virtio_mmio.device")) {
		ok = virtio_word(val);
	} else if (streq(key, "blk")) {
		ok = parse_size(val, &u_cfg.blk) && u_cfg.blk % PAGE_SIZE == 0;
	} else if (streq(key, "rng")) {
		ok = parse_size(val, &u_cfg.rng) && u_cfg.rng <= (1u << 20);
	} else if (streq(key, "blkbench")) {
		ok = blkbench_mode(val);
	} else if (streq(key, "net")) {
		ok = val && streq(val, "echo");
		u_cfg.net_echo = ok;
	} else if (streq(key, "net-announce")) {
		ok = val && (streq(val, "on") || streq(val, "off"));
		u_cfg.net_announce = ok && streq(val, "on");
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
	u_cfg.net_announce = true;
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

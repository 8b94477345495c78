/*
 * cpumodels/xsave.c: XSAVE state components: which model features enable
 * which component, and where each lives in the standard (non-compacted)
 * XSAVE area. The standard-format offsets are what the CPU's own XSAVE uses,
 * so they are the vendor's: Intel keeps MPX's slots (AVX-512 from 0x440, PKRU
 * at 0xa80), AMD, which never had MPX, packs them (AVX-512 from 0x340, PKRU at
 * 0x980). Sizes and offsets are from the Intel SDM vol. 1 ch. 13 and the AMD
 * APM vol. 2 ch. 11, and agree with the dumps in ../shared/cpuid-hosts.
 */
#include <errno.h>
#include <string.h>

#include "cpumodels/engine.h"

#define XSAVE_LEGACY_SIZE 512
#define XSAVE_HEADER_SIZE 64

// clang-format off (one component per line reads best as a table)
static const struct xsave_comp intel_layout[] = {
    {2, 256, 0x240, 0, "avx", "YMM_Hi128"},
    {3, 64, 0x3c0, 0, "mpx", "BNDREGS"},
    {4, 64, 0x400, 0, "mpx", "BNDCSR"},
    {5, 64, 0x440, 0, "avx512f", "opmask"},
    {6, 512, 0x480, 0, "avx512f", "ZMM_Hi256"},
    {7, 1024, 0x680, 0, "avx512f", "Hi16_ZMM"},
    {9, 8, 0xa80, 0, "pku", "PKRU"},
    {17, 64, 0xac0, 2, "amx_tile", "XTILECFG"},	   /* 64-byte aligned when compacted */
    {18, 8192, 0xb00, 2, "amx_tile", "XTILEDATA"}, /* aligned; +bit 2 with xfd */
};

static const struct xsave_comp amd_layout[] = {
    {2, 256, 0x240, 0, "avx", "YMM_Hi128"},
    {5, 64, 0x340, 0, "avx512f", "opmask"},
    {6, 512, 0x380, 0, "avx512f", "ZMM_Hi256"},
    {7, 1024, 0x580, 0, "avx512f", "Hi16_ZMM"},
    {9, 8, 0x980, 0, "pku", "PKRU"},
};
// clang-format on

/* The state a feature enables, in words (check's message). */
static const struct {
	const char *feature, *words;
} state_words[] = {
    {"avx", "AVX state"},	  {"mpx", "MPX state"},		  {"avx512f", "AVX-512 state"},
    {"pku", "the PKRU register"}, {"amx_tile", "AMX tile state"},
};

const struct xsave_comp *xsave_layout(enum cpu_vendor v, unsigned *n)
{
	if (v == VENDOR_AMD) {
		*n = sizeof(amd_layout) / sizeof(amd_layout[0]);
		return amd_layout;
	}
	*n = sizeof(intel_layout) / sizeof(intel_layout[0]);
	return intel_layout;
}

/* Features whose state lives in an XSAVE component (beyond x87/SSE). */
static const char *const state_features[] = {"avx", "mpx", "avx512f", "pku", "amx_tile"};

int xsave_components(enum cpu_vendor v, const struct cpufeat_set *fs, uint64_t *mask,
		     struct vmm_error *err)
{
	unsigned n;
	const struct xsave_comp *l = xsave_layout(v, &n);
	*mask = 0;
	if (!cpufeat_set_has_name(fs, "xsave"))
		return 0;
	*mask = 0x3; /* x87 and SSE state */
	for (size_t i = 0; i < sizeof(state_features) / sizeof(state_features[0]); i++) {
		if (!cpufeat_set_has_name(fs, state_features[i]))
			continue;
		bool found = false;
		for (unsigned c = 0; c < n; c++) {
			if (strcmp(l[c].feature, state_features[i]) == 0) {
				*mask |= 1ull << l[c].id;
				found = true;
			}
		}
		if (!found)
			return vmm_error_set(err, -EINVAL,
					     "%s has no XSAVE state layout on %s CPUs",
					     state_features[i], cpu_vendor_string(v));
	}
	return 0;
}

uint32_t xsave_size(enum cpu_vendor v, uint64_t mask)
{
	unsigned n;
	const struct xsave_comp *l = xsave_layout(v, &n);
	uint32_t end = XSAVE_LEGACY_SIZE + XSAVE_HEADER_SIZE;
	for (unsigned c = 0; c < n; c++)
		if ((mask >> l[c].id & 1) && l[c].offset + l[c].size > end)
			end = l[c].offset + l[c].size;
	return end;
}

uint32_t xsave_reset_size(void)
{
	/* XCR0 = x87 only at reset: legacy area plus header */
	return XSAVE_LEGACY_SIZE + XSAVE_HEADER_SIZE;
}

/* How the host's table lays out the components of one feature, compared with
 * the model's layout: 0 same (or not recorded), 1 differs. Writes the host's
 * offsets to host_off. */
static bool host_differs(const struct xsave_comp *l, unsigned n, const char *feature, uint64_t mask,
			 const struct host_cpu *host, uint32_t *host_off, uint32_t *host_size)
{
	bool differs = false;
	for (unsigned c = 0; c < n; c++) {
		host_off[c] = l[c].offset;
		host_size[c] = l[c].size;
		if (!(mask >> l[c].id & 1) || strcmp(l[c].feature, feature) != 0)
			continue;
		/* a component the host table does not list was not recorded
		 * (dumps) or is not supported (then its feature is missing) */
		const struct cpuid_leaf *h = cpuid_table_find(&host->raw, 0xd, l[c].id);
		if (!h || !h->eax)
			continue;
		host_off[c] = h->ebx;
		host_size[c] = h->eax;
		differs = differs || h->eax != l[c].size || h->ebx != l[c].offset;
	}
	return differs;
}

/* "Intel" or "AMD" if the host keeps feature's components where that
 * vendor's CPUs do, else NULL. */
static const char *whose_layout(const char *feature, uint64_t mask, const uint32_t *off,
				const uint32_t *size, const struct xsave_comp *l, unsigned n)
{
	static const enum cpu_vendor vendors[] = {VENDOR_INTEL, VENDOR_AMD};
	for (size_t v = 0; v < 2; v++) {
		unsigned vn;
		const struct xsave_comp *vl = xsave_layout(vendors[v], &vn);
		bool all = true;
		for (unsigned c = 0; c < n && all; c++) {
			if (!(mask >> l[c].id & 1) || strcmp(l[c].feature, feature) != 0)
				continue;
			bool found = false;
			for (unsigned k = 0; k < vn; k++)
				found = found || (vl[k].id == l[c].id && vl[k].offset == off[c] &&
						  vl[k].size == size[c]);
			all = found;
		}
		if (all)
			return vendors[v] == VENDOR_AMD ? "AMD" : "Intel";
	}
	return NULL;
}

unsigned xsave_host_mismatch(enum cpu_vendor v, uint64_t mask, const struct host_cpu *host,
			     char *buf, size_t len)
{
	unsigned n, bad = 0;
	const struct xsave_comp *l = xsave_layout(v, &n);
	size_t used = 0;
	if (len)
		buf[0] = '\0';
	for (size_t s = 0; s < sizeof(state_words) / sizeof(state_words[0]); s++) {
		uint32_t off[16], size[16];
		const char *feat = state_words[s].feature;
		if (n > 16 || !host_differs(l, n, feat, mask, host, off, size))
			continue;
		/* "the model keeps AVX-512 state (opmask, ZMM_Hi256, Hi16_ZMM) at
		 * 0x440, 0x480, 0x680, where Intel CPUs do; this host at 0x340,
		 * 0x380, 0x580, where AMD CPUs do" */
		char names[128] = "", model_at[96] = "", host_at[96] = "";
		size_t un = 0, um = 0, uh = 0;
		for (unsigned c = 0; c < n; c++) {
			if (!(mask >> l[c].id & 1) || strcmp(l[c].feature, feat) != 0)
				continue;
			const char *sep = un ? ", " : "";
			un += (size_t)snprintf(names + un,
					       un < sizeof(names) ? sizeof(names) - un : 0, "%s%s",
					       sep, l[c].name);
			um += (size_t)snprintf(model_at + um,
					       um < sizeof(model_at) ? sizeof(model_at) - um : 0,
					       "%s0x%x", sep, l[c].offset);
			uh += (size_t)snprintf(host_at + uh,
					       uh < sizeof(host_at) ? sizeof(host_at) - uh : 0,
					       "%s0x%x", sep, off[c]);
			bad++;
		}
		const char *hv = whose_layout(feat, mask, off, size, l, n);
		if (used < len) {
			int w =
			    snprintf(buf + used, len - used,
				     "%sthe model keeps %s (%s) at %s, where %s CPUs do; this "
				     "host's CPU keeps it at %s%s%s",
				     used ? "; " : "XSAVE layout differs: ", state_words[s].words,
				     names, model_at, cpu_vendor_name(v), host_at,
				     hv ? ", where " : "", hv ? hv : "");
			used += w > 0 ? (size_t)w : 0;
			if (hv && used < len) {
				w = snprintf(buf + used, len - used, " CPUs do");
				used += w > 0 ? (size_t)w : 0;
			}
		}
	}
	if (bad && used < len)
		snprintf(buf + used, len - used,
			 ". KVM cannot move a guest's XSAVE state, so a guest of this model "
			 "would save and restore those registers at the wrong offsets here");
	return bad;
}

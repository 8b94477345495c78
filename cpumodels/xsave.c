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

static const struct xsave_comp intel_layout[] = {
    {2, 256, 0x240, 0, "avx"},	      /* YMM_Hi128 */
    {3, 64, 0x3c0, 0, "mpx"},	      /* BNDREGS */
    {4, 64, 0x400, 0, "mpx"},	      /* BNDCSR */
    {5, 64, 0x440, 0, "avx512f"},     /* opmask */
    {6, 512, 0x480, 0, "avx512f"},    /* ZMM_Hi256 */
    {7, 1024, 0x680, 0, "avx512f"},   /* Hi16_ZMM */
    {9, 8, 0xa80, 0, "pku"},	      /* PKRU */
    {17, 64, 0xac0, 2, "amx_tile"},   /* XTILECFG (64-byte aligned when compacted) */
    {18, 8192, 0xb00, 2, "amx_tile"}, /* XTILEDATA (aligned; +bit 2 with xfd) */
};

static const struct xsave_comp amd_layout[] = {
    {2, 256, 0x240, 0, "avx"},	    {5, 64, 0x340, 0, "avx512f"}, {6, 512, 0x380, 0, "avx512f"},
    {7, 1024, 0x580, 0, "avx512f"}, {9, 8, 0x980, 0, "pku"},
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

unsigned xsave_host_mismatch(enum cpu_vendor v, uint64_t mask, const struct host_cpu *host,
			     char *buf, size_t len)
{
	unsigned n, bad = 0;
	const struct xsave_comp *l = xsave_layout(v, &n);
	size_t used = 0;
	if (len)
		buf[0] = '\0';
	for (unsigned c = 0; c < n; c++) {
		if (!(mask >> l[c].id & 1))
			continue;
		/* a component the host table does not list was not recorded
		 * (profiles) or is not supported (then its feature is missing) */
		const struct cpuid_leaf *h = cpuid_table_find(&host->raw, 0xd, l[c].id);
		if (!h || !h->eax || (h->eax == l[c].size && h->ebx == l[c].offset))
			continue;
		if (used < len) {
			int w;
			if (h->eax == l[c].size)
				w = snprintf(buf + used, len - used, "%s%u at 0x%x (host 0x%x)",
					     bad ? ", "
						 : "model's XSAVE layout differs from the host's: "
						   "component ",
					     l[c].id, l[c].offset, h->ebx);
			else
				w = snprintf(buf + used, len - used,
					     "%s%u: %u bytes at 0x%x (host %u at 0x%x)",
					     bad ? ", "
						 : "model's XSAVE layout differs from the host's: "
						   "component ",
					     l[c].id, l[c].size, l[c].offset, h->eax, h->ebx);
			used += w > 0 ? (size_t)w : 0;
		}
		bad++;
	}
	return bad;
}

/*
 * migration/handshake.c: the versioned conversation. The source's Header
 * and the destination's first answer (Accepted) carry each side's format
 * version and capabilities; each side uses only what both know, and a
 * refusal names the side that is newer. Format 1.0 peers (vmm 0.1.0) send
 * no list: what they speak is written down here once (caps_1_0).
 */
#include "config.h"
#include "migration/migration.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct {
	enum mig_cap cap;
	const char *name;
} cap_names[] = {
	{MIG_CAP_ACCEPTED, "accepted"},
	{MIG_CAP_GO_PAUSED, "go-paused"},
	/* format 1.2 */
	{MIG_CAP_RAM_PAGES, "ram-pages"},
	{MIG_CAP_ACK, "ack"},
	{MIG_CAP_MULTICONN, "multiconn"},
	{MIG_CAP_LOCAL, "local"},
};
#define NCAPS (sizeof(cap_names) / sizeof(cap_names[0]))

/* Everything this build can do. */
static const unsigned caps_self = MIG_CAP_ACCEPTED | MIG_CAP_GO_PAUSED | MIG_CAP_RAM_PAGES |
				  MIG_CAP_ACK | MIG_CAP_MULTICONN | MIG_CAP_LOCAL;
/* What a format 1.0 peer can do: it sends no list. */
static const unsigned caps_1_0 = MIG_CAP_ACCEPTED | MIG_CAP_GO_PAUSED;

void mig_peer_self(struct mig_peer *p)
{
	memset(p, 0, sizeof(*p));
	p->major = MIG_FORMAT_MAJOR;
	p->minor = MIG_FORMAT_MINOR;
	snprintf(p->vmm_version, sizeof(p->vmm_version), "%s", VMM_VERSION);
	p->caps = caps_self;
}

void mig_caps_format(unsigned caps, char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < NCAPS && at < len; i++)
		if (caps & cap_names[i].cap)
			at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? "," : "",
					       cap_names[i].name);
}

/* Names -> bits; names this build does not know go to *unknown (first one). */
static unsigned caps_parse(char **names, size_t n, const char **unknown)
{
	unsigned caps = 0;
	if (unknown)
		*unknown = NULL;
	for (size_t i = 0; i < n; i++) {
		bool known = false;
		for (size_t j = 0; j < NCAPS && !known; j++)
			if (names[i] && strcmp(names[i], cap_names[j].name) == 0) {
				caps |= cap_names[j].cap;
				known = true;
			}
		if (!known && unknown && !*unknown)
			*unknown = names[i] ? names[i] : "(empty)";
	}
	return caps;
}

static size_t caps_list(unsigned caps, const char **buf, size_t bufn)
{
	size_t n = 0;
	for (size_t i = 0; i < NCAPS && n < bufn; i++)
		if (caps & cap_names[i].cap)
			buf[n++] = cap_names[i].name;
	return n;
}

void mig_caps_to_header(Vmm__Migration__Header *h, unsigned requires, const char **buf,
			size_t bufn)
{
	size_t n = caps_list(caps_self, buf, bufn / 2);
	h->n_capabilities = n;
	h->capabilities = (char **)buf;
	h->n_requires = caps_list(requires, buf + n, bufn - n);
	h->requires = (char **)(buf + n);
}

void mig_caps_to_accepted(Vmm__Migration__Accepted *a, const char **buf, size_t bufn)
{
	a->format_major = MIG_FORMAT_MAJOR;
	a->format_minor = MIG_FORMAT_MINOR;
	a->vmm_version = (char *)VMM_VERSION;
	a->n_capabilities = caps_list(caps_self, buf, bufn);
	a->capabilities = (char **)buf;
}

int mig_peer_from_header(const Vmm__Migration__Header *h, struct mig_peer *out,
			 struct vmm_error *err)
{
	memset(out, 0, sizeof(*out));
	out->major = h->format_major;
	out->minor = h->format_minor;
	snprintf(out->vmm_version, sizeof(out->vmm_version), "%s",
		 h->vmm_version && *h->vmm_version ? h->vmm_version : "?");
	if (h->format_major != MIG_FORMAT_MAJOR)
		return vmm_error_set(err, -EPROTONOSUPPORT,
				     "stream format %u.%u from vmm %s, this vmm (%s) reads %u.x: the %s "
				     "is newer",
				     h->format_major, h->format_minor, out->vmm_version, VMM_VERSION,
				     MIG_FORMAT_MAJOR,
				     h->format_major > MIG_FORMAT_MAJOR ? "source" : "destination");
	bool listed = h->format_minor >= 1 || h->n_capabilities;
	out->caps = listed ? caps_parse(h->capabilities, h->n_capabilities, NULL) : caps_1_0;
	const char *unknown;
	unsigned need = caps_parse(h->requires, h->n_requires, &unknown);
	if (unknown || (need & ~caps_self)) {
		char missing[128];
		mig_caps_format(need & ~caps_self, missing, sizeof(missing));
		return vmm_error_set(err, -EPROTONOSUPPORT,
				     "the source (vmm %s, format %u.%u) is newer: this stream needs "
				     "\"%s\", which this vmm (%s, format %u.%u) cannot do",
				     out->vmm_version, h->format_major, h->format_minor,
				     unknown ? unknown : missing, VMM_VERSION, MIG_FORMAT_MAJOR,
				     MIG_FORMAT_MINOR);
	}
	return 0;
}

void mig_peer_from_accepted(const Vmm__Migration__Accepted *a, struct mig_peer *out)
{
	memset(out, 0, sizeof(*out));
	if (!a->format_major) { /* a 1.0 destination: no version, no list */
		out->major = 1;
		out->minor = 0;
		snprintf(out->vmm_version, sizeof(out->vmm_version), "0.1.x");
		out->caps = caps_1_0;
		return;
	}
	out->major = a->format_major;
	out->minor = a->format_minor;
	snprintf(out->vmm_version, sizeof(out->vmm_version), "%s",
		 a->vmm_version && *a->vmm_version ? a->vmm_version : "?");
	out->caps = caps_parse(a->capabilities, a->n_capabilities, NULL);
}

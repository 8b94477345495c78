/*
 * migration/source.h: an outgoing migration (or snapshot to a file), run by
 * its own worker thread. The main loop starts it, reads its statistics,
 * may cancel it, and is told through `notify` when it ends.
 *
 * Guarantee: until the source has handed the guest over (sent Go), every
 * failure or cancel resumes the guest here unchanged. After Go, a lost
 * connection leaves the guest paused here (never running in two places).
 */
#ifndef VMM_MIGRATION_SOURCE_H
#define VMM_MIGRATION_SOURCE_H

#include <uv.h>

#include "migration/migration.h"
#include "migration/ram.h"
#include "migration/tls.h"

enum mig_status {
	MIG_STATUS_NONE,
	MIG_STATUS_SETUP,
	MIG_STATUS_ACTIVE,
	MIG_STATUS_DEVICE, /* guest stopped, final state being sent */
	MIG_STATUS_COMPLETED,
	MIG_STATUS_FAILED,
	MIG_STATUS_CANCELLED,
};
const char *mig_status_name(enum mig_status s);

/* Whether raw pages carry a hash each (format 1.2). A socket already checks
 * what it carries (TCP's checksum; TLS's authentication once it is on), a
 * file nothing: auto hashes pages for file: only. The hash costs a read of
 * every page on both sides (XXH3-64, ~11 GB/s on one core here). */
enum mig_verify_pages { MIG_VERIFY_AUTO, MIG_VERIFY_ON, MIG_VERIFY_OFF };
const char *mig_verify_pages_name(enum mig_verify_pages v);
int mig_verify_pages_parse(const char *s, enum mig_verify_pages *out);

struct mig_params {
	uint64_t downtime_limit_ms; /* stop the guest once the rest fits in this */
	uint64_t max_bandwidth;	    /* bytes/s, 0 = unlimited */
	int compress_level;	    /* zstd level, 0 = no compression */
	bool auto_converge;	    /* throttle a guest that dirties faster than the link */
	unsigned throttle_initial;  /* percent */
	unsigned throttle_increment;
	unsigned throttle_max;
	uint64_t switchover_timeout_ms; /* guest paused, no Ready yet: resume it here after this */
	enum mig_compress_mode compression; /* auto: zstd only where measured to pay */
	enum mig_verify_pages verify_pages; /* raw pages with their own hash: auto = files */
	unsigned connections;		    /* pages over this many connections (1..8) */
	struct mig_tls_config tls;	/* tls-creds / tls-psk set: tcp: migrations use TLS */
};
void mig_params_default(struct mig_params *p);

struct mig_info {
	enum mig_status status;
	char uri[512];
	char error[VMM_ERROR_MAX];
	uint64_t total_time_ms, setup_time_ms, downtime_ms, expected_downtime_ms;
	uint64_t downtime_source_ms; /* stop until Resumed arrived here (upper bound) */
	uint64_t downtime_us;	     /* downtime_ms with microseconds */
	uint64_t transferred, total, remaining;
	uint64_t duplicate, normal, normal_bytes, untouched;
	uint64_t dirty_pages_rate, dirty_sync_count;
	double mbps, compression_ratio;
	unsigned throttle_pct;
	bool guest_paused;  /* the guest stays paused here (handover outcome unknown) */
	bool peer_known;    /* the destination answered the header: */
	struct mig_peer peer; /* its version and capabilities */
	struct mig_tls_info tls; /* the channel's protection, once connected */
	/* format 1.2 */
	bool local;		       /* a same-host move: the memfd went, not pages */
	unsigned connections;	       /* in use */
	char compression[16];	       /* "none", "zstd-1" */
	char compression_reason[200];  /* why (measured rates) */
	uint64_t zstd_pages;	       /* pages that went compressed */
	uint64_t backlog;	       /* sent, not yet applied by the destination (Acks) */
	double applied_mbps;	       /* end-to-end rate (Mbit/s applied at the destination) */
	uint64_t drain_ms;	       /* waited at the switch-over for the backlog to drain */
	bool acks;		       /* the destination reports what it applied */
};

struct mig_source;

/* Starts migrating vm to uri ("tcp:H:P", "unix:P", "file:P"). `notify` is
 * sent (uv_async_send) when the migration ends, whatever the outcome.
 * user_paused: the operator stopped the guest; the destination keeps it so. */
/* local: a same-host move over unix: (the RAM memfd instead of its pages);
 * refused here, before anything starts, for tcp: and file:. */
int mig_source_start(struct vm *vm, const char *uri, const struct mig_params *params,
		     bool user_paused, bool local, uv_async_t *notify, struct mig_source **out,
		     struct vmm_error *err);
void mig_source_cancel(struct mig_source *s);
/* Changes the downtime limit and bandwidth cap of a running migration. */
void mig_source_set_params(struct mig_source *s, const struct mig_params *p);
/* `cont` after a snapshot (or a handover whose outcome is unknown): drops
 * the migration's pause reference. Returns whether it held one; false with
 * err set when a device cannot take the guest back (an image lock taken). */
bool mig_source_release_pause(struct mig_source *s, struct vmm_error *err);
void mig_source_info(struct mig_source *s, struct mig_info *out);
bool mig_source_finished(struct mig_source *s);
/* True while the guest stays paused because of this migration (a file
 * snapshot, or a lost connection after handover). */
bool mig_source_holds_pause(struct mig_source *s);
/* True when the guest's memory went to a destination that may run it (a
 * local move past Go): the guest must never run here again. */
bool mig_source_memory_given(struct mig_source *s);
/* Joins the worker (it must have finished) and frees. */
void mig_source_free(struct mig_source *s);

#endif

/*
 * migration/multiconn.h: several connections per migration (format 1.2,
 * migrate-set-parameters connections=N). The main connection carries the
 * handshake, the RAM map, its share of the pages and all device state; each
 * of the N-1 data connections carries only pages, from a thread of its own
 * on both sides.
 *
 *   source                                    destination
 *   main: preamble, Header{session, N} ----->  Accepted (the VM is built)
 *   data i: connect, preamble, Hello{session, i} -> checked; a stranger's
 *           connection (no Hello, another session, garbage) is dropped and
 *           the destination goes on waiting for the real ones (bounded)
 *   pages of chunk c go on connection c % N  (per page: one connection, in order)
 *   data i: DataEnd{checksum, records, pages} after the last pass
 *   main: End -> the destination waits for every DataEnd (checked) before
 *         it answers Ready: it never starts a guest with a connection's data
 *         still missing
 */
#ifndef VMM_MIGRATION_MULTICONN_H
#define VMM_MIGRATION_MULTICONN_H

#include "migration/channel.h"
#include "migration/conn.h"
#include "migration/ram.h"

#define MIG_MAX_CONNECTIONS 8
#define MIG_SESSION_ID_LEN  16

/* ---- source ---- */

enum mig_multi_cmd {
	MIG_MULTI_POPULATED, /* pass 0: their share of the populated pages */
	MIG_MULTI_DIRTY,     /* their share of the dirty bitmaps */
	MIG_MULTI_DRAIN,     /* wait until the destination applied what they sent */
	MIG_MULTI_LAST,	     /* the last dirty pass, then DataEnd (one hand-off in the downtime) */
};

struct mig_multi_cfg {
	const char *uri;
	unsigned connections; /* in all, with the main one: N */
	const uint8_t *session;
	struct vm *vm;
	struct mig_flow *flow;
	struct mig_zpool *zpool;
	enum mig_ram_encoding enc;
	bool hash_pages;
	const struct mig_ram_ranges *ranges; /* pass 0's ranges, shared read-only */
	const struct mig_cancel *cancel;     /* wakes their waits */
	const struct mig_tls_creds *tls;     /* NULL: plaintext (as the main connection) */
	const char *tls_hostname;	     /* NULL: the URI's host */
	atomic_bool *abort;		     /* their loops stop when set; they set it on failure */
};

struct mig_multi;
/* Opens connections 1..N-1 (each: connect, TLS when the main one has it,
 * preamble, Hello)
 * and starts their threads. */
int mig_multi_open(struct mig_multi **out, const struct mig_multi_cfg *cfg, struct vmm_error *err);
/* Starts a command on every data connection. */
void mig_multi_start(struct mig_multi *m, enum mig_multi_cmd cmd, const struct vm_dirty_log *d,
		     uint32_t iteration, unsigned drain_ms);
/* Waits until all have done it, calling idle(ctx) every few ms meanwhile;
 * the first failure of any connection. */
int mig_multi_wait(struct mig_multi *m, void (*idle)(void *ctx), void *ctx, struct vmm_error *err);
/* Their statistics, summed. */
void mig_multi_stats(struct mig_multi *m, struct mig_ram_stats *sum, uint64_t *bytes);
void mig_multi_close(struct mig_multi *m);

/* ---- destination ---- */

struct mig_dest_multi;
struct mig_screen;
struct mig_dest_multi_cfg {
	struct mig_screen *screen; /* where they come from, screened (TLS done) */
	const uint8_t *session;
	size_t session_len;
	unsigned connections; /* N: waits for N-1 */
	struct mig_ram_in *ram;
	bool acks;		   /* the source reads Acks */
	struct mig_cancel *cancel; /* raised on failure of any of them, too */
	unsigned timeout_ms;	   /* for all of them to arrive */
	unsigned idle_ms;	   /* the most a data connection may stay silent */
};
/* Takes the N-1 data connections from the screen (a stranger's dropped:
 * the timeout bounds them all) and starts a receiving thread for each. */
int mig_dest_multi_accept(struct mig_dest_multi **out, const struct mig_dest_multi_cfg *cfg,
			  struct vmm_error *err);
/* Whether one of them failed (its error in err). */
bool mig_dest_multi_failed(struct mig_dest_multi *m, struct vmm_error *err);
/* Waits for every DataEnd (each checked: checksum, record count, pages). */
int mig_dest_multi_finish(struct mig_dest_multi *m, struct vmm_error *err);
void mig_dest_multi_close(struct mig_dest_multi *m);

/* Shared by dest.c: an Ack on a receiving connection, when due; `force`
 * before the reader blocks (workers drained first, so what is reported is
 * all that arrived). */
int mig_rx_ack(struct mig_ram_rx *rx, struct mig_writer *reply, struct mig_in *src, bool force,
	       struct vmm_error *err);

#endif

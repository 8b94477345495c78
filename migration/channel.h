/*
 * migration/channel.h: the source's end of a migration, used only by the
 * migration's worker thread: a connection (tcp:HOST:PORT, unix:PATH) or a
 * file (file:PATH, no return path). Writes are buffered into large chunks;
 * while a chunk waits for the socket, the return path is read too, so a
 * destination's Refused ends the migration at once with its reason. No wait
 * is unbounded: a destination that takes nothing for MIG_CHANNEL_STALL_MS
 * is an error, and the owner's cancel wakes every wait.
 */
#ifndef VMM_MIGRATION_CHANNEL_H
#define VMM_MIGRATION_CHANNEL_H

#include "migration/conn.h"
#include "migration/migration.h"
#include "migration/tls.h"
#include "migration/ram.h"

#define MIG_CHANNEL_CHUNK (1u << 20)
#define MIG_CHANNEL_STALL_MS 30000
#define MIG_CHANNEL_CONNECT_MS 10000
/* Longer than the destination's 10 s for a stranger ahead of us in its
 * queue (it serves one connection's handshake at a time). */
#define MIG_TLS_CLIENT_HANDSHAKE_MS 30000

struct mig_channel {
	bool is_file;
	struct mig_conn conn;
	bool conn_open;
	int error; /* first transport error (negative), 0 if none */
	char errmsg[VMM_ERROR_MAX];
	uint8_t *chunk;
	size_t chunk_len;
	atomic_uint_fast64_t acked; /* bytes the transport took */
	struct mig_flow *flow;	    /* optional: totals of all connections, Acks */
	/* what the destination's Acks said (format 1.2) */
	atomic_uint_fast64_t applied, applied_pages;
	uint64_t wait_ns;
	uint64_t want_applied; /* mig_channel_wait_applied's target */
	bool memory_adopted; /* local move: the destination mapped our RAM */
	/* return path */
	struct mig_reader rp;
	bool rp_ready;
	unsigned rec_type; /* last record received, 0 if none pending */
	uint8_t rec_payload[1024];
	size_t rec_len;
	bool eof;
	bool refused;	      /* the destination sent Refused (its reason is errmsg) */
	bool accepted;	      /* the destination sent Accepted (its VM is built) */
	struct mig_peer peer; /* what its Accepted said it is */
	struct mig_tls_info tls; /* what the TLS handshake agreed on (encrypted=false: plain) */
};

/* Connects (or creates the file). `uri` as for the migrate command;
 * `cancel` (kept) wakes every wait of this channel. With `tls` (tcp: only)
 * the TLS handshake runs before anything else: the server's certificate
 * must carry `tls_hostname` (NULL or empty: the URI's host). */
int mig_channel_open(struct mig_channel *c, const char *uri, const struct mig_cancel *cancel,
		     const struct mig_tls_creds *tls, const char *tls_hostname,
		     struct vmm_error *err);
/* mig_sink_fn: buffers, and sends full chunks. */
int mig_channel_write(void *c, const void *data, size_t len, struct vmm_error *err);
/* mig_sink_iov_fn: sends what is buffered, then the buffers as they are
 * (writev: page data goes from guest memory to the socket uncopied). */
int mig_channel_writev(void *c, const struct iovec *iov, int n, struct vmm_error *err);
/* Sends the buffered bytes (one record, just written) with descriptor fd
 * attached: unix: only (a same-host move's RAM). */
int mig_channel_flush_fd(struct mig_channel *c, int fd, struct vmm_error *err);
/* Waits until the destination has acknowledged `bytes` of this connection
 * as applied (or timeout_ms): the backlog drained. */
int mig_channel_wait_applied(struct mig_channel *c, uint64_t bytes, unsigned timeout_ms,
			     struct vmm_error *err);
/* Waits for the destination's Ack that it mapped our RAM (local move). */
int mig_channel_wait_adopted(struct mig_channel *c, unsigned timeout_ms, struct vmm_error *err);
/* Sends the partial chunk (a file: and fsyncs it). */
int mig_channel_flush(struct mig_channel *c, struct vmm_error *err);
/* Reads what the destination sent, without waiting; fails when the
 * transport failed or the destination refused. */
int mig_channel_poll(struct mig_channel *c, struct vmm_error *err);
/* Waits up to timeout_ms for the next return-path record; *type is its
 * type, its payload in c->rec_payload/rec_len. Refused becomes an error. */
int mig_channel_wait_record(struct mig_channel *c, unsigned timeout_ms, unsigned *type,
			    struct vmm_error *err);
/* Waits until the destination has accepted the header and built its VM. */
int mig_channel_wait_accepted(struct mig_channel *c, unsigned timeout_ms, struct vmm_error *err);
/* After a failure: waits up to timeout_ms for the destination's Refused
 * (it may still be in flight when a write already failed). */
void mig_channel_drain(struct mig_channel *c, unsigned timeout_ms);
void mig_channel_close(struct mig_channel *c);

#endif

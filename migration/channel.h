/*
 * migration/channel.h: the source's end of a migration: a libuv socket
 * (tcp:HOST:PORT, unix:PATH) driven by a loop owned by the migration worker
 * thread, or a file (file:PATH, no return path). Writes are buffered into
 * large chunks and handed to uv_write; at most MIG_CHANNEL_INFLIGHT bytes
 * wait in libuv before a write blocks. Records the destination sends back
 * are parsed as they arrive; a Refused record fails the next call with the
 * destination's reason.
 */
#ifndef VMM_MIGRATION_CHANNEL_H
#define VMM_MIGRATION_CHANNEL_H

#include <uv.h>

#include "migration/migration.h"

#define MIG_CHANNEL_CHUNK (1u << 20)
#define MIG_CHANNEL_INFLIGHT (16u << 20)

struct mig_channel {
	bool is_file;
	int fd; /* file transport */
	uv_loop_t loop;
	bool loop_ready;
	union {
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	bool handle_open;
	bool connected;
	int error; /* first transport error (negative), 0 if none */
	char errmsg[VMM_ERROR_MAX];
	uint8_t *chunk;
	size_t chunk_len;
	size_t inflight;
	uint64_t acked; /* bytes libuv reported written */
	/* return path */
	struct mig_reader rp;
	unsigned rec_type; /* last record received, 0 if none pending */
	uint8_t rec_payload[1024];
	size_t rec_len;
	bool eof;
	bool refused;  /* the destination sent Refused (its reason is errmsg) */
	bool accepted; /* the destination sent Accepted (its VM is built) */
	struct mig_peer peer; /* what its Accepted said it is */
};

/* Connects (or creates the file). `uri` as for the migrate command. */
int mig_channel_open(struct mig_channel *c, const char *uri, struct vmm_error *err);
/* mig_sink_fn: buffers, and submits full chunks. */
int mig_channel_write(void *c, const void *data, size_t len, struct vmm_error *err);
/* Submits the partial chunk and waits until libuv wrote everything. */
int mig_channel_flush(struct mig_channel *c, struct vmm_error *err);
/* Runs the loop without blocking (completions, return-path input);
 * fails when the transport failed or the destination refused. */
int mig_channel_poll(struct mig_channel *c, struct vmm_error *err);
/* Waits up to timeout_ms for the next return-path record; *type is its
 * type, its payload in c->rec_payload/rec_len. Refused becomes an error. */
int mig_channel_wait_record(struct mig_channel *c, unsigned timeout_ms, unsigned *type,
			    struct vmm_error *err);
/* Waits until the destination has accepted the header and built its VM. */
int mig_channel_wait_accepted(struct mig_channel *c, unsigned timeout_ms, atomic_bool *cancel,
			      struct vmm_error *err);
/* After a failure: waits up to timeout_ms for the destination's Refused
 * (it may still be in flight when a write already failed). */
void mig_channel_drain(struct mig_channel *c, unsigned timeout_ms);
void mig_channel_close(struct mig_channel *c);

/* URI parsing shared with the destination. */
enum mig_transport { MIG_TCP, MIG_UNIX, MIG_FILE };
struct mig_uri {
	enum mig_transport kind;
	char host[256]; /* tcp: without brackets */
	char port[16];
	char path[512]; /* unix / file */
};
int mig_uri_parse(const char *uri, struct mig_uri *out, struct vmm_error *err);

#endif

/*
 * migration/conn.h: one migration connection (tcp:, unix:) or stream file
 * (file:), driven by one worker thread with non-blocking descriptors and
 * poll(): every wait has a timeout and wakes on the owner's cancel, so no
 * peer can hold a thread forever, and the main libuv loop (control API,
 * console) never waits on a migration's input or output.
 *
 * A connection moves bytes through `ops` (plain: the descriptor itself; a
 * TLS session can stand in its place) and counts them.
 *
 * All functions return 0 (or a byte count) or negative errno with a
 * one-line message naming the peer.
 */
#ifndef VMM_MIGRATION_CONN_H
#define VMM_MIGRATION_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "util/error.h"

enum mig_transport { MIG_TCP, MIG_UNIX, MIG_FILE };

struct mig_uri {
	enum mig_transport kind;
	char host[256]; /* tcp: without brackets */
	char port[16];
	char path[512]; /* unix / file */
};
/* "tcp:HOST:PORT" (HOST may be [v6]), "unix:PATH", "file:PATH". */
int mig_uri_parse(const char *uri, struct mig_uri *out, struct vmm_error *err);

/* A cancel signal a worker's waits watch (an eventfd): any thread may raise it. */
struct mig_cancel {
	int fd;
};
int mig_cancel_init(struct mig_cancel *c, struct vmm_error *err);
void mig_cancel_raise(struct mig_cancel *c);
bool mig_cancel_raised(const struct mig_cancel *c);
void mig_cancel_free(struct mig_cancel *c);

struct mig_conn;
/* How bytes move: the plain descriptor, or a TLS session over it. Same
 * contract as read(2)/writev(2) on a non-blocking descriptor: -EAGAIN when
 * nothing can move now (want_write says which way to poll). */
struct mig_conn_ops {
	ssize_t (*writev)(struct mig_conn *c, const struct iovec *iov, int n);
	ssize_t (*read)(struct mig_conn *c, void *buf, size_t len);
	/* Optional (NULL: read() per buffer): scatter into several buffers, so
	 * page data lands in guest memory without a staging copy. */
	ssize_t (*readv)(struct mig_conn *c, const struct iovec *iov, int n);
	bool (*pending)(struct mig_conn *c); /* bytes already decrypted, not yet read */
	void (*shutdown_write)(struct mig_conn *c); /* may be NULL: before shutdown(SHUT_WR) */
	/* may be NULL: words for the last failure (a TLS alert's name) */
	const char *(*error_detail)(struct mig_conn *c);
	void (*close)(struct mig_conn *c);
};

struct mig_conn {
	int fd;
	enum mig_transport kind;
	char peer[160]; /* "tcp 192.0.2.1:4444", "unix /run/x.sock", "file /var/x" */
	const struct mig_conn_ops *ops;
	void *ops_ctx;
	const struct mig_cancel *cancel; /* may be NULL */
	uint64_t bytes_out, bytes_in;
	uint64_t wait_ns; /* time spent waiting for input: how much the peer kept us idle */
	bool is_fifo; /* a file: that reads as ended until its writer comes */
	/* unix: a descriptor the peer passed (SCM_RIGHTS), kept until taken
	 * with mig_conn_recv_fd(); any further one is closed on arrival */
	bool has_passed_fd;
	int passed_fd;
};

/* TLS (migration/tls.c) wraps a connection right after connect/accept, before
 * any byte of the stream, by setting c->ops/ops_ctx: every later read, readv
 * and writev goes through it. */

/* Source side: connects within timeout_ms (non-blocking connect + poll). */
int mig_conn_connect(struct mig_conn *c, const struct mig_uri *u, unsigned timeout_ms,
		     const struct mig_cancel *cancel, struct vmm_error *err);
/* Creates (O_TRUNC, 0600) or opens a stream file. FIFOs are opened without
 * blocking; reads then wait like a socket's. */
int mig_conn_open_file(struct mig_conn *c, const struct mig_uri *u, bool for_writing,
		       const struct mig_cancel *cancel, struct vmm_error *err);
/* Destination side: a listening socket (backlog 4). A unix path some live
 * process listens on is refused, never unlinked; a stale socket file is
 * replaced; the socket is made mode 0600. */
int mig_conn_listen(const struct mig_uri *u, int *listen_fd, struct vmm_error *err);
/* Waits up to timeout_ms (or for ever with 0) for a connection. */
int mig_conn_accept(int listen_fd, const struct mig_uri *u, struct mig_conn *c,
		    unsigned timeout_ms, const struct mig_cancel *cancel, struct vmm_error *err);

/* What may move now, for callers that interleave both directions. */
#define MIG_CONN_READABLE 0x1
#define MIG_CONN_WRITABLE 0x2
/* Waits up to timeout_ms until the connection is readable (always watched)
 * or, with want_write, writable; *ready gets the MIG_CONN_* bits. */
int mig_conn_wait(struct mig_conn *c, bool want_write, unsigned timeout_ms, unsigned *ready,
		  struct vmm_error *err);
/* One write attempt: bytes written, -EAGAIN when none could be, or an error. */
ssize_t mig_conn_writev_once(struct mig_conn *c, const struct iovec *iov, int n,
			     struct vmm_error *err);

/* Writes every byte, waiting at most timeout_ms for any progress at all
 * (a peer that stops reading is an error, not a hang). */
int mig_conn_writev_all(struct mig_conn *c, struct iovec *iov, int n, unsigned timeout_ms,
			struct vmm_error *err);
int mig_conn_write_all(struct mig_conn *c, const void *buf, size_t len, unsigned timeout_ms,
		       struct vmm_error *err);
/* Reads what is there (up to len), waiting up to timeout_ms for the first
 * byte; 0 at end of stream; -ETIMEDOUT when nothing came; timeout 0 does
 * not wait (returns -EAGAIN when nothing is there). */
ssize_t mig_conn_read(struct mig_conn *c, void *buf, size_t len, unsigned timeout_ms,
		      struct vmm_error *err);
/* Peeks (MSG_PEEK, nothing consumed) until `len` bytes are there, the peer
 * closed, or timeout_ms passed; returns the bytes seen (maybe fewer), or
 * -ETIMEDOUT/-ECANCELED when none came. For telling TLS from plaintext. */
ssize_t mig_conn_peek(struct mig_conn *c, void *buf, size_t len, unsigned timeout_ms,
		      struct vmm_error *err);
/* Ends our direction (TLS: close_notify first); the peer reads EOF after
 * what was sent. */
void mig_conn_shutdown_write(struct mig_conn *c);
/* Like mig_conn_read, scattering into iovecs (through ops->readv when there
 * is one). */
ssize_t mig_conn_readv(struct mig_conn *c, const struct iovec *iov, int n, unsigned timeout_ms,
		       struct vmm_error *err);
/* Whether bytes can be read now without waiting (or the peer hung up). */
bool mig_conn_input_pending(struct mig_conn *c);
/* unix: only: sends `len` bytes with descriptor `fd` attached (SCM_RIGHTS),
 * all of them, waiting at most timeout_ms for progress. */
int mig_conn_send_fd(struct mig_conn *c, int fd, const void *data, size_t len,
		     unsigned timeout_ms, struct vmm_error *err);
/* Takes the descriptor the peer passed (it came with the bytes read so
 * far); -ENOENT when none came. The caller owns it. */
int mig_conn_recv_fd(struct mig_conn *c, int *fd, struct vmm_error *err);
/* Whether the peer is this host: a unix: socket or a loopback address. */
bool mig_conn_same_host(const struct mig_conn *c);
/* A descriptor of another kind (tests, socketpairs): plain ops. */
void mig_conn_from_fd(struct mig_conn *c, int fd, enum mig_transport kind, const char *peer,
		      const struct mig_cancel *cancel);
void mig_conn_close(struct mig_conn *c);

#endif

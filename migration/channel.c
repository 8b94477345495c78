/* migration/channel.c: see channel.h. */
#include "migration/channel.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

__attribute__((format(printf, 3, 4))) static void set_error(struct mig_channel *c, int code,
							     const char *fmt, ...)
{
	if (c->error)
		return;
	c->error = code < 0 ? code : -EIO;
	va_list ap;
	va_start(ap, fmt);
	if (vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap) >= (int)sizeof(c->errmsg))
		c->errmsg[sizeof(c->errmsg) - 1] = '\0';
	va_end(ap);
}

static int on_return_record(void *ctx, const struct mig_record *rec, struct vmm_error *err)
{
	struct mig_channel *c = ctx;
	if (rec->len > sizeof(c->rec_payload))
		return vmm_error_set(err, -EMSGSIZE, "destination sent a %zu-byte %s record",
				     rec->len, mig_record_name(rec->type));
	if (rec->type == MIG_REC_ACK) { /* taken at once: progress, not an answer */
		Vmm__Migration__Ack *a = vmm__migration__ack__unpack(NULL, rec->len, rec->payload);
		if (!a)
			return vmm_error_set(err, -EBADMSG, "destination sent a malformed ack record");
		uint64_t prev = atomic_load(&c->applied), prev_wait = c->wait_ns;
		if (a->applied_bytes > prev) {
			atomic_store(&c->applied, a->applied_bytes);
			if (c->flow)
				atomic_fetch_add(&c->flow->applied, a->applied_bytes - prev);
		}
		atomic_store(&c->applied_pages, a->applied_pages);
		if (a->wait_ns > prev_wait) {
			c->wait_ns = a->wait_ns;
			if (c->flow)
				atomic_fetch_add(&c->flow->dest_wait_ns, a->wait_ns - prev_wait);
		}
		if (a->memory_adopted)
			c->memory_adopted = true;
		vmm__migration__ack__free_unpacked(a, NULL);
		return 0;
	}
	if (rec->type == MIG_REC_ACCEPTED) { /* taken at once: never left pending */
		Vmm__Migration__Accepted *a;
		int r = mig_unpack_bytes(rec->type, &vmm__migration__accepted__descriptor,
					 rec->payload, rec->len, (ProtobufCMessage **)&a, NULL, err);
		if (r < 0)
			return vmm_error_prefix(err, "the destination's answer");
		mig_peer_from_accepted(a, &c->peer);
		vmm__migration__accepted__free_unpacked(a, NULL);
		c->accepted = true;
		return 0;
	}
	c->rec_type = rec->type;
	memcpy(c->rec_payload, rec->payload, rec->len);
	c->rec_len = rec->len;
	if (rec->type == MIG_REC_REFUSED) {
		Vmm__Migration__Refused *ref = NULL;
		struct vmm_error ignored; /* a malformed reason is still a refusal */
		mig_unpack_bytes(rec->type, &vmm__migration__refused__descriptor, rec->payload,
				 rec->len, (ProtobufCMessage **)&ref, NULL, &ignored);
		c->error = 0; /* the destination's reason beats "broken pipe" */
		c->refused = true;
		set_error(c, -ECONNREFUSED, "destination refused: %s",
			  ref && ref->reason ? ref->reason : "(no reason given)");
		if (ref)
			vmm__migration__refused__free_unpacked(ref, NULL);
	}
	return 0;
}

/* Reads and parses whatever the destination sent, without waiting. */
static void read_return_path(struct mig_channel *c)
{
	if (c->is_file || c->eof || !c->conn_open)
		return;
	uint8_t buf[4096];
	for (;;) {
		struct vmm_error e;
		ssize_t n = mig_conn_read(&c->conn, buf, sizeof(buf), 0, &e);
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			c->eof = true;
			if (n == 0)
				set_error(c, -ECONNRESET, "%s", "the destination closed the connection");
			else
				set_error(c, (int)n, "connection to the destination failed: %s", e.msg);
			return;
		}
		if (mig_reader_feed(&c->rp, buf, (size_t)n, &e) < 0) {
			set_error(c, e.code, "%s", e.msg);
			return;
		}
	}
}

static int channel_status(struct mig_channel *c, struct vmm_error *err)
{
	/* An answer that arrived before the peer closed is read first (the
	 * destination closes right after Resumed). Only Ready and Resumed can
	 * be pending, and only while the source is waiting for them. */
	if (c->rec_type && c->rec_type != MIG_REC_REFUSED)
		return 0;
	if (c->error)
		return vmm_error_set(err, c->error, "%s", c->errmsg);
	return 0;
}

int mig_channel_open(struct mig_channel *c, const char *uri, const struct mig_cancel *cancel,
		     const struct mig_tls_creds *tls, const char *tls_hostname,
		     struct vmm_error *err)
{
	memset(c, 0, sizeof(*c));
	c->conn.fd = -1;
	struct mig_uri u;
	int r = mig_uri_parse(uri, &u, err);
	if (r < 0)
		return r;
	c->chunk = malloc(MIG_CHANNEL_CHUNK);
	if (!c->chunk)
		return vmm_error_set(err, -ENOMEM, "migration: out of memory");
	if (u.kind == MIG_FILE) {
		c->is_file = true;
		r = mig_conn_open_file(&c->conn, &u, true, cancel, err);
	} else {
		if ((r = mig_reader_init(&c->rp, false, on_return_record, c, err)) < 0)
			return r;
		c->rp_ready = true;
		r = mig_conn_connect(&c->conn, &u, MIG_CHANNEL_CONNECT_MS, cancel, err);
	}
	c->conn_open = c->conn.fd >= 0;
	if (r == 0 && tls)
		r = mig_tls_client_wrap(&c->conn, tls,
					tls_hostname && *tls_hostname ? tls_hostname : u.host,
					MIG_TLS_CLIENT_HANDSHAKE_MS, &c->tls, err);
	return r;
}

static void count_sent(struct mig_channel *c, size_t n)
{
	atomic_fetch_add(&c->acked, n);
	if (c->flow)
		atomic_fetch_add(&c->flow->sent, n);
}

/* Sends the buffers, reading the return path while the socket is full. */
static int send_iov(struct mig_channel *c, struct iovec *iov, int n, struct vmm_error *err)
{
	if (c->flow) { /* the bandwidth cap, shared by all connections */
		size_t total = 0;
		for (int i = 0; i < n; i++)
			total += iov[i].iov_len;
		mig_flow_throttle(c->flow, total);
	}
	while (n > 0) {
		if (iov->iov_len == 0) {
			iov++, n--;
			continue;
		}
		int r = channel_status(c, err);
		if (r < 0)
			return r;
		struct vmm_error e;
		ssize_t w = mig_conn_writev_once(&c->conn, iov, n, &e);
		if (w > 0) {
			count_sent(c, (size_t)w);
			size_t done = (size_t)w;
			while (n > 0 && done >= iov->iov_len) {
				done -= iov->iov_len;
				iov++, n--;
			}
			if (n > 0) {
				iov->iov_base = (uint8_t *)iov->iov_base + done;
				iov->iov_len -= done;
			}
			continue;
		}
		if (w != -EAGAIN) {
			read_return_path(c); /* a Refused may explain the failure */
			set_error(c, (int)w, "%s", e.msg);
			return channel_status(c, err);
		}
		unsigned ready;
		if ((r = mig_conn_wait(&c->conn, true, MIG_CHANNEL_STALL_MS, &ready, &e)) < 0) {
			set_error(c, r, "%s", e.msg);
			return channel_status(c, err);
		}
		if (ready & MIG_CONN_READABLE)
			read_return_path(c);
	}
	return 0;
}

static int submit_chunk(struct mig_channel *c, struct vmm_error *err)
{
	if (!c->chunk_len)
		return 0;
	struct iovec iov = {c->chunk, c->chunk_len};
	int r = send_iov(c, &iov, 1, err);
	c->chunk_len = 0;
	return r;
}

int mig_channel_writev(void *ctx, const struct iovec *iov, int n, struct vmm_error *err)
{
	struct mig_channel *c = ctx;
	int r = submit_chunk(c, err);
	if (r < 0)
		return r;
	struct iovec local[1 + 1024];
	if (n > (int)(sizeof(local) / sizeof(local[0])))
		return vmm_error_set(err, -E2BIG, "migration: %d buffers in one write", n);
	memcpy(local, iov, (size_t)n * sizeof(*iov)); /* send_iov advances them */
	if ((r = send_iov(c, local, n, err)) < 0)
		return r;
	read_return_path(c); /* Acks, without waiting: the rate and backlog stay fresh */
	return channel_status(c, err);
}

int mig_channel_flush_fd(struct mig_channel *c, int fd, struct vmm_error *err)
{
	if (c->is_file || c->conn.kind != MIG_UNIX)
		return vmm_error_set(err, -EINVAL, "only a unix: socket carries a descriptor");
	int r = channel_status(c, err);
	if (r < 0)
		return r;
	r = mig_conn_send_fd(&c->conn, fd, c->chunk, c->chunk_len, MIG_CHANNEL_STALL_MS, err);
	if (r == 0)
		count_sent(c, c->chunk_len);
	c->chunk_len = 0;
	return r;
}

int mig_channel_write(void *ctx, const void *data, size_t len, struct vmm_error *err)
{
	struct mig_channel *c = ctx;
	const uint8_t *p = data;
	int r = channel_status(c, err);
	while (r == 0 && len) {
		size_t n = MIG_CHANNEL_CHUNK - c->chunk_len;
		if (n > len)
			n = len;
		memcpy(c->chunk + c->chunk_len, p, n);
		c->chunk_len += n;
		p += n;
		len -= n;
		if (c->chunk_len == MIG_CHANNEL_CHUNK)
			r = submit_chunk(c, err);
	}
	return r;
}

int mig_channel_flush(struct mig_channel *c, struct vmm_error *err)
{
	int r = submit_chunk(c, err);
	if (r < 0)
		return r;
	if (c->is_file)
		return fsync(c->conn.fd) < 0 ? vmm_error_set(err, -errno, "fsync: %s", strerror(errno))
					     : 0;
	read_return_path(c);
	return channel_status(c, err);
}

int mig_channel_poll(struct mig_channel *c, struct vmm_error *err)
{
	read_return_path(c);
	return channel_status(c, err);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads the return path until `done` says so, the connection fails or
 * timeout_ms pass; -ETIMEDOUT then. */
static int wait_for(struct mig_channel *c, bool (*done)(struct mig_channel *c),
		    unsigned timeout_ms, struct vmm_error *err)
{
	uint64_t end = mono_ms() + timeout_ms;
	read_return_path(c);
	while (!done(c) && !c->error && !c->eof) {
		uint64_t now = mono_ms();
		if (now >= end)
			return -ETIMEDOUT;
		unsigned ready;
		struct vmm_error e;
		int r = mig_conn_wait(&c->conn, false, (unsigned)(end - now), &ready, &e);
		if (r == -ETIMEDOUT)
			return -ETIMEDOUT;
		if (r < 0)
			return vmm_error_set(err, r, "%s", e.msg);
		read_return_path(c);
	}
	return 0;
}

static bool have_record(struct mig_channel *c)
{
	return c->rec_type != 0;
}

int mig_channel_wait_record(struct mig_channel *c, unsigned timeout_ms, unsigned *type,
			    struct vmm_error *err)
{
	if (c->is_file)
		return vmm_error_set(err, -EINVAL, "a file has no return path");
	int r = wait_for(c, have_record, timeout_ms, err);
	if (r < 0 && r != -ETIMEDOUT)
		return r;
	/* A record that arrived counts even if the peer closed right after it
	 * (it does, after Resumed); Refused is itself an error. */
	if (c->rec_type && c->rec_type != MIG_REC_REFUSED) {
		*type = c->rec_type;
		c->rec_type = 0;
		return 0;
	}
	if (c->error)
		return channel_status(c, err);
	return vmm_error_set(err, -ETIMEDOUT, "no answer from the destination within %u ms",
			     timeout_ms);
}

/* Waits until pred(c) holds: 0; the channel's failure; or -ETIMEDOUT, with
 * "the destination did not <what> within N s" when `what` is given. */
static int wait_until(struct mig_channel *c, bool (*pred)(struct mig_channel *),
		      unsigned timeout_ms, const char *what, struct vmm_error *err)
{
	int r = wait_for(c, pred, timeout_ms, err);
	if (pred(c))
		return 0;
	if (r < 0 && r != -ETIMEDOUT)
		return r;
	if (c->error)
		return channel_status(c, err);
	if (!what)
		return -ETIMEDOUT;
	return vmm_error_set(err, -ETIMEDOUT, "the destination did not %s within %u s", what,
			     timeout_ms / 1000);
}

static bool is_accepted(struct mig_channel *c)
{
	return c->accepted;
}

int mig_channel_wait_accepted(struct mig_channel *c, unsigned timeout_ms, struct vmm_error *err)
{
	return wait_until(c, is_accepted, timeout_ms, "accept the stream", err);
}

static bool is_applied(struct mig_channel *c)
{
	return atomic_load(&c->applied) >= c->want_applied;
}

int mig_channel_wait_applied(struct mig_channel *c, uint64_t bytes, unsigned timeout_ms,
			     struct vmm_error *err)
{
	c->want_applied = bytes;
	return wait_until(c, is_applied, timeout_ms, NULL, err);
}

static bool is_adopted(struct mig_channel *c)
{
	return c->memory_adopted;
}

int mig_channel_wait_adopted(struct mig_channel *c, unsigned timeout_ms, struct vmm_error *err)
{
	return wait_until(c, is_adopted, timeout_ms, "map the guest's memory", err);
}

static bool refused_or_closed(struct mig_channel *c)
{
	return c->refused || c->eof;
}

void mig_channel_drain(struct mig_channel *c, unsigned timeout_ms)
{
	if (c->is_file || !c->conn_open || c->refused || c->eof)
		return;
	struct vmm_error ignored;
	wait_for(c, refused_or_closed, timeout_ms, &ignored);
}

void mig_channel_close(struct mig_channel *c)
{
	mig_conn_close(&c->conn);
	c->conn_open = false;
	if (c->rp_ready)
		mig_reader_free(&c->rp);
	c->rp_ready = false;
	free(c->chunk);
	c->chunk = NULL;
}

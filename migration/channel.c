/* migration/channel.c: see channel.h. */
#include "migration/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 10000

int mig_uri_parse(const char *uri, struct mig_uri *out, struct vmm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(uri, "unix:", 5) == 0 || strncmp(uri, "file:", 5) == 0) {
		out->kind = uri[0] == 'u' ? MIG_UNIX : MIG_FILE;
		if (!uri[5] || strlen(uri + 5) >= sizeof(out->path))
			return vmm_error_set(err, -EINVAL, "uri %s: missing or too long path", uri);
		snprintf(out->path, sizeof(out->path), "%s", uri + 5);
		return 0;
	}
	if (strncmp(uri, "tcp:", 4) != 0)
		return vmm_error_set(err, -EINVAL,
				     "uri %s: expected tcp:HOST:PORT, unix:PATH or file:PATH", uri);
	const char *hp = uri + 4, *colon;
	if (*hp == '[') { /* tcp:[::1]:4444 */
		const char *close = strchr(hp, ']');
		if (!close || close[1] != ':')
			return vmm_error_set(err, -EINVAL, "uri %s: bad IPv6 address", uri);
		if ((size_t)(close - hp - 1) >= sizeof(out->host))
			return vmm_error_set(err, -EINVAL, "uri %s: host too long", uri);
		memcpy(out->host, hp + 1, (size_t)(close - hp - 1));
		colon = close + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon || (size_t)(colon - hp) >= sizeof(out->host))
			return vmm_error_set(err, -EINVAL, "uri %s: expected tcp:HOST:PORT", uri);
		memcpy(out->host, hp, (size_t)(colon - hp));
	}
	const char *port = colon + 1;
	char *end;
	long p = strtol(port, &end, 10);
	if (!*port || *end || p < 0 || p > 65535)
		return vmm_error_set(err, -EINVAL, "uri %s: bad port \"%s\"", uri, port);
	snprintf(out->port, sizeof(out->port), "%ld", p);
	out->kind = MIG_TCP;
	return 0;
}

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
	if (rec->type == MIG_REC_ACCEPTED) { /* taken at once: never left pending */
		Vmm__Migration__Accepted *a =
			vmm__migration__accepted__unpack(NULL, rec->len, rec->payload);
		if (!a)
			return vmm_error_set(err, -EBADMSG, "destination sent a malformed accepted "
					     "record");
		mig_peer_from_accepted(a, &c->peer);
		vmm__migration__accepted__free_unpacked(a, NULL);
		c->accepted = true;
		return 0;
	}
	c->rec_type = rec->type;
	memcpy(c->rec_payload, rec->payload, rec->len);
	c->rec_len = rec->len;
	if (rec->type == MIG_REC_REFUSED) {
		Vmm__Migration__Refused *ref =
			vmm__migration__refused__unpack(NULL, rec->len, rec->payload);
		c->error = 0; /* the destination's reason beats "broken pipe" */
		c->refused = true;
		set_error(c, -ECONNREFUSED, "destination refused: %s",
			  ref && ref->reason ? ref->reason : "(no reason given)");
		if (ref)
			vmm__migration__refused__free_unpacked(ref, NULL);
	}
	return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	static char rbuf[4096]; /* the worker's loop is single-threaded */
	buf->base = rbuf;
	buf->len = sizeof(rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct mig_channel *c = s->data;
	if (n < 0) {
		c->eof = true;
		uv_read_stop(s);
		if (n != UV_EOF)
			set_error(c, (int)n, "connection to the destination failed: %s", uv_strerror((int)n));
		else
			set_error(c, -ECONNRESET, "%s", "the destination closed the connection");
		return;
	}
	struct vmm_error e;
	if (n > 0 && mig_reader_feed(&c->rp, (const uint8_t *)buf->base, (size_t)n, &e) < 0 &&
	    !c->error)
		set_error(c, e.code, "%s", e.msg);
}

struct connect_state {
	struct mig_channel *c;
	bool done;
	int status;
};

static void on_connect(uv_connect_t *req, int status)
{
	struct connect_state *cs = req->data;
	cs->done = true;
	cs->status = status;
}

static void on_timeout(uv_timer_t *t)
{
	struct connect_state *cs = t->data;
	if (!cs->done) {
		cs->done = true;
		cs->status = UV_ETIMEDOUT;
	}
}

static int connect_socket(struct mig_channel *c, const struct mig_uri *u, const char *uri,
			  struct vmm_error *err)
{
	uv_connect_t req;
	struct connect_state cs = {c, false, 0};
	req.data = &cs;
	int r;
	if (u->kind == MIG_TCP) {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
		int g = getaddrinfo(u->host, u->port, &hints, &ai);
		if (g != 0)
			return vmm_error_set(err, -EHOSTUNREACH, "migrate %s: %s", uri, gai_strerror(g));
		uv_tcp_init(&c->loop, &c->h.tcp);
		c->handle_open = true;
		r = uv_tcp_connect(&req, &c->h.tcp, ai->ai_addr, on_connect);
		freeaddrinfo(ai);
	} else {
		uv_pipe_init(&c->loop, &c->h.pipe, 0);
		c->handle_open = true;
		uv_pipe_connect(&req, &c->h.pipe, u->path, on_connect);
		r = 0;
	}
	if (r < 0)
		return vmm_error_set(err, r, "migrate %s: %s", uri, uv_strerror(r));
	uv_timer_t timer;
	uv_timer_init(&c->loop, &timer);
	timer.data = &cs;
	uv_timer_start(&timer, on_timeout, CONNECT_TIMEOUT_MS, 0);
	while (!cs.done)
		uv_run(&c->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(&c->loop, UV_RUN_NOWAIT);
	if (cs.status == UV_ETIMEDOUT && !c->connected) {
		/* The connect request is still pending: closing the handle cancels it. */
		return vmm_error_set(err, -ETIMEDOUT, "migrate %s: no answer within %d s", uri,
				     CONNECT_TIMEOUT_MS / 1000);
	}
	if (cs.status < 0)
		return vmm_error_set(err, cs.status, "migrate %s: cannot connect: %s", uri,
				     uv_strerror(cs.status));
	c->connected = true;
	if (u->kind == MIG_TCP)
		uv_tcp_nodelay(&c->h.tcp, 1);
	c->h.stream.data = c;
	if ((r = uv_read_start(&c->h.stream, on_alloc, on_read)) < 0)
		return vmm_error_set(err, r, "migrate %s: %s", uri, uv_strerror(r));
	return 0;
}

int mig_channel_open(struct mig_channel *c, const char *uri, struct vmm_error *err)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	struct mig_uri u;
	int r = mig_uri_parse(uri, &u, err);
	if (r < 0)
		return r;
	c->chunk = malloc(MIG_CHANNEL_CHUNK);
	if (!c->chunk)
		return vmm_error_set(err, -ENOMEM, "migration: out of memory");
	if (u.kind == MIG_FILE) {
		c->is_file = true;
		c->fd = open(u.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (c->fd < 0)
			return vmm_error_set(err, -errno, "migrate %s: %s", uri, strerror(errno));
		return 0;
	}
	if ((r = uv_loop_init(&c->loop)) < 0)
		return vmm_error_set(err, r, "migration: event loop: %s", uv_strerror(r));
	c->loop_ready = true;
	if ((r = mig_reader_init(&c->rp, false, on_return_record, c, err)) < 0)
		return r;
	return connect_socket(c, &u, uri, err);
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

struct write_req {
	uv_write_t req;
	struct mig_channel *c;
	uint8_t *data;
	size_t len;
};

static void on_write(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct mig_channel *c = w->c;
	c->inflight -= w->len;
	if (status < 0)
		set_error(c, status, "sending to the destination failed: %s", uv_strerror(status));
	else
		c->acked += w->len;
	free(w->data);
	free(w);
}

static int write_file(struct mig_channel *c, const uint8_t *p, size_t len, struct vmm_error *err)
{
	while (len) {
		ssize_t n = write(c->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vmm_error_set(err, -errno, "writing the snapshot: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
		c->acked += (uint64_t)n;
	}
	return 0;
}

static int submit_chunk(struct mig_channel *c, struct vmm_error *err)
{
	if (!c->chunk_len)
		return 0;
	if (c->is_file) {
		int r = write_file(c, c->chunk, c->chunk_len, err);
		c->chunk_len = 0;
		return r;
	}
	struct write_req *w = malloc(sizeof(*w));
	uint8_t *next = malloc(MIG_CHANNEL_CHUNK);
	if (!w || !next) {
		free(w);
		free(next);
		return vmm_error_set(err, -ENOMEM, "migration: out of memory");
	}
	w->c = c;
	w->data = c->chunk;
	w->len = c->chunk_len;
	c->chunk = next;
	c->chunk_len = 0;
	uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)w->len);
	c->inflight += w->len;
	int r = uv_write(&w->req, &c->h.stream, &buf, 1, on_write);
	if (r < 0) {
		c->inflight -= w->len;
		free(w->data);
		free(w);
		set_error(c, r, "sending to the destination failed: %s", uv_strerror(r));
		return channel_status(c, err);
	}
	while (c->inflight > MIG_CHANNEL_INFLIGHT && !c->error)
		uv_run(&c->loop, UV_RUN_ONCE);
	uv_run(&c->loop, UV_RUN_NOWAIT);
	return channel_status(c, err);
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
		return fsync(c->fd) < 0 ? vmm_error_set(err, -errno, "fsync: %s", strerror(errno)) : 0;
	while (c->inflight && !c->error)
		uv_run(&c->loop, UV_RUN_ONCE);
	return channel_status(c, err);
}

int mig_channel_poll(struct mig_channel *c, struct vmm_error *err)
{
	if (!c->is_file)
		uv_run(&c->loop, UV_RUN_NOWAIT);
	return channel_status(c, err);
}

int mig_channel_wait_record(struct mig_channel *c, unsigned timeout_ms, unsigned *type,
			    struct vmm_error *err)
{
	if (c->is_file)
		return vmm_error_set(err, -EINVAL, "a file has no return path");
	struct connect_state cs = {c, false, 0};
	uv_timer_t timer;
	uv_timer_init(&c->loop, &timer);
	timer.data = &cs;
	uv_timer_start(&timer, on_timeout, timeout_ms, 0);
	while (!c->rec_type && !c->error && !cs.done)
		uv_run(&c->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(&c->loop, UV_RUN_NOWAIT);
	/* A record that arrived counts even if the peer closed right after it
	 * (it does, after Resumed); Refused is itself an error. */
	if (c->rec_type && c->rec_type != MIG_REC_REFUSED) {
		*type = c->rec_type;
		c->rec_type = 0;
		return 0;
	}
	if (c->error)
		return channel_status(c, err);
	if (!c->rec_type)
		return vmm_error_set(err, -ETIMEDOUT, "no answer from the destination within %u ms",
				     timeout_ms);
	*type = c->rec_type;
	c->rec_type = 0;
	return 0;
}

int mig_channel_wait_accepted(struct mig_channel *c, unsigned timeout_ms, atomic_bool *cancel,
			      struct vmm_error *err)
{
	for (unsigned waited = 0; !c->accepted; waited += 50) {
		if (atomic_load(cancel))
			return vmm_error_set(err, -ECANCELED, "migration cancelled");
		if (c->error)
			return channel_status(c, err);
		if (waited >= timeout_ms)
			return vmm_error_set(err, -ETIMEDOUT,
					     "the destination did not accept the stream within %u s",
					     timeout_ms / 1000);
		struct connect_state cs = {c, false, 0};
		uv_timer_t timer;
		uv_timer_init(&c->loop, &timer);
		timer.data = &cs;
		uv_timer_start(&timer, on_timeout, 50, 0);
		while (!c->accepted && !c->error && !cs.done)
			uv_run(&c->loop, UV_RUN_ONCE);
		uv_close((uv_handle_t *)&timer, NULL);
		uv_run(&c->loop, UV_RUN_NOWAIT);
	}
	return 0;
}

void mig_channel_drain(struct mig_channel *c, unsigned timeout_ms)
{
	if (c->is_file || !c->connected || c->refused || c->eof)
		return;
	struct connect_state cs = {c, false, 0};
	uv_timer_t timer;
	uv_timer_init(&c->loop, &timer);
	timer.data = &cs;
	uv_timer_start(&timer, on_timeout, timeout_ms, 0);
	while (!c->eof && !c->refused && !cs.done)
		uv_run(&c->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(&c->loop, UV_RUN_NOWAIT);
}

void mig_channel_close(struct mig_channel *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->loop_ready) {
		if (c->handle_open && !uv_is_closing((uv_handle_t *)&c->h))
			uv_close((uv_handle_t *)&c->h, NULL);
		uv_run(&c->loop, UV_RUN_DEFAULT); /* completes pending writes/closes */
		uv_loop_close(&c->loop);
		c->loop_ready = false;
		mig_reader_free(&c->rp);
	}
	free(c->chunk);
	c->chunk = NULL;
}

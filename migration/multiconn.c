/* migration/multiconn.c: see multiconn.h. */
#include "migration/multiconn.h"
#include "migration/screen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HELLO_TIMEOUT_MS 2000 /* a data connection names its session this soon */
#define ACK_BYTES	 (1u << 20)
#define ACK_NS		 2000000ull

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ================= source ================= */

struct mig_data_conn {
	struct mig_multi *m;
	unsigned index;
	struct mig_channel ch;
	struct mig_writer w;
	struct mig_ram_tx tx;
	pthread_t thread;
	bool started, ch_open, w_ready, tx_ready;
};

struct mig_multi {
	struct mig_multi_cfg cfg;
	unsigned n; /* data connections */
	struct mig_data_conn *conns;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	unsigned gen;
	bool quit;
	enum mig_multi_cmd cmd;
	const struct vm_dirty_log *dirty;
	uint32_t iteration;
	unsigned drain_ms;
	unsigned done;
	int error;
	char msg[VMM_ERROR_MAX];
};

static int data_sink(void *ctx, const void *data, size_t len, struct vmm_error *err)
{
	struct mig_data_conn *dc = ctx;
	if (atomic_load(dc->m->cfg.abort))
		return vmm_error_set(err, -ECANCELED, "migration cancelled");
	return mig_channel_write(&dc->ch, data, len, err);
}

static int data_sink_iov(void *ctx, const struct iovec *iov, int n, struct vmm_error *err)
{
	struct mig_data_conn *dc = ctx;
	if (atomic_load(dc->m->cfg.abort))
		return vmm_error_set(err, -ECANCELED, "migration cancelled");
	return mig_channel_writev(&dc->ch, iov, n, err);
}

static int run_cmd(struct mig_data_conn *dc, enum mig_multi_cmd cmd, struct vmm_error *err)
{
	struct mig_multi *m = dc->m;
	int r;
	switch (cmd) {
	case MIG_MULTI_POPULATED:
		dc->tx.iteration = m->iteration;
		r = mig_ram_tx_populated(&dc->tx, m->cfg.abort, err);
		break;
	case MIG_MULTI_DIRTY:
	case MIG_MULTI_LAST:
		dc->tx.iteration = m->iteration;
		r = mig_ram_tx_dirty(&dc->tx, m->dirty, m->cfg.abort, err);
		if (r == 0 && cmd == MIG_MULTI_LAST)
			r = mig_write_data_end(&dc->w,
					       dc->tx.stats.normal_pages + dc->tx.stats.zero_pages, err);
		break;
	case MIG_MULTI_DRAIN:
		if ((r = mig_channel_flush(&dc->ch, err)) < 0)
			return r;
		r = mig_channel_wait_applied(&dc->ch, atomic_load(&dc->ch.acked), m->drain_ms, err);
		return r == -ETIMEDOUT ? 0 : r; /* a slow drain is the caller's call */
	default:
		return 0;
	}
	return r < 0 ? r : mig_channel_flush(&dc->ch, err);
}

static void *data_main(void *arg)
{
	struct mig_data_conn *dc = arg;
	struct mig_multi *m = dc->m;
	unsigned seen = 0;
	char name[16];
	snprintf(name, sizeof(name), "mig-tx%u", dc->index);
	pthread_setname_np(pthread_self(), name); /* for top and perf */
	pthread_mutex_lock(&m->lock);
	for (;;) {
		while (m->gen == seen && !m->quit)
			pthread_cond_wait(&m->cv, &m->lock);
		if (m->quit)
			break;
		seen = m->gen;
		enum mig_multi_cmd cmd = m->cmd;
		pthread_mutex_unlock(&m->lock);
		struct vmm_error err = {0};
		int r = run_cmd(dc, cmd, &err);
		pthread_mutex_lock(&m->lock);
		if (r < 0 && !m->error) {
			m->error = r;
			snprintf(m->msg, sizeof(m->msg), "connection %u: %.900s", dc->index,
				 err.msg);
			atomic_store(m->cfg.abort, true); /* the others stop too */
		}
		m->done++;
		pthread_cond_broadcast(&m->cv);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

static int open_one(struct mig_multi *m, struct mig_data_conn *dc, struct vmm_error *err)
{
	const struct mig_multi_cfg *cfg = &m->cfg;
	int r = mig_channel_open(&dc->ch, cfg->uri, cfg->cancel, cfg->tls, cfg->tls_hostname, err);
	dc->ch_open = true;
	if (r < 0)
		return vmm_error_prefix(err, "data connection %u", dc->index);
	dc->ch.flow = cfg->flow;
	if ((r = mig_writer_init(&dc->w, data_sink, dc, err)) < 0)
		return r;
	dc->w.sink_iov = data_sink_iov;
	dc->w_ready = true;
	Vmm__Migration__Hello hello = VMM__MIGRATION__HELLO__INIT;
	hello.session_id.data = (uint8_t *)cfg->session;
	hello.session_id.len = MIG_SESSION_ID_LEN;
	hello.index = dc->index;
	if ((r = mig_write_preamble(&dc->w, err)) < 0 ||
	    (r = mig_write_record(&dc->w, MIG_REC_HELLO, &hello.base, err)) < 0 ||
	    (r = mig_channel_flush(&dc->ch, err)) < 0)
		return r;
	if ((r = mig_ram_tx_init(&dc->tx, cfg->vm, &dc->w, cfg->enc, dc->index, cfg->connections,
				 err)) < 0)
		return r;
	dc->tx_ready = true;
	dc->tx.flow = cfg->flow;
	dc->tx.zpool = cfg->zpool;
	dc->tx.hash_pages = cfg->hash_pages;
	dc->tx.ranges = cfg->ranges;
	if ((r = pthread_create(&dc->thread, NULL, data_main, dc)) != 0)
		return vmm_error_set(err, -r, "data connection %u: cannot start its thread: %s",
				     dc->index, strerror(r));
	dc->started = true;
	return 0;
}

int mig_multi_open(struct mig_multi **out, const struct mig_multi_cfg *cfg, struct vmm_error *err)
{
	*out = NULL;
	if (cfg->connections < 2 || cfg->connections > MIG_MAX_CONNECTIONS)
		return vmm_error_set(err, -EINVAL, "connections=%u: must be 1..%u",
				     cfg->connections, MIG_MAX_CONNECTIONS);
	struct mig_multi *m = calloc(1, sizeof(*m));
	if (!m)
		return vmm_error_set(err, -ENOMEM, "migration: out of memory");
	m->cfg = *cfg;
	m->n = cfg->connections - 1;
	m->conns = calloc(m->n, sizeof(*m->conns));
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cv, NULL);
	if (!m->conns) {
		mig_multi_close(m);
		return vmm_error_set(err, -ENOMEM, "migration: out of memory");
	}
	for (unsigned i = 0; i < m->n; i++) {
		m->conns[i].m = m;
		m->conns[i].index = i + 1;
		m->conns[i].ch.conn.fd = -1;
	}
	for (unsigned i = 0; i < m->n; i++) {
		int r = open_one(m, &m->conns[i], err);
		if (r < 0) {
			mig_multi_close(m);
			return r;
		}
	}
	*out = m;
	return 0;
}

void mig_multi_start(struct mig_multi *m, enum mig_multi_cmd cmd, const struct vm_dirty_log *d,
		     uint32_t iteration, unsigned drain_ms)
{
	pthread_mutex_lock(&m->lock);
	m->cmd = cmd;
	m->dirty = d;
	m->iteration = iteration;
	m->drain_ms = drain_ms;
	m->done = 0;
	m->gen++;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->lock);
}

int mig_multi_wait(struct mig_multi *m, void (*idle)(void *ctx), void *ctx, struct vmm_error *err)
{
	pthread_mutex_lock(&m->lock);
	while (m->done < m->n) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 5000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&m->cv, &m->lock, &ts);
		if (m->done < m->n && idle) {
			pthread_mutex_unlock(&m->lock);
			idle(ctx);
			pthread_mutex_lock(&m->lock);
		}
	}
	int r = m->error;
	if (r < 0)
		vmm_error_set(err, r, "%s", m->msg);
	pthread_mutex_unlock(&m->lock);
	return r;
}

void mig_multi_stats(struct mig_multi *m, struct mig_ram_stats *sum, uint64_t *bytes)
{
	for (unsigned i = 0; i < m->n; i++) {
		const struct mig_ram_stats *s = &m->conns[i].tx.stats;
		sum->normal_pages += s->normal_pages;
		sum->zero_pages += s->zero_pages;
		sum->data_bytes += s->data_bytes;
		sum->wire_bytes += s->wire_bytes;
		sum->zstd_pages += s->zstd_pages;
		*bytes += m->conns[i].w.bytes;
	}
}

void mig_multi_close(struct mig_multi *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->quit = true;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->lock);
	for (unsigned i = 0; m->conns && i < m->n; i++) {
		struct mig_data_conn *dc = &m->conns[i];
		if (dc->started)
			pthread_join(dc->thread, NULL);
		if (dc->tx_ready)
			mig_ram_tx_free(&dc->tx);
		if (dc->ch_open)
			mig_channel_close(&dc->ch);
		if (dc->w_ready)
			mig_writer_free(&dc->w);
	}
	free(m->conns);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cv);
	free(m);
}

/* ================= destination ================= */

int mig_rx_ack(struct mig_ram_rx *rx, struct mig_writer *reply, struct mig_in *src, bool force,
	       struct vmm_error *err)
{
	if (force) {
		int r = mig_ram_rx_drain(rx, err);
		if (r < 0)
			return r;
	}
	uint64_t applied = mig_ram_rx_applied(rx, src->bytes), now = mono_ns();
	/* Never backwards: with a zstd batch in flight, "applied" is where the
	 * oldest one starts, which may be before what a forced Ack covered. */
	if (applied <= rx->acked_bytes)
		return 0;
	if (!force && applied - rx->acked_bytes < ACK_BYTES && now - rx->ack_ns < ACK_NS)
		return 0;
	Vmm__Migration__Ack a = VMM__MIGRATION__ACK__INIT;
	a.applied_bytes = applied;
	a.applied_pages = rx->pages;
	a.wait_ns = src->conn->wait_ns;
	rx->acked_bytes = applied;
	rx->ack_ns = now;
	return mig_write_record(reply, MIG_REC_ACK, &a.base, err);
}

struct mig_dest_data {
	struct mig_dest_multi *m;
	unsigned index;
	struct mig_conn conn;
	struct mig_in in;
	struct mig_writer reply;
	struct mig_ram_rx rx;
	pthread_t thread;
	bool started, in_ready, reply_ready, rx_ready;
	bool finished;
	int error;
	char msg[VMM_ERROR_MAX];
};

struct mig_dest_multi {
	struct mig_dest_multi_cfg cfg;
	unsigned n;
	struct mig_dest_data *conns;
	pthread_mutex_t lock;
	int error;
	char msg[VMM_ERROR_MAX];
};

static int reply_sink(void *ctx, const void *data, size_t len, struct vmm_error *err)
{
	struct mig_dest_data *dd = ctx;
	return mig_conn_write_all(&dd->conn, data, len, 10000, err);
}

static int data_end(struct mig_dest_data *dd, const struct mig_record *rec, struct vmm_error *err)
{
	Vmm__Migration__DataEnd *e;
	int r =
	    mig_unpack(rec, &vmm__migration__data_end__descriptor, (ProtobufCMessage **)&e, err);
	if (r < 0)
		return r;
	r = mig_ram_rx_end(&dd->rx, rec, e->checksum, e->records, e->ram_pages, err);
	protobuf_c_message_free_unpacked(&e->base, NULL);
	if (r < 0)
		return r;
	return dd->m->cfg.acks ? mig_rx_ack(&dd->rx, &dd->reply, &dd->in, true, err) : 0;
}

static int receive_data(struct mig_dest_data *dd, struct vmm_error *err)
{
	const struct mig_dest_multi_cfg *cfg = &dd->m->cfg;
	for (;;) {
		int r;
		if (cfg->acks && !mig_conn_input_pending(&dd->conn) &&
		    (r = mig_rx_ack(&dd->rx, &dd->reply, &dd->in, true, err)) < 0)
			return r;
		struct mig_record rec;
		r = mig_in_next(&dd->in, &rec, cfg->idle_ms, err);
		if (r == -ECONNRESET && !err->msg[0])
			return vmm_error_set(err, -ECONNRESET,
					     "the source closed it before its end");
		if (r < 0)
			return r;
		switch (rec.type) {
		case MIG_REC_RAM_PAGES:
			r = mig_ram_rx_pages(&dd->rx, &rec, &dd->in, cfg->idle_ms, err);
			if (r == 0 && cfg->acks)
				r = mig_rx_ack(&dd->rx, &dd->reply, &dd->in, false, err);
			break;
		case MIG_REC_DATA_END:
			return data_end(dd, &rec, err);
		default:
			return vmm_error_set(err, -EPROTO, "a %s record on a data connection",
					     mig_record_name(rec.type));
		}
		if (r < 0)
			return r;
	}
}

static void *dest_data_main(void *arg)
{
	struct mig_dest_data *dd = arg;
	struct mig_dest_multi *m = dd->m;
	struct vmm_error err = {0};
	char name[16];
	snprintf(name, sizeof(name), "mig-rx%u", dd->index);
	pthread_setname_np(pthread_self(), name);
	int r = receive_data(dd, &err);
	pthread_mutex_lock(&m->lock);
	dd->finished = true;
	if (r < 0) {
		dd->error = r;
		snprintf(dd->msg, sizeof(dd->msg), "data connection %u: %.900s", dd->index,
			 err.msg);
		if (!m->error && r != -ECANCELED) {
			m->error = r;
			snprintf(m->msg, sizeof(m->msg), "%s", dd->msg);
		}
	}
	pthread_mutex_unlock(&m->lock);
	/* wake the main connection's reader: the migration cannot succeed */
	if (r < 0 && r != -ECANCELED)
		mig_cancel_raise(m->cfg.cancel);
	return NULL;
}

static uint64_t mono_ms(void)
{
	return mono_ns() / 1000000;
}

/* A connection that has just been accepted: preamble and Hello, in time. */
static int check_hello(struct mig_dest_multi *m, struct mig_dest_data *dd, unsigned *index,
		       struct vmm_error *err)
{
	/* It passed the screening as the main one did (with TLS: the same CA
	 * and authz list); the session id ties it to this migration. */
	int r;
	if ((r = mig_in_init(&dd->in, &dd->conn, err)) < 0)
		return r;
	dd->in_ready = true;
	dd->in.max_payload = 4096; /* hello, data-end; ram-pages envelopes are bounded apart */
	struct mig_record rec;
	if ((r = mig_in_preamble(&dd->in, HELLO_TIMEOUT_MS, err)) < 0)
		return r;
	if ((r = mig_in_next(&dd->in, &rec, HELLO_TIMEOUT_MS, err)) < 0)
		return r == -ECONNRESET ? vmm_error_set(err, r, "closed before its hello") : r;
	if (rec.type != MIG_REC_HELLO)
		return vmm_error_set(err, -EPROTO, "starts with a %s record, not hello",
				     mig_record_name(rec.type));
	Vmm__Migration__Hello *h;
	if ((r = mig_unpack(&rec, &vmm__migration__hello__descriptor, (ProtobufCMessage **)&h,
			    err)) < 0)
		return r;
	bool same = h->session_id.len == m->cfg.session_len &&
		    memcmp(h->session_id.data, m->cfg.session, m->cfg.session_len) == 0;
	*index = h->index;
	protobuf_c_message_free_unpacked(&h->base, NULL);
	if (!same)
		return vmm_error_set(err, -EPERM, "names another migration's session");
	if (*index == 0 || *index > m->n)
		return vmm_error_set(err, -EPROTO, "names connection %u of %u", *index, m->n + 1);
	return 0;
}

static void drop(struct mig_dest_data *dd)
{
	if (dd->in_ready)
		mig_in_free(&dd->in);
	dd->in_ready = false;
	mig_conn_close(&dd->conn);
}

int mig_dest_multi_accept(struct mig_dest_multi **out, const struct mig_dest_multi_cfg *cfg,
			  struct vmm_error *err)
{
	*out = NULL;
	if (cfg->connections < 2 || cfg->connections > MIG_MAX_CONNECTIONS)
		return vmm_error_set(err, -EPROTO, "the source wants %u connections (1..%u)",
				     cfg->connections, MIG_MAX_CONNECTIONS);
	if (cfg->session_len != MIG_SESSION_ID_LEN)
		return vmm_error_set(err, -EPROTO, "the header's session id has %zu bytes, not %u",
				     cfg->session_len, MIG_SESSION_ID_LEN);
	if (!cfg->screen)
		return vmm_error_set(err, -EPROTO,
				     "%u connections, but nothing listens here "
				     "(file:)",
				     cfg->connections);
	struct mig_dest_multi *m = calloc(1, sizeof(*m));
	if (!m)
		return vmm_error_set(err, -ENOMEM, "migration: out of memory");
	m->cfg = *cfg;
	m->n = cfg->connections - 1;
	m->conns = calloc(m->n, sizeof(*m->conns));
	pthread_mutex_init(&m->lock, NULL);
	if (!m->conns) {
		mig_dest_multi_close(m);
		return vmm_error_set(err, -ENOMEM, "migration: out of memory");
	}
	for (unsigned i = 0; i < m->n; i++) {
		m->conns[i].m = m;
		m->conns[i].index = i + 1;
		m->conns[i].conn.fd = -1;
	}
	uint64_t deadline = mono_ms() + cfg->timeout_ms;
	unsigned have = 0;
	int r = 0;
	while (have < m->n) {
		uint64_t now = mono_ms();
		if (now >= deadline) {
			r = vmm_error_set(err, -ETIMEDOUT,
					  "only %u of the %u data connections "
					  "arrived within %u s",
					  have, m->n, cfg->timeout_ms / 1000);
			break;
		}
		struct mig_dest_data tmp = {.m = m};
		tmp.conn.fd = -1;
		struct mig_tls_info info;
		r = mig_screen_next(cfg->screen, &tmp.conn, &info, cfg->cancel,
				    (unsigned)(deadline - now), err);
		if (r == -ETIMEDOUT)
			continue; /* says how many came, above */
		if (r < 0)
			break;
		unsigned index = 0;
		struct vmm_error why = {0};
		if (check_hello(m, &tmp, &index, &why) < 0 || m->conns[index - 1].conn.fd >= 0) {
			fprintf(stderr, "vmm: dropped a connection from %s: %s\n", tmp.conn.peer,
				why.msg[0] ? why.msg : "a second one for the same index");
			drop(&tmp);
			continue;
		}
		struct mig_dest_data *dd = &m->conns[index - 1];
		dd->conn = tmp.conn;
		dd->in = tmp.in;
		dd->in.conn = &dd->conn;
		dd->in_ready = true;
		have++;
	}
	for (unsigned i = 0; r == 0 && i < m->n; i++) {
		struct mig_dest_data *dd = &m->conns[i];
		if ((r = mig_writer_init(&dd->reply, reply_sink, dd, err)) < 0)
			break;
		dd->reply_ready = true;
		if ((r = mig_ram_rx_init(&dd->rx, cfg->ram, dd->index, err)) < 0)
			break;
		dd->rx_ready = true;
		if ((r = pthread_create(&dd->thread, NULL, dest_data_main, dd)) != 0) {
			r = vmm_error_set(err, -r, "cannot start a receiving thread: %s",
					  strerror(r));
			break;
		}
		dd->started = true;
	}
	if (r < 0) {
		mig_dest_multi_close(m);
		return r;
	}
	*out = m;
	return 0;
}

bool mig_dest_multi_failed(struct mig_dest_multi *m, struct vmm_error *err)
{
	pthread_mutex_lock(&m->lock);
	bool failed = m->error < 0;
	if (failed)
		vmm_error_set(err, m->error, "%s", m->msg);
	pthread_mutex_unlock(&m->lock);
	return failed;
}

int mig_dest_multi_finish(struct mig_dest_multi *m, struct vmm_error *err)
{
	/* Each thread ends at its DataEnd, on an error, or when its source goes
	 * silent (idle timeout) or the migration is cancelled: bounded. */
	for (unsigned i = 0; i < m->n; i++) {
		struct mig_dest_data *dd = &m->conns[i];
		if (dd->started) {
			pthread_join(dd->thread, NULL);
			dd->started = false;
		}
	}
	if (mig_dest_multi_failed(m, err))
		return err->code;
	for (unsigned i = 0; i < m->n; i++)
		if (m->conns[i].error)
			return vmm_error_set(err, m->conns[i].error, "%s", m->conns[i].msg);
	return 0;
}

void mig_dest_multi_close(struct mig_dest_multi *m)
{
	if (!m)
		return;
	for (unsigned i = 0; m->conns && i < m->n; i++) {
		struct mig_dest_data *dd = &m->conns[i];
		if (dd->started) {
			shutdown(dd->conn.fd, SHUT_RDWR); /* its reads end now */
			pthread_join(dd->thread, NULL);
		}
		if (dd->rx_ready)
			mig_ram_rx_free(&dd->rx);
		if (dd->reply_ready)
			mig_writer_free(&dd->reply);
		drop(dd);
	}
	free(m->conns);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/*
 * migration/screen.c: the listening destination's door (see screen.h).
 *
 * One acceptor thread, and one thread per connection being screened (at
 * most MIG_SCREEN_MAX): the checks reuse the blocking, timeout-bounded
 * connection calls (peek, the TLS handshake), each on its own connection
 * and its own cancel, so one stalling peer never delays another.
 */
#include "migration/screen.h"
#include "migration/migration.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define STR_(x)		   STR__(x)
#define STR__(x)	   #x
#define MIG_SCREEN_MAX_STR STR_(MIG_SCREEN_MAX)
#define REFUSE_WRITE_MS	   1000 /* a stranger that reads nothing gets no longer */
#define ACCEPT_RETRY_US	   100000

enum slot_state { S_FREE, S_SCREENING, S_PASSED };

struct slot {
	struct mig_screen *s;
	enum slot_state state;
	struct mig_conn conn;
	struct mig_cancel cancel; /* eviction and stop: this connection only */
	bool cancel_ready;
	struct mig_tls_info info;
	uint64_t accepted_ms;
	uint64_t seq;	     /* passed in this order */
	const char *evicted; /* why it was cancelled, when it was */
	pthread_t thread;
	bool thread_live; /* joined when the slot is reused, or at stop */
};

struct mig_screen {
	struct mig_screen_cfg cfg;
	pthread_mutex_t lock;
	pthread_cond_t freed; /* a slot became free */
	struct mig_cancel stop;
	int passed_fd; /* eventfd: a connection passed */
	pthread_t acceptor;
	bool acceptor_live, stopping;
	uint64_t seq;
	struct slot slots[MIG_SCREEN_MAX];
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

static unsigned time_left(const struct slot *c)
{
	uint64_t end = c->accepted_ms + c->s->cfg.timeout_ms, now = mono_ms();
	return end > now ? (unsigned)(end - now) : 1;
}

static int conn_sink(void *ctx, const void *data, size_t len, struct vmm_error *err)
{
	return mig_conn_write_all(ctx, data, len, REFUSE_WRITE_MS, err);
}

/* A plaintext Refused, so a source that speaks the wrong way learns why. */
static void refuse_plain(struct slot *c, const char *reason)
{
	struct mig_writer w;
	struct vmm_error ignored;
	if (mig_writer_init(&w, conn_sink, &c->conn, &ignored) < 0)
		return;
	Vmm__Migration__Refused ref = VMM__MIGRATION__REFUSED__INIT;
	ref.reason = (char *)reason;
	mig_write_record(&w, MIG_REC_REFUSED, &ref.base, &ignored);
	mig_writer_free(&w);
	mig_conn_shutdown_write(&c->conn);
}

/* What this destination speaks, from the first bytes; the TLS handshake
 * when it requires TLS. */
static int screen_one(struct slot *c, struct vmm_error *err)
{
	const struct mig_tls_creds *tls = c->s->cfg.tls;
	unsigned char first[MIG_PREAMBLE_SIZE];
	/* plaintext: the whole preamble (a source sends it at once), so a
	 * stranger stalling inside it stalls here */
	size_t want = tls ? MIG_TLS_SNIFF_BYTES : MIG_PREAMBLE_SIZE;
	ssize_t n = mig_conn_peek(&c->conn, first, want, time_left(c), err);
	if (n < 0)
		return (int)n;
	if (n == 0)
		return vmm_error_set(err, -ECONNRESET, "closed without sending anything");
	enum mig_first_bytes kind = mig_tls_classify(first, (size_t)n);
	if (tls && kind == MIG_FIRST_STREAM) {
		refuse_plain(c,
			     "this destination requires TLS (it runs with --tls-creds or "
			     "--tls-psk): set tls-creds (or tls-psk) with migrate-set-parameters "
			     "on the source");
		return vmm_error_set(err, -EPROTO,
				     "a plaintext stream arrived, but this "
				     "destination requires TLS (refused)");
	}
	if (!tls && kind == MIG_FIRST_TLS) {
		refuse_plain(c, "this destination does not use TLS (start it with --tls-creds or "
				"--tls-psk), but the source began a TLS handshake");
		return vmm_error_set(err, -EPROTO,
				     "a TLS ClientHello arrived, but this destination "
				     "has no --tls-creds/--tls-psk (refused)");
	}
	if (tls && kind != MIG_FIRST_TLS)
		return vmm_error_set(err, -EPROTO, "neither a TLS handshake nor a vmm stream");
	if (!tls) {
		if ((size_t)n < want || memcmp(first, MIG_MAGIC, sizeof(MIG_MAGIC)) != 0)
			return vmm_error_set(err, -EPROTO,
					     "not a vmm migration stream (bad magic, %zd of %zu "
					     "preamble bytes)",
					     n, want);
		return 0; /* the session's reader judges the version */
	}
	return mig_tls_server_wrap(&c->conn, tls, time_left(c), &c->info, err);
}

static void report(struct mig_screen *s, const char *peer, const char *why)
{
	if (s->cfg.dropped)
		s->cfg.dropped(s->cfg.ctx, peer, why);
}

static void *screen_main(void *arg)
{
	struct slot *c = arg;
	struct mig_screen *s = c->s;
	char name[16];
	snprintf(name, sizeof(name), "mig-screen%d", (int)(c - s->slots));
	pthread_setname_np(pthread_self(), name);
	struct vmm_error err = {0};
	int r = screen_one(c, &err);
	pthread_mutex_lock(&s->lock);
	if (r == 0 && !s->stopping) {
		c->state = S_PASSED;
		c->seq = ++s->seq;
		pthread_mutex_unlock(&s->lock);
		uint64_t one = 1;
		if (write(s->passed_fd, &one, sizeof(one)) < 0)
			(void)0; /* the counter is full: it is readable either way */
		return NULL;
	}
	const char *why = c->evicted ? c->evicted : err.msg;
	pthread_mutex_unlock(&s->lock);
	report(s, c->conn.peer, why);
	mig_conn_close(&c->conn);
	pthread_mutex_lock(&s->lock);
	c->state = S_FREE;
	pthread_cond_broadcast(&s->freed);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* With the lock held: a free slot (its last thread joined), evicting the
 * connection screened longest when all are taken; NULL when every slot
 * holds a connection that passed (the session has not taken them yet). */
static struct slot *take_slot(struct mig_screen *s)
{
	for (;;) {
		struct slot *oldest = NULL;
		for (unsigned i = 0; i < MIG_SCREEN_MAX; i++) {
			struct slot *c = &s->slots[i];
			if (c->state == S_FREE) {
				if (c->thread_live) {
					pthread_join(c->thread, NULL); /* it has finished */
					c->thread_live = false;
				}
				if (c->cancel_ready)
					mig_cancel_free(&c->cancel);
				c->cancel_ready = false;
				return c;
			}
			if (c->state == S_SCREENING && !c->evicted &&
			    (!oldest || c->accepted_ms < oldest->accepted_ms))
				oldest = c;
		}
		if (s->stopping)
			return NULL;
		if (oldest) {
			oldest->evicted = "evicted: " MIG_SCREEN_MAX_STR " connections were being "
					  "screened and this one had waited longest";
			mig_cancel_raise(&oldest->cancel);
		} else {
			bool evicting = false;
			for (unsigned i = 0; i < MIG_SCREEN_MAX; i++)
				evicting |= s->slots[i].state == S_SCREENING;
			if (!evicting)
				return NULL;
		}
		pthread_cond_wait(&s->freed, &s->lock);
	}
}

static void *accept_main(void *arg)
{
	struct mig_screen *s = arg;
	pthread_setname_np(pthread_self(), "mig-accept");
	for (;;) {
		struct mig_conn conn;
		struct vmm_error err = {0};
		int r = mig_conn_accept(s->cfg.listen_fd, s->cfg.uri, &conn, 0, &s->stop, &err);
		if (r == 0 && mig_cancel_raised(&s->stop)) {
			report(s, conn.peer, "the destination stopped listening");
			mig_conn_close(&conn);
		}
		if (r == -ECANCELED || mig_cancel_raised(&s->stop))
			break;
		if (r < 0) { /* e.g. EMFILE: the descriptors may come back */
			fprintf(stderr, "vmm: incoming connections: %s\n", err.msg);
			usleep(ACCEPT_RETRY_US);
			continue;
		}
		pthread_mutex_lock(&s->lock);
		struct slot *c = take_slot(s);
		if (!c) {
			pthread_mutex_unlock(&s->lock);
			report(s, conn.peer,
			       s->stopping ? "the destination stopped listening"
					   : MIG_SCREEN_MAX_STR " connections passed screening and "
								"wait for the destination");
			mig_conn_close(&conn);
			continue;
		}
		if (mig_cancel_init(&c->cancel, &err) < 0) {
			pthread_mutex_unlock(&s->lock);
			report(s, conn.peer, err.msg);
			mig_conn_close(&conn);
			continue;
		}
		c->cancel_ready = true;
		c->conn = conn;
		c->conn.cancel = &c->cancel;
		memset(&c->info, 0, sizeof(c->info));
		c->accepted_ms = mono_ms();
		c->evicted = NULL;
		c->state = S_SCREENING;
		r = pthread_create(&c->thread, NULL, screen_main, c);
		c->thread_live = r == 0;
		if (r != 0) {
			c->state = S_FREE;
			pthread_mutex_unlock(&s->lock);
			report(s, c->conn.peer, "no thread to screen it");
			mig_conn_close(&c->conn);
			continue;
		}
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

int mig_screen_start(struct mig_screen **out, const struct mig_screen_cfg *cfg,
		     struct vmm_error *err)
{
	struct mig_screen *s = calloc(1, sizeof(*s));
	if (!s)
		return vmm_error_set(err, -ENOMEM, "migration: out of memory");
	s->cfg = *cfg;
	for (unsigned i = 0; i < MIG_SCREEN_MAX; i++)
		s->slots[i].s = s;
	s->passed_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int r = s->passed_fd < 0 ? vmm_error_set(err, -errno, "eventfd: %s", strerror(errno))
				 : mig_cancel_init(&s->stop, err);
	if (r < 0) {
		if (s->passed_fd >= 0)
			close(s->passed_fd);
		free(s);
		return r;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->freed, NULL);
	if ((r = pthread_create(&s->acceptor, NULL, accept_main, s)) != 0) {
		mig_screen_stop(s, "");
		return vmm_error_set(err, -r, "migration: cannot start the acceptor: %s",
				     strerror(r));
	}
	s->acceptor_live = true;
	*out = s;
	return 0;
}

int mig_screen_next(struct mig_screen *s, struct mig_conn *conn, struct mig_tls_info *info,
		    const struct mig_cancel *cancel, unsigned timeout_ms, struct vmm_error *err)
{
	uint64_t end = mono_ms() + timeout_ms;
	for (;;) {
		pthread_mutex_lock(&s->lock);
		struct slot *first = NULL;
		for (unsigned i = 0; i < MIG_SCREEN_MAX; i++) {
			struct slot *c = &s->slots[i];
			if (c->state == S_PASSED && (!first || c->seq < first->seq))
				first = c;
		}
		if (first) {
			*conn = first->conn;
			conn->cancel = cancel; /* the slot's cancel is reused */
			*info = first->info;
			first->state = S_FREE;
			pthread_cond_broadcast(&s->freed);
			pthread_mutex_unlock(&s->lock);
			return 0;
		}
		pthread_mutex_unlock(&s->lock);
		int wait = -1;
		if (timeout_ms) {
			uint64_t now = mono_ms();
			if (now >= end)
				return vmm_error_set(err, -ETIMEDOUT, "no connection within %u s",
						     timeout_ms / 1000);
			wait = (int)(end - now);
		}
		struct pollfd p[2] = {{.fd = s->passed_fd, .events = POLLIN},
				      {.fd = cancel ? cancel->fd : -1, .events = POLLIN}};
		int r = poll(p, 2, wait);
		if (r < 0 && errno != EINTR)
			return vmm_error_set(err, -errno, "waiting for a connection: %s",
					     strerror(errno));
		if (p[1].revents)
			return vmm_error_set(err, -ECANCELED,
					     "waiting for a connection: cancelled");
		uint64_t n;
		if (p[0].revents && read(s->passed_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
			return vmm_error_set(err, -errno, "eventfd: %s", strerror(errno));
	}
}

void mig_screen_stop(struct mig_screen *s, const char *why)
{
	if (!s)
		return;
	mig_cancel_raise(&s->stop);
	if (s->acceptor_live)
		pthread_join(s->acceptor, NULL);
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	for (unsigned i = 0; i < MIG_SCREEN_MAX; i++) {
		struct slot *c = &s->slots[i];
		if (c->state == S_SCREENING) {
			c->evicted = why;
			mig_cancel_raise(&c->cancel);
		}
	}
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < MIG_SCREEN_MAX; i++) {
		struct slot *c = &s->slots[i];
		if (c->thread_live)
			pthread_join(c->thread, NULL);
		if (c->state == S_PASSED) { /* passed, never taken */
			report(s, c->conn.peer, why);
			mig_conn_close(&c->conn);
		}
		if (c->cancel_ready)
			mig_cancel_free(&c->cancel);
	}
	mig_cancel_free(&s->stop);
	close(s->passed_fd);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->freed);
	free(s);
}

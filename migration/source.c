/* migration/source.c: the outgoing migration (see source.h and STREAM.md). */
#include "migration/source.h"
#include "migration/channel.h"
#include "migration/local.h"
#include "migration/multiconn.h"

#include <errno.h>
#include <sys/random.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SIZE 4096u
/* A destination that does not answer the header within this long is not
 * going to: the guest keeps running here. A listening destination serves
 * one connection at a time and gives a stranger ahead of us up to 10 s
 * (dest.c): 30 s leaves room for two of them. */
#define HANDSHAKE_TIMEOUT_MS 30000
#define RESUMED_TIMEOUT_MS 30000
#define THROTTLE_PERIOD_US 20000
#define MAX_SHRINK_PASSES 10 /* extra passes while the dirty set keeps halving */
#define DRAIN_MIN_MS 1000    /* the most the switch-over waits for the backlog: */
#define DRAIN_LIMIT_X 4	     /* ... or this many downtime limits, whichever is more */
#define MAX_DRAINS 8	     /* waits for the backlog before the switch-over goes ahead anyway */
#define ADOPT_TIMEOUT_MS 10000 /* local move: the destination maps the RAM this soon */

struct mig_source {
	struct vm *vm;
	struct mig_params params;
	uv_async_t *notify;
	pthread_t thread;
	pthread_t throttle_thread;
	bool throttle_running;
	atomic_bool cancel;	     /* the operator's migrate-cancel */
	atomic_bool abort;	     /* cancel, or a failure: every sender stops */
	struct mig_cancel cancel_ev; /* wakes the channel's waits on cancel */
	bool local;		     /* same-host move: the memfd, not the pages */
	bool memory_given;	     /* local move past Go: the memory is the destination's */
	atomic_bool finished;
	atomic_uint throttle_pct;
	atomic_bool throttle_stop;
	bool paused_by_us;	/* holding a pause reference */
	bool user_paused;	/* the operator's `stop` was in force: the destination keeps it */
	bool keep_paused;	/* after handover or a snapshot */
	pthread_mutex_t lock; /* guards info */
	struct mig_info info;

	struct mig_channel ch;
	struct mig_tls_creds *tls; /* loaded at start: bad files fail `migrate` at once */
	struct mig_writer w;
	struct mig_ram_tx ram; /* the main connection's share of the pages */
	bool ram_ready;
	struct mig_flow flow;
	struct mig_zpool *zpool;
	struct mig_multi *multi; /* the data connections (connections > 1) */
	unsigned nconns;
	uint8_t session[MIG_SESSION_ID_LEN];
	uint32_t iteration;
	bool merge_next; /* the next sync adds to the bitmap (it was not sent yet) */
	struct mig_ram_ranges ranges; /* the map's walk, for pass 0 */
	struct vm_dirty_log dirty;
	uint64_t header_sent_ns;
	uint64_t t_start_ns;
	uint64_t log_start_ns; /* dirty logging began: the first pass's dirt counts from here */
	uint64_t last_update_ns;
};

const char *mig_status_name(enum mig_status s)
{
	static const char *const names[] = {"none",	 "setup",  "active",   "device",
					    "completed", "failed", "cancelled"};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

const char *mig_verify_pages_name(enum mig_verify_pages v)
{
	return v == MIG_VERIFY_ON ? "on" : v == MIG_VERIFY_OFF ? "off" : "auto";
}

int mig_verify_pages_parse(const char *s, enum mig_verify_pages *out)
{
	if (strcmp(s, "auto") == 0)
		*out = MIG_VERIFY_AUTO;
	else if (strcmp(s, "on") == 0)
		*out = MIG_VERIFY_ON;
	else if (strcmp(s, "off") == 0)
		*out = MIG_VERIFY_OFF;
	else
		return -EINVAL;
	return 0;
}

void mig_params_default(struct mig_params *p)
{
	*p = (struct mig_params){
		.downtime_limit_ms = 300, /* QEMU's default */
		.max_bandwidth = 0,
		.compress_level = 1,
		.auto_converge = true,
		.throttle_initial = 20,
		.throttle_increment = 10,
		.throttle_max = 99,
		.switchover_timeout_ms = 5000,
		.compression = MIG_COMPRESS_AUTO,
		.connections = 1,
	};
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void)
{
	return now_ns(CLOCK_MONOTONIC);
}

static void update_counters(struct mig_source *s)
{
	struct mig_ram_stats st = s->ram.stats;
	uint64_t bytes = s->w.bytes;
	if (s->multi)
		mig_multi_stats(s->multi, &st, &bytes);
	char mode[16], why[200];
	mig_flow_describe(&s->flow, mode, sizeof(mode), why, sizeof(why));
	double rate = mig_flow_rate(&s->flow);
	pthread_mutex_lock(&s->lock);
	s->info.transferred = bytes;
	s->info.duplicate = st.zero_pages;
	s->info.normal = st.normal_pages;
	s->info.normal_bytes = st.normal_pages * PAGE_SIZE;
	s->info.untouched = st.untouched_pages;
	s->info.zstd_pages = st.zstd_pages;
	s->info.total_time_ms = (mono_ns() - s->t_start_ns) / 1000000;
	if (s->info.dirty_sync_count == 0) { /* first pass: all not yet sent or skipped */
		uint64_t done = (st.normal_pages + st.zero_pages + st.untouched_pages) * PAGE_SIZE;
		uint64_t ns = mono_ns() - s->t_start_ns + 1;
		s->info.remaining = done < s->info.total ? s->info.total - done : 0;
		s->info.mbps = (double)bytes * 8e3 / (double)ns; /* Mbit/s */
	}
	if (st.wire_bytes)
		s->info.compression_ratio = (double)st.data_bytes / (double)st.wire_bytes;
	s->info.throttle_pct = atomic_load(&s->throttle_pct);
	snprintf(s->info.compression, sizeof(s->info.compression), "%s", mode);
	snprintf(s->info.compression_reason, sizeof(s->info.compression_reason), "%s", why);
	s->info.backlog = mig_flow_backlog(&s->flow);
	s->info.applied_mbps = rate * 8 / 1e6;
	s->info.acks = atomic_load(&s->flow.acks);
	s->info.connections = s->nconns;
	pthread_mutex_unlock(&s->lock);
}

static void set_status(struct mig_source *s, enum mig_status st)
{
	pthread_mutex_lock(&s->lock);
	s->info.status = st;
	pthread_mutex_unlock(&s->lock);
}

/* The destination's Accepted: its version and capabilities, once. */
static int check_accepted(struct mig_source *s, struct vmm_error *err)
{
	if (!s->ch.accepted || s->info.peer_known)
		return 0;
	pthread_mutex_lock(&s->lock);
	s->info.peer = s->ch.peer;
	s->info.peer_known = true;
	pthread_mutex_unlock(&s->lock);
	/* A paused guest must stay paused at the destination. */
	if (s->user_paused && !(s->ch.peer.caps & MIG_CAP_GO_PAUSED))
		return vmm_error_set(err, -EPROTONOSUPPORT,
				     "the destination (vmm %s, format %u.%u) is older: it would run a "
				     "guest paused here (no \"go-paused\"); resume it or upgrade the "
				     "destination",
				     s->ch.peer.vmm_version, s->ch.peer.major, s->ch.peer.minor);
	return 0;
}

/* Fails when the destination has not answered the header in time. */
static int check_handshake(struct mig_source *s, struct vmm_error *err)
{
	if (s->ch.is_file || s->ch.accepted)
		return check_accepted(s, err);
	if (mono_ns() - s->header_sent_ns > HANDSHAKE_TIMEOUT_MS * 1000000ull)
		return vmm_error_set(err, -ETIMEDOUT,
				     "the destination did not answer the stream's header within %u s "
				     "(a vmm older than format 1.0, or not a vmm at all)",
				     HANDSHAKE_TIMEOUT_MS / 1000);
	return 0;
}

static void tick(struct mig_source *s)
{
	uint64_t now = mono_ns();
	mig_flow_tick(&s->flow, now);
	if (now - s->last_update_ns > 20000000ull) { /* statistics every 20 ms */
		s->last_update_ns = now;
		update_counters(s);
	}
}

/* The writer's sinks: the channel (which keeps the bandwidth cap), with cancel. */
static int source_sink(void *ctx, const void *data, size_t len, struct vmm_error *err)
{
	struct mig_source *s = ctx;
	if (atomic_load(&s->abort))
		return vmm_error_set(err, -ECANCELED, "migration cancelled");
	int r = mig_channel_write(&s->ch, data, len, err);
	if (r == 0)
		tick(s);
	return r;
}

static int source_sink_iov(void *ctx, const struct iovec *iov, int n, struct vmm_error *err)
{
	struct mig_source *s = ctx;
	if (atomic_load(&s->abort))
		return vmm_error_set(err, -ECANCELED, "migration cancelled");
	int r = mig_channel_writev(&s->ch, iov, n, err);
	if (r == 0)
		tick(s);
	return r;
}

/* ---- auto-converge: run the vCPUs only part of each period ---- */

static void *throttle_main(void *arg)
{
	struct mig_source *s = arg;
	while (!atomic_load(&s->throttle_stop)) {
		unsigned pct = atomic_load(&s->throttle_pct);
		if (!pct) {
			usleep(THROTTLE_PERIOD_US);
			continue;
		}
		vm_pause(s->vm);
		usleep(THROTTLE_PERIOD_US * pct / 100);
		vm_resume(s->vm);
		usleep(THROTTLE_PERIOD_US * (100 - pct) / 100);
	}
	return NULL;
}

static void throttle_stop(struct mig_source *s)
{
	if (!s->throttle_running)
		return;
	atomic_store(&s->throttle_stop, true);
	pthread_join(s->throttle_thread, NULL);
	s->throttle_running = false;
}

static void throttle_raise(struct mig_source *s)
{
	unsigned pct = atomic_load(&s->throttle_pct);
	pct = pct ? pct + s->params.throttle_increment : s->params.throttle_initial;
	if (pct > s->params.throttle_max)
		pct = s->params.throttle_max;
	atomic_store(&s->throttle_pct, pct);
	if (!s->throttle_running &&
	    pthread_create(&s->throttle_thread, NULL, throttle_main, s) == 0)
		s->throttle_running = true;
}

/* ---- phases ---- */

static int send_header(struct mig_source *s, struct vmm_error *err)
{
	struct mig_header_buf *hb;
	/* A paused guest needs a destination that keeps it paused; a local
	 * move one that can map the memory (an older one refuses, clearly). */
	unsigned requires = (s->user_paused ? MIG_CAP_GO_PAUSED : 0) | (s->local ? MIG_CAP_LOCAL : 0);
	int r = mig_header_build(s->vm, requires, &hb, err);
	if (r < 0)
		return r;
	Vmm__Migration__Header *h = mig_header_msg(hb);
	h->session_id.data = s->session;
	h->session_id.len = sizeof(s->session);
	h->connections = s->nconns;
	h->local = s->local;
	r = mig_write_preamble(&s->w, err);
	if (r == 0)
		r = mig_write_record(&s->w, MIG_REC_HEADER, &h->base, err);
	mig_header_buf_free(hb);
	/* The populated ranges next, so the destination maps them while the
	 * pages are on their way (an older one skips the optional record). */
	if (r == 0 && !s->local)
		r = mig_ram_send_map(s->vm, &s->w, &s->abort, &s->ranges, err);
	s->header_sent_ns = mono_ns();
	/* Out at once: the destination builds its VM meanwhile. */
	return r < 0 ? r : mig_channel_flush(&s->ch, err);
}

/* While waiting for the data connections: the main one's return path
 * (Acks, a Refused), the flow and the statistics. */
static void idle(void *ctx)
{
	struct mig_source *s = ctx;
	struct vmm_error ignored;
	mig_channel_poll(&s->ch, &ignored);
	tick(s);
}

/* One pass over RAM on every connection: pass 0 (populated pages) or the
 * dirty bitmaps. The main connection does its share in this thread. */
static int pass(struct mig_source *s, bool populated, bool last, struct vmm_error *err)
{
	uint32_t it = ++s->iteration;
	if (s->multi)
		mig_multi_start(s->multi,
				populated ? MIG_MULTI_POPULATED
					  : last ? MIG_MULTI_LAST : MIG_MULTI_DIRTY,
				&s->dirty, it, 0);
	s->ram.iteration = it;
	int r = populated ? mig_ram_tx_populated(&s->ram, &s->abort, err)
			  : mig_ram_tx_dirty(&s->ram, &s->dirty, &s->abort, err);
	if (r == 0)
		r = mig_channel_flush(&s->ch, err);
	if (r < 0)
		atomic_store(&s->abort, true); /* the data connections stop too */
	if (s->multi) {
		struct vmm_error e2 = {0};
		int r2 = mig_multi_wait(s->multi, idle, s, &e2);
		/* their failure is the reason when ours is only "stopped" */
		if (r2 < 0 && (r == 0 || (r == -ECANCELED && !atomic_load(&s->cancel)))) {
			*err = e2;
			r = r2;
		}
	}
	return r;
}

/* Waits (bounded) until the destination has applied what was sent. */
static int drain(struct mig_source *s, unsigned timeout_ms, struct vmm_error *err)
{
	if (s->multi)
		mig_multi_start(s->multi, MIG_MULTI_DRAIN, NULL, 0, timeout_ms);
	int r = mig_channel_flush(&s->ch, err);
	if (r == 0) {
		r = mig_channel_wait_applied(&s->ch, atomic_load(&s->ch.acked), timeout_ms, err);
		if (r == -ETIMEDOUT)
			r = 0;
	}
	if (s->multi) {
		struct vmm_error e2 = {0};
		int r2 = mig_multi_wait(s->multi, idle, s, &e2);
		if (r == 0 && r2 < 0) {
			*err = e2;
			r = r2;
		}
	}
	return r;
}

/* Pre-copy until the dirty rest, plus what the destination has not applied
 * yet, fits in the downtime limit at the end-to-end rate. */
static int precopy(struct mig_source *s, struct vmm_error *err)
{
	uint64_t last_sync = s->log_start_ns, last_sent = atomic_load(&s->flow.sent);
	int r = pass(s, true, false, err);
	if (r < 0)
		return r;
	unsigned hot_iterations = 0, drains = 0;
	int64_t prev_dirty = -1;
	for (uint32_t iter = 1;; iter++) {
		if ((r = mig_channel_poll(&s->ch, err)) < 0 || (r = check_handshake(s, err)) < 0)
			return r;
		int64_t dirty = s->merge_next ? vm_dirty_log_sync_merge(&s->dirty, err)
					      : vm_dirty_log_sync(&s->dirty, err);
		s->merge_next = false;
		if (dirty < 0)
			return (int)dirty;
		uint64_t now = mono_ns();
		mig_flow_tick(&s->flow, now);
		uint64_t elapsed = now - last_sync ? now - last_sync : 1;
		uint64_t sent_now = atomic_load(&s->flow.sent), sent = sent_now - last_sent;
		/* What the destination applied per second (Acks), or else what
		 * the transports took; never less than the whole migration's
		 * average, tiny passes say little. */
		double bw = mig_flow_rate(&s->flow);
		double avg = (double)(atomic_load(&s->flow.acks) ? atomic_load(&s->flow.applied)
								 : sent_now) *
			     1e9 / (double)(now - s->t_start_ns + 1);
		if (bw < avg)
			bw = avg;
		if (bw < 1)
			bw = 1;
		uint64_t backlog = mig_flow_backlog(&s->flow);
		double page_wire = PAGE_SIZE;
		if (atomic_load(&s->flow.compress) && s->flow.ratio > 1)
			page_wire /= s->flow.ratio;
		uint64_t dirty_bytes = (uint64_t)dirty * PAGE_SIZE;
		uint64_t expected_ms =
			(uint64_t)(((double)dirty * page_wire + (double)backlog) * 1000.0 / bw);
		pthread_mutex_lock(&s->lock);
		s->info.dirty_sync_count = iter;
		s->info.remaining = dirty_bytes;
		s->info.expected_downtime_ms = expected_ms;
		s->info.dirty_pages_rate = (uint64_t)((double)dirty * 1e9 / (double)elapsed);
		s->info.mbps = bw * 8 / 1e6;
		uint64_t limit = s->params.downtime_limit_ms;
		pthread_mutex_unlock(&s->lock);
		update_counters(s);
		last_sync = now;
		last_sent = sent_now;
		/* Within the limit, stop, unless passes still at least halve what is
		 * left: then one more pass buys a shorter pause. */
		bool shrinking = prev_dirty < 0 || (uint64_t)dirty * 2 <= (uint64_t)prev_dirty;
		if (expected_ms <= limit && (!shrinking || dirty < 64 || iter > MAX_SHRINK_PASSES)) {
			/* The destination still has to apply what is in flight: that
			 * would be downtime. Wait for it with the guest running, then
			 * look again (the bitmap just fetched is kept and merged). */
			uint64_t quick = (uint64_t)(bw / 1000); /* what applies in 1 ms */
			if (atomic_load(&s->flow.acks) && drains < MAX_DRAINS &&
			    backlog > (quick > (64u << 10) ? quick : (64u << 10))) {
				uint64_t t0 = mono_ns();
				unsigned wait_ms = (unsigned)(limit * DRAIN_LIMIT_X > DRAIN_MIN_MS
								      ? limit * DRAIN_LIMIT_X
								      : DRAIN_MIN_MS);
				if ((r = drain(s, wait_ms, err)) < 0)
					return r;
				pthread_mutex_lock(&s->lock);
				s->info.drain_ms += (mono_ns() - t0) / 1000000;
				pthread_mutex_unlock(&s->lock);
				drains++; /* bounded: a destination that never catches up
					   * still gets the guest, with its backlog */
				s->merge_next = true;
				continue;
			}
			return 0; /* the bitmap just fetched is sent in the final pass */
		}
		prev_dirty = dirty;
		/* Dirtying more than half of what the link moved, twice in a row:
		 * the guest outruns the link; slow it down. */
		if (s->params.auto_converge && expected_ms > limit && dirty_bytes * 2 > sent) {
			if (++hot_iterations >= 2)
				throttle_raise(s);
		} else {
			hot_iterations = 0;
		}
		if ((r = pass(s, false, false, err)) < 0)
			return r;
	}
}

static int wait_record(struct mig_source *s, unsigned timeout_ms, unsigned want, const char *what,
		       struct vmm_error *err)
{
	/* Short slices so a cancel is seen promptly. */
	for (unsigned waited = 0; waited < timeout_ms; waited += 50) {
		if (atomic_load(&s->cancel))
			return vmm_error_set(err, -ECANCELED, "migration cancelled");
		unsigned type;
		int r = mig_channel_wait_record(&s->ch, 50, &type, err);
		if (r == -ETIMEDOUT)
			continue;
		if (r < 0)
			return r;
		if (type != want)
			return vmm_error_set(err, -EPROTO, "destination sent %s, expected %s",
					     mig_record_name(type), what);
		return 0;
	}
	return vmm_error_set(err, -ETIMEDOUT, "no %s from the destination within %u s", what,
			     timeout_ms / 1000);
}

/* Stop the guest, send what is left and all device state, hand over. */
static int stop_and_copy(struct mig_source *s, bool *handed_over, struct vmm_error *err)
{
	int r;
	/* Never stop the guest before the destination has built its VM: that
	 * would put the build into the downtime. (Accepted came before pass 0;
	 * this stays for clarity and costs nothing.) */
	if (!s->ch.is_file) {
		uint64_t waited_ms = (mono_ns() - s->header_sent_ns) / 1000000;
		unsigned left = waited_ms < HANDSHAKE_TIMEOUT_MS
					? HANDSHAKE_TIMEOUT_MS - (unsigned)waited_ms
					: 0;
		if ((r = mig_channel_wait_accepted(&s->ch, left, err)) < 0)
			return r == -ETIMEDOUT ? check_handshake(s, err) : r;
		if ((r = check_accepted(s, err)) < 0)
			return r;
	}
	set_status(s, MIG_STATUS_DEVICE);
	throttle_stop(s);
	uint64_t stop_mono = mono_ns(), stop_real = now_ns(CLOCK_REALTIME);
	vm_pause(s->vm);
	s->paused_by_us = true;
	/* devices: requests in flight finish, images flushed (before RAM and state go) */
	if ((r = vm_devices_quiesce(s->vm, err)) < 0)
		return r;

	if ((r = mig_sections_save(s->vm, &s->w, MIG_SAVE_AT_STOP, err)) < 0)
		return r;
	if (!s->local) {
		/* The bitmap from the last pre-copy sync and what dirtied since,
		 * in one final pass over every connection. */
		int64_t last = vm_dirty_log_sync_merge(&s->dirty, err);
		if (last < 0)
			return (int)last;
		/* ... and the data connections end with it (DataEnd). */
		if ((r = pass(s, false, true, err)) < 0)
			return r;
	}
	if ((r = mig_sections_save(s->vm, &s->w, MIG_SAVE_AFTER_RAM, err)) < 0)
		return r;
	if ((r = mig_write_end(&s->w, s->ram.stats.normal_pages + s->ram.stats.zero_pages, err)) < 0)
		return r;
	if ((r = mig_channel_flush(&s->ch, err)) < 0)
		return r;
	update_counters(s);
	pthread_mutex_lock(&s->lock);
	s->info.remaining = 0;
	pthread_mutex_unlock(&s->lock);

	if (s->ch.is_file) { /* a snapshot: the guest stays paused here */
		s->keep_paused = true;
		pthread_mutex_lock(&s->lock);
		s->info.downtime_us = (mono_ns() - stop_mono) / 1000;
		s->info.downtime_ms = s->info.downtime_source_ms = s->info.downtime_us / 1000;
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	/* The guest is paused: a destination that does not get ready in time
	 * costs the guest that much downtime, then the guest resumes here. */
	pthread_mutex_lock(&s->lock);
	unsigned switchover_ms = (unsigned)s->params.switchover_timeout_ms;
	pthread_mutex_unlock(&s->lock);
	if ((r = wait_record(s, switchover_ms, MIG_REC_READY, "ready", err)) < 0)
		return r;
	Vmm__Migration__Go go = VMM__MIGRATION__GO__INIT;
	go.source_stop_unix_ns = stop_real;
	go.paused = s->user_paused; /* the destination understands it: check_accepted() */
	/* From here on the destination owns the guest: never resume it here. */
	vm_devices_handover(s->vm); /* devices: e.g. image write locks, taken at Go there */
	*handed_over = true;
	s->keep_paused = true;
	/* A local move's memory is the destination's from now on: not one more
	 * access to it from here, and the guest can never run here again. */
	s->memory_given = s->local;
	if ((r = mig_write_record(&s->w, MIG_REC_GO, &go.base, err)) < 0 ||
	    (r = mig_channel_flush(&s->ch, err)) < 0 ||
	    (r = wait_record(s, RESUMED_TIMEOUT_MS, MIG_REC_RESUMED, "resumed", err)) < 0)
		return r;
	Vmm__Migration__Resumed *res = NULL;
	struct vmm_error ignored; /* only for the downtime figure: the handover is done */
	mig_unpack_bytes(MIG_REC_RESUMED, &vmm__migration__resumed__descriptor, s->ch.rec_payload,
			 s->ch.rec_len, (ProtobufCMessage **)&res, NULL, &ignored);
	uint64_t now_mono = mono_ns();
	pthread_mutex_lock(&s->lock);
	s->info.downtime_source_ms = (now_mono - stop_mono) / 1000000;
	/* Source stop to destination resume, both by their wall clocks. */
	if (res && res->resume_unix_ns > stop_real)
		s->info.downtime_us = (res->resume_unix_ns - stop_real) / 1000;
	else
		s->info.downtime_us = (now_mono - stop_mono) / 1000;
	s->info.downtime_ms = s->info.downtime_us / 1000;
	pthread_mutex_unlock(&s->lock);
	if (res)
		vmm__migration__resumed__free_unpacked(res, NULL);
	return 0;
}

/* After Accepted: what both sides can do decides how pages travel. */
static int setup_data_path(struct mig_source *s, struct vmm_error *err)
{
	unsigned caps = s->ch.is_file ? ~0u : s->ch.peer.caps;
	bool hash = s->params.verify_pages == MIG_VERIFY_ON ||
		    (s->params.verify_pages == MIG_VERIFY_AUTO && s->ch.is_file);
	s->ram.hash_pages = hash;
	if (!(caps & MIG_CAP_RAM_PAGES)) { /* a destination before format 1.2 */
		s->ram.enc = MIG_RAM_ENC_V1;
		s->ram.v1_level = s->params.compression == MIG_COMPRESS_OFF ? 0
									  : s->params.compress_level;
	}
	atomic_store(&s->flow.acks, !s->ch.is_file && (caps & MIG_CAP_ACK));
	mig_flow_same_host(&s->flow, !s->ch.is_file && mig_conn_same_host(&s->ch.conn));
	if (s->local && !(caps & MIG_CAP_LOCAL))
		return vmm_error_set(err, -EPROTONOSUPPORT,
				     "the destination (vmm %s) cannot take a local move",
				     s->ch.peer.vmm_version);
	if (s->nconns > 1 && !(caps & MIG_CAP_MULTICONN)) {
		s->nconns = 1; /* it ignored Header.connections: one connection it is */
		s->ram.nconns = 1;
	}
	if (s->nconns > 1) {
		struct mig_multi_cfg cfg = {
			.uri = s->info.uri,
			.connections = s->nconns,
			.session = s->session,
			.vm = s->vm,
			.flow = &s->flow,
			.zpool = s->zpool,
			.enc = s->ram.enc,
			.cancel = &s->cancel_ev,
			.abort = &s->abort,
			.hash_pages = hash,
			.ranges = &s->ranges,
			.tls = s->tls,
			.tls_hostname = s->params.tls.hostname,
		};
		s->flow.nconns = s->nconns;
		return mig_multi_open(&s->multi, &cfg, err);
	}
	return 0;
}

static int run(struct mig_source *s, bool *handed_over, struct vmm_error *err)
{
	int r = mig_channel_open(&s->ch, s->info.uri, &s->cancel_ev, s->tls,
				 s->params.tls.hostname, err);
	pthread_mutex_lock(&s->lock);
	s->info.tls = s->ch.tls;
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return r;
	s->ch.flow = &s->flow;
	if ((r = mig_writer_init(&s->w, source_sink, s, err)) < 0)
		return r;
	s->w.sink_iov = source_sink_iov;
	if ((r = mig_ram_tx_init(&s->ram, s->vm, &s->w, MIG_RAM_ENC_PAGES, 0, s->nconns, err)) < 0)
		return r;
	s->ram_ready = true;
	s->ram.flow = &s->flow;
	s->ram.zpool = s->zpool;
	s->ram.ranges = &s->ranges;
	/* Logging starts before the first pass reads anything, so every page
	 * written after it is read again later. A local move reads none. */
	if (!s->local && (r = vm_dirty_log_start(&s->dirty, s->vm, err)) < 0)
		return r;
	s->log_start_ns = mono_ns();
	if ((r = send_header(s, err)) < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	s->info.setup_time_ms = (mono_ns() - s->t_start_ns) / 1000000;
	s->info.status = MIG_STATUS_ACTIVE;
	pthread_mutex_unlock(&s->lock);
	/* The destination's answer decides the data path (format, Acks,
	 * connections); it comes within a round trip, its VM being built at
	 * start-up, and a refusal then costs no page transfer. */
	if (!s->ch.is_file) {
		if ((r = mig_channel_wait_accepted(&s->ch, HANDSHAKE_TIMEOUT_MS, err)) < 0)
			return r == -ETIMEDOUT ? check_handshake(s, err) : r;
		if ((r = check_accepted(s, err)) < 0)
			return r;
	}
	if ((r = setup_data_path(s, err)) < 0)
		return r;
	update_counters(s);
	if (s->local) {
		if ((r = mig_local_send(&s->ch, &s->w, s->vm, ADOPT_TIMEOUT_MS, err)) < 0)
			return r;
	} else if ((r = precopy(s, err)) < 0) {
		return r;
	}
	return stop_and_copy(s, handed_over, err);
}

static void *source_main(void *arg)
{
	pthread_setname_np(pthread_self(), "mig-source");
	struct mig_source *s = arg;
	struct vmm_error err = {0};
	bool handed_over = false;
	s->t_start_ns = mono_ns();
	set_status(s, MIG_STATUS_SETUP);
	int r = run(s, &handed_over, &err);
	if (r < 0)
		atomic_store(&s->abort, true);
	if (r < 0 && r != -ECANCELED && !handed_over) {
		/* A write may fail before the destination's reason is read. */
		mig_channel_drain(&s->ch, 1000);
		if (s->ch.refused)
			vmm_error_set(&err, -ECONNREFUSED, "%s", s->ch.errmsg);
	}
	if (r == -ECANCELED && !atomic_load(&s->cancel) && !handed_over && s->ch.refused)
		vmm_error_set(&err, -ECONNREFUSED, "%s", s->ch.errmsg);
	update_counters(s); /* while the writers' counts still exist */
	throttle_stop(s);
	if (s->dirty.enabled || s->dirty.bitmaps[0])
		vm_dirty_log_stop(&s->dirty);
	mig_multi_close(s->multi);
	s->multi = NULL;
	mig_channel_close(&s->ch);
	mig_tls_creds_free(s->tls);
	s->tls = NULL;
	if (s->ram_ready)
		mig_ram_tx_free(&s->ram);
	mig_zpool_stop(s->zpool);
	s->zpool = NULL;
	mig_ram_ranges_free(&s->ranges);
	mig_writer_free(&s->w);
	pthread_mutex_lock(&s->lock);
	if (r == 0) {
		s->info.status = MIG_STATUS_COMPLETED;
	} else if (handed_over) {
		s->info.status = MIG_STATUS_FAILED;
		s->info.guest_paused = true;
		snprintf(s->info.error, sizeof(s->info.error),
			 "connection lost after handing the guest over (%.600s): the guest stays "
			 "paused here; %s",
			 err.msg,
			 s->local ? "its memory is the destination's now (local move): it cannot "
				    "run here again"
				  : "check whether the destination runs it before resuming");
	} else {
		s->info.status = atomic_load(&s->cancel) && r == -ECANCELED ? MIG_STATUS_CANCELLED
									 : MIG_STATUS_FAILED;
		snprintf(s->info.error, sizeof(s->info.error), "%s", err.msg);
	}
	pthread_mutex_unlock(&s->lock);
	/* Nothing lost: before handover, the guest runs on here. */
	if (s->paused_by_us && !s->keep_paused) {
		struct vmm_error derr = {0}; /* devices: take back what quiesce/handover gave up */
		if (vm_devices_unquiesce(s->vm, &derr) < 0)
			fprintf(stderr, "vmm: resuming the guest's devices: %s\n", derr.msg);
		vm_resume(s->vm);
		s->paused_by_us = false;
	}
	atomic_store(&s->finished, true);
	if (s->notify)
		uv_async_send(s->notify);
	return NULL;
}

int mig_source_start(struct vm *vm, const char *uri, const struct mig_params *params,
		     bool user_paused, bool local, uv_async_t *notify, struct mig_source **out,
		     struct vmm_error *err)
{
	struct mig_uri u;
	int r = mig_uri_parse(uri, &u, err);
	if (r < 0)
		return r;
	if (local && u.kind != MIG_UNIX)
		return vmm_error_set(err, -EINVAL,
				     "local=true moves the guest's memory by passing its memfd over a "
				     "unix: socket; %s",
				     u.kind == MIG_TCP ? "tcp: reaches other hosts, which cannot map it "
							 "(use a unix: URI on this host)"
						       : "a snapshot file cannot hold a descriptor "
							 "(use a unix: URI, or migrate to file: "
							 "without local)");
	struct mig_source *s = calloc(1, sizeof(*s));
	if (!s)
		return vmm_error_set(err, -ENOMEM, "migration: out of memory");
	if ((r = mig_cancel_init(&s->cancel_ev, err)) < 0) {
		free(s);
		return r;
	}
	if (mig_tls_configured(&params->tls)) {
		if (u.kind != MIG_TCP) {
			mig_cancel_free(&s->cancel_ev);
			free(s);
			return vmm_error_set(err, -EINVAL, "migrate %s: TLS (tls-creds/tls-psk) is for "
					     "tcp: migrations; clear them for unix: and file:", uri);
		}
		if ((r = mig_tls_creds_load(&params->tls, false, &s->tls, err)) < 0) {
			mig_cancel_free(&s->cancel_ev);
			free(s);
			return r;
		}
	}
	s->vm = vm;
	s->params = *params;
	s->user_paused = user_paused;
	s->local = local;
	s->info.local = local;
	s->nconns = u.kind == MIG_FILE || local ? 1 : params->connections;
	if (s->nconns < 1 || s->nconns > MIG_MAX_CONNECTIONS)
		s->nconns = 1;
	s->ram.stats = (struct mig_ram_stats){0};
	if (getrandom(s->session, sizeof(s->session), 0) != (ssize_t)sizeof(s->session)) {
		mig_tls_creds_free(s->tls);
		mig_cancel_free(&s->cancel_ev);
		free(s);
		return vmm_error_set(err, -EIO, "migration: no random session id: %s",
				     strerror(errno));
	}
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned workers = cpus > 2 ? (unsigned)(cpus - 1) : 1;
	if (workers > 4)
		workers = 4;
	mig_flow_init(&s->flow, params->compression, params->compress_level, workers,
		      params->max_bandwidth);
	if (local)
		snprintf(s->flow.reason, sizeof(s->flow.reason), "local move: no page travels");
	if (!local && params->compression != MIG_COMPRESS_OFF && params->compress_level != 0 &&
	    (r = mig_zpool_start(&s->zpool, workers, err)) < 0) {
		mig_tls_creds_free(s->tls);
		mig_flow_free(&s->flow);
		mig_cancel_free(&s->cancel_ev);
		free(s);
		return r;
	}
	s->notify = notify;
	pthread_mutex_init(&s->lock, NULL);
	snprintf(s->info.uri, sizeof(s->info.uri), "%s", uri);
	s->info.total = vm->mem.size;
	s->info.remaining = vm->mem.size; /* like QEMU: all of RAM is left at the start */
	s->info.status = MIG_STATUS_SETUP;
	if ((r = pthread_create(&s->thread, NULL, source_main, s)) != 0) {
		mig_tls_creds_free(s->tls);
		mig_zpool_stop(s->zpool);
		mig_flow_free(&s->flow);
		mig_cancel_free(&s->cancel_ev);
		free(s);
		return vmm_error_set(err, -r, "migration: cannot start its thread: %s", strerror(r));
	}
	*out = s;
	return 0;
}

void mig_source_set_params(struct mig_source *s, const struct mig_params *p)
{
	pthread_mutex_lock(&s->lock);
	s->params.downtime_limit_ms = p->downtime_limit_ms;
	s->params.max_bandwidth = p->max_bandwidth;
	s->params.switchover_timeout_ms = p->switchover_timeout_ms;
	pthread_mutex_unlock(&s->lock);
	mig_flow_set_bandwidth(&s->flow, p->max_bandwidth);
}

bool mig_source_memory_given(struct mig_source *s)
{
	return atomic_load(&s->finished) && s->memory_given;
}

bool mig_source_release_pause(struct mig_source *s, struct vmm_error *err)
{
	if (!mig_source_holds_pause(s) || s->memory_given)
		return false;
	/* devices: after a snapshot or a lost handover; refuses if the image
	 * lock is gone (the destination may be running the guest) */
	if (vm_devices_unquiesce(s->vm, err) < 0)
		return false;
	s->keep_paused = false;
	s->paused_by_us = false;
	vm_resume(s->vm);
	return true;
}

void mig_source_cancel(struct mig_source *s)
{
	atomic_store(&s->cancel, true);
	atomic_store(&s->abort, true);
	mig_cancel_raise(&s->cancel_ev);
}

void mig_source_info(struct mig_source *s, struct mig_info *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->info;
	if (!atomic_load(&s->finished))
		out->total_time_ms = (mono_ns() - s->t_start_ns) / 1000000;
	pthread_mutex_unlock(&s->lock);
}

bool mig_source_finished(struct mig_source *s)
{
	return atomic_load(&s->finished);
}

bool mig_source_holds_pause(struct mig_source *s)
{
	return atomic_load(&s->finished) && s->paused_by_us && s->keep_paused;
}

void mig_source_free(struct mig_source *s)
{
	if (!s)
		return;
	pthread_join(s->thread, NULL);
	mig_flow_free(&s->flow);
	mig_cancel_free(&s->cancel_ev);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* migration/source.c: the outgoing migration (see source.h and STREAM.md). */
#include "migration/source.h"
#include "migration/channel.h"

#include <errno.h>
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

struct mig_source {
	struct vm *vm;
	struct mig_params params;
	uv_async_t *notify;
	pthread_t thread;
	pthread_t throttle_thread;
	bool throttle_running;
	atomic_bool cancel;
	struct mig_cancel cancel_ev; /* wakes the channel's waits on cancel */
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
	struct mig_ram_sender ram;
	struct vm_dirty_log dirty;
	uint64_t header_sent_ns;
	uint64_t t_start_ns;
	uint64_t log_start_ns; /* dirty logging began: the first pass's dirt counts from here */
	uint64_t last_update_ns;
	/* bandwidth limiting */
	uint64_t limit_window_ns, limit_window_bytes;
};

const char *mig_status_name(enum mig_status s)
{
	static const char *const names[] = {"none",	 "setup",  "active",   "device",
					    "completed", "failed", "cancelled"};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
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
	pthread_mutex_lock(&s->lock);
	s->info.transferred = s->w.bytes;
	s->info.duplicate = s->ram.stats.zero_pages;
	s->info.normal = s->ram.stats.normal_pages;
	s->info.normal_bytes = s->ram.stats.normal_pages * PAGE_SIZE;
	s->info.untouched = s->ram.stats.untouched_pages;
	s->info.total_time_ms = (mono_ns() - s->t_start_ns) / 1000000;
	if (s->info.dirty_sync_count == 0) { /* first pass: all not yet sent or skipped */
		uint64_t done = (s->ram.stats.normal_pages + s->ram.stats.zero_pages +
				 s->ram.stats.untouched_pages) * PAGE_SIZE;
		uint64_t ns = mono_ns() - s->t_start_ns + 1;
		s->info.remaining = done < s->info.total ? s->info.total - done : 0;
		s->info.mbps = (double)s->w.bytes * 8e3 / (double)ns; /* Mbit/s */
	}
	if (s->ram.stats.wire_bytes)
		s->info.compression_ratio =
			(double)s->ram.stats.data_bytes / (double)s->ram.stats.wire_bytes;
	s->info.throttle_pct = atomic_load(&s->throttle_pct);
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

/* The writer's sink: the channel, with cancel and the bandwidth limit. */
static int source_sink(void *ctx, const void *data, size_t len, struct vmm_error *err)
{
	struct mig_source *s = ctx;
	if (atomic_load(&s->cancel))
		return vmm_error_set(err, -ECANCELED, "migration cancelled");
	pthread_mutex_lock(&s->lock);
	uint64_t max_bw = s->params.max_bandwidth;
	pthread_mutex_unlock(&s->lock);
	if (max_bw) {
		uint64_t now = mono_ns();
		if (now - s->limit_window_ns > 1000000000ull) {
			s->limit_window_ns = now;
			s->limit_window_bytes = 0;
		}
		s->limit_window_bytes += len;
		uint64_t allowed_ns = s->limit_window_bytes * 1000000000ull / max_bw;
		if (allowed_ns > now - s->limit_window_ns)
			usleep((useconds_t)((allowed_ns - (now - s->limit_window_ns)) / 1000));
	}
	int r = mig_channel_write(&s->ch, data, len, err);
	uint64_t now = mono_ns();
	if (r == 0 && now - s->last_update_ns > 20000000ull) { /* statistics every 20 ms */
		s->last_update_ns = now;
		update_counters(s);
	}
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
	/* A paused guest needs a destination that keeps it paused. */
	unsigned requires = s->user_paused ? MIG_CAP_GO_PAUSED : 0;
	int r = mig_header_build(s->vm, requires, &hb, err);
	if (r < 0)
		return r;
	r = mig_write_preamble(&s->w, err);
	if (r == 0)
		r = mig_write_record(&s->w, MIG_REC_HEADER, &mig_header_msg(hb)->base, err);
	mig_header_buf_free(hb);
	s->header_sent_ns = mono_ns();
	/* Out at once: the destination builds its VM while the first pass runs. */
	return r < 0 ? r : mig_channel_flush(&s->ch, err);
}

/* Pre-copy until the dirty rest fits in the downtime limit. */
static int precopy(struct mig_source *s, struct vmm_error *err)
{
	uint64_t last_sync = s->log_start_ns, last_bytes = s->ch.acked;
	int r = mig_ram_send_populated(&s->ram, &s->cancel, err);
	if (r < 0)
		return r;
	unsigned hot_iterations = 0;
	int64_t prev_dirty = -1;
	for (uint32_t iter = 1;; iter++) {
		if ((r = mig_channel_poll(&s->ch, err)) < 0 || (r = check_handshake(s, err)) < 0)
			return r;
		int64_t dirty = vm_dirty_log_sync(&s->dirty, err);
		if (dirty < 0)
			return (int)dirty;
		uint64_t now = mono_ns();
		uint64_t elapsed = now - last_sync ? now - last_sync : 1;
		uint64_t sent = s->ch.acked - last_bytes;
		/* Bandwidth of the pass just finished; tiny passes say little, so
		 * never assume less than what the whole migration achieved. */
		double bw = (double)sent * 1e9 / (double)elapsed;
		double avg = (double)s->ch.acked * 1e9 / (double)(now - s->t_start_ns + 1);
		if (bw < avg)
			bw = avg;
		if (bw < 1)
			bw = 1;
		uint64_t dirty_bytes = (uint64_t)dirty * PAGE_SIZE;
		uint64_t expected_ms = (uint64_t)((double)dirty_bytes * 1000.0 / bw);
		pthread_mutex_lock(&s->lock);
		s->info.dirty_sync_count = iter;
		s->info.remaining = dirty_bytes;
		s->info.expected_downtime_ms = expected_ms;
		s->info.dirty_pages_rate = (uint64_t)((double)dirty * 1e9 / (double)elapsed);
		s->info.mbps = bw * 8 / 1e6;
		pthread_mutex_unlock(&s->lock);
		update_counters(s);
		last_sync = now;
		last_bytes = s->ch.acked;
		pthread_mutex_lock(&s->lock);
		uint64_t limit = s->params.downtime_limit_ms;
		pthread_mutex_unlock(&s->lock);
		/* Within the limit, stop, unless passes still at least halve what is
		 * left: then one more pass buys a shorter pause. */
		bool shrinking = prev_dirty < 0 || (uint64_t)dirty * 2 <= (uint64_t)prev_dirty;
		if (expected_ms <= limit && (!shrinking || dirty < 64 || iter > MAX_SHRINK_PASSES))
			return 0; /* the bitmap just fetched is sent in the final pass */
		prev_dirty = dirty;
		/* Dirtying more than half of what the link moved, twice in a row:
		 * the guest outruns the link; slow it down. */
		if (s->params.auto_converge && expected_ms > limit && dirty_bytes * 2 > sent) {
			if (++hot_iterations >= 2)
				throttle_raise(s);
		} else {
			hot_iterations = 0;
		}
		s->ram.iteration = iter;
		if ((r = mig_dirty_log_send(&s->dirty, &s->ram, &s->cancel, err)) < 0)
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
	 * would put the build into the downtime. */
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
	/* The bitmap from the last pre-copy sync, then what dirtied since. */
	s->ram.iteration++;
	if ((r = mig_dirty_log_send(&s->dirty, &s->ram, &s->cancel, err)) < 0)
		return r;
	int64_t last = vm_dirty_log_sync(&s->dirty, err);
	if (last < 0)
		return (int)last;
	if ((r = mig_dirty_log_send(&s->dirty, &s->ram, &s->cancel, err)) < 0)
		return r;
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

static void *source_main(void *arg)
{
	struct mig_source *s = arg;
	struct vmm_error err = {0};
	bool handed_over = false;
	int r;
	s->t_start_ns = mono_ns();
	set_status(s, MIG_STATUS_SETUP);

	r = mig_channel_open(&s->ch, s->info.uri, &s->cancel_ev, s->tls, s->params.tls.hostname,
			     &err);
	pthread_mutex_lock(&s->lock);
	s->info.tls = s->ch.tls;
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		goto out;
	if ((r = mig_writer_init(&s->w, source_sink, s, &err)) < 0)
		goto out;
	if ((r = mig_ram_sender_init(&s->ram, s->vm, &s->w, s->params.compress_level, &err)) < 0)
		goto out;
	/* Logging starts before the first pass reads anything, so every page
	 * written after it is read again later. */
	if ((r = vm_dirty_log_start(&s->dirty, s->vm, &err)) < 0)
		goto out;
	s->log_start_ns = mono_ns();
	if ((r = send_header(s, &err)) < 0)
		goto out;
	pthread_mutex_lock(&s->lock);
	s->info.setup_time_ms = (mono_ns() - s->t_start_ns) / 1000000;
	s->info.status = MIG_STATUS_ACTIVE;
	pthread_mutex_unlock(&s->lock);

	if ((r = precopy(s, &err)) < 0)
		goto out;
	r = stop_and_copy(s, &handed_over, &err);
out:
	if (r < 0 && r != -ECANCELED && !handed_over) {
		/* A write may fail before the destination's reason is read. */
		mig_channel_drain(&s->ch, 1000);
		if (s->ch.refused)
			vmm_error_set(&err, -ECONNREFUSED, "%s", s->ch.errmsg);
	}
	update_counters(s); /* while the writer's counts still exist */
	throttle_stop(s);
	if (s->dirty.enabled || s->dirty.bitmaps[0])
		vm_dirty_log_stop(&s->dirty);
	mig_channel_close(&s->ch);
	mig_tls_creds_free(s->tls);
	s->tls = NULL;
	mig_ram_sender_free(&s->ram);
	mig_writer_free(&s->w);
	pthread_mutex_lock(&s->lock);
	if (r == 0) {
		s->info.status = MIG_STATUS_COMPLETED;
	} else if (handed_over) {
		s->info.status = MIG_STATUS_FAILED;
		s->info.guest_paused = true;
		snprintf(s->info.error, sizeof(s->info.error),
			 "connection lost after handing the guest over (%.600s): the guest stays "
			 "paused here; check whether the destination runs it before resuming",
			 err.msg);
	} else {
		s->info.status = r == -ECANCELED ? MIG_STATUS_CANCELLED : MIG_STATUS_FAILED;
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
		     bool user_paused, uv_async_t *notify, struct mig_source **out,
		     struct vmm_error *err)
{
	struct mig_uri u;
	int r = mig_uri_parse(uri, &u, err);
	if (r < 0)
		return r;
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
	s->notify = notify;
	pthread_mutex_init(&s->lock, NULL);
	snprintf(s->info.uri, sizeof(s->info.uri), "%s", uri);
	s->info.total = vm->mem.size;
	s->info.remaining = vm->mem.size; /* like QEMU: all of RAM is left at the start */
	s->info.status = MIG_STATUS_SETUP;
	if ((r = pthread_create(&s->thread, NULL, source_main, s)) != 0) {
		mig_tls_creds_free(s->tls);
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
}

bool mig_source_release_pause(struct mig_source *s, struct vmm_error *err)
{
	if (!mig_source_holds_pause(s))
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
	mig_cancel_free(&s->cancel_ev);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

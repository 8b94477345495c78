/*
 * migration/flow.c: how fast pages really move and what to do about it.
 *
 * The source's transports take bytes into socket buffers long before the
 * destination has applied them; the destination's Acks say what it has
 * applied. From those: the backlog (sent - applied), which the expected
 * downtime must include, and the end-to-end rate, which both the downtime
 * estimate and the compression choice use. Without Acks (a destination
 * before format 1.2) the rate is what the transports took, as before.
 *
 * Compression: zstd pays only where the link, not the CPU, is the limit.
 * Senders compress a sample batch now and then (timed), so the choice is
 * made from this migration's own numbers, and revisited as they change;
 * while compressing, the link is re-measured raw for a moment every second.
 */
#include "migration/ram.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS		10000000ull   /* revisit the choice at most every 10 ms */
#define RATE_WINDOW_NS	300000000ull  /* rates over the last 300 ms */
#define SAMPLE_EVERY_NS 200000000ull  /* a compression sample at most every 200 ms */
#define PROBE_EVERY_NS	1000000000ull /* compressing: measure the link raw once a second, */
#define PROBE_FOR_NS	100000000ull  /* for 100 ms */
#define MIN_LINK_NS	30000000ull   /* a link rate needs 30 ms of samples */
#define GAIN		1.10	      /* zstd must beat raw by this much */
#define DEST_BUSY	0.10	      /* destination readers idle less than this: it is the limit */

const char *mig_compress_mode_name(enum mig_compress_mode m)
{
	return m == MIG_COMPRESS_ON ? "zstd" : m == MIG_COMPRESS_OFF ? "none" : "auto";
}

int mig_compress_mode_parse(const char *s, enum mig_compress_mode *out)
{
	if (strcmp(s, "auto") == 0)
		*out = MIG_COMPRESS_AUTO;
	else if (strcmp(s, "zstd") == 0)
		*out = MIG_COMPRESS_ON;
	else if (strcmp(s, "none") == 0)
		*out = MIG_COMPRESS_OFF;
	else
		return -EINVAL;
	return 0;
}

bool mig_compress_choose(const struct mig_compress_inputs *in, char *why, size_t len)
{
	if (in->mode == MIG_COMPRESS_OFF || in->level == 0) {
		snprintf(why, len, "compression off (%s)",
			 in->level == 0 ? "compress-level 0" : "compression=none");
		return false;
	}
	if (in->mode == MIG_COMPRESS_ON) {
		snprintf(why, len, "compression=zstd: always");
		return true;
	}
	if (in->zstd_bps <= 0 || in->link_bps <= 0) {
		snprintf(why, len, "raw until the link and zstd are measured");
		return false;
	}
	if (in->same_host && !in->capped) {
		snprintf(why, len,
			 "raw: the destination is on this host, the link is a memory "
			 "copy (zstd would only take CPU from it)");
		return false;
	}
	double raw = in->link_bps;
	double z = in->zstd_bps * (in->workers ? in->workers : 1);
	double zlink = in->ratio * in->link_bps;
	double zstd = z < zlink ? z : zlink;
	bool use = zstd > raw * GAIN;
	/* the cores compression would keep busy, carrying `zstd` bytes/s */
	double need = zstd / in->zstd_bps;
	if (use && !in->capped && in->idle_cores >= 0 && in->idle_cores < need) {
		snprintf(why, len,
			 "raw: zstd -%d would need %.1f CPUs at %.0f MB/s, this host has %.1f idle",
			 in->level, need, zstd / 1e6, in->idle_cores);
		return false;
	}
	snprintf(why, len,
		 "%s: link %.0f MB/s raw; zstd -%d %.0f MB/s x %u worker%s at %.2fx -> %.0f MB/s",
		 use ? "zstd pays" : "raw is faster", raw / 1e6, in->level, in->zstd_bps / 1e6,
		 in->workers ? in->workers : 1, in->workers == 1 ? "" : "s", in->ratio, zstd / 1e6);
	return use;
}

/* ---- rates ---- */

void mig_rate_add(struct mig_rate *r, uint64_t t_ns, uint64_t total)
{
	unsigned i = (r->head + r->n) % MIG_RATE_SAMPLES;
	if (r->n == MIG_RATE_SAMPLES) {
		r->head = (r->head + 1) % MIG_RATE_SAMPLES;
		i = (r->head + r->n - 1) % MIG_RATE_SAMPLES;
	} else {
		r->n++;
	}
	r->t[i] = t_ns;
	r->v[i] = total;
}

double mig_rate_get(const struct mig_rate *r, uint64_t window_ns)
{
	if (r->n < 2)
		return 0;
	unsigned last = (r->head + r->n - 1) % MIG_RATE_SAMPLES;
	unsigned first = r->head;
	/* the oldest sample still inside the window */
	for (unsigned k = 0; k + 1 < r->n; k++) {
		unsigned i = (r->head + k) % MIG_RATE_SAMPLES;
		if (r->t[last] - r->t[i] <= window_ns) {
			first = i;
			break;
		}
	}
	if (first == last)
		first = (last + MIG_RATE_SAMPLES - 1) % MIG_RATE_SAMPLES;
	uint64_t dt = r->t[last] - r->t[first];
	if (dt == 0)
		return 0;
	return (double)(r->v[last] - r->v[first]) * 1e9 / (double)dt;
}

/* ---- the shared state ---- */

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void mig_flow_init(struct mig_flow *f, enum mig_compress_mode mode, int level, unsigned workers,
		   uint64_t max_bandwidth)
{
	memset(f, 0, sizeof(*f));
	atomic_init(&f->sent, 0);
	atomic_init(&f->applied, 0);
	atomic_init(&f->acks, false);
	pthread_mutex_init(&f->lock, NULL);
	f->mode = mode;
	f->level = level;
	f->workers = workers ? workers : 1;
	f->max_bandwidth = max_bandwidth;
	f->nconns = 1;
	f->dest_idle = -1;
	f->idle_cores = -1;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	f->ncpus = cpus > 0 ? (unsigned)cpus : 1;
	atomic_init(&f->dest_wait_ns, 0);
	struct mig_compress_inputs in = {.mode = mode, .level = level, .workers = f->workers};
	atomic_init(&f->compress, mig_compress_choose(&in, f->reason, sizeof(f->reason)));
	f->mode_since_ns = mono_ns();
}

void mig_flow_same_host(struct mig_flow *f, bool same)
{
	pthread_mutex_lock(&f->lock);
	f->same_host = same;
	pthread_mutex_unlock(&f->lock);
}

/* This host's idle CPUs since the last look (/proc/stat), as a moving
 * average; called with f->lock held, at most every 50 ms. */
static void sample_cpu(struct mig_flow *f, uint64_t now_ns)
{
	if (f->idle_cores_fixed || now_ns - f->cpu_sample_ns < 50000000ull)
		return;
	FILE *fp = fopen("/proc/stat", "re");
	if (!fp)
		return;
	unsigned long long v[8] = {0};
	int n = fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		       &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(fp);
	if (n < 5)
		return;
	uint64_t idle = v[3] + v[4], total = 0;
	for (int i = 0; i < n; i++)
		total += v[i];
	if (f->cpu_sample_ns && total > f->cpu_total_prev) {
		double frac =
		    (double)(idle - f->cpu_idle_prev) / (double)(total - f->cpu_total_prev);
		double cores = frac * f->ncpus;
		f->idle_cores = f->idle_cores < 0 ? cores : 0.6 * f->idle_cores + 0.4 * cores;
	}
	f->cpu_idle_prev = idle;
	f->cpu_total_prev = total;
	f->cpu_sample_ns = now_ns;
}

void mig_flow_free(struct mig_flow *f)
{
	pthread_mutex_destroy(&f->lock);
}

void mig_flow_set_bandwidth(struct mig_flow *f, uint64_t max_bandwidth)
{
	pthread_mutex_lock(&f->lock);
	f->max_bandwidth = max_bandwidth;
	pthread_mutex_unlock(&f->lock);
}

void mig_flow_throttle(struct mig_flow *f, size_t len)
{
	pthread_mutex_lock(&f->lock);
	uint64_t cap = f->max_bandwidth, now = mono_ns(), sleep_ns = 0;
	if (cap) {
		if (now - f->win_start_ns > 1000000000ull) {
			f->win_start_ns = now;
			f->win_bytes = 0;
		}
		f->win_bytes += len;
		uint64_t allowed_ns = (uint64_t)((double)f->win_bytes * 1e9 / (double)cap);
		if (allowed_ns > now - f->win_start_ns)
			sleep_ns = allowed_ns - (now - f->win_start_ns);
	}
	pthread_mutex_unlock(&f->lock);
	if (sleep_ns)
		usleep((useconds_t)(sleep_ns / 1000));
}

void mig_flow_sample(struct mig_flow *f, size_t raw, size_t packed, uint64_t ns)
{
	if (!raw || !packed || !ns)
		return;
	double bps = (double)raw * 1e9 / (double)ns, ratio = (double)raw / (double)packed;
	pthread_mutex_lock(&f->lock);
	/* a moving average: content changes (zeroed, text, random) show soon */
	if (f->samples == 0) {
		f->zstd_bps = bps;
		f->ratio = ratio;
	} else {
		f->zstd_bps = 0.7 * f->zstd_bps + 0.3 * bps;
		f->ratio = 0.7 * f->ratio + 0.3 * ratio;
	}
	f->samples++;
	pthread_mutex_unlock(&f->lock);
}

bool mig_flow_want_sample(struct mig_flow *f, uint64_t now_ns)
{
	if (f->mode != MIG_COMPRESS_AUTO || f->level == 0)
		return false;
	pthread_mutex_lock(&f->lock);
	bool want = (f->samples == 0 || now_ns - f->last_sample_ns >= SAMPLE_EVERY_NS) &&
		    !(f->same_host && !f->max_bandwidth); /* no choice to make there */
	if (want)
		f->last_sample_ns = now_ns;
	pthread_mutex_unlock(&f->lock);
	return want;
}

void mig_flow_tick(struct mig_flow *f, uint64_t now_ns)
{
	pthread_mutex_lock(&f->lock);
	if (now_ns - f->last_tick_ns < TICK_NS) {
		pthread_mutex_unlock(&f->lock);
		return;
	}
	f->last_tick_ns = now_ns;
	bool acks = atomic_load(&f->acks);
	mig_rate_add(&f->rate, now_ns, acks ? atomic_load(&f->applied) : atomic_load(&f->sent));
	mig_rate_add(&f->idle, now_ns, atomic_load(&f->dest_wait_ns));
	if (f->mode != MIG_COMPRESS_AUTO || f->level == 0) {
		pthread_mutex_unlock(&f->lock);
		return;
	}
	if (f->same_host && !f->max_bandwidth) { /* nothing to decide: see the choice */
		struct mig_compress_inputs in = {.mode = f->mode,
						 .level = f->level,
						 .same_host = true,
						 .link_bps = 1,
						 .zstd_bps = 1};
		mig_compress_choose(&in, f->reason, sizeof(f->reason));
		atomic_store(&f->compress, false);
		pthread_mutex_unlock(&f->lock);
		return;
	}
	sample_cpu(f, now_ns);
	bool compressing = atomic_load(&f->compress);
	uint64_t since = now_ns - f->mode_since_ns;
	uint64_t window = since < RATE_WINDOW_NS ? since : RATE_WINDOW_NS;
	/* Raw long enough for the window to hold raw samples only: that is
	 * the link's rate (end to end: the destination's applying included). */
	if (!compressing && since >= MIN_LINK_NS) {
		double r = mig_rate_get(&f->rate, window);
		if (r > 0)
			f->link_bps = r;
		/* How much of the time the destination's readers waited for
		 * input: rarely means the destination, not the link, limits. */
		if (acks)
			f->dest_idle =
			    mig_rate_get(&f->idle, window) / 1e9 / (f->nconns ? f->nconns : 1);
	}
	if (f->probing && since < PROBE_FOR_NS) {
		pthread_mutex_unlock(&f->lock);
		return; /* finish measuring the link raw first */
	}
	f->probing = false;
	double link = f->link_bps;
	if (f->max_bandwidth && (link == 0 || link > (double)f->max_bandwidth))
		link = (double)f->max_bandwidth; /* the cap is the link */
	struct mig_compress_inputs in = {.mode = f->mode,
					 .level = f->level,
					 .link_bps = link,
					 .zstd_bps = f->zstd_bps,
					 .ratio = f->ratio,
					 .workers = f->workers,
					 .capped = f->max_bandwidth != 0,
					 .same_host = f->same_host,
					 .idle_cores = f->idle_cores};
	char why[sizeof(f->reason)];
	bool want = mig_compress_choose(&in, why, sizeof(why));
	if (want && !f->max_bandwidth && acks && f->dest_idle >= 0 && f->dest_idle < DEST_BUSY) {
		want = false;
		snprintf(why, sizeof(why),
			 "raw: the destination applies pages no faster (its readers waited for "
			 "input %.0f%% of the time), zstd would not help",
			 f->dest_idle * 100);
	}
	/* Compressing hides the link's real rate: look at it raw for a moment
	 * every second (under a cap the cap is the link). */
	if (want && compressing && !f->max_bandwidth && since >= PROBE_EVERY_NS) {
		want = false;
		f->probing = true;
		snprintf(why, sizeof(why), "%s", "measuring the link raw for 100 ms");
	}
	if (want != compressing) {
		atomic_store(&f->compress, want);
		f->mode_since_ns = now_ns;
	}
	snprintf(f->reason, sizeof(f->reason), "%s", why);
	pthread_mutex_unlock(&f->lock);
}

double mig_flow_rate(struct mig_flow *f)
{
	pthread_mutex_lock(&f->lock);
	double r = mig_rate_get(&f->rate, RATE_WINDOW_NS);
	pthread_mutex_unlock(&f->lock);
	return r;
}

uint64_t mig_flow_backlog(struct mig_flow *f)
{
	if (!atomic_load(&f->acks))
		return 0;
	uint64_t s = atomic_load(&f->sent), a = atomic_load(&f->applied);
	return s > a ? s - a : 0;
}

void mig_flow_describe(struct mig_flow *f, char *mode, size_t mlen, char *why, size_t wlen)
{
	pthread_mutex_lock(&f->lock);
	if (atomic_load(&f->compress))
		snprintf(mode, mlen, "zstd-%d", f->level);
	else
		snprintf(mode, mlen, "none");
	snprintf(why, wlen, "%s", f->reason);
	pthread_mutex_unlock(&f->lock);
}

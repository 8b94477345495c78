/*
 * Unit tests for migration/flow.c: the compression choice from measured
 * rates, rates over a window, and the flow's own revisiting of the choice
 * (raw while the destination is the limit; zstd under a slow cap).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "migration/ram.h"

static bool choose(enum mig_compress_mode mode, int level, double link, double z, double ratio,
		   unsigned workers, char *why)
{
	struct mig_compress_inputs in = {.mode = mode,
					 .level = level,
					 .link_bps = link,
					 .zstd_bps = z,
					 .ratio = ratio,
					 .workers = workers,
					 .idle_cores = -1};
	return mig_compress_choose(&in, why, 200);
}

static void test_choice(void **state)
{
	(void)state;
	char why[200];
	/* switched off, either way */
	assert_false(choose(MIG_COMPRESS_OFF, 1, 1e8, 2e9, 3, 1, why));
	assert_false(choose(MIG_COMPRESS_AUTO, 0, 1e8, 2e9, 3, 1, why));
	assert_non_null(strstr(why, "compress-level 0"));
	assert_true(choose(MIG_COMPRESS_ON, 1, 3e9, 1e9, 1.0, 1, why));
	/* nothing measured yet: raw */
	assert_false(choose(MIG_COMPRESS_AUTO, 1, 0, 2e9, 3, 1, why));
	assert_false(choose(MIG_COMPRESS_AUTO, 1, 1e9, 0, 0, 1, why));
	/* loopback: the link beats zstd -1 (3.2 GB/s vs 1.7 GB/s) */
	assert_false(choose(MIG_COMPRESS_AUTO, 1, 3.2e9, 1.7e9, 2.4, 1, why));
	assert_non_null(strstr(why, "raw is faster"));
	/* a 1 Gbit/s link and memory that compresses 2.4x: zstd wins */
	assert_true(choose(MIG_COMPRESS_AUTO, 1, 125e6, 1.7e9, 2.4, 1, why));
	assert_non_null(strstr(why, "zstd pays"));
	/* ... unless it does not compress */
	assert_false(choose(MIG_COMPRESS_AUTO, 1, 125e6, 1.7e9, 1.05, 1, why));
	/* more workers make zstd pay where one does not */
	assert_false(choose(MIG_COMPRESS_AUTO, 1, 1e9, 0.8e9, 3, 1, why));
	assert_true(choose(MIG_COMPRESS_AUTO, 1, 1e9, 0.8e9, 3, 2, why));
	/* the same host: the link is a memory copy, never zstd (unless capped) */
	struct mig_compress_inputs in = {.mode = MIG_COMPRESS_AUTO,
					 .level = 1,
					 .link_bps = 125e6,
					 .zstd_bps = 1.7e9,
					 .ratio = 2.4,
					 .workers = 1,
					 .same_host = true,
					 .idle_cores = -1};
	assert_false(mig_compress_choose(&in, why, sizeof(why)));
	assert_non_null(strstr(why, "on this host"));
	in.capped = true;
	assert_true(mig_compress_choose(&in, why, sizeof(why)));
	/* no idle CPU for the workers: raw */
	in.capped = false, in.same_host = false, in.idle_cores = 0.1;
	assert_false(mig_compress_choose(&in, why, sizeof(why)));
	assert_non_null(strstr(why, "idle"));
	in.idle_cores = 1.5;
	assert_true(mig_compress_choose(&in, why, sizeof(why)));
}

static void test_rate_window(void **state)
{
	(void)state;
	struct mig_rate r = {0};
	assert_true(mig_rate_get(&r, 1000000000ull) == 0);
	for (unsigned i = 0; i <= 100; i++) /* 1 MB per 10 ms = 100 MB/s */
		mig_rate_add(&r, i * 10000000ull, i * 1000000ull);
	double v = mig_rate_get(&r, 300000000ull);
	assert_true(v > 99e6 && v < 101e6);
	/* a stall: nothing for 200 ms, then the window shows it */
	mig_rate_add(&r, 1200000000ull, 100000000ull);
	v = mig_rate_get(&r, 300000000ull);
	assert_true(v < 60e6);
}

static void tick_for(struct mig_flow *f, uint64_t *t, uint64_t ms, double bps, double wait_frac)
{
	for (uint64_t i = 0; i < ms; i += 10) {
		*t += 10000000ull;
		atomic_fetch_add(&f->sent, (uint64_t)(bps / 100));
		atomic_fetch_add(&f->applied, (uint64_t)(bps / 100));
		atomic_fetch_add(&f->dest_wait_ns, (uint64_t)(wait_frac * 10000000.0));
		mig_flow_tick(f, *t);
	}
}

/* The host's idle CPUs as a test says, not as this (shared) machine has
 * them at the moment: the choices below must not depend on other jobs. */
static void idle_cpus(struct mig_flow *f, double cores)
{
	f->idle_cores = cores;
	f->idle_cores_fixed = true;
}

static void test_flow_revisits_choice(void **state)
{
	(void)state;
	struct mig_flow f;
	uint64_t t = 1000000000ull;
	/* a slow link (100 MB/s), the destination waiting on it 70% of the time,
	 * memory that compresses: zstd */
	mig_flow_init(&f, MIG_COMPRESS_AUTO, 1, 1, 0);
	idle_cpus(&f, 2.0);
	f.mode_since_ns = t;
	atomic_store(&f.acks, true);
	mig_flow_sample(&f, 1 << 20, (1 << 20) / 2, 1000000); /* 1 GB/s, 2x */
	tick_for(&f, &t, 200, 100e6, 0.7);
	assert_true(atomic_load(&f.compress));
	char mode[16], why[200];
	mig_flow_describe(&f, mode, sizeof(mode), why, sizeof(why));
	assert_string_equal(mode, "zstd-1");
	mig_flow_free(&f);

	/* the same rate, but the destination never waits: it is the limit */
	mig_flow_init(&f, MIG_COMPRESS_AUTO, 1, 1, 0);
	idle_cpus(&f, 2.0);
	f.mode_since_ns = t;
	atomic_store(&f.acks, true);
	mig_flow_sample(&f, 1 << 20, (1 << 20) / 2, 1000000);
	tick_for(&f, &t, 200, 100e6, 0.01);
	assert_false(atomic_load(&f.compress));
	mig_flow_describe(&f, mode, sizeof(mode), why, sizeof(why));
	assert_non_null(strstr(why, "destination applies pages no faster"));
	mig_flow_free(&f);

	/* a cap of 50 MB/s is the link: zstd at once, from the first sample */
	mig_flow_init(&f, MIG_COMPRESS_AUTO, 1, 1, 50000000);
	idle_cpus(&f, 2.0);
	mig_flow_sample(&f, 1 << 20, (1 << 20) / 3, 1000000);
	t += 20000000ull;
	mig_flow_tick(&f, t);
	assert_true(atomic_load(&f.compress));
	mig_flow_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_choice),
	    cmocka_unit_test(test_rate_window),
	    cmocka_unit_test(test_flow_revisits_choice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * u_dirty.c: the dirty + verify workload, one slice of pages per vCPU, all at
 * CPL3. Page p holds pattern(global page number, gen[p]). The writer walks
 * the slice round-robin at the chosen rate and verifies each page just
 * before rewriting it. Independently, a verifier walks the whole slice about
 * once per second whatever the write rate (a "sweep"), checking every page
 * against gen[p] and, at the end of a sweep, that sum(gen[]) == writes: a
 * lost or torn page (e.g. from a bad migration) shows within a second. All
 * state (gen[], counters, positions) lives in guest RAM, so a migrated guest
 * simply continues. runtime= counts from the end of the vCPU's initial fill
 * (the "dirty vcpu=..." line).
 */
#include "user.h"

#define CHUNK	  16 /* pages between clock checks */
#define MAX_FAILS 4  /* VERIFY-FAIL lines per vCPU */
#define WORDS	  (PAGE_SIZE / 8)

struct wstate {
	uint64_t pos;	    /* next page to verify and rewrite */
	uint64_t writes;    /* pages written since boot (== sum of gen[]) */
	uint64_t sweeps;    /* completed laps */
	uint64_t csum_cur;  /* sum of all words verified in the current lap */
	uint64_t csum_last; /* ... of the last completed lap */
	uint64_t fails;	    /* VERIFY-FAIL lines printed */
	uint64_t vpos;	    /* next page the verifier checks */
	uint64_t verified;  /* pages the verifier checked since the fill */
};

static struct wstate ws[MAX_CPUS] UBSS __attribute__((aligned(64)));

/* word w of a page: mix64(seed + (w + 1) * golden), seed from (gpn, gen) */
static inline uint64_t page_seed(uint64_t gpn, uint64_t gen)
{
	return mix64(gpn * 0x9e3779b97f4a7c15ull ^ mix64(gen + 0x632be59bd9b4e019ull));
}

/* Word w of a page. fill=random: every word a 64-bit random value (zstd
 * cannot shrink it). fill=mixed: one word in five stays a 64-bit random
 * value (pointer-like), the other four keep only 16 bits (small numbers):
 * zstd -1 makes about 2.4x of it, like the Debian kernel's memory, and
 * every word still depends on (gpn, gen), so a stale or misplaced page
 * still fails the check. */
static inline uint64_t word(uint64_t seed, uint64_t w)
{
	uint64_t r = mix64(seed + (w + 1) * 0x9e3779b97f4a7c15ull);

	if (u_cfg.fill_mixed && w % 5 != 0)
		r &= 0xffff;
	return r;
}

static void fill(uint64_t *pg, uint64_t gpn, uint64_t gen)
{
	uint64_t seed = page_seed(gpn, gen), w;

	for (w = 0; w < WORDS; w++)
		pg[w] = word(seed, w);
}

/* Returns the number of bad words; prints the first few. */
static uint64_t check(uint32_t idx, uint64_t p, const uint64_t *pg, uint64_t gpn, uint64_t gen,
		      bool add_to_sweep)
{
	struct wstate *st = &ws[idx];
	uint64_t seed = page_seed(gpn, gen), w, bad = 0, sum = 0;

	for (w = 0; w < WORDS; w++) {
		uint64_t got = pg[w], exp = word(seed, w);

		sum += got;
		if (got != exp) {
			bad++;
			if (st->fails++ < MAX_FAILS)
				u_printf("VERIFY-FAIL vcpu=%u page=%lu word=%lu expected=0x%016lx "
					 "got=0x%016lx\n",
					 idx, p, w, exp, got);
		}
	}
	if (add_to_sweep)
		st->csum_cur += sum;
	return bad;
}

static void *page_ptr(const struct slice *s, uint64_t p)
{
	return (void *)(uintptr_t)(s->base + p * PAGE_SIZE);
}

/* End of a lap: the invariant sum(gen[]) == writes. */
static uint64_t end_sweep(uint32_t idx, const struct slice *s)
{
	struct wstate *st = &ws[idx];
	uint64_t p, sum = 0;

	for (p = 0; p < s->npages; p++)
		sum += s->gen[p];
	st->sweeps++;
	st->csum_last = st->csum_cur;
	st->csum_cur = 0;
	if (sum == st->writes)
		return 0;
	u_printf("VERIFY-FAIL vcpu=%u invariant sum(gen)=%lu writes=%lu\n", idx, sum, st->writes);
	return 1;
}

static void corrupt_one(uint32_t idx, const struct slice *s)
{
	/* Behind the writer, ahead of the verifier: only a check can find it. */
	uint64_t p = (ws[idx].vpos + s->npages / 2) % s->npages;
	volatile uint64_t *pg = page_ptr(s, p);

	pg[7] ^= 1ull << 17;
	u_printf("testguest: selftest-corrupt: flipped vcpu=%u page=%lu word=7\n", idx, p);
}

static void progress(uint32_t idx)
{
	struct wstate *st = &ws[idx];

	u_printf("progress vcpu=%u t=%lu writes=%lu sweeps=%lu errors=0 csum=0x%016lx\n", idx,
		 u_ms(), st->writes, st->sweeps, st->csum_last);
}

uint64_t dirty_run(uint32_t idx)
{
	const struct slice *s = &u_slice[idx];
	struct wstate *st = &ws[idx];
	uint64_t gpn0 = s->base / PAGE_SIZE, P = u_cfg.has_dirty ? s->npages : 0;
	uint64_t per_rate = u_cfg.rate / u_sys.ncpus, written = 0, errors = 0, p, k;
	uint64_t prog_ticks = u_cfg.progress * HZ / 1000, start, end, next_prog, next_cpuid;
	bool corrupted = !u_cfg.selftest_corrupt || idx != 0;

	if (u_cfg.rate && !per_rate)
		per_rate = 1;
	for (p = 0; p < P; p++) {
		s->gen[p] = 0;
		fill(page_ptr(s, p), gpn0 + p, 0);
	}
	if (u_cfg.progress && !prog_ticks)
		prog_ticks = 1;
	start = u_ticks();
	if (P)
		u_printf("dirty vcpu=%u pages=%lu base=0x%lx t=%lu\n", idx, P, s->base, u_ms());
	end = start + u_cfg.runtime * HZ;
	next_prog = start + prog_ticks;
	next_cpuid = start + u_cfg.cpuid_interval * HZ;

	for (;;) {
		uint64_t now = u_ticks();

		if (u_cfg.has_runtime && now >= end)
			break;
		if (prog_ticks && now >= next_prog) {
			progress(idx);
			next_prog += prog_ticks;
			if (next_prog <= now)
				next_prog = now + prog_ticks;
		}
		if (u_cfg.cpuid_interval && now >= next_cpuid) {
			cpuid_report(idx);
			next_cpuid = now + u_cfg.cpuid_interval * HZ;
		}
		bool busy = false;
		/* The verifier: one full sweep per second of guest time. */
		if (P && st->verified < (now - start + 1) * P / HZ) {
			for (k = 0; k < CHUNK && k < P; k++) {
				p = st->vpos;
				if (check(idx, p, page_ptr(s, p), gpn0 + p, s->gen[p], true))
					u_exit(EXIT_VERIFY);
				st->verified++;
				if (++st->vpos == P) {
					st->vpos = 0;
					if (end_sweep(idx, s))
						u_exit(EXIT_VERIFY);
				}
			}
			busy = true;
		}
		/* The writer, at the chosen rate. */
		if (P && !(per_rate && written * PAGE_SIZE >= (now - start) * per_rate / HZ)) {
			for (k = 0; k < CHUNK && k < P; k++) {
				uint64_t *pg;

				p = st->pos;
				pg = page_ptr(s, p);
				if (check(idx, p, pg, gpn0 + p, s->gen[p], false))
					u_exit(EXIT_VERIFY);
				s->gen[p]++;
				fill(pg, gpn0 + p, s->gen[p]);
				st->writes++;
				written++;
				if (++st->pos == P)
					st->pos = 0;
			}
			busy = true;
		}
		if (!busy) {
			u_sleep_until(now + 1);
			continue;
		}
		if (!corrupted && st->sweeps >= 1) {
			corrupt_one(idx, s);
			corrupted = true;
		}
	}

	/* final full verification */
	st->csum_cur = 0;
	for (p = 0; p < P; p++)
		errors += check(idx, p, page_ptr(s, p), gpn0 + p, s->gen[p], true);
	if (P) {
		uint64_t sum = 0;

		for (p = 0; p < P; p++)
			sum += s->gen[p];
		if (sum != st->writes) {
			u_printf("VERIFY-FAIL vcpu=%u invariant sum(gen)=%lu writes=%lu\n", idx,
				 sum, st->writes);
			errors++;
		}
	}
	u_printf("final vcpu=%u writes=%lu sweeps=%lu errors=%lu csum=0x%016lx\n", idx, st->writes,
		 st->sweeps, errors, st->csum_cur);
	return errors;
}

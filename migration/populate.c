/*
 * migration/populate.c: at the destination, map the memory the source says
 * holds data (its RamMap) on a thread of its own, ahead of the arriving
 * pages, so the receive path writes into memory that is already there
 * instead of taking a page fault per 4 KiB page (microseconds each on a
 * nested host: more than the copy). Only the announced ranges are
 * populated: never-touched guest memory stays unpopulated here too. The
 * threads keep ahead of the receivers: if they have passed them, they jump
 * to where they are rather than populate what they already wrote; and they
 * stop when pass 0 is over (the rest is written, or zero).
 */
#include "migration/ram.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Populated per call: the receivers can overtake in between, and a stop
 * request waits for at most one step (512 KiB: 128 faults of 4 KiB). */
#define STEP (512ull << 10)

struct mig_populate {
	const struct guest_memory *mem;
	struct mig_ram_in *in;
	pthread_t threads[MIG_POPULATE_THREADS];
	unsigned nthreads;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	uint64_t *off, *len; /* memfd byte ranges, in the order announced */
	unsigned n, next;
	uint64_t pos; /* in range `next` */
	bool stop;
	bool madvise_ok;
	uint64_t bytes, ns;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void populate(struct mig_populate *p, uint64_t off, uint64_t len)
{
	uint8_t *base = p->mem->base + off;
	if (p->madvise_ok) {
		if (madvise(base, len, MADV_POPULATE_WRITE) == 0)
			return;
		if (errno != EINVAL)
			return; /* e.g. ENOMEM: the receive path will fault as before */
		p->madvise_ok = false;
	}
	/* Older kernels: touch each page with an atomic add of zero, which never
	 * loses a receiver's concurrent write to the same page. */
	for (uint64_t o = 0; o < len; o += p->mem->page_size)
		__atomic_fetch_add(base + o, 0, __ATOMIC_RELAXED);
}

static void *populate_main(void *arg)
{
	pthread_setname_np(pthread_self(), "mig-populate");
	struct mig_populate *p = arg;
	uint64_t align = p->mem->page_size;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && p->next == p->n)
			pthread_cond_wait(&p->cv, &p->lock);
		/* Pass 0 has brought every page of the map: what is left is
		 * written already or zero (it would be zero here too), and the
		 * receivers, now on dirty pages, need the CPUs more. */
		if (atomic_load(&p->in->last_iteration) > 1)
			p->stop = true;
		if (p->stop)
			break;
		uint64_t start = p->off[p->next], end = start + p->len[p->next];
		uint64_t at = start + p->pos;
		/* The receivers are past this point: go where they are. */
		uint64_t hw = atomic_load(&p->in->high_water);
		if (hw > at && hw < end)
			at = hw;
		at &= ~(align - 1);
		uint64_t step = STEP > align ? STEP : align; /* at least one huge page */
		uint64_t stop = at + step < end ? at + step : end;
		stop = (stop + align - 1) & ~(align - 1);
		if (stop > p->mem->size)
			stop = p->mem->size;
		/* claim [at, stop) before working on it: the others take the next */
		if (stop >= end) {
			p->next++;
			p->pos = 0;
		} else {
			p->pos = stop - start;
		}
		pthread_mutex_unlock(&p->lock);
		uint64_t t0 = mono_ns();
		if (stop > at)
			populate(p, at, stop - at);
		pthread_mutex_lock(&p->lock);
		p->ns += mono_ns() - t0;
		p->bytes += stop > at ? stop - at : 0;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int mig_populate_start(struct mig_populate **out, const struct guest_memory *mem,
		       struct mig_ram_in *in, struct vmm_error *err)
{
	struct mig_populate *p = calloc(1, sizeof(*p));
	if (!p)
		return vmm_error_set(err, -ENOMEM, "migration: out of memory");
	p->off = calloc(MIG_POPULATE_MAX_RANGES, sizeof(uint64_t));
	p->len = calloc(MIG_POPULATE_MAX_RANGES, sizeof(uint64_t));
	if (!p->off || !p->len) {
		free(p->off);
		free(p->len);
		free(p);
		return vmm_error_set(err, -ENOMEM, "migration: out of memory");
	}
	p->mem = mem;
	p->in = in;
	p->madvise_ok = true;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cv, NULL);
	/* 4 KiB pages: each fault is dear, use the CPUs; 2 MiB pages are few */
	const char *env = getenv("VMM_POPULATE_THREADS");
	unsigned want = env ? (unsigned)atoi(env) : mem->hugetlb ? 1 : MIG_POPULATE_THREADS;
	if (want < 1 || want > MIG_POPULATE_THREADS)
		want = 1;
	for (unsigned i = 0; i < want; i++) {
		int r = pthread_create(&p->threads[i], NULL, populate_main, p);
		if (r != 0 && i == 0) {
			free(p->off);
			free(p->len);
			free(p);
			return vmm_error_set(err, -r,
					     "migration: cannot start the populate thread: %s",
					     strerror(r));
		}
		if (r != 0)
			break;
		p->nthreads = i + 1;
	}
	*out = p;
	return 0;
}

int mig_populate_map(struct mig_populate *p, const struct mig_record *rec, struct vmm_error *err)
{
	Vmm__Migration__RamMap *m;
	int r = mig_unpack(rec, &vmm__migration__ram_map__descriptor, (ProtobufCMessage **)&m, err);
	if (r < 0)
		return r;
	if (m->n_first != m->n_count || m->n_first > MIG_MAP_MAX_RANGES) {
		r = vmm_error_set(err, -EBADMSG, "ram-map: %zu starts, %zu counts (at most %u)",
				  m->n_first, m->n_count, MIG_MAP_MAX_RANGES);
		goto out;
	}
	uint64_t total = p->mem->size / MIG_PAGE_SIZE;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < m->n_first; i++) {
		uint64_t first = m->first[i], count = m->count[i];
		int64_t a = mig_page_index(p->mem, first);
		int64_t b = count == 0 || count > total || first + count - 1 < first
				? -1
				: mig_page_index(p->mem, first + count - 1);
		if (a < 0 || b < 0 || (uint64_t)(b - a) != count - 1) {
			r = vmm_error_set(err, -EFAULT,
					  "ram-map: pages 0x%llx+%llu are not guest RAM",
					  (unsigned long long)first, (unsigned long long)count);
			break;
		}
		if (p->n == MIG_POPULATE_MAX_RANGES)
			continue; /* a hint: the rest fault in as they arrive */
		p->off[p->n] = (uint64_t)a << MIG_PAGE_SHIFT;
		p->len[p->n] = count << MIG_PAGE_SHIFT;
		p->n++;
	}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->lock);
out:
	protobuf_c_message_free_unpacked(&m->base, NULL);
	return r;
}

void mig_populate_request_stop(struct mig_populate *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->lock);
}

void mig_populate_stop(struct mig_populate *p, uint64_t *bytes, uint64_t *ns)
{
	if (!p)
		return;
	mig_populate_request_stop(p);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	if (bytes)
		*bytes = p->bytes;
	if (ns)
		*ns = p->ns;
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cv);
	free(p->off);
	free(p->len);
	free(p);
}

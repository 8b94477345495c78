/*
 * migration/zpool.c: worker threads for (de)compression. Jobs are queued in
 * order and taken by whichever worker is free; the owner of a job waits for
 * it (mig_zpool_wait) and keeps its own order (a sender writes its batches
 * in the order it made them, a receiver applies them in order where pages
 * could overlap). Each worker keeps its own zstd contexts.
 */
#include "migration/ram.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#define QUEUE 64

struct mig_zpool {
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	struct mig_zjob *queue[QUEUE];
	unsigned head, count;
	bool stop;
	unsigned nthreads;
	pthread_t threads[8];
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *worker(void *arg)
{
	pthread_setname_np(pthread_self(), "mig-zstd");
	struct mig_zpool *p = arg;
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->count && !p->stop)
			pthread_cond_wait(&p->work, &p->lock);
		if (!p->count && p->stop)
			break;
		struct mig_zjob *job = p->queue[p->head];
		p->head = (p->head + 1) % QUEUE;
		p->count--;
		pthread_cond_broadcast(&p->done); /* a queue slot is free */
		pthread_mutex_unlock(&p->lock);
		uint64_t t0 = mono_ns();
		job->fn(job, cctx, dctx);
		job->ns = mono_ns() - t0;
		pthread_mutex_lock(&p->lock);
		atomic_store(&job->state, 2);
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	ZSTD_freeCCtx(cctx);
	ZSTD_freeDCtx(dctx);
	return NULL;
}

int mig_zpool_start(struct mig_zpool **out, unsigned threads, struct vmm_error *err)
{
	struct mig_zpool *p = calloc(1, sizeof(*p));
	if (!p)
		return vmm_error_set(err, -ENOMEM, "migration: out of memory for workers");
	if (threads == 0)
		threads = 1;
	if (threads > sizeof(p->threads) / sizeof(p->threads[0]))
		threads = sizeof(p->threads) / sizeof(p->threads[0]);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	for (unsigned i = 0; i < threads; i++) {
		int r = pthread_create(&p->threads[i], NULL, worker, p);
		if (r != 0) {
			p->nthreads = i;
			mig_zpool_stop(p);
			return vmm_error_set(err, -r,
					     "migration: cannot start a compression worker: %s",
					     strerror(r));
		}
		p->nthreads = i + 1;
	}
	*out = p;
	return 0;
}

unsigned mig_zpool_threads(const struct mig_zpool *p)
{
	return p ? p->nthreads : 0;
}

void mig_zpool_submit(struct mig_zpool *p, struct mig_zjob *job)
{
	atomic_store(&job->state, 1);
	pthread_mutex_lock(&p->lock);
	while (p->count == QUEUE)
		pthread_cond_wait(&p->done, &p->lock);
	p->queue[(p->head + p->count) % QUEUE] = job;
	p->count++;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
}

bool mig_zjob_done(struct mig_zjob *job)
{
	return atomic_load(&job->state) != 1;
}

void mig_zpool_wait(struct mig_zpool *p, struct mig_zjob *job)
{
	if (mig_zjob_done(job))
		return;
	pthread_mutex_lock(&p->lock);
	while (atomic_load(&job->state) == 1)
		pthread_cond_wait(&p->done, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

void mig_zpool_stop(struct mig_zpool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	free(p);
}

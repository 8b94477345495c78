/*
 * bench/aio-bench.c: io_uring vs a thread pool for virtio-blk's backend, on
 * a raw image in the host page cache, 8 requests in flight like the test
 * guest: 4 KiB random writes/reads and 1 MiB sequential writes/reads.
 *
 *   cc -O2 -o /tmp/aio-bench bench/aio-bench.c -luring -lpthread && /tmp/aio-bench /var/tmp
 *
 * "io_uring async" sets IOSQE_ASYNC (the copy on io_uring's workers, as
 * virtio-blk does for 128 KiB and more). The thread pool: 4 workers taking requests from a locked queue and
 * completing them through a second one, as a device thread would see it.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QD	  8
#define FILE_SIZE (256ull << 20)
#define SECONDS	  2
#define WORKERS	  4

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rnd = 88172645463325252ull;
static uint64_t next_off(int seq, size_t bs, uint64_t *pos)
{
	if (seq) {
		uint64_t o = *pos;
		*pos = (*pos + bs) % FILE_SIZE;
		return o;
	}
	rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
	return (rnd % (FILE_SIZE / bs)) * bs;
}

static double bench_uring(int fd, int write, int seq, size_t bs, char *bufs, int async)
{
	struct io_uring ring;
	io_uring_queue_init(2 * QD, &ring, 0);
	uint64_t pos = 0, ops = 0;
	double t0 = now(), end = t0 + SECONDS;
	for (int i = 0; i < QD; i++) {
		struct io_uring_sqe *e = io_uring_get_sqe(&ring);
		if (write)
			io_uring_prep_write(e, fd, bufs + i * bs, bs, next_off(seq, bs, &pos));
		else
			io_uring_prep_read(e, fd, bufs + i * bs, bs, next_off(seq, bs, &pos));
		io_uring_sqe_set_data64(e, i);
		if (async)
			io_uring_sqe_set_flags(e, IOSQE_ASYNC);
	}
	io_uring_submit(&ring);
	int inflight = QD;
	while (inflight) {
		struct io_uring_cqe *c;
		io_uring_wait_cqe(&ring, &c);
		uint64_t i = io_uring_cqe_get_data64(c);
		io_uring_cqe_seen(&ring, c);
		ops++;
		inflight--;
		if (now() < end) {
			struct io_uring_sqe *e = io_uring_get_sqe(&ring);
			if (write)
				io_uring_prep_write(e, fd, bufs + i * bs, bs,
						    next_off(seq, bs, &pos));
			else
				io_uring_prep_read(e, fd, bufs + i * bs, bs,
						   next_off(seq, bs, &pos));
			io_uring_sqe_set_data64(e, i);
			if (async)
				io_uring_sqe_set_flags(e, IOSQE_ASYNC);
			io_uring_submit(&ring);
			inflight++;
		}
	}
	double t = now() - t0;
	io_uring_queue_exit(&ring);
	return ops * bs / t / 1e6;
}

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	int req[QD], nreq, fin[QD], nfin, stop;
	uint64_t off[QD];
	int fd, write;
	size_t bs;
	char *bufs;
};

static void *worker(void *arg)
{
	struct pool *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->nreq && !p->stop)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		int i = p->req[--p->nreq];
		pthread_mutex_unlock(&p->lock);
		if (p->write)
			(void)!pwrite(p->fd, p->bufs + i * p->bs, p->bs, (off_t)p->off[i]);
		else
			(void)!pread(p->fd, p->bufs + i * p->bs, p->bs, (off_t)p->off[i]);
		pthread_mutex_lock(&p->lock);
		p->fin[p->nfin++] = i;
		pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static double bench_pool(int fd, int write, int seq, size_t bs, char *bufs)
{
	struct pool p = {.fd = fd, .write = write, .bs = bs, .bufs = bufs};
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.work, NULL);
	pthread_cond_init(&p.done, NULL);
	pthread_t th[WORKERS];
	for (int i = 0; i < WORKERS; i++)
		pthread_create(&th[i], NULL, worker, &p);
	uint64_t pos = 0, ops = 0;
	double t0 = now(), end = t0 + SECONDS;
	pthread_mutex_lock(&p.lock);
	for (int i = 0; i < QD; i++) {
		p.off[i] = next_off(seq, bs, &pos);
		p.req[p.nreq++] = i;
	}
	pthread_cond_broadcast(&p.work);
	int inflight = QD;
	while (inflight) {
		while (!p.nfin)
			pthread_cond_wait(&p.done, &p.lock);
		int i = p.fin[--p.nfin];
		ops++;
		inflight--;
		if (now() < end) {
			p.off[i] = next_off(seq, bs, &pos);
			p.req[p.nreq++] = i;
			pthread_cond_signal(&p.work);
			inflight++;
		}
	}
	p.stop = 1;
	pthread_cond_broadcast(&p.work);
	pthread_mutex_unlock(&p.lock);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(th[i], NULL);
	double t = now() - t0;
	return ops * bs / t / 1e6;
}

int main(int argc, char **argv)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/aio-bench.img", argc > 1 ? argv[1] : "/var/tmp");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, FILE_SIZE) < 0) {
		perror(path);
		return 1;
	}
	char *bufs = aligned_alloc(4096, QD << 20);
	memset(bufs, 0x5a, QD << 20);
	for (uint64_t o = 0; o < FILE_SIZE; o += 1 << 20) /* fill: reads hit real pages */
		(void)!pwrite(fd, bufs, 1 << 20, (off_t)o);
	static const struct {
		const char *name;
		int write, seq;
		size_t bs;
	} modes[] = {{"randwrite 4K", 1, 0, 4096},
		     {"randread 4K", 0, 0, 4096},
		     {"seqwrite 1M", 1, 1, 1 << 20},
		     {"seqread 1M", 0, 1, 1 << 20}};
	printf("%-14s %14s %14s %14s  (MB/s)\n", "mode (QD 8)", "io_uring", "io_uring async",
	       "threads");
	for (unsigned m = 0; m < 4; m++)
		printf("%-14s %14.0f %14.0f %14.0f\n", modes[m].name,
		       bench_uring(fd, modes[m].write, modes[m].seq, modes[m].bs, bufs, 0),
		       bench_uring(fd, modes[m].write, modes[m].seq, modes[m].bs, bufs, 1),
		       bench_pool(fd, modes[m].write, modes[m].seq, modes[m].bs, bufs));
	close(fd);
	unlink(path);
	return 0;
}

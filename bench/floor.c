/*
 * bench/floor.c: what this machine allows a migration of N MiB over
 * loopback TCP at best, whatever the VMM. Measured with nothing but the
 * kernel's own mechanisms, no VMM, no protocol, no checks:
 *
 *   copy1, copy2   N MiB sent over 1 (2) loopback TCP connections from a
 *                  filled memfd in one process into memory that is already
 *                  mapped in another (writev/read, one thread per
 *                  connection on each side). No migration over TCP moves
 *                  N MiB faster on this machine, into any kind of memory.
 *   fresh1, fresh2 the same into a fresh memfd of 4 KiB pages, which two threads
 *                  map ahead of the data (MADV_POPULATE_WRITE, 512 KiB at a
 *                  time, all connections' ranges evenly): the mechanism
 *                  vmm's destination uses, bare. Measured here, a socket
 *                  spliced into the memfd, or read and pwrite()n into it
 *                  (pages allocated without a fault, mapped afterwards with
 *                  fault-around), were no faster.
 *   populate4k_1t, populate4k_2t
 *                  MADV_POPULATE_WRITE of a fresh N MiB memfd of 4 KiB pages
 *                  with 1 (2) threads. A destination whose RAM is 4 KiB
 *                  pages must map every page that arrives: with 2 threads on
 *                  2 cores, nothing else can run meanwhile.
 *   populate2m     the same on a hugetlb memfd (skipped, "null", when the
 *                  pool is too small).
 *
 * Prints one JSON object: medians of `repeat` runs, milliseconds.
 * build: cc -O2 -pthread -o /tmp/floor bench/floor.c
 * run:   /tmp/floor [MiB] [repeat]   (migrate-bench.py does both)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define MAX_CONNS 2
#define CHUNK	  (1u << 20)
#define STEP	  (512u << 10)

static size_t size;

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A shared memfd mapping like guest RAM; NULL if hugetlb has no pages. */
static uint8_t *map_memfd(bool huge)
{
	int fd = memfd_create("floor", huge ? MFD_HUGETLB : 0);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		if (huge)
			return NULL;
		die("memfd");
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		if (huge)
			return NULL;
		die("mmap");
	}
	return p;
}

struct worker {
	int fd;
	uint8_t *base;
	size_t len;
	pthread_t thread;
};

static void *send_main(void *arg)
{
	struct worker *w = arg;
	for (size_t off = 0; off < w->len;) {
		struct iovec v = {w->base + off, w->len - off < CHUNK ? w->len - off : CHUNK};
		ssize_t n = writev(w->fd, &v, 1);
		if (n <= 0)
			die("writev");
		off += (size_t)n;
	}
	return NULL;
}

static void *recv_main(void *arg)
{
	struct worker *w = arg;
	for (size_t off = 0; off < w->len;) {
		ssize_t n = read(w->fd, w->base + off, w->len - off);
		if (n <= 0)
			die("read");
		off += (size_t)n;
	}
	return NULL;
}

/* Maps the receivers' ranges ahead of them, step by step, evenly. */
struct ahead {
	uint8_t *base;
	int conns;
	atomic_size_t next; /* steps handed out */
};

static void *ahead_main(void *arg)
{
	struct ahead *a = arg;
	size_t per = size / (size_t)a->conns;
	for (;;) {
		size_t k = atomic_fetch_add(&a->next, 1);
		size_t off = k / (size_t)a->conns * STEP;
		if (off >= per)
			return NULL;
		size_t len = per - off < STEP ? per - off : STEP;
		madvise(a->base + per * (k % (size_t)a->conns) + off, len, MADV_POPULATE_WRITE);
	}
}

static void run_workers(struct worker *w, int n, void *(*fn)(void *))
{
	for (int i = 0; i < n; i++)
		if (pthread_create(&w[i].thread, NULL, fn, &w[i]) != 0)
			die("pthread_create");
	for (int i = 0; i < n; i++)
		pthread_join(w[i].thread, NULL);
}

/* One transfer over `conns` connections; the receiving process reports its
 * time (first byte awaited to last byte read) through a pipe. */
static double copy_once(uint8_t *src, int conns, bool fresh)
{
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, MAX_CONNS) < 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &alen) < 0)
		die("listen");
	int report[2], go[2];
	if (pipe(report) < 0 || pipe(go) < 0)
		die("pipe");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		uint8_t *dst = map_memfd(false);
		if (!fresh && madvise(dst, size, MADV_POPULATE_WRITE) < 0)
			die("madvise");
		struct worker w[MAX_CONNS];
		for (int i = 0; i < conns; i++) {
			w[i] = (struct worker){.fd = accept(ls, NULL, NULL),
					       .base = dst + size / conns * i,
					       .len = size / conns};
			if (w[i].fd < 0)
				die("accept");
		}
		if (write(go[1], "g", 1) != 1)
			die("write");
		double t0 = now_ms();
		struct ahead ahead = {.base = dst, .conns = conns};
		pthread_t at[2];
		for (int i = 0; fresh && i < 2; i++)
			if (pthread_create(&at[i], NULL, ahead_main, &ahead) != 0)
				die("pthread_create");
		run_workers(w, conns, recv_main);
		for (int i = 0; fresh && i < 2; i++)
			pthread_join(at[i], NULL);
		double ms = now_ms() - t0;
		if (memcmp(src, dst, size) != 0) {
			fprintf(stderr, "floor: data arrived damaged\n");
			_exit(1);
		}
		_exit(write(report[1], &ms, sizeof(ms)) == sizeof(ms) ? 0 : 1);
	}
	struct worker w[MAX_CONNS];
	for (int i = 0; i < conns; i++) {
		w[i] = (struct worker){.fd = socket(AF_INET, SOCK_STREAM, 0),
				       .base = src + size / conns * i,
				       .len = size / conns};
		if (w[i].fd < 0 || connect(w[i].fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			die("connect");
	}
	char c;
	if (read(go[0], &c, 1) != 1)
		die("the receiver");
	run_workers(w, conns, send_main);
	double ms = -1;
	int status = 1;
	if (read(report[0], &ms, sizeof(ms)) != sizeof(ms) || waitpid(pid, &status, 0) < 0 ||
	    status != 0) {
		fprintf(stderr, "floor: the receiving process failed\n");
		exit(1);
	}
	for (int i = 0; i < conns; i++)
		close(w[i].fd);
	close(ls);
	close(report[0]), close(report[1]), close(go[0]), close(go[1]);
	return ms;
}

struct populate_arg {
	uint8_t *base;
	size_t len;
};

static void *populate_main(void *arg)
{
	struct populate_arg *p = arg;
	if (madvise(p->base, p->len, MADV_POPULATE_WRITE) < 0)
		die("MADV_POPULATE_WRITE");
	return NULL;
}

/* -1: a hugetlb memfd of that size could not be had. */
static double populate_once(bool huge, int threads)
{
	uint8_t *m = map_memfd(huge);
	if (!m)
		return -1;
	pthread_t t[2];
	struct populate_arg a[2];
	double t0 = now_ms();
	for (int i = 0; i < threads; i++) {
		a[i] = (struct populate_arg){m + size / threads * i, size / threads};
		if (pthread_create(&t[i], NULL, populate_main, &a[i]) != 0)
			die("pthread_create");
	}
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	double ms = now_ms() - t0;
	munmap(m, size);
	return ms;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[n / 2];
}

static void print_median(const char *name, double *v, int n, bool last)
{
	double m = median(v, n);
	if (m < 0)
		printf("\"%s\": null%s", name, last ? "" : ", ");
	else
		printf("\"%s\": %.1f%s", name, m, last ? "" : ", ");
}

int main(int argc, char **argv)
{
	long mib = argc > 1 ? atol(argv[1]) : 512;
	int repeat = argc > 2 ? atoi(argv[2]) : 3;
	if (mib < 2 || mib > 65536 || mib % 2 || repeat < 1 || repeat > 15) {
		fprintf(stderr, "usage: floor [MiB: even, 2..65536] [repeat: 1..15]\n");
		return 2;
	}
	size = (size_t)mib << 20;
	uint8_t *src = map_memfd(false);
	uint64_t x = 0x9e3779b97f4a7c15ull; /* incompressible, like the random fill */
	for (size_t i = 0; i < size; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(src + i, &x, 8);
	}
	double c1[15], c2[15], f1[15], f2[15], p1[15], p2[15], h[15];
	for (int r = 0; r < repeat; r++) {
		c1[r] = copy_once(src, 1, false);
		c2[r] = copy_once(src, 2, false);
		f1[r] = copy_once(src, 1, true);
		f2[r] = copy_once(src, 2, true);
		p1[r] = populate_once(false, 1);
		p2[r] = populate_once(false, 2);
		h[r] = populate_once(true, 1);
	}
	printf("{\"mib\": %ld, \"repeat\": %d, ", mib, repeat);
	print_median("copy1", c1, repeat, false);
	print_median("copy2", c2, repeat, false);
	print_median("fresh1", f1, repeat, false);
	print_median("fresh2", f2, repeat, false);
	print_median("populate4k_1t", p1, repeat, false);
	print_median("populate4k_2t", p2, repeat, false);
	print_median("populate2m", h, repeat, true);
	printf("}\n");
	return 0;
}

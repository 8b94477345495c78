/*
 * core/virtio/iothread.c: the thread a virtio device does its work on, so
 * that no request is processed on a vCPU thread. One thread per device, an
 * epoll loop over eventfds: the queues' ioeventfds (KVM signals them on a
 * QueueNotify write without leaving the kernel) and the device's own (e.g.
 * io_uring completions, a timerfd) and, edge-triggered, other descriptors
 * such as a tap. Why one per device and not one shared: devices
 * never wait on each other (a disk's flush does not delay the entropy
 * device or a future NIC's receive path), and a device's handlers and its
 * lock stay on one thread. Handlers take the device lock themselves.
 */
#include "core/virtio/virtio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

int iothread_init(struct iothread *t, const char *name, struct vmm_error *err)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->epfd < 0 || t->stop_fd < 0) {
		int e = errno;
		iothread_destroy(t);
		return vmm_error_set(err, -e, "%s: I/O thread: %s", name, strerror(e));
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
	if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->stop_fd, &ev) < 0) {
		int e = errno;
		iothread_destroy(t);
		return vmm_error_set(err, -e, "%s: epoll_ctl: %s", name, strerror(e));
	}
	return 0;
}

static int add_watch(struct iothread *t, int fd, uint32_t events, bool counter, iothread_fn fn,
		     void *ctx, struct vmm_error *err)
{
	if (t->started || t->nwatch == IOTHREAD_MAX_WATCH)
		return vmm_error_set(err, -ENOSPC, "%s: too many I/O thread watches", t->name);
	unsigned i = t->nwatch;
	struct epoll_event ev = {.events = events, .data.u32 = i};
	if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return vmm_error_set(err, -errno, "%s: epoll_ctl: %s", t->name, strerror(errno));
	t->watch[i].fd = fd;
	t->watch[i].fn = fn;
	t->watch[i].ctx = ctx;
	t->watch[i].counter = counter;
	t->nwatch++;
	return 0;
}

int iothread_watch(struct iothread *t, int fd, iothread_fn fn, void *ctx, struct vmm_error *err)
{
	return add_watch(t, fd, EPOLLIN, true, fn, ctx, err);
}

int iothread_watch_edge(struct iothread *t, int fd, iothread_fn fn, void *ctx,
			struct vmm_error *err)
{
	/* Edge-triggered: a tap stays readable while the guest has no receive
	 * buffers; level-triggered, that would spin this thread. */
	return add_watch(t, fd, EPOLLIN | EPOLLET, false, fn, ctx, err);
}

void iothread_unwatch(struct iothread *t, int fd)
{
	epoll_ctl(t->epfd, EPOLL_CTL_DEL, fd, NULL);
}

static void *iothread_main(void *arg)
{
	struct iothread *t = arg;
	pthread_setname_np(pthread_self(), t->name);
	for (;;) {
		struct epoll_event ev[IOTHREAD_MAX_WATCH + 1];
		int n = epoll_wait(t->epfd, ev, IOTHREAD_MAX_WATCH + 1, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "vmm: %s: epoll_wait: %s; the device stops\n", t->name,
				strerror(errno));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			uint32_t w = ev[i].data.u32;
			if (w == UINT32_MAX)
				return NULL;
			uint64_t count;
			/* nonblocking eventfd: reading resets the counter */
			if (t->watch[w].counter &&
			    read(t->watch[w].fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
				continue;
			t->watch[w].fn(t->watch[w].ctx);
		}
	}
}

int iothread_start(struct iothread *t, struct vmm_error *err)
{
	int r = pthread_create(&t->thread, NULL, iothread_main, t);
	if (r)
		return vmm_error_set(err, -r, "%s: cannot start its I/O thread: %s", t->name,
				     strerror(r));
	t->started = true;
	return 0;
}

void iothread_destroy(struct iothread *t)
{
	if (t->started) {
		uint64_t one = 1;
		while (write(t->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
		pthread_join(t->thread, NULL);
		t->started = false;
	}
	if (t->epfd >= 0)
		close(t->epfd);
	if (t->stop_fd >= 0)
		close(t->stop_fd);
	t->epfd = t->stop_fd = -1;
}

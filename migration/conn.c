/* migration/conn.c: see conn.h. */
#include "migration/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- URIs ---- */

int mig_uri_parse(const char *uri, struct mig_uri *out, struct vmm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(uri, "unix:", 5) == 0 || strncmp(uri, "file:", 5) == 0) {
		out->kind = uri[0] == 'u' ? MIG_UNIX : MIG_FILE;
		size_t max = out->kind == MIG_UNIX ? sizeof(((struct sockaddr_un *)0)->sun_path)
						   : sizeof(out->path);
		if (!uri[5] || strlen(uri + 5) >= max)
			return vmm_error_set(err, -EINVAL, "uri %s: missing or too long path", uri);
		snprintf(out->path, sizeof(out->path), "%s", uri + 5);
		return 0;
	}
	if (strncmp(uri, "tcp:", 4) != 0)
		return vmm_error_set(err, -EINVAL,
				     "uri %s: expected tcp:HOST:PORT, unix:PATH or file:PATH", uri);
	const char *hp = uri + 4, *colon;
	if (*hp == '[') { /* tcp:[::1]:4444 */
		const char *close = strchr(hp, ']');
		if (!close || close[1] != ':')
			return vmm_error_set(err, -EINVAL, "uri %s: bad IPv6 address", uri);
		if ((size_t)(close - hp - 1) >= sizeof(out->host))
			return vmm_error_set(err, -EINVAL, "uri %s: host too long", uri);
		memcpy(out->host, hp + 1, (size_t)(close - hp - 1));
		colon = close + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon || (size_t)(colon - hp) >= sizeof(out->host))
			return vmm_error_set(err, -EINVAL, "uri %s: expected tcp:HOST:PORT", uri);
		memcpy(out->host, hp, (size_t)(colon - hp));
	}
	const char *port = colon + 1;
	char *end;
	long p = strtol(port, &end, 10);
	if (!*port || *end || p < 0 || p > 65535)
		return vmm_error_set(err, -EINVAL, "uri %s: bad port \"%s\"", uri, port);
	snprintf(out->port, sizeof(out->port), "%ld", p);
	out->kind = MIG_TCP;
	return 0;
}

/* ---- cancel ---- */

int mig_cancel_init(struct mig_cancel *c, struct vmm_error *err)
{
	c->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->fd < 0)
		return vmm_error_set(err, -errno, "eventfd: %s", strerror(errno));
	return 0;
}

void mig_cancel_raise(struct mig_cancel *c)
{
	uint64_t one = 1;
	/* Never read back: once raised, every poll on it returns at once. */
	if (write(c->fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is already huge, i.e. raised */
	}
}

bool mig_cancel_raised(const struct mig_cancel *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	return poll(&p, 1, 0) > 0;
}

void mig_cancel_free(struct mig_cancel *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* ---- plain descriptors ---- */

static ssize_t plain_writev(struct mig_conn *c, const struct iovec *iov, int n)
{
	ssize_t w = c->kind == MIG_FILE ? writev(c->fd, iov, n)
					: sendmsg(c->fd, &(struct msghdr){.msg_iov = (struct iovec *)iov,
									  .msg_iovlen = (size_t)n},
						  MSG_NOSIGNAL);
	return w < 0 ? -errno : w;
}

/* unix sockets: keep a descriptor the peer passed (a same-host move's
 * RAM); plain read() would drop it, and more than one is never wanted. */
static void take_fds(struct mig_conn *c, struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const int *fds = (const int *)(void *)CMSG_DATA(cm);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, fds + i, sizeof(fd));
			if (!c->has_passed_fd) {
				c->passed_fd = fd;
				c->has_passed_fd = true;
			} else {
				close(fd);
			}
		}
	}
}

static ssize_t plain_readv(struct mig_conn *c, const struct iovec *iov, int n)
{
	if (c->kind != MIG_UNIX) {
		ssize_t r = readv(c->fd, iov, n);
		return r < 0 ? -errno : r;
	}
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n,
			    .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
	ssize_t r = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	if (r < 0)
		return -errno;
	if (mh.msg_controllen)
		take_fds(c, &mh);
	return r;
}

static ssize_t plain_read(struct mig_conn *c, void *buf, size_t len)
{
	if (c->kind == MIG_UNIX)
		return plain_readv(c, &(struct iovec){buf, len}, 1);
	ssize_t r = read(c->fd, buf, len);
	return r < 0 ? -errno : r;
}

static bool plain_pending(struct mig_conn *c)
{
	(void)c;
	return false;
}

static void plain_close(struct mig_conn *c)
{
	(void)c;
}

/* Why the last read or write failed, in the transport's own words. */
static const char *failure(struct mig_conn *c, int e)
{
	const char *d = c->ops->error_detail ? c->ops->error_detail(c) : NULL;
	return d && *d ? d : strerror(e);
}

static const struct mig_conn_ops plain_ops = {
	.writev = plain_writev,
	.read = plain_read,
	.readv = plain_readv,
	.pending = plain_pending,
	.close = plain_close,
};

static void conn_init(struct mig_conn *c, int fd, enum mig_transport kind,
		      const struct mig_cancel *cancel)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->kind = kind;
	c->ops = &plain_ops;
	c->cancel = cancel;
	c->passed_fd = -1;
}

void mig_conn_from_fd(struct mig_conn *c, int fd, enum mig_transport kind, const char *peer,
		      const struct mig_cancel *cancel)
{
	conn_init(c, fd, kind, cancel);
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
}

bool mig_conn_same_host(const struct mig_conn *c)
{
	if (c->kind == MIG_UNIX)
		return true;
	if (c->kind != MIG_TCP)
		return false;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0)
		return false;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_ms_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Waits until fd is ready for `events` or the cancel is raised: 1 ready,
 * -ETIMEDOUT, -ECANCELED. timeout_ms < 0: for ever. */
static int wait_fd(int fd, short events, int timeout_ms, const struct mig_cancel *cancel)
{
	struct pollfd p[2] = {{.fd = fd, .events = events},
			      {.fd = cancel ? cancel->fd : -1, .events = POLLIN}};
	uint64_t end = timeout_ms < 0 ? 0 : mono_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int left = timeout_ms < 0 ? -1 : (int)(end > mono_ms() ? end - mono_ms() : 0);
		int r = poll(p, cancel ? 2 : 1, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (cancel && p[1].revents)
			return -ECANCELED;
		if (r > 0)
			return 1;
		return -ETIMEDOUT;
	}
}

static void describe_sockaddr(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "tcp %s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "tcp [%s]:%u", host, port);
	} else {
		snprintf(buf, len, "unix");
	}
}

/* ---- opening ---- */

int mig_conn_connect(struct mig_conn *c, const struct mig_uri *u, unsigned timeout_ms,
		     const struct mig_cancel *cancel, struct vmm_error *err)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	if (u->kind == MIG_TCP) {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
		int g = getaddrinfo(u->host, u->port, &hints, &ai);
		if (g != 0)
			return vmm_error_set(err, -EHOSTUNREACH, "migrate tcp:%s:%s: %s", u->host,
					     u->port, gai_strerror(g));
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		sl = ai->ai_addrlen;
		freeaddrinfo(ai);
	} else {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, u->path, strnlen(u->path, sizeof(un->sun_path) - 1));
		sl = sizeof(*un);
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return vmm_error_set(err, -errno, "migrate: socket: %s", strerror(errno));
	conn_init(c, fd, u->kind, cancel);
	if (u->kind == MIG_TCP)
		snprintf(c->peer, sizeof(c->peer), "tcp %.100s:%s", u->host, u->port);
	else
		snprintf(c->peer, sizeof(c->peer), "unix %.150s", u->path);
	int r = connect(fd, (struct sockaddr *)&ss, sl);
	if (r < 0 && errno != EINPROGRESS && errno != EAGAIN)
		return vmm_error_set(err, -errno, "migrate %s: cannot connect: %s", c->peer,
				     strerror(errno));
	if (r < 0) {
		int w = wait_fd(fd, POLLOUT, (int)timeout_ms, cancel);
		if (w == -ETIMEDOUT)
			return vmm_error_set(err, -ETIMEDOUT, "migrate %s: no answer within %u s",
					     c->peer, timeout_ms / 1000);
		if (w < 0)
			return vmm_error_set(err, w, "migrate %s: %s", c->peer, strerror(-w));
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		if (soerr)
			return vmm_error_set(err, -soerr, "migrate %s: cannot connect: %s", c->peer,
					     strerror(soerr));
	}
	if (u->kind == MIG_TCP)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	return 0;
}

int mig_conn_open_file(struct mig_conn *c, const struct mig_uri *u, bool for_writing,
		       const struct mig_cancel *cancel, struct vmm_error *err)
{
	int flags = O_CLOEXEC | O_NONBLOCK |
		    (for_writing ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY);
	int fd = open(u->path, flags, 0600);
	if (fd < 0)
		return vmm_error_set(err, -errno, "file:%s: %s", u->path, strerror(errno));
	conn_init(c, fd, MIG_FILE, cancel);
	snprintf(c->peer, sizeof(c->peer), "file %.150s", u->path);
	struct stat st;
	c->is_fifo = fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
	return 0;
}

/* Is some process listening on this unix socket path? */
static bool unix_path_live(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	memcpy(un.sun_path, path, strnlen(path, sizeof(un.sun_path) - 1));
	bool live = connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0;
	close(fd);
	return live;
}

int mig_conn_listen(const struct mig_uri *u, int *listen_fd, struct vmm_error *err)
{
	*listen_fd = -1;
	int fd;
	if (u->kind == MIG_TCP) {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
		int g = getaddrinfo(u->host[0] ? u->host : NULL, u->port, &hints, &ai);
		if (g != 0)
			return vmm_error_set(err, -EINVAL, "--incoming tcp:%s:%s: %s", u->host, u->port,
					     gai_strerror(g));
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd >= 0) {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
				int e = errno;
				close(fd);
				fd = -1;
				errno = e;
			}
		}
		freeaddrinfo(ai);
		if (fd < 0)
			return vmm_error_set(err, -errno, "--incoming tcp:%s:%s: %s", u->host, u->port,
					     strerror(errno));
	} else {
		struct stat st;
		if (lstat(u->path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode))
				return vmm_error_set(err, -EEXIST,
						     "--incoming unix:%s: exists and is not a socket",
						     u->path);
			if (unix_path_live(u->path))
				return vmm_error_set(err, -EADDRINUSE,
						     "--incoming unix:%s: another process listens "
						     "there (not replacing it)",
						     u->path);
			unlink(u->path); /* a stale socket from an earlier run */
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		memcpy(un.sun_path, u->path, strnlen(u->path, sizeof(un.sun_path) - 1));
		mode_t old = umask(0177); /* 0600 from the start: no window for others */
		int b = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&un, sizeof(un));
		int e = errno;
		umask(old);
		if (b < 0) {
			if (fd >= 0)
				close(fd);
			return vmm_error_set(err, -e, "--incoming unix:%s: %s", u->path, strerror(e));
		}
	}
	if (listen(fd, 4) < 0) {
		int e = errno;
		close(fd);
		return vmm_error_set(err, -e, "--incoming: listen: %s", strerror(e));
	}
	*listen_fd = fd;
	return 0;
}

int mig_conn_accept(int listen_fd, const struct mig_uri *u, struct mig_conn *c,
		    unsigned timeout_ms, const struct mig_cancel *cancel, struct vmm_error *err)
{
	for (;;) {
		int w = wait_fd(listen_fd, POLLIN, timeout_ms ? (int)timeout_ms : -1, cancel);
		if (w < 0)
			return vmm_error_set(err, w, "waiting for a connection: %s", strerror(-w));
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0 && (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0)
			return vmm_error_set(err, -errno, "accept: %s", strerror(errno));
		conn_init(c, fd, u->kind, cancel);
		describe_sockaddr((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
		if (u->kind == MIG_TCP)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
		else
			snprintf(c->peer, sizeof(c->peer), "unix %.150s", u->path);
		return 0;
	}
}

/* ---- moving bytes ---- */

int mig_conn_wait(struct mig_conn *c, bool want_write, unsigned timeout_ms, unsigned *ready,
		  struct vmm_error *err)
{
	*ready = 0;
	if (c->ops->pending(c)) {
		*ready = MIG_CONN_READABLE;
		return 0;
	}
	struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN | (want_write ? POLLOUT : 0)},
			      {.fd = c->cancel ? c->cancel->fd : -1, .events = POLLIN}};
	uint64_t end = mono_ms() + timeout_ms;
	for (;;) {
		int left = (int)(end > mono_ms() ? end - mono_ms() : 0);
		int r = poll(p, c->cancel ? 2 : 1, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return vmm_error_set(err, -errno, "%s: poll: %s", c->peer, strerror(errno));
		if (c->cancel && p[1].revents)
			return vmm_error_set(err, -ECANCELED, "%s: cancelled", c->peer);
		if (r == 0)
			return vmm_error_set(err, -ETIMEDOUT, "%s: nothing moved for %u s", c->peer,
					     timeout_ms / 1000);
		/* An error or hang-up shows as readable: the read says what it was. */
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			*ready |= MIG_CONN_READABLE;
		if (p[0].revents & POLLOUT)
			*ready |= MIG_CONN_WRITABLE;
		return 0;
	}
}

ssize_t mig_conn_writev_once(struct mig_conn *c, const struct iovec *iov, int n,
			     struct vmm_error *err)
{
	for (;;) {
		ssize_t w = c->ops->writev(c, iov, n > IOV_MAX ? IOV_MAX : n);
		if (w == -EINTR)
			continue;
		if (w == -EAGAIN)
			return -EAGAIN;
		if (w < 0)
			return vmm_error_set(err, (int)w, "sending to %s failed: %s", c->peer,
					     failure(c, (int)-w));
		c->bytes_out += (uint64_t)w;
		return w;
	}
}

int mig_conn_writev_all(struct mig_conn *c, struct iovec *iov, int n, unsigned timeout_ms,
			struct vmm_error *err)
{
	while (n > 0) {
		if (iov->iov_len == 0) {
			iov++, n--;
			continue;
		}
		ssize_t w = c->ops->writev(c, iov, n > IOV_MAX ? IOV_MAX : n);
		if (w == -EINTR)
			continue;
		if (w == -EAGAIN) {
			int r = wait_fd(c->fd, POLLOUT, (int)timeout_ms, c->cancel);
			if (r == -ETIMEDOUT)
				return vmm_error_set(err, -ETIMEDOUT,
						     "%s: the peer took nothing for %u s", c->peer,
						     timeout_ms / 1000);
			if (r < 0)
				return vmm_error_set(err, r, "%s: %s", c->peer,
						     r == -ECANCELED ? "cancelled" : strerror(-r));
			continue;
		}
		if (w < 0)
			return vmm_error_set(err, (int)w, "sending to %s failed: %s", c->peer,
					     failure(c, (int)-w));
		c->bytes_out += (uint64_t)w;
		size_t done = (size_t)w;
		while (n > 0 && done >= iov->iov_len) {
			done -= iov->iov_len;
			iov++, n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + done;
			iov->iov_len -= done;
		}
	}
	return 0;
}

int mig_conn_write_all(struct mig_conn *c, const void *buf, size_t len, unsigned timeout_ms,
		       struct vmm_error *err)
{
	struct iovec iov = {(void *)buf, len};
	return mig_conn_writev_all(c, &iov, 1, timeout_ms, err);
}

/* What a read attempt's result r means for mig_conn_read/readv: bytes (>= 0,
 * counted), an error, -EAGAIN with timeout_ms 0, or -EAGAIN after waiting
 * for input (read again). */
static ssize_t read_outcome(struct mig_conn *c, ssize_t r, unsigned timeout_ms,
			    struct vmm_error *err)
{
	if (r >= 0) {
		c->bytes_in += (uint64_t)r;
		return r;
	}
	if (r != -EAGAIN)
		return vmm_error_set(err, (int)r, "reading from %s: %s", c->peer,
				     failure(c, (int)-r));
	if (timeout_ms == 0)
		return -EAGAIN;
	uint64_t t0 = mono_ms_ns();
	int w = wait_fd(c->fd, POLLIN, (int)timeout_ms, c->cancel);
	c->wait_ns += mono_ms_ns() - t0; /* time the peer kept us waiting */
	if (w == -ETIMEDOUT)
		return vmm_error_set(err, -ETIMEDOUT, "%s: nothing arrived for %u s", c->peer,
				     timeout_ms / 1000);
	if (w < 0)
		return vmm_error_set(err, w, "%s: %s", c->peer,
				     w == -ECANCELED ? "cancelled" : strerror(-w));
	return -EAGAIN;
}

ssize_t mig_conn_read(struct mig_conn *c, void *buf, size_t len, unsigned timeout_ms,
		      struct vmm_error *err)
{
	for (;;) {
		ssize_t r = c->ops->read(c, buf, len);
		if (r == -EINTR)
			continue;
		if (r == 0 && c->is_fifo && c->bytes_in == 0) {
			/* A FIFO reads as ended until a writer opens it: wait for one
			 * (or for its hang-up without data: then it did end). */
			struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
					      {.fd = c->cancel ? c->cancel->fd : -1, .events = POLLIN}};
			int w = poll(p, c->cancel ? 2 : 1, timeout_ms ? (int)timeout_ms : 0);
			if (w < 0 && errno == EINTR)
				continue;
			if (c->cancel && p[1].revents)
				return vmm_error_set(err, -ECANCELED, "%s: cancelled", c->peer);
			if (w == 0)
				return timeout_ms ? vmm_error_set(err, -ETIMEDOUT,
								  "%s: no writer for %u s", c->peer,
								  timeout_ms / 1000)
						  : -EAGAIN;
			if (p[0].revents & POLLIN)
				continue;
		}
		r = read_outcome(c, r, timeout_ms, err);
		if (r != -EAGAIN || timeout_ms == 0)
			return r;
	}
}

ssize_t mig_conn_peek(struct mig_conn *c, void *buf, size_t len, unsigned timeout_ms,
		      struct vmm_error *err)
{
	uint64_t end = mono_ms() + timeout_ms;
	for (;;) {
		ssize_t r = recv(c->fd, buf, len, MSG_PEEK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EAGAIN)
			return vmm_error_set(err, -errno, "reading from %s: %s", c->peer,
					     strerror(errno));
		if (r == (ssize_t)len || r == 0)
			return r;
		uint64_t now = mono_ms();
		if (now >= end) {
			if (r > 0)
				return r;
			return vmm_error_set(err, -ETIMEDOUT, "%s: sent nothing for %u s", c->peer,
					     timeout_ms / 1000);
		}
		/* Some bytes but not all: poll would say "readable" at once. */
		int w = r > 0 ? (usleep(10000), 1)
			      : wait_fd(c->fd, POLLIN, (int)(end - now), c->cancel);
		if (w == -ECANCELED)
			return vmm_error_set(err, w, "%s: cancelled", c->peer);
		if (w < 0 && w != -ETIMEDOUT)
			return vmm_error_set(err, w, "%s: %s", c->peer, strerror(-w));
		if (c->cancel && mig_cancel_raised(c->cancel))
			return vmm_error_set(err, -ECANCELED, "%s: cancelled", c->peer);
	}
}

void mig_conn_shutdown_write(struct mig_conn *c)
{
	if (c->fd < 0)
		return;
	if (c->ops && c->ops->shutdown_write)
		c->ops->shutdown_write(c);
	if (c->kind != MIG_FILE)
		shutdown(c->fd, SHUT_WR);
}

/* One read attempt into iovecs, through the ops. */
static ssize_t readv_once(struct mig_conn *c, const struct iovec *iov, int n)
{
	if (c->ops->readv)
		return c->ops->readv(c, iov, n);
	/* No scatter in these ops (e.g. a TLS session): fill buffer by buffer. */
	ssize_t total = 0;
	for (int i = 0; i < n; i++) {
		ssize_t r = c->ops->read(c, iov[i].iov_base, iov[i].iov_len);
		if (r < 0)
			return total ? total : r;
		total += r;
		if ((size_t)r < iov[i].iov_len || r == 0)
			break;
	}
	return total;
}

ssize_t mig_conn_readv(struct mig_conn *c, const struct iovec *iov, int n, unsigned timeout_ms,
		       struct vmm_error *err)
{
	if (n > IOV_MAX)
		n = IOV_MAX;
	for (;;) {
		ssize_t r = readv_once(c, iov, n);
		if (r == -EINTR)
			continue;
		r = read_outcome(c, r, timeout_ms, err);
		if (r != -EAGAIN || timeout_ms == 0)
			return r;
	}
}

bool mig_conn_input_pending(struct mig_conn *c)
{
	if (c->ops->pending(c))
		return true;
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	return poll(&p, 1, 0) > 0;
}

int mig_conn_send_fd(struct mig_conn *c, int fd, const void *data, size_t len,
		     unsigned timeout_ms, struct vmm_error *err)
{
	if (c->kind != MIG_UNIX)
		return vmm_error_set(err, -EINVAL, "%s: descriptors travel only over unix: sockets",
				     c->peer);
	if (len == 0)
		return vmm_error_set(err, -EINVAL, "%s: a descriptor needs at least one byte",
				     c->peer);
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct iovec iov = {(void *)data, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	/* The descriptor goes with the first byte; the rest like any data. */
	for (;;) {
		ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			int r = wait_fd(c->fd, POLLOUT, (int)timeout_ms, c->cancel);
			if (r < 0)
				return vmm_error_set(err, r, "%s: %s", c->peer,
						     r == -ECANCELED ? "cancelled"
								     : "the peer took nothing");
			continue;
		}
		if (w < 0)
			return vmm_error_set(err, -errno, "sending a descriptor to %s: %s", c->peer,
					     strerror(errno));
		c->bytes_out += (uint64_t)w;
		if ((size_t)w == len)
			return 0;
		return mig_conn_write_all(c, (const uint8_t *)data + w, len - (size_t)w, timeout_ms,
					  err);
	}
}

int mig_conn_recv_fd(struct mig_conn *c, int *fd, struct vmm_error *err)
{
	if (!c->has_passed_fd)
		return vmm_error_set(err, -ENOENT, "%s: no descriptor came with the record", c->peer);
	*fd = c->passed_fd;
	c->has_passed_fd = false;
	c->passed_fd = -1;
	return 0;
}

void mig_conn_close(struct mig_conn *c)
{
	if (c->has_passed_fd) {
		close(c->passed_fd);
		c->has_passed_fd = false;
	}
	if (c->fd < 0)
		return;
	if (c->ops)
		c->ops->close(c);
	close(c->fd);
	c->fd = -1;
}

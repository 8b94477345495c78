/*
 * api/server.c: the control API server (protocol in api.h).
 *
 * One listening uv_pipe_t plus one uv_pipe_t per client, all on the caller's
 * loop. Each client has a line buffer: bytes are appended until a '\n', the
 * line (minus an optional '\r') is parsed with json-c and dispatched, and the
 * reply is queued with uv_write (one heap block per write, freed in its
 * callback). A client struct lives until its close callback, which libuv runs
 * after the callbacks of every write and shutdown still queued on it, so a
 * client that disappears mid-write never leaves a dangling pointer behind.
 *
 * Who may talk to it (api.h "Access"): the socket is created 0600 in a
 * directory that only its owner (or root) can change, or a sticky one like
 * /tmp; every client's uid is checked (SO_PEERCRED) against ours; at most
 * API_MAX_CLIENTS are served, and a newcomer beyond that closes the client
 * that has been idle longest, so idle connections never lock the operator
 * out. Nothing here blocks: a silent client costs one handle, a slow reader
 * at most API_WRITE_QUEUE_MAX of queued output.
 */
#include "api/api.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "api/internal.h"

/* A client that stops reading is dropped once this much output is queued. */
#define API_WRITE_QUEUE_MAX (4u << 20)
#define API_LINE_BUF_INIT 4096
#define API_READ_BUF 65536
#define API_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

struct api_client {
	uv_pipe_t pipe; /* pipe.data points back here */
	struct api_server *srv;
	struct api_client *prev, *next;
	char *line; /* the partial line received so far */
	size_t len, cap;
	bool counted; /* holds one of the API_MAX_CLIENTS places */
	bool ending;  /* no more input or output: shutting down or closed */
	uint64_t last_active; /* the server's activity count at its last input or arrival */
};

struct api_server {
	uv_loop_t *loop;
	uv_pipe_t listener;
	char *path;
	dev_t dev; /* identity of the socket file we created, so that */
	ino_t ino; /* close never unlinks somebody else's */
	const struct api_command *cmds;
	unsigned ncmds;
	void *ctx;
	struct api_client *clients;
	unsigned nclients;	/* counted clients */
	unsigned open_handles;	/* listener + clients whose close callback is pending */
	unsigned dispatching;	/* > 0 while a handler runs */
	bool closing;		/* api_server_close() done: free when open_handles is 0 */
	bool close_pending;	/* api_server_close() called from inside a handler */
	uint64_t activity;	/* counts client arrivals and reads: orders idleness */
	char rbuf[API_READ_BUF]; /* read buffer, consumed before the next read */
};

struct write_req {
	uv_write_t req;
	uv_buf_t buf;
	char data[];
};

/* ---- lifetime ---- */

static void server_maybe_free(struct api_server *s)
{
	if (s->closing && s->open_handles == 0) {
		free(s->path);
		free(s);
	}
}

static void listener_close_cb(uv_handle_t *h)
{
	struct api_server *s = h->data;
	s->open_handles--;
	server_maybe_free(s);
}

static void client_close_cb(uv_handle_t *h)
{
	struct api_client *c = h->data;
	struct api_server *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->line);
	free(c);
	s->open_handles--;
	server_maybe_free(s);
}

static void client_uncount(struct api_client *c)
{
	if (c->counted) {
		c->counted = false;
		c->srv->nclients--;
	}
	c->ending = true;
}

/* Closes at once; queued writes are cancelled. */
static void client_close(struct api_client *c)
{
	client_uncount(c);
	if (!uv_is_closing((uv_handle_t *)&c->pipe))
		uv_close((uv_handle_t *)&c->pipe, client_close_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	(void)status;
	struct api_client *c = req->handle->data;
	free(req);
	client_close(c);
}

/* Stops reading, lets queued writes drain, then closes. */
static void client_end(struct api_client *c)
{
	if (c->ending)
		return;
	client_uncount(c);
	uv_read_stop((uv_stream_t *)&c->pipe);
	uv_shutdown_t *req = malloc(sizeof(*req));
	if (!req || uv_shutdown(req, (uv_stream_t *)&c->pipe, shutdown_cb) < 0) {
		free(req);
		client_close(c);
	}
}

/* ---- output ---- */

static void write_cb(uv_write_t *req, int status)
{
	struct api_client *c = req->handle->data;
	free(req->data);
	if (status < 0 && status != UV_ECANCELED)
		client_close(c); /* peer gone (EPIPE, ECONNRESET) */
}

static void client_send_str(struct api_client *c, const char *str)
{
	uv_stream_t *st = (uv_stream_t *)&c->pipe;
	if (c->ending)
		return;
	if (uv_stream_get_write_queue_size(st) > API_WRITE_QUEUE_MAX) {
		client_close(c); /* not reading: don't buffer for it forever */
		return;
	}
	size_t n = strlen(str);
	struct write_req *w = malloc(sizeof(*w) + n + 1);
	if (!w) {
		client_close(c);
		return;
	}
	memcpy(w->data, str, n);
	w->data[n] = '\n';
	w->buf = uv_buf_init(w->data, (unsigned)(n + 1));
	w->req.data = w;
	if (uv_write(&w->req, st, &w->buf, 1, write_cb) < 0) {
		free(w);
		client_close(c);
	}
}

/* Sends and drops `obj`. */
static void client_send(struct api_client *c, struct json_object *obj)
{
	if (!obj) {
		client_close(c); /* out of memory building the reply */
		return;
	}
	client_send_str(c, json_object_to_json_string_ext(obj, API_JSON_FLAGS));
	json_object_put(obj);
}

/* Exactly QMP's greeting, so QMP client libraries connect unchanged. */
static void send_greeting(struct api_client *c)
{
	struct json_object *v = json_object_new_object();
	json_object_object_add(v, "version", api_version_object());
	json_object_object_add(v, "capabilities", json_object_new_array());
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "QMP", v);
	client_send(c, o);
}

/* ---- input ---- */

static void line_too_long(struct api_client *c)
{
	client_send(c, api_error_reply(API_ERR_GENERIC, "line longer than %d bytes; closing",
				       API_MAX_LINE));
	client_end(c);
}

static int line_append(struct api_client *c, const char *p, size_t n)
{
	if (c->len + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : API_LINE_BUF_INIT;
		while (cap < c->len + n + 1)
			cap *= 2;
		char *line = realloc(c->line, cap);
		if (!line)
			return -ENOMEM;
		c->line = line;
		c->cap = cap;
	}
	memcpy(c->line + c->len, p, n);
	c->len += n;
	return 0;
}

/* Takes the buffered line (without '\n'), dispatches it, empties the buffer. */
static void finish_line(struct api_client *c)
{
	struct api_server *s = c->srv;
	size_t len = c->len;
	c->len = 0;
	if (len && c->line[len - 1] == '\r')
		len--;
	if (len > API_MAX_LINE) {
		line_too_long(c);
		return;
	}
	if (!c->line)
		return; /* an empty first line: nothing was ever buffered */
	c->line[len] = '\0';
	s->dispatching++;
	struct json_object *reply = api_dispatch_line(s->cmds, s->ncmds, s->ctx, c->line, len);
	s->dispatching--;
	if (reply)
		client_send(c, reply);
	if (s->close_pending && !s->dispatching)
		api_server_close(s); /* a handler asked; its reply is queued */
}

static void feed(struct api_client *c, const char *p, size_t n)
{
	while (n > 0 && !c->ending) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		/* + 1: the '\r' of a CRLF may still follow */
		if (c->len + take > API_MAX_LINE + 1) {
			line_too_long(c);
			return;
		}
		if (line_append(c, p, take) < 0) {
			client_send(c, api_error_reply(API_ERR_GENERIC, "out of memory; closing"));
			client_end(c);
			return;
		}
		if (!nl)
			return;
		p += take + 1;
		n -= take + 1;
		finish_line(c);
	}
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct api_client *c = h->data;
	*buf = uv_buf_init(c->srv->rbuf, sizeof(c->srv->rbuf));
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct api_client *c = st->data;
	c->last_active = ++c->srv->activity;
	if (nread > 0) {
		feed(c, buf->base, (size_t)nread);
	} else if (nread == UV_EOF) {
		if (c->len && !c->ending)
			finish_line(c); /* a last line without '\n' */
		client_end(c);	/* the peer may still read our replies */
	} else if (nread < 0) {
		client_close(c);
	}
}

/* The counted client that has been quiet longest (one with half a line
 * buffered only after every idle one), or NULL. */
static struct api_client *idlest(struct api_server *s)
{
	struct api_client *best = NULL;
	for (struct api_client *c = s->clients; c; c = c->next) {
		if (!c->counted)
			continue;
		if (!best || (c->len == 0 && best->len != 0) ||
		    ((c->len == 0) == (best->len == 0) && c->last_active < best->last_active))
			best = c;
	}
	return best;
}

/* Same user as this process (or root): anyone else is refused. */
static bool peer_allowed(struct api_client *c, char *why, size_t len)
{
	uv_os_fd_t fd;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
		snprintf(why, len, "cannot tell who is connecting (SO_PEERCRED): refused");
		return false;
	}
	if (cred.uid == geteuid() || cred.uid == 0)
		return true;
	snprintf(why, len, "uid %u may not use this control socket (it belongs to uid %u)",
		 (unsigned)cred.uid, (unsigned)geteuid());
	return false;
}

static void connection_cb(uv_stream_t *listener, int status)
{
	struct api_server *s = listener->data;
	if (status < 0 || s->closing)
		return;
	struct api_client *c = calloc(1, sizeof(*c));
	if (!c)
		return; /* libuv pauses accepting until a later connection */
	c->srv = s;
	uv_pipe_init(s->loop, &c->pipe, 0);
	c->pipe.data = c;
	c->next = s->clients;
	if (s->clients)
		s->clients->prev = c;
	s->clients = c;
	s->open_handles++;
	if (uv_accept(listener, (uv_stream_t *)&c->pipe) < 0) {
		client_close(c);
		return;
	}
	char why[160];
	if (!peer_allowed(c, why, sizeof(why))) {
		fprintf(stderr, "vmm: control socket: %s\n", why);
		client_send(c, api_error_reply(API_ERR_GENERIC, "%s", why));
		client_end(c);
		return;
	}
	struct api_client *old = s->nclients >= API_MAX_CLIENTS ? idlest(s) : NULL;
	if (old) {
		client_send(old, api_error_reply(API_ERR_GENERIC,
						 "closing: %d clients are connected and this one "
						 "was idle longest",
						 API_MAX_CLIENTS));
		client_end(old);
	}
	c->last_active = ++s->activity;
	c->counted = true;
	s->nclients++;
	send_greeting(c);
	if (uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb) < 0)
		client_close(c);
}

/* ---- the socket file ---- */

/* Makes `path` free to bind: absent is fine, a socket nobody listens on is
 * removed, anything else is refused. */
static int clear_stale_socket(const char *path, const struct sockaddr_un *sa,
			      struct vmm_error *err)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return vmm_error_set(err, -errno, "api socket %s: %s", path, strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return vmm_error_set(err, -EEXIST,
				     "api socket %s: exists and is not a socket; refusing to replace it",
				     path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return vmm_error_set(err, -errno, "api socket %s: socket: %s", path, strerror(errno));
	int r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;
	close(fd);
	if (r == 0 || e == EAGAIN || e == EINPROGRESS)
		return vmm_error_set(err, -EADDRINUSE,
				     "api socket %s: another process is listening on it", path);
	if (e != ECONNREFUSED)
		return vmm_error_set(err, -e, "api socket %s: cannot tell whether it is in use: %s",
				     path, strerror(e));
	if (unlink(path) < 0 && errno != ENOENT)
		return vmm_error_set(err, -errno, "api socket %s: removing the stale socket: %s",
				     path, strerror(errno));
	return 0;
}

/* socket + bind with mode 0600 from the start (umask), then chmod to be sure. */
static int bind_socket(const char *path, const struct sockaddr_un *sa, struct stat *st,
		       struct vmm_error *err)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vmm_error_set(err, -errno, "api socket %s: socket: %s", path, strerror(errno));
	mode_t old = umask(0177);
	int r = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;
	umask(old);
	if (r < 0) {
		close(fd);
		return vmm_error_set(err, -e, "api socket %s: bind: %s", path, strerror(e));
	}
	if (chmod(path, 0600) < 0 || lstat(path, st) < 0) {
		e = errno;
		close(fd);
		unlink(path);
		return vmm_error_set(err, -e, "api socket %s: chmod: %s", path, strerror(e));
	}
	return fd;
}

/* The socket's directory must not let another user replace or remove it:
 * owned by us or root, and not writable by others unless sticky (/tmp). */
static int check_directory(const char *path, struct vmm_error *err)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	struct stat st;
	if (stat(dir, &st) < 0)
		return vmm_error_set(err, -errno, "api socket %s: directory %s: %s", path, dir,
				     strerror(errno));
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return vmm_error_set(err, -EPERM,
				     "api socket %s: directory %s belongs to uid %u, not to us (%u): "
				     "its owner could replace the socket",
				     path, dir, (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
		return vmm_error_set(err, -EPERM,
				     "api socket %s: directory %s is writable by others and not "
				     "sticky: anyone could replace the socket (use a private "
				     "directory, e.g. $XDG_RUNTIME_DIR)",
				     path, dir);
	return 0;
}

int api_server_start(uv_loop_t *loop, const char *path, const struct api_command *cmds,
		     unsigned ncmds, void *ctx, struct api_server **out, struct vmm_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	if (!path || !*path)
		return vmm_error_set(err, -EINVAL, "api socket: empty path");
	if (strlen(path) >= sizeof(sa.sun_path))
		return vmm_error_set(err, -ENAMETOOLONG, "api socket %s: path longer than %zu bytes",
				     path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path));

	int r = check_directory(path, err);
	if (r < 0)
		return r;
	r = clear_stale_socket(path, &sa, err);
	if (r < 0)
		return r;
	struct api_server *s = calloc(1, sizeof(*s));
	char *path_copy = strdup(path);
	if (!s || !path_copy) {
		free(s);
		free(path_copy);
		return vmm_error_set(err, -ENOMEM, "api socket %s: out of memory", path);
	}
	int fd = bind_socket(path, &sa, &st, err);
	if (fd < 0) {
		free(s);
		free(path_copy);
		return fd;
	}
	/* A client vanishing mid-write must give EPIPE, not kill the process. */
	signal(SIGPIPE, SIG_IGN);

	s->loop = loop;
	s->path = path_copy;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->cmds = cmds;
	s->ncmds = ncmds;
	s->ctx = ctx;
	uv_pipe_init(loop, &s->listener, 0);
	s->listener.data = s;
	s->open_handles = 1;
	if ((r = uv_pipe_open(&s->listener, fd)) < 0) {
		close(fd);
		api_server_close(s);
		return vmm_error_set(err, r, "api socket %s: %s", path, uv_strerror(r));
	}
	if ((r = uv_listen((uv_stream_t *)&s->listener, API_MAX_CLIENTS, connection_cb)) < 0) {
		api_server_close(s);
		return vmm_error_set(err, r, "api socket %s: listen: %s", path, uv_strerror(r));
	}
	*out = s;
	return 0;
}

/* ---- events and shutdown ---- */

void api_server_broadcast_event(struct api_server *s, const char *event, struct json_object *data)
{
	if (!s || s->closing || s->close_pending) {
		json_object_put(data);
		return;
	}
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct json_object *ts = json_object_new_object();
	json_object_object_add(ts, "seconds", json_object_new_int64(tv.tv_sec));
	json_object_object_add(ts, "microseconds", json_object_new_int64(tv.tv_usec));
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "event", json_object_new_string(event));
	json_object_object_add(o, "data", data ? data : json_object_new_object());
	json_object_object_add(o, "timestamp", ts);
	const char *str = json_object_to_json_string_ext(o, API_JSON_FLAGS);
	for (struct api_client *c = s->clients; c; c = c->next)
		if (c->counted)
			client_send_str(c, str);
	json_object_put(o);
}

void api_server_close(struct api_server *s)
{
	if (!s || s->closing)
		return;
	if (s->dispatching) {
		s->close_pending = true; /* finish_line() comes back here */
		return;
	}
	s->closing = true;
	struct stat st;
	if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
	uv_close((uv_handle_t *)&s->listener, listener_close_cb);
	for (struct api_client *c = s->clients; c; c = c->next)
		client_close(c);
}

/*
 * api/client.c: `vmm ctl`, the command-line client of the control API.
 *
 *   vmm ctl [--json] [--no-wait] SOCKET COMMAND [KEY=VALUE ...]
 *   vmm ctl [--json] SOCKET raw 'JSON'
 *
 * A plain blocking unix socket: read the greeting, send qmp_capabilities,
 * send the command, print its "return" (human form, or JSON with --json).
 * `migrate` (human mode, without --no-wait) then polls query-migrate every
 * 100 ms and draws its progress on stderr until the migration ends.
 * Exit codes: 0 success, 1 failure (error reply, connection, migration
 * failed), 2 bad usage, 130 interrupted while waiting for a migration.
 */
#include "api/api.h"
#include "api/internal.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CTL_REPLY_MAX (64u << 20) /* longest reply line accepted */
#define CTL_POLL_NS (100 * 1000000L)
#define CTL_NONE_POLLS 10 /* query-migrate may say "none" this long after migrate */
#define CTL_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

struct ctl {
	const char *path;
	int fd;
	char *buf; /* received, not yet returned as lines */
	size_t len, cap;
	int64_t next_id;
};

static volatile sig_atomic_t interrupted;

static int __attribute__((format(printf, 2, 3))) fail(int code, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("vmm ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: vmm ctl [--json] [--no-wait] SOCKET COMMAND [KEY=VALUE ...]\n"
		     "       vmm ctl [--json] SOCKET raw 'JSON'\n"
		     "  KEY=VALUE: integers and true/false are sent as such, the rest as strings\n"
		     "  --json     print the reply as JSON (migrate then returns at once)\n"
		     "  --no-wait  migrate: return once the migration is accepted\n");
}

/* ---- the connection ---- */

/* Reports a failed read or write (rc as returned below) naming the socket. */
static int io_error(const struct ctl *c, int rc, const char *when)
{
	if (rc == 0)
		return fail(1, "%s: connection closed by the vmm%s", c->path, when);
	if (rc == -EBADMSG)
		return fail(1, "%s: invalid JSON from the vmm%s", c->path, when);
	if (rc == -EMSGSIZE)
		return fail(1, "%s: reply longer than %u bytes%s", c->path, CTL_REPLY_MAX, when);
	if (rc == -EINTR)
		return fail(130, "interrupted");
	return fail(1, "%s: %s%s", c->path, strerror(-rc), when);
}

static int ctl_connect(struct ctl *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(c->path) >= sizeof(sa.sun_path))
		return fail(1, "cannot connect to %s: path longer than %zu bytes", c->path,
			    sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, c->path, strlen(c->path));
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return fail(1, "socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return fail(1, "cannot connect to %s: %s", c->path, strerror(errno));
	return 0;
}

/* 1 with a line (malloc'd, no '\n'), 0 at end of stream, or -errno. */
static int read_line(struct ctl *c, char **line)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			*line = strndup(c->buf, n);
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return *line ? 1 : -ENOMEM;
		}
		if (c->len >= CTL_REPLY_MAX)
			return -EMSGSIZE;
		if (c->cap - c->len < 4096) {
			size_t cap = c->cap ? c->cap * 2 : 65536;
			char *b = realloc(c->buf, cap);
			if (!b)
				return -ENOMEM;
			c->buf = b;
			c->cap = cap;
		}
		ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (r == 0)
			return 0;
		if (r < 0 && errno == EINTR && !interrupted)
			continue;
		if (r < 0)
			return -errno;
		c->len += (size_t)r;
	}
}

/* 1 with a JSON object, 0 at end of stream, or -errno. */
static int read_obj(struct ctl *c, struct json_object **obj)
{
	char *line = NULL;
	int r = read_line(c, &line);
	if (r <= 0)
		return r;
	*obj = json_tokener_parse(line);
	free(line);
	if (!json_object_is_type(*obj, json_type_object)) {
		json_object_put(*obj);
		return -EBADMSG;
	}
	return 1;
}

static int send_obj(struct ctl *c, struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, CTL_JSON_FLAGS);
	size_t n = strlen(s), off = 0;
	char *line = malloc(n + 1);
	if (!line)
		return -ENOMEM;
	memcpy(line, s, n);
	line[n++] = '\n';
	while (off < n) {
		ssize_t w = send(c->fd, line + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR && !interrupted)
			continue;
		if (w < 0) {
			int e = -errno;
			free(line);
			return e == -EPIPE ? 0 : e; /* the vmm is gone: like end of stream */
		}
		off += (size_t)w;
	}
	free(line);
	return 1;
}

/* Sends `req` and reads until its reply, skipping events. With `id` >= 0 a
 * reply carrying another "id" is skipped too. 1 with *resp, 0, or -errno. */
static int exchange(struct ctl *c, struct json_object *req, int64_t id, struct json_object **resp)
{
	int r = send_obj(c, req);
	while (r > 0) {
		struct json_object *o, *v;
		if ((r = read_obj(c, &o)) <= 0)
			break;
		bool reply = json_object_object_get_ex(o, "return", NULL) ||
			     json_object_object_get_ex(o, "error", NULL);
		bool ours = id < 0 || !json_object_object_get_ex(o, "id", &v) ||
			    (json_object_is_type(v, json_type_int) && json_object_get_int64(v) == id);
		if (reply && ours) {
			*resp = o;
			return 1;
		}
		json_object_put(o);
	}
	return r;
}

/* Runs one command; takes `args` (may be NULL). */
static int call(struct ctl *c, const char *name, struct json_object *args,
		struct json_object **resp)
{
	int64_t id = c->next_id++;
	struct json_object *req = json_object_new_object();
	json_object_object_add(req, "execute", json_object_new_string(name));
	if (args)
		json_object_object_add(req, "arguments", args);
	json_object_object_add(req, "id", json_object_new_int64(id));
	int r = exchange(c, req, id, resp);
	json_object_put(req);
	return r;
}

/* "desc" of an error reply, NULL if `resp` is not one. */
static const char *error_desc(struct json_object *resp)
{
	struct json_object *e, *d;
	if (!json_object_object_get_ex(resp, "error", &e))
		return NULL;
	if (json_object_object_get_ex(e, "desc", &d) && json_object_is_type(d, json_type_string))
		return json_object_get_string(d);
	return "error reply without a description";
}

static int handshake(struct ctl *c)
{
	struct json_object *o = NULL;
	int r = read_obj(c, &o);
	if (r <= 0)
		return io_error(c, r, " before the greeting");
	const char *desc = error_desc(o);
	if (desc)
		r = fail(1, "%s: %s", c->path, desc); /* e.g. too many clients */
	else if (!json_object_object_get_ex(o, "QMP", NULL) &&
		 !json_object_object_get_ex(o, "VMM", NULL)) /* vmm 0.1.x greeted so */
		r = fail(1, "%s: unexpected greeting (not a vmm API socket?)", c->path);
	else
		r = 0;
	json_object_put(o);
	if (r)
		return r;
	if ((r = call(c, "qmp_capabilities", NULL, &o)) <= 0)
		return io_error(c, r, "");
	desc = error_desc(o);
	r = desc ? fail(1, "%s", desc) : 0;
	json_object_put(o);
	return r;
}

/* ---- migrate: wait and show progress ---- */

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static const char *status_of(struct json_object *info)
{
	struct json_object *v;
	if (json_object_object_get_ex(info, "status", &v) && json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return "";
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps until *next + 100 ms (absolute, so polls don't drift). */
static void poll_sleep(struct timespec *next)
{
	next->tv_nsec += CTL_POLL_NS;
	if (next->tv_nsec >= 1000000000L) {
		next->tv_nsec -= 1000000000L;
		next->tv_sec++;
	}
	while (!interrupted &&
	       clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL) == EINTR)
		;
}

struct progress {
	bool tty;
	bool drawn;    /* a progress line is on the terminal */
	double last_print;
	char last_status[32];
};

static void progress_clear(struct progress *p)
{
	if (p->tty && p->drawn)
		fputs("\r\033[K", stderr);
	p->drawn = false;
}

static void progress_show(struct progress *p, struct json_object *info)
{
	char line[512];
	const char *st = status_of(info);
	if (p->tty) {
		struct winsize ws;
		unsigned width = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
		api_progress_line(info, true, width, line, sizeof(line));
		fprintf(stderr, "\r%s\033[K", line);
		p->drawn = true;
	} else if (now_s() - p->last_print >= 1.0 || strcmp(st, p->last_status) != 0) {
		api_progress_line(info, false, 0, line, sizeof(line));
		fprintf(stderr, "%s\n", line);
		p->last_print = now_s();
	}
	fflush(stderr);
	snprintf(p->last_status, sizeof(p->last_status), "%s", st);
}

/* Looks at one query-migrate reply: -1 to go on polling (progress shown),
 * else the exit code (progress line cleared, outcome printed). */
static int judge(struct progress *p, struct json_object *resp, int polls)
{
	struct json_object *info = NULL, *e;
	const char *desc = error_desc(resp);
	if (!desc && (!json_object_object_get_ex(resp, "return", &info) ||
		      !json_object_is_type(info, json_type_object)))
		desc = "the reply is not an object";
	const char *st = info ? status_of(info) : "";
	bool none = !st[0] || strcmp(st, "none") == 0; /* {} or "none": nothing running */
	bool over = desc || strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
		    strcmp(st, "cancelled") == 0 || (none && polls >= CTL_NONE_POLLS);
	if (!over) {
		progress_show(p, info);
		return -1;
	}
	progress_clear(p);
	if (desc)
		return fail(1, "query-migrate: %s", desc);
	if (strcmp(st, "completed") == 0) {
		api_progress_summary(stdout, info);
		return 0;
	}
	if (none)
		return fail(1, "no migration is running (query-migrate status: %s)",
			    st[0] ? st : "absent");
	const char *why = json_object_object_get_ex(info, "error-desc", &e) && e
				  ? json_object_get_string(e) : NULL;
	return fail(1, "migration %s%s%s", st, why ? ": " : "", why ? why : "");
}

/* Polls query-migrate until the migration ends; returns the exit code. */
static int poll_migration(struct ctl *c, struct progress *p)
{
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (int polls = 0;; polls++) {
		struct json_object *resp = NULL;
		int r = interrupted ? -EINTR : call(c, "query-migrate", NULL, &resp);
		if (r > 0) {
			int rc = judge(p, resp, polls);
			json_object_put(resp);
			if (rc >= 0)
				return rc;
			poll_sleep(&next);
			continue;
		}
		progress_clear(p);
		if (r == -EINTR)
			return fail(130, "interrupted; the migration goes on (stop it with: vmm ctl %s "
					 "migrate-cancel)", c->path);
		const char *last = p->last_status;
		if ((r == 0 || r == -ECONNRESET) &&
		    (strcmp(last, "completed") == 0 || strcmp(last, "device") == 0)) {
			printf("migration completed (the vmm exited before reporting statistics)\n");
			return 0;
		}
		char when[64];
		snprintf(when, sizeof(when), " while migrating (last status: %s)",
			 last[0] ? last : "none seen");
		return io_error(c, r, when);
	}
}

static int wait_migration(struct ctl *c)
{
	struct progress p = {.tty = isatty(STDERR_FILENO), .last_print = -1e9};
	struct sigaction sa = {.sa_handler = on_sigint}, old;
	sigemptyset(&sa.sa_mask); /* no SA_RESTART: a blocked recv must return */
	interrupted = 0;
	sigaction(SIGINT, &sa, &old);
	int rc = poll_migration(c, &p);
	sigaction(SIGINT, &old, NULL);
	return rc;
}

/* ---- main ---- */

static int print_reply(struct json_object *resp, bool json, bool raw)
{
	struct json_object *ret = NULL;
	const char *desc = error_desc(resp);
	if (json && raw) {
		printf("%s\n", json_object_to_json_string_ext(resp, CTL_JSON_FLAGS));
		return desc ? 1 : 0;
	}
	if (desc)
		return fail(1, "%s", desc);
	json_object_object_get_ex(resp, "return", &ret);
	if (json)
		printf("%s\n", json_object_to_json_string_ext(ret, CTL_JSON_FLAGS));
	else
		api_client_print_human(stdout, ret);
	return 0;
}

/* Builds the request (raw or from KEY=VALUE) into *req; exit code on error. */
static int build_request(const char *cmd, int argc, char **argv, struct json_object **req)
{
	struct vmm_error err = {0};
	if (strcmp(cmd, "raw") == 0) {
		if (argc != 1) {
			usage(stderr);
			return 2;
		}
		*req = json_tokener_parse(argv[0]);
		if (!json_object_is_type(*req, json_type_object)) {
			json_object_put(*req);
			*req = NULL;
			return fail(2, "raw: not a JSON object: %s", argv[0]);
		}
		return 0;
	}
	struct json_object *args;
	if (api_client_parse_args(argc, argv, &args, &err) < 0)
		return fail(2, "%s", err.msg);
	*req = json_object_new_object();
	json_object_object_add(*req, "execute", json_object_new_string(cmd));
	if (json_object_object_length(args) > 0)
		json_object_object_add(*req, "arguments", args);
	else
		json_object_put(args);
	return 0;
}

int api_client_main(int argc, char **argv)
{
	bool json = false, no_wait = false, opts = true;
	int npos = 0, rc;
	char **pos = calloc((size_t)argc + 1, sizeof(*pos));
	if (!pos)
		return fail(1, "out of memory");
	for (int i = 1; i < argc; i++) {
		if (opts && strcmp(argv[i], "--") == 0)
			opts = false;
		else if (opts && strcmp(argv[i], "--json") == 0)
			json = true;
		else if (opts && strcmp(argv[i], "--no-wait") == 0)
			no_wait = true;
		else if (opts && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
			usage(stdout);
			free(pos);
			return 0;
		} else if (opts && strncmp(argv[i], "--", 2) == 0) {
			free(pos);
			usage(stderr);
			return fail(2, "unknown option %s", argv[i]);
		} else
			pos[npos++] = argv[i];
	}
	if (npos < 2) {
		free(pos);
		usage(stderr);
		return 2;
	}

	struct ctl c = {.path = pos[0], .fd = -1, .next_id = 1};
	struct json_object *req = NULL, *resp = NULL;
	const char *cmd = pos[1];
	bool raw = strcmp(cmd, "raw") == 0;
	if ((rc = build_request(cmd, npos - 2, pos + 2, &req)) != 0)
		goto out;
	if ((rc = ctl_connect(&c)) != 0 || (rc = handshake(&c)) != 0)
		goto out;
	int64_t id = -1;
	if (!raw) {
		id = c.next_id++;
		json_object_object_add(req, "id", json_object_new_int64(id));
	}
	int r = exchange(&c, req, id, &resp);
	if (r == 0 && strcmp(cmd, "quit") == 0) {
		rc = 0; /* the vmm quit before its reply got out */
	} else if (r <= 0) {
		rc = io_error(&c, r, "");
	} else {
		rc = print_reply(resp, json, raw);
		if (rc == 0 && strcmp(cmd, "migrate") == 0 && !json && !no_wait)
			rc = wait_migration(&c);
	}
out:
	json_object_put(req);
	json_object_put(resp);
	if (c.fd >= 0)
		close(c.fd);
	free(c.buf);
	free(pos);
	fflush(stdout);
	return rc;
}

/*
 * Unit tests for the control API (vmm/api*.c):
 *   - dispatch: request line -> reply, no sockets;
 *   - the server on a real unix socket in a temp dir, its uv loop run from
 *     the test (UV_RUN_NOWAIT) while a plain non-blocking client socket talks
 *     to it, so everything stays on one thread and is deterministic;
 *   - `vmm ctl` (api_client_main) against a fake vmm served by a forked
 *     child, and its pure parts (KEY=VALUE, human output, progress text).
 *
 * Manual checks: `test_api --serve SOCKET [STEPS]` runs the fake vmm (a
 * migration that stays active for STEPS polls), `test_api ctl ...` runs the
 * client as `vmm ctl ...` would.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "vmm/api.h"
#include "vmm/api_internal.h"

#define DEADLINE_MS 3000

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static struct json_object *J(const char *s)
{
	struct json_object *o = json_tokener_parse(s);
	if (!o)
		fail_msg("bad JSON in the test itself: %s", s);
	return o;
}

/* Asserts that `got` equals the JSON text `want`; drops `got`. */
static void assert_json(struct json_object *got, const char *want)
{
	struct json_object *w = J(want);
	const char *g = json_object_to_json_string_ext(got, JSON_C_TO_STRING_PLAIN);
	if (!json_object_equal(got, w))
		fail_msg("got %s\nwant %s", g, want);
	json_object_put(w);
	json_object_put(got);
}

/* ---- the command table used by the server tests ---- */

struct fx;

static int h_echo(void *ctx, struct json_object *args, struct json_object **ret,
		  const char **err_class, struct vmm_error *err)
{
	(void)ctx, (void)err_class, (void)err;
	*ret = json_object_get(args);
	return 0;
}

static int h_fail(void *ctx, struct json_object *args, struct json_object **ret,
		  const char **err_class, struct vmm_error *err)
{
	(void)ctx, (void)args;
	*ret = json_object_new_object(); /* must be dropped, not sent */
	*err_class = API_ERR_DEVICE_NOT_ACTIVE;
	return vmm_error_set(err, -EBUSY, "fail: as asked");
}

static int h_fail_bare(void *ctx, struct json_object *args, struct json_object **ret,
		       const char **err_class, struct vmm_error *err)
{
	(void)ctx, (void)args, (void)ret, (void)err_class, (void)err;
	return -ENOENT;
}

static int h_quit(void *ctx, struct json_object *args, struct json_object **ret,
		  const char **err_class, struct vmm_error *err);

static const struct api_command test_cmds[] = {
	{"echo", h_echo, "returns its arguments"},
	{"fail", h_fail, NULL},
	{"fail-bare", h_fail_bare, NULL},
	{"quit", h_quit, "closes the server from inside a handler"},
};
#define NTEST_CMDS ((unsigned)(sizeof(test_cmds) / sizeof(test_cmds[0])))

static struct json_object *dispatch(const char *line)
{
	return api_dispatch_line(test_cmds, NTEST_CMDS, NULL, line, strlen(line));
}

/* ---- dispatch ---- */

static void test_dispatch_requests(void **state)
{
	(void)state;
	assert_json(dispatch("{\"execute\":\"qmp_capabilities\"}"), "{\"return\":{}}");
	assert_json(dispatch("{\"execute\":\"echo\",\"arguments\":{\"a\":[1,2],\"b\":\"x\"},"
			     "\"id\":{\"n\":7}}"),
		    "{\"return\":{\"a\":[1,2],\"b\":\"x\"},\"id\":{\"n\":7}}");
	assert_json(dispatch("  {\"execute\":\"echo\",\"id\":null}  "),
		    "{\"return\":{},\"id\":null}"); /* {} when arguments are absent */
	assert_json(dispatch("{\"execute\":\"fail\",\"id\":1}"),
		    "{\"error\":{\"class\":\"DeviceNotActive\",\"desc\":\"fail: as asked\"},"
		    "\"id\":1}");
	assert_json(dispatch("{\"execute\":\"fail-bare\"}"),
		    "{\"error\":{\"class\":\"GenericError\",\"desc\":\"No such file or directory\"}}");
	assert_json(dispatch("{\"execute\":\"nope\",\"id\":\"x\"}"),
		    "{\"error\":{\"class\":\"CommandNotFound\","
		    "\"desc\":\"The command nope has not been found\"},\"id\":\"x\"}");
	assert_null(dispatch(""));
	assert_null(dispatch(" \t "));
}

static void assert_generic_error(const char *line, const char *desc)
{
	struct json_object *r = dispatch(line), *e, *v;
	assert_non_null(r);
	if (!json_object_object_get_ex(r, "error", &e))
		fail_msg("%s: no error in %s", line, json_object_to_json_string(r));
	assert_true(json_object_object_get_ex(e, "class", &v));
	assert_string_equal(json_object_get_string(v), "GenericError");
	assert_true(json_object_object_get_ex(e, "desc", &v));
	if (strncmp(json_object_get_string(v), desc, strlen(desc)) != 0)
		fail_msg("%s: desc \"%s\", want \"%s...\"", line, json_object_get_string(v), desc);
	json_object_put(r);
}

static void test_dispatch_bad_requests(void **state)
{
	(void)state;
	assert_generic_error("{\"execute\":", "invalid JSON: unexpected end of data");
	assert_generic_error("{execute}", "invalid JSON: ");
	assert_generic_error("{\"execute\":\"echo\"} {}", "invalid JSON: unexpected character");
	assert_generic_error("{\"execute\":\"echo\"}x", "invalid JSON: unexpected character");
	assert_generic_error("{\"execute\":\"echo\",\"arguments\":{\"s\":\"\xff\"}}",
			     "invalid JSON: ");
	assert_generic_error("42", "expected a JSON object, got int");
	assert_generic_error("[{\"execute\":\"echo\"}]", "expected a JSON object, got array");
	assert_generic_error("\"execute\"", "expected a JSON object, got string");
	assert_generic_error("{}", "missing member \"execute\"");
	assert_generic_error("{\"arguments\":{}}", "missing member \"execute\"");
	assert_generic_error("{\"execute\":1}", "\"execute\" must be a string");
	assert_generic_error("{\"execute\":null}", "\"execute\" must be a string");
	assert_generic_error("{\"execute\":\"echo\",\"arguments\":[]}",
			     "\"arguments\" must be an object");
	assert_generic_error("{\"execute\":\"echo\",\"argument\":{}}",
			     "unexpected member \"argument\"");
	/* an error still echoes the id */
	assert_json(dispatch("{\"execute\":7,\"id\":3}"),
		    "{\"error\":{\"class\":\"GenericError\","
		    "\"desc\":\"\\\"execute\\\" must be a string\"},\"id\":3}");
	char nul[] = "{\"execute\":\"echo\"}\0x";
	assert_json(api_dispatch_line(test_cmds, NTEST_CMDS, NULL, nul, sizeof(nul) - 1),
		    "{\"error\":{\"class\":\"GenericError\","
		    "\"desc\":\"invalid JSON: NUL byte in the line\"}}");
}

static void test_dispatch_query_commands(void **state)
{
	(void)state;
	assert_json(dispatch("{\"execute\":\"query-commands\"}"),
		    "{\"return\":["
		    "{\"name\":\"qmp_capabilities\","
		    "\"help\":\"accepted for QMP compatibility; does nothing\"},"
		    "{\"name\":\"query-commands\",\"help\":\"lists the commands this server knows\"},"
		    "{\"name\":\"echo\",\"help\":\"returns its arguments\"},"
		    "{\"name\":\"fail\"},{\"name\":\"fail-bare\"},"
		    "{\"name\":\"quit\",\"help\":\"closes the server from inside a handler\"}]}");
}

/* ---- a real server on a uv loop, driven from non-blocking client sockets ---- */

struct fx {
	char dir[64];
	char path[128];
	uv_loop_t loop;
	struct api_server *srv; /* NULL once closed */
};

struct conn {
	int fd;
	bool eof;
	size_t len;
	char buf[256 * 1024];
};

static int h_quit(void *ctx, struct json_object *args, struct json_object **ret,
		  const char **err_class, struct vmm_error *err)
{
	(void)args, (void)ret, (void)err_class, (void)err;
	struct fx *fx = ctx;
	api_server_close(fx->srv);
	fx->srv = NULL;
	return 0;
}

static void fx_path(const struct fx *fx, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", fx->dir, name);
}

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct vmm_error err = {0};
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/vmm-test-api-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	fx_path(fx, "api.sock", fx->path, sizeof(fx->path));
	uv_loop_init(&fx->loop);
	if (api_server_start(&fx->loop, fx->path, test_cmds, NTEST_CMDS, fx, &fx->srv, &err) < 0) {
		fprintf(stderr, "api_server_start: %s\n", err.msg);
		return -1;
	}
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;
	int rc = 0;
	api_server_close(fx->srv);
	/* every handle must close: a leaked one keeps the loop alive */
	long end = now_ms() + DEADLINE_MS;
	while (uv_run(&fx->loop, UV_RUN_NOWAIT) && now_ms() < end)
		;
	if (uv_loop_close(&fx->loop) != 0) {
		fprintf(stderr, "uv loop still has handles after api_server_close\n");
		rc = -1;
	}
	static const char *const names[] = {"api.sock", "plain", "other.sock", "stale.sock"};
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char p[160];
		fx_path(fx, names[i], p, sizeof(p));
		unlink(p);
	}
	rmdir(fx->dir);
	free(fx);
	return rc;
}

/* Runs the loop a little: returns when the loop has nothing more to do right now. */
static void pump(struct fx *fx, int ms)
{
	struct pollfd p = {.fd = uv_backend_fd(&fx->loop), .events = POLLIN};
	uv_run(&fx->loop, UV_RUN_NOWAIT);
	if (poll(&p, 1, ms) > 0)
		uv_run(&fx->loop, UV_RUN_NOWAIT);
}

/* Takes what the client socket has; true once a whole line or EOF is there. */
static bool conn_fill(struct conn *c)
{
	for (;;) {
		ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, MSG_DONTWAIT);
		if (r > 0) {
			c->len += (size_t)r;
			if (c->len == sizeof(c->buf) - 1)
				break;
			continue;
		}
		if (r == 0 || errno == ECONNRESET)
			c->eof = true;
		break;
	}
	return memchr(c->buf, '\n', c->len) || c->eof;
}

/* Runs the server until the client has a line (or EOF) or `ms` pass. */
static bool wait_line(struct fx *fx, struct conn *c, int ms)
{
	long end = now_ms() + ms;
	while (!conn_fill(c)) {
		if (now_ms() >= end)
			return false;
		pump(fx, 2);
	}
	return true;
}

/* The next line, malloc'd without '\n'; NULL at EOF (fails on timeout). */
static char *conn_line(struct fx *fx, struct conn *c)
{
	if (!wait_line(fx, c, DEADLINE_MS))
		fail_msg("no reply within %d ms", DEADLINE_MS);
	char *nl = memchr(c->buf, '\n', c->len);
	if (!nl)
		return NULL;
	size_t n = (size_t)(nl - c->buf);
	char *line = strndup(c->buf, n);
	memmove(c->buf, nl + 1, c->len - n - 1);
	c->len -= n + 1;
	return line;
}

static struct json_object *conn_obj(struct fx *fx, struct conn *c)
{
	char *line = conn_line(fx, c);
	if (!line)
		fail_msg("connection closed, a reply was expected");
	struct json_object *o = json_tokener_parse(line);
	if (!json_object_is_type(o, json_type_object))
		fail_msg("server sent a line that is not a JSON object: %.200s", line);
	free(line);
	return o;
}

static void conn_expect_eof(struct fx *fx, struct conn *c)
{
	char *line = conn_line(fx, c);
	if (line)
		fail_msg("expected the server to close, got %.200s", line);
}

static void conn_send_n(struct fx *fx, struct conn *c, const char *data, size_t n)
{
	long end = now_ms() + DEADLINE_MS;
	while (n > 0) {
		ssize_t w = send(c->fd, data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w > 0) {
			data += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EAGAIN && now_ms() < end) {
			pump(fx, 2); /* let the server read */
		} else {
			fail_msg("send: %s", w < 0 ? strerror(errno) : "timeout");
		}
	}
}

static void conn_send(struct fx *fx, struct conn *c, const char *s)
{
	conn_send_n(fx, c, s, strlen(s));
}

static struct conn *conn_open_raw(const char *path)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->fd >= 0);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail_msg("connect %s: %s", path, strerror(errno));
	return c;
}

/* Connects and checks the greeting. */
static struct conn *conn_open(struct fx *fx)
{
	struct conn *c = conn_open_raw(fx->path);
	assert_json(conn_obj(fx, c),
		    "{\"VMM\":{\"version\":\"" VMM_VERSION "\",\"capabilities\":[]}}");
	return c;
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c);
}

static void test_greeting_capabilities_echo(void **state)
{
	struct fx *fx = *state;
	struct conn *c = conn_open(fx);
	conn_send(fx, c, "{\"execute\":\"qmp_capabilities\"}\n");
	assert_json(conn_obj(fx, c), "{\"return\":{}}");
	conn_send(fx, c, "{\"execute\":\"echo\",\"arguments\":{\"k\":\"v\",\"n\":-5},\"id\":\"a1\"}\n");
	assert_json(conn_obj(fx, c), "{\"return\":{\"k\":\"v\",\"n\":-5},\"id\":\"a1\"}");
	conn_send(fx, c, "{\"execute\":\"fail\",\"id\":2}\r\n"); /* CRLF */
	assert_json(conn_obj(fx, c), "{\"error\":{\"class\":\"DeviceNotActive\","
				     "\"desc\":\"fail: as asked\"},\"id\":2}");
	conn_close(c);
}

static void test_bad_input_keeps_connection(void **state)
{
	struct fx *fx = *state;
	struct conn *c = conn_open(fx);
	conn_send(fx, c, "{\"execute\": oops\n");
	struct json_object *r = conn_obj(fx, c), *e;
	assert_true(json_object_object_get_ex(r, "error", &e));
	json_object_put(r);
	conn_send(fx, c, "[1,2]\n");
	assert_json(conn_obj(fx, c), "{\"error\":{\"class\":\"GenericError\","
				     "\"desc\":\"expected a JSON object, got array\"}}");
	conn_send(fx, c, "{\"id\":5}\n");
	assert_json(conn_obj(fx, c), "{\"error\":{\"class\":\"GenericError\","
				     "\"desc\":\"missing member \\\"execute\\\"\"},\"id\":5}");
	conn_send(fx, c, "\n\r\n{\"execute\":\"no-such\"}\n"); /* blank lines: no reply */
	assert_json(conn_obj(fx, c), "{\"error\":{\"class\":\"CommandNotFound\","
				     "\"desc\":\"The command no-such has not been found\"}}");
	conn_send(fx, c, "{\"execute\":\"echo\",\"id\":6}\n");
	assert_json(conn_obj(fx, c), "{\"return\":{},\"id\":6}");
	conn_close(c);
}

static void test_framing(void **state)
{
	struct fx *fx = *state;
	struct conn *c = conn_open(fx);
	/* two commands in one write */
	conn_send(fx, c, "{\"execute\":\"echo\",\"id\":1}\n{\"execute\":\"echo\",\"id\":2}\n");
	assert_json(conn_obj(fx, c), "{\"return\":{},\"id\":1}");
	assert_json(conn_obj(fx, c), "{\"return\":{},\"id\":2}");
	/* one command in three writes: nothing before its '\n' */
	conn_send(fx, c, "{\"execute\":\"ec");
	assert_false(wait_line(fx, c, 30));
	conn_send(fx, c, "ho\",\"id\":3}");
	assert_false(wait_line(fx, c, 30));
	conn_send(fx, c, "\n{\"execute\":\"echo\",\"id\":4}\n{\"exec");
	assert_json(conn_obj(fx, c), "{\"return\":{},\"id\":3}");
	assert_json(conn_obj(fx, c), "{\"return\":{},\"id\":4}");
	conn_send(fx, c, "ute\":\"echo\",\"id\":5}\n");
	assert_json(conn_obj(fx, c), "{\"return\":{},\"id\":5}");
	conn_close(c);
}

/* {"execute":"echo","arguments":{"s":"aaa..."}} of exactly `len` bytes. */
static char *line_of(size_t len)
{
	static const char head[] = "{\"execute\":\"echo\",\"arguments\":{\"s\":\"", tail[] = "\"}}";
	char *s = malloc(len + 3);
	size_t fill = len - (sizeof(head) - 1) - (sizeof(tail) - 1);
	memcpy(s, head, sizeof(head) - 1);
	memset(s + sizeof(head) - 1, 'a', fill);
	memcpy(s + sizeof(head) - 1 + fill, tail, sizeof(tail));
	return s;
}

static void test_line_limit(void **state)
{
	struct fx *fx = *state;
	struct conn *c = conn_open(fx);
	/* exactly API_MAX_LINE bytes (plus CRLF) is fine */
	char *s = line_of(API_MAX_LINE);
	strcat(s, "\r\n");
	conn_send(fx, c, s);
	struct json_object *r = conn_obj(fx, c), *ret, *v;
	assert_true(json_object_object_get_ex(r, "return", &ret));
	assert_true(json_object_object_get_ex(ret, "s", &v));
	assert_int_equal(json_object_get_string_len(v), API_MAX_LINE - 39);
	json_object_put(r);
	free(s);
	/* one more byte: an error, then the server hangs up */
	s = line_of(API_MAX_LINE + 1);
	strcat(s, "\n");
	conn_send(fx, c, s);
	assert_json(conn_obj(fx, c), "{\"error\":{\"class\":\"GenericError\","
				     "\"desc\":\"line longer than 65536 bytes; closing\"}}");
	conn_expect_eof(fx, c);
	conn_close(c);
	free(s);
	/* no newline at all: refused as soon as it is too long */
	c = conn_open(fx);
	s = calloc(1, API_MAX_LINE + 100);
	memset(s, ' ', API_MAX_LINE + 99);
	conn_send(fx, c, s);
	r = conn_obj(fx, c);
	assert_true(json_object_object_get_ex(r, "error", &v));
	json_object_put(r);
	conn_expect_eof(fx, c);
	conn_close(c);
	free(s);
	/* the others are unaffected */
	c = conn_open(fx);
	conn_close(c);
}

static void test_socket_file(void **state)
{
	struct fx *fx = *state;
	struct stat st;
	assert_int_equal(lstat(fx->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	/* a second server on a live socket is refused; the first one goes on */
	struct api_server *s2 = NULL;
	struct vmm_error err = {0};
	assert_int_equal(api_server_start(&fx->loop, fx->path, test_cmds, NTEST_CMDS, fx, &s2, &err),
			 -EADDRINUSE);
	assert_non_null(strstr(err.msg, "another process is listening on it"));
	struct conn *c = conn_open(fx);
	/* close: clients see EOF, the file goes */
	api_server_close(fx->srv);
	fx->srv = NULL;
	assert_int_equal(lstat(fx->path, &st), -1);
	assert_int_equal(errno, ENOENT);
	conn_expect_eof(fx, c);
	conn_close(c);
}

static void test_stale_and_foreign_paths(void **state)
{
	struct fx *fx = *state;
	struct vmm_error err = {0};
	struct api_server *s = NULL;
	char path[100];
	/* a socket file nobody listens on is replaced */
	fx_path(fx, "stale.sock", path, sizeof(path));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(api_server_start(&fx->loop, path, test_cmds, NTEST_CMDS, fx, &s, &err), 0);
	struct conn *c = conn_open_raw(path);
	assert_true(wait_line(fx, c, DEADLINE_MS));
	conn_close(c);
	api_server_close(s);
	/* a regular file is left alone */
	fx_path(fx, "plain", path, sizeof(path));
	FILE *f = fopen(path, "w");
	fputs("keep me\n", f);
	fclose(f);
	s = NULL;
	assert_int_equal(api_server_start(&fx->loop, path, test_cmds, NTEST_CMDS, fx, &s, &err),
			 -EEXIST);
	assert_null(s);
	assert_non_null(strstr(err.msg, "exists and is not a socket; refusing to replace it"));
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 8);
	/* too long for sun_path */
	char longp[200];
	memset(longp, 'x', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(api_server_start(&fx->loop, longp, test_cmds, NTEST_CMDS, fx, &s, &err),
			 -ENAMETOOLONG);
	/* a directory that does not exist */
	assert_true(api_server_start(&fx->loop, "/nonexistent-dir/x.sock", test_cmds, NTEST_CMDS,
				     fx, &s, &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent-dir/x.sock"));
}

static void test_events(void **state)
{
	struct fx *fx = *state;
	struct conn *a = conn_open(fx), *b = conn_open(fx);
	api_server_broadcast_event(fx->srv, "STOP", J("{\"reason\":\"test\"}"));
	api_server_broadcast_event(fx->srv, "RESUME", NULL);
	struct conn *cs[] = {a, b};
	for (int i = 0; i < 2; i++) {
		struct json_object *e = conn_obj(fx, cs[i]), *ts, *v;
		assert_true(json_object_object_get_ex(e, "timestamp", &ts));
		assert_true(json_object_object_get_ex(ts, "seconds", &v));
		assert_true(json_object_get_int64(v) > 1600000000);
		assert_true(json_object_object_get_ex(ts, "microseconds", &v));
		assert_in_range(json_object_get_int64(v), 0, 999999);
		json_object_object_del(e, "timestamp");
		assert_json(e, "{\"event\":\"STOP\",\"data\":{\"reason\":\"test\"}}");
		e = conn_obj(fx, cs[i]);
		json_object_object_del(e, "timestamp");
		assert_json(e, "{\"event\":\"RESUME\",\"data\":{}}");
	}
	conn_close(a);
	conn_close(b);
}

static void test_client_limit(void **state)
{
	struct fx *fx = *state;
	struct conn *cs[API_MAX_CLIENTS];
	for (int i = 0; i < API_MAX_CLIENTS; i++)
		cs[i] = conn_open(fx);
	struct conn *extra = conn_open_raw(fx->path);
	assert_json(conn_obj(fx, extra), "{\"error\":{\"class\":\"GenericError\","
					 "\"desc\":\"too many clients (at most 16)\"}}");
	conn_expect_eof(fx, extra);
	conn_close(extra);
	/* once one leaves there is room again */
	conn_close(cs[0]);
	pump(fx, 20);
	cs[0] = conn_open(fx);
	for (int i = 0; i < API_MAX_CLIENTS; i++)
		conn_close(cs[i]);
}

static void test_client_vanishes_mid_write(void **state)
{
	struct fx *fx = *state;
	/* many big replies queued, then the client goes without reading */
	struct conn *c = conn_open(fx);
	char *s = line_of(60000);
	strcat(s, "\n");
	for (int i = 0; i < 40; i++)
		conn_send(fx, c, s);
	conn_close(c);
	for (int i = 0; i < 20; i++)
		pump(fx, 2);
	/* a client that never reads while events pile up is dropped */
	c = conn_open(fx);
	struct json_object *big = J("{}");
	json_object_object_add(big, "s", json_object_new_string(s));
	for (int i = 0; i < 100; i++)
		api_server_broadcast_event(fx->srv, "BIG", json_object_get(big));
	json_object_put(big);
	long end = now_ms() + DEADLINE_MS;
	while (!c->eof && now_ms() < end) {
		c->len = 0; /* discard */
		conn_fill(c);
		pump(fx, 1);
	}
	assert_true(c->eof);
	conn_close(c);
	free(s);
	/* the server is fine */
	c = conn_open(fx);
	conn_send(fx, c, "{\"execute\":\"echo\",\"id\":1}\n");
	assert_json(conn_obj(fx, c), "{\"return\":{},\"id\":1}");
	conn_close(c);
}

static void test_close_from_handler(void **state)
{
	struct fx *fx = *state;
	struct conn *other = conn_open(fx);
	struct conn *c = conn_open(fx);
	/* the reply to quit still goes out, then everything closes */
	conn_send(fx, c, "{\"execute\":\"quit\",\"id\":9}\n{\"execute\":\"echo\"}\n");
	assert_json(conn_obj(fx, c), "{\"return\":{},\"id\":9}");
	conn_expect_eof(fx, c);
	conn_expect_eof(fx, other);
	assert_int_equal(access(fx->path, F_OK), -1);
	conn_close(c);
	conn_close(other);
}

static void test_peer_half_close(void **state)
{
	struct fx *fx = *state;
	/* `printf '...' | socat - UNIX:...`: a last line without '\n', then EOF */
	struct conn *c = conn_open(fx);
	conn_send(fx, c, "{\"execute\":\"echo\",\"id\":1}\n{\"execute\":\"echo\",\"id\":2}");
	shutdown(c->fd, SHUT_WR);
	assert_json(conn_obj(fx, c), "{\"return\":{},\"id\":1}");
	assert_json(conn_obj(fx, c), "{\"return\":{},\"id\":2}");
	conn_expect_eof(fx, c);
	conn_close(c);
}

/* ---- vmm ctl: pure parts ---- */

static void test_ctl_arg_values(void **state)
{
	(void)state;
	static const struct {
		const char *in, *json;
	} cases[] = {
		{"50", "50"},
		{"-3", "-3"},
		{"0", "0"},
		{"1000000000", "1000000000"},
		{"9223372036854775807", "9223372036854775807"},
		{"9223372036854775808", "\"9223372036854775808\""},
		{"true", "true"},
		{"false", "false"},
		{"True", "\"True\""},
		{"tcp:127.0.0.1:4444", "\"tcp:127.0.0.1:4444\""},
		{"", "\"\""},
		{"12a", "\"12a\""},
		{"1.5", "\"1.5\""},
		{"0x10", "\"0x10\""},
		{" 5", "\" 5\""},
		{"-", "\"-\""},
		{"+5", "\"+5\""},
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *v = api_client_arg_value(cases[i].in), *w = J(cases[i].json);
		if (!json_object_equal(v, w))
			fail_msg("\"%s\" -> %s, want %s", cases[i].in,
				 json_object_to_json_string(v), cases[i].json);
		json_object_put(v);
		json_object_put(w);
	}
}

static void test_ctl_parse_args(void **state)
{
	(void)state;
	struct json_object *o = NULL;
	struct vmm_error err = {0};
	char *ok[] = {"downtime-limit=50", "max-bandwidth=1000000000", "uri=tcp:1.2.3.4:5",
		      "x=a=b", "flag=true"};
	assert_int_equal(api_client_parse_args(5, ok, &o, &err), 0);
	assert_json(o, "{\"downtime-limit\":50,\"max-bandwidth\":1000000000,"
		       "\"uri\":\"tcp:1.2.3.4:5\",\"x\":\"a=b\",\"flag\":true}");
	assert_int_equal(api_client_parse_args(0, NULL, &o, &err), 0);
	assert_json(o, "{}");
	char *noeq[] = {"a=1", "verbose"};
	assert_int_equal(api_client_parse_args(2, noeq, &o, &err), -EINVAL);
	assert_string_equal(err.msg, "argument \"verbose\" is not KEY=VALUE");
	char *nokey[] = {"=1"};
	assert_int_equal(api_client_parse_args(1, nokey, &o, &err), -EINVAL);
	assert_string_equal(err.msg, "argument \"=1\" has an empty key");
	char *twice[] = {"a=1", "a=2"};
	assert_int_equal(api_client_parse_args(2, twice, &o, &err), -EINVAL);
	assert_string_equal(err.msg, "argument \"a\" given twice");
}

static char *human(const char *json)
{
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	struct json_object *v = J(json);
	api_client_print_human(f, v);
	json_object_put(v);
	fclose(f);
	return text;
}

static void assert_human(const char *json, const char *want)
{
	char *got = human(json);
	if (strcmp(got, want) != 0)
		fail_msg("%s printed as\n%s---- want\n%s----", json, got, want);
	free(got);
}

static void test_ctl_human_output(void **state)
{
	(void)state;
	assert_human("{\"status\":\"running\"}", "status: running\n");
	assert_human("{}", "");
	assert_human("{\"status\":\"running\",\"running\":true,\"vcpus\":2,\"x\":null,\"r\":1.5}",
		     "status: running\nrunning: true\nvcpus: 2\nx: null\nr: 1.5\n");
	assert_human("{\"a\":{\"b\":{\"c\":1},\"d\":\"e\"},\"f\":{},\"g\":[]}",
		     "a:\n  b:\n    c: 1\n  d: e\nf: {}\ng: []\n");
	assert_human("[{\"name\":\"stop\",\"help\":\"pauses\"},{\"name\":\"cont\"}]",
		     "- name: stop\n  help: pauses\n- name: cont\n");
	assert_human("{\"leaves\":[1,\"two\",{\"x\":1,\"y\":[3,4]},[5]]}",
		     "leaves:\n  - 1\n  - two\n  - x: 1\n    y:\n      - 3\n      - 4\n  -\n"
		     "    - 5\n");
	assert_human("\"hello\"", "hello\n");
	assert_human("42", "42\n");
}

static const char *const info_active =
	"{\"status\":\"active\",\"total-time\":1500,\"expected-downtime\":35,"
	"\"ram\":{\"transferred\":1299227607,\"total\":2147483648,\"remaining\":1395864371,"
	"\"mbps\":943.2,\"dirty-pages-rate\":3174,\"dirty-sync-count\":3,\"page-size\":4096}}";

static void assert_line(const char *json, bool bar, unsigned width, const char *want)
{
	char buf[512];
	struct json_object *info = J(json);
	size_t n = api_progress_line(info, bar, width, buf, sizeof(buf));
	json_object_put(info);
	if (strcmp(buf, want) != 0)
		fail_msg("width %u:\ngot  \"%s\"\nwant \"%s\"", width, buf, want);
	assert_int_equal(n, strlen(want));
	if (width)
		assert_true(n <= width - 1);
}

static void test_ctl_progress_line(void **state)
{
	(void)state;
	assert_line(info_active, false, 0,
		    "active     35.0% of 2.00 GiB | sent 1.21 GiB | 112.4 MiB/s | "
		    "dirty 12.4 MiB/s | iter 3 | downtime ~35 ms");
	assert_line(info_active, true, 0,
		    "active    [##########--------------------]  35.0% of 2.00 GiB | sent 1.21 GiB | "
		    "112.4 MiB/s | dirty 12.4 MiB/s | iter 3 | downtime ~35 ms");
	/* 120 columns: the bar shrinks to fit in 119 */
	assert_line(info_active, true, 120,
		    "active    [####--------]  35.0% of 2.00 GiB | sent 1.21 GiB | "
		    "112.4 MiB/s | dirty 12.4 MiB/s | iter 3 | downtime ~35 ms");
	/* 80 columns: no room for a bar, and the parts that do not fit go */
	assert_line(info_active, true, 80,
		    "active     35.0% of 2.00 GiB | sent 1.21 GiB | 112.4 MiB/s | dirty 12.4 MiB/s");
	assert_line(info_active, true, 20, "active     35.0% of");
	assert_line("{\"status\":\"setup\"}", true, 80, "setup");
	assert_line("{\"status\":\"setup\",\"ram\":{\"total\":1024,\"remaining\":0}}", true, 80,
		    "setup");
	/* remaining still 0 before the first sync: transferred / total */
	assert_line("{\"status\":\"active\",\"ram\":{\"total\":4096,\"remaining\":0,"
		    "\"transferred\":1024,\"dirty-sync-count\":0}}",
		    false, 0, "active     25.0% of 4.00 KiB | sent 1.00 KiB | iter 0");
	assert_line("{\"status\":\"active\",\"ram\":{\"total\":4096,\"remaining\":0,"
		    "\"transferred\":1024,\"dirty-sync-count\":1}}",
		    false, 0, "active    100.0% of 4.00 KiB | sent 1.00 KiB | iter 1");
	assert_line("{}", false, 0, "?");
	/* no "remaining": transferred / total; no page-size: 4096 */
	assert_line("{\"status\":\"active\",\"ram\":{\"transferred\":512,\"total\":1024,"
		    "\"dirty-pages-rate\":256,\"throttle-percentage\":0}}",
		    false, 0, "active     50.0% of 1.00 KiB | sent 512 B | dirty 1.0 MiB/s");
	assert_line("{\"status\":\"device\",\"throttle-percentage\":20,"
		    "\"ram\":{\"total\":1024,\"remaining\":0}}",
		    true, 0,
		    "device    [##############################] 100.0% of 1.00 KiB | throttle 20%");
	assert_line("{\"status\":\"active\",\"ram\":{\"total\":1024,\"remaining\":4096}}", false, 0,
		    "active      0.0% of 1.00 KiB");
	/* wrong types are ignored, not trusted */
	assert_line("{\"status\":5,\"ram\":{\"total\":\"x\",\"transferred\":1.5}}", false, 0, "?");
}

static void test_ctl_summary_and_bytes(void **state)
{
	(void)state;
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	struct json_object *info =
		J("{\"status\":\"completed\",\"total-time\":2345,\"setup-time\":12,\"downtime\":31,"
		  "\"compression-ratio\":1.5,\"ram\":{\"transferred\":1127428915,\"total\":2147483648,"
		  "\"remaining\":0,\"duplicate\":250000,\"normal\":274000,\"untouched\":0,"
		  "\"mbps\":3845.5,\"dirty-sync-count\":4}}");
	api_progress_summary(f, info);
	fclose(f);
	json_object_put(info);
	assert_string_equal(text, "migration completed\n"
				  "  total time:             2345 ms\n"
				  "  setup time:             12 ms\n"
				  "  downtime:               31 ms\n"
				  "  transferred:            1.05 GiB (1127428915 bytes)\n"
				  "  duplicate (zero) pages: 250000\n"
				  "  normal pages:           274000\n"
				  "  untouched pages:        0\n"
				  "  iterations:             4\n"
				  "  throughput:             3845.50 Mbps (458.4 MiB/s)\n"
				  "  compression ratio:      1.50\n");
	free(text);
	text = NULL;
	f = open_memstream(&text, &n);
	info = J("{\"status\":\"completed\",\"compression-ratio\":0,\"ram\":{\"normal\":1}}");
	api_progress_summary(f, info);
	fclose(f);
	json_object_put(info);
	assert_string_equal(text, "migration completed\n  normal pages:           1\n");
	free(text);
	char b[32];
	api_progress_bytes(0, b, sizeof(b));
	assert_string_equal(b, "0 B");
	api_progress_bytes(1023, b, sizeof(b));
	assert_string_equal(b, "1023 B");
	api_progress_bytes(1536, b, sizeof(b));
	assert_string_equal(b, "1.50 KiB");
	api_progress_bytes(5ULL << 40, b, sizeof(b));
	assert_string_equal(b, "5.00 TiB");
}

/* ---- vmm ctl against a fake vmm in a child process ---- */

/* uri=fail: fails; uri=exit: the vmm exits after "device"; uri=vanish: it exits
 * while "active"; uri=forever: stays active; uri=lost: query-migrate says {};
 * anything else completes. */
enum fake_mode { FAKE_OK, FAKE_FAIL, FAKE_EXIT, FAKE_VANISH, FAKE_FOREVER, FAKE_LOST };

struct fake {
	struct api_server *srv;
	int steps; /* polls spent "active" */
	int polls;
	bool migrating;
	enum fake_mode mode;
};

static int f_query_status(void *ctx, struct json_object *args, struct json_object **ret,
			  const char **err_class, struct vmm_error *err)
{
	(void)ctx, (void)args, (void)err_class, (void)err;
	*ret = J("{\"status\":\"running\",\"running\":true}");
	return 0;
}

static int f_migrate(void *ctx, struct json_object *args, struct json_object **ret,
		     const char **err_class, struct vmm_error *err)
{
	(void)ret, (void)err_class;
	struct fake *f = ctx;
	struct json_object *uri;
	if (!json_object_object_get_ex(args, "uri", &uri) ||
	    !json_object_is_type(uri, json_type_string))
		return vmm_error_set(err, -EINVAL, "migrate: \"uri\" is required");
	if (f->migrating)
		return vmm_error_set(err, -EBUSY, "migrate: a migration is already running");
	const char *u = json_object_get_string(uri);
	static const char *const modes[] = {"", "fail", "exit", "vanish", "forever", "lost"};
	f->mode = FAKE_OK;
	for (unsigned i = 1; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(u, modes[i]) == 0)
			f->mode = (enum fake_mode)i;
	f->migrating = true;
	f->polls = 0;
	return 0;
}

static int f_query_migrate(void *ctx, struct json_object *args, struct json_object **ret,
			   const char **err_class, struct vmm_error *err)
{
	(void)args, (void)err_class, (void)err;
	struct fake *f = ctx;
	char buf[1024];
	const long long total = 1LL << 30, step = total / (f->steps + 1);
	int n = f->polls++;
	if (!f->migrating) {
		*ret = J("{\"status\":\"none\"}");
	} else if (f->mode == FAKE_LOST) {
		*ret = J("{}");
	} else if (n == 0) {
		*ret = J("{\"status\":\"setup\",\"total-time\":1}");
	} else if (f->mode == FAKE_FAIL && n == 2) {
		*ret = J("{\"status\":\"failed\",\"error-desc\":\"destination closed the connection\"}");
		f->migrating = false;
	} else if (n <= f->steps || f->mode == FAKE_FOREVER) {
		if (f->mode == FAKE_VANISH && n == 2)
			api_server_close(f->srv);
		n = n > f->steps ? f->steps : n;
		snprintf(buf, sizeof(buf),
			 "{\"status\":\"active\",\"total-time\":%d,\"expected-downtime\":%d,"
			 "\"ram\":{\"transferred\":%lld,\"total\":%lld,\"remaining\":%lld,"
			 "\"mbps\":8000.5,\"dirty-pages-rate\":2560,\"dirty-sync-count\":%d,"
			 "\"page-size\":4096}}",
			 n * 100, 300 / n, n * step, total, total - n * step, n);
		*ret = J(buf);
	} else if (n == f->steps + 1) {
		*ret = J("{\"status\":\"device\"}");
		if (f->mode == FAKE_EXIT)
			api_server_close(f->srv); /* like a source vmm quitting */
	} else {
		*ret = J("{\"status\":\"completed\",\"total-time\":700,\"setup-time\":3,"
			 "\"downtime\":21,\"ram\":{\"transferred\":1073741824,\"total\":1073741824,"
			 "\"remaining\":0,\"duplicate\":200000,\"normal\":62144,\"untouched\":0,"
			 "\"mbps\":12000,\"dirty-sync-count\":4}}");
		f->migrating = false;
	}
	return 0;
}

static int f_quit(void *ctx, struct json_object *args, struct json_object **ret,
		  const char **err_class, struct vmm_error *err)
{
	(void)args, (void)ret, (void)err_class, (void)err;
	struct fake *f = ctx;
	api_server_close(f->srv);
	return 0;
}

static const struct api_command fake_cmds[] = {
	{"query-status", f_query_status, "running or paused"},
	{"migrate", f_migrate, "starts a fake migration (uri=fail / uri=exit for the bad endings)"},
	{"query-migrate", f_query_migrate, "progress of the fake migration"},
	{"echo", h_echo, "returns its arguments"},
	{"quit", f_quit, "closes the API"},
};

/* Serves the fake vmm at `path` until quit; writes a byte to ready_fd once listening. */
static int fake_vmm(const char *path, int steps, int ready_fd)
{
	uv_loop_t loop;
	struct fake f = {.steps = steps};
	struct vmm_error err = {0};
	uv_loop_init(&loop);
	if (api_server_start(&loop, path, fake_cmds, sizeof(fake_cmds) / sizeof(fake_cmds[0]), &f,
			     &f.srv, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	if (ready_fd >= 0 && write(ready_fd, "r", 1) != 1)
		return 1;
	uv_run(&loop, UV_RUN_DEFAULT);
	return uv_loop_close(&loop) == 0 ? 0 : 1;
}

struct ctlfx {
	char dir[64];
	char path[128];
	pid_t pid;
	char out[16384], err[16384];
};

static int ctl_setup(void **state)
{
	struct ctlfx *x = calloc(1, sizeof(*x));
	int p[2];
	char c;
	snprintf(x->dir, sizeof(x->dir), "/tmp/vmm-test-ctl-XXXXXX");
	if (!mkdtemp(x->dir) || pipe(p) < 0)
		return -1;
	snprintf(x->path, sizeof(x->path), "%s/vmm.sock", x->dir);
	fflush(NULL);
	x->pid = fork();
	if (x->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
		close(p[0]);
		_exit(fake_vmm(x->path, 3, p[1]));
	}
	close(p[1]);
	if (x->pid < 0 || read(p[0], &c, 1) != 1)
		return -1;
	close(p[0]);
	*state = x;
	return 0;
}

static int ctl_teardown(void **state)
{
	struct ctlfx *x = *state;
	kill(x->pid, SIGKILL); /* our own child, by pid */
	waitpid(x->pid, NULL, 0);
	unlink(x->path);
	rmdir(x->dir);
	free(x);
	return 0;
}

static void slurp(FILE *f, char *buf, size_t len)
{
	fflush(f);
	rewind(f);
	size_t n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* Runs `vmm ctl ARGS...` (NULL-terminated) capturing stdout and stderr. */
static int run_ctl(struct ctlfx *x, ...)
{
	char *argv[16] = {"ctl"};
	int argc = 1;
	va_list ap;
	va_start(ap, x);
	for (char *a; argc < 15 && (a = va_arg(ap, char *));)
		argv[argc++] = strcmp(a, "@") == 0 ? x->path : a;
	va_end(ap);
	fflush(stdout);
	fflush(stderr);
	FILE *fo = tmpfile(), *fe = tmpfile();
	int so = dup(1), se = dup(2);
	dup2(fileno(fo), 1);
	dup2(fileno(fe), 2);
	int rc = api_client_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	slurp(fo, x->out, sizeof(x->out));
	slurp(fe, x->err, sizeof(x->err));
	return rc;
}

static void test_ctl_commands(void **state)
{
	struct ctlfx *x = *state;
	assert_int_equal(run_ctl(x, "@", "query-status", NULL), 0);
	assert_string_equal(x->out, "status: running\nrunning: true\n");
	assert_string_equal(x->err, "");
	assert_int_equal(run_ctl(x, "--json", "@", "query-status", NULL), 0);
	assert_string_equal(x->out, "{\"status\":\"running\",\"running\":true}\n");
	assert_int_equal(run_ctl(x, "@", "echo", "downtime-limit=50", "max-bandwidth=1000000000",
				 "uri=tcp:127.0.0.1:4444", "--json", NULL),
			 0);
	assert_string_equal(x->out, "{\"downtime-limit\":50,\"max-bandwidth\":1000000000,"
				    "\"uri\":\"tcp:127.0.0.1:4444\"}\n");
	assert_int_equal(run_ctl(x, "@", "raw", "{\"execute\":\"echo\",\"arguments\":{\"a\":1}}",
				 NULL),
			 0);
	assert_string_equal(x->out, "a: 1\n");
	assert_int_equal(run_ctl(x, "--json", "@", "raw", "{\"execute\":\"echo\",\"id\":\"r\"}",
				 NULL),
			 0);
	assert_string_equal(x->out, "{\"return\":{},\"id\":\"r\"}\n");
	assert_int_equal(run_ctl(x, "@", "stop", NULL), 1);
	assert_string_equal(x->out, "");
	assert_string_equal(x->err, "vmm ctl: The command stop has not been found\n");
	assert_int_equal(run_ctl(x, "@", "migrate", NULL), 1);
	assert_string_equal(x->err, "vmm ctl: migrate: \"uri\" is required\n");
	assert_int_equal(run_ctl(x, "@", "quit", NULL), 0);
	assert_string_equal(x->out, "");
	/* the fake vmm is going: its reply came before it closed, so wait
	 * (bounded) until its socket is gone before talking to it again */
	for (int i = 0; i < 200 && access(x->path, F_OK) == 0; i++)
		usleep(10000);
	assert_int_equal(access(x->path, F_OK), -1);
	assert_int_equal(run_ctl(x, "@", "query-status", NULL), 1);
	assert_non_null(strstr(x->err, "vmm ctl: cannot connect to "));
	assert_non_null(strstr(x->err, "/vmm.sock: No such file or directory\n"));
}

static void test_ctl_usage_errors(void **state)
{
	struct ctlfx *x = *state;
	assert_int_equal(run_ctl(x, "@", NULL), 2);
	assert_non_null(strstr(x->err, "usage: vmm ctl [--json] [--no-wait] SOCKET COMMAND"));
	assert_int_equal(run_ctl(x, "@", "query-status", "verbose", NULL), 2);
	assert_string_equal(x->err, "vmm ctl: argument \"verbose\" is not KEY=VALUE\n");
	assert_int_equal(run_ctl(x, "@", "raw", "[1]", NULL), 2);
	assert_string_equal(x->err, "vmm ctl: raw: not a JSON object: [1]\n");
	assert_int_equal(run_ctl(x, "--bogus", "@", "query-status", NULL), 2);
	assert_non_null(strstr(x->err, "vmm ctl: unknown option --bogus\n"));
	assert_int_equal(run_ctl(x, "/nonexistent/vmm.sock", "query-status", NULL), 1);
	assert_string_equal(x->err, "vmm ctl: cannot connect to /nonexistent/vmm.sock: "
				    "No such file or directory\n");
	assert_int_equal(run_ctl(x, "--help", NULL), 0);
	assert_non_null(strstr(x->out, "usage: vmm ctl"));
}

static void test_ctl_migrate_completes(void **state)
{
	struct ctlfx *x = *state;
	assert_int_equal(run_ctl(x, "@", "migrate", "uri=tcp:127.0.0.1:4444", NULL), 0);
	assert_string_equal(x->out, "migration completed\n"
				    "  total time:             700 ms\n"
				    "  setup time:             3 ms\n"
				    "  downtime:               21 ms\n"
				    "  transferred:            1.00 GiB (1073741824 bytes)\n"
				    "  duplicate (zero) pages: 200000\n"
				    "  normal pages:           62144\n"
				    "  untouched pages:        0\n"
				    "  iterations:             4\n"
				    "  throughput:             12000.00 Mbps (1430.5 MiB/s)\n");
	/* stderr is not a TTY here: one line per status change or second */
	assert_string_equal(x->err,
			    "setup\n"
			    "active     25.0% of 1.00 GiB | sent 256.00 MiB | 953.7 MiB/s | "
			    "dirty 10.0 MiB/s | iter 1 | downtime ~300 ms\n"
			    "device\n");
	/* --no-wait: back as soon as it is accepted */
	assert_int_equal(run_ctl(x, "@", "migrate", "uri=x", "--no-wait", NULL), 0);
	assert_string_equal(x->out, "");
	assert_string_equal(x->err, "");
	assert_int_equal(run_ctl(x, "@", "migrate", "uri=x", NULL), 1);
	assert_string_equal(x->err, "vmm ctl: migrate: a migration is already running\n");
}

static void test_ctl_migrate_fails(void **state)
{
	struct ctlfx *x = *state;
	assert_int_equal(run_ctl(x, "@", "migrate", "uri=fail", NULL), 1);
	assert_string_equal(x->out, "");
	assert_non_null(strstr(x->err, "vmm ctl: migration failed: destination closed the "
				       "connection\n"));
}

static void test_ctl_migrate_not_running(void **state)
{
	struct ctlfx *x = *state;
	/* accepted, but query-migrate keeps saying {}: give up after a second */
	assert_int_equal(run_ctl(x, "@", "migrate", "uri=lost", NULL), 1);
	assert_non_null(strstr(x->err, "vmm ctl: no migration is running (query-migrate status: "
				       "absent)\n"));
}

static void test_ctl_migrate_source_exits(void **state)
{
	struct ctlfx *x = *state;
	/* the source quits after "device": success */
	assert_int_equal(run_ctl(x, "@", "migrate", "uri=exit", NULL), 0);
	assert_string_equal(x->out,
			    "migration completed (the vmm exited before reporting statistics)\n");
}

static void test_ctl_migrate_connection_lost(void **state)
{
	struct ctlfx *x = *state;
	/* the vmm vanishes while "active": a failure naming the socket */
	assert_int_equal(run_ctl(x, "@", "migrate", "uri=vanish", NULL), 1);
	assert_string_equal(x->out, "");
	char want[256];
	snprintf(want, sizeof(want),
		 "vmm ctl: %s: connection closed by the vmm while migrating (last status: active)\n",
		 x->path);
	assert_non_null(strstr(x->err, want));
}

static void *send_sigint(void *arg)
{
	struct timespec ts = {0, 250 * 1000000L};
	nanosleep(&ts, NULL);
	pthread_kill(*(pthread_t *)arg, SIGINT);
	return NULL;
}

static void test_ctl_migrate_interrupted(void **state)
{
	struct ctlfx *x = *state;
	pthread_t self = pthread_self(), t;
	pthread_create(&t, NULL, send_sigint, &self);
	int rc = run_ctl(x, "@", "migrate", "uri=forever", NULL);
	pthread_join(t, NULL);
	assert_int_equal(rc, 130);
	char want[256];
	snprintf(want, sizeof(want),
		 "vmm ctl: interrupted; the migration goes on (stop it with: vmm ctl %s "
		 "migrate-cancel)\n", x->path);
	assert_non_null(strstr(x->err, want));
	/* SIGINT is back to what it was: cmocka's or the default, not ours */
	struct sigaction sa;
	sigaction(SIGINT, NULL, &sa);
	assert_true(sa.sa_handler == SIG_DFL);
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "--serve") == 0)
		return fake_vmm(argv[2], argc > 3 ? atoi(argv[3]) : 50, -1);
	if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
		return api_client_main(argc - 1, argv + 1);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch_requests),
		cmocka_unit_test(test_dispatch_bad_requests),
		cmocka_unit_test(test_dispatch_query_commands),
		cmocka_unit_test_setup_teardown(test_greeting_capabilities_echo, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_input_keeps_connection, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_framing, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_line_limit, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_socket_file, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stale_and_foreign_paths, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_events, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_client_limit, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_client_vanishes_mid_write, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_from_handler, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_peer_half_close, fx_setup, fx_teardown),
		cmocka_unit_test(test_ctl_arg_values),
		cmocka_unit_test(test_ctl_parse_args),
		cmocka_unit_test(test_ctl_human_output),
		cmocka_unit_test(test_ctl_progress_line),
		cmocka_unit_test(test_ctl_summary_and_bytes),
		cmocka_unit_test_setup_teardown(test_ctl_commands, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_usage_errors, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_migrate_completes, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_migrate_fails, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_migrate_not_running, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_migrate_source_exits, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_migrate_connection_lost, ctl_setup,
						ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_migrate_interrupted, ctl_setup, ctl_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

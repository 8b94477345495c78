/*
 * Unit tests for the control API server (api/server.c) on a real unix
 * socket in a temporary directory, its uv loop run from the test
 * (UV_RUN_NOWAIT) while a plain non-blocking client socket talks to it, so
 * everything stays on one thread and is deterministic.
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
#include "tests/unit/api_test_helpers.h"

/* QMP's greeting carries the version as numbers (meson.build: 0.2.0). */
#define VERSION_MAJOR "0"
#define VERSION_MINOR "2"
#define VERSION_MICRO "0"

struct conn {
	int fd;
	bool eof;
	size_t len;
	char buf[256 * 1024];
};

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
	if (api_server_start(&fx->loop, fx->path, test_cmds, ntest_cmds, fx, &fx->srv, &err) < 0) {
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
		    "{\"QMP\":{\"version\":{\"qemu\":{\"major\":" VERSION_MAJOR
		    ",\"minor\":" VERSION_MINOR ",\"micro\":" VERSION_MICRO
		    "},\"package\":\"vmm " VMM_VERSION "\"},\"capabilities\":[]}}");
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
	assert_int_equal(api_server_start(&fx->loop, fx->path, test_cmds, ntest_cmds, fx, &s2, &err),
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
	assert_int_equal(api_server_start(&fx->loop, path, test_cmds, ntest_cmds, fx, &s, &err), 0);
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
	assert_int_equal(api_server_start(&fx->loop, path, test_cmds, ntest_cmds, fx, &s, &err),
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
	assert_int_equal(api_server_start(&fx->loop, longp, test_cmds, ntest_cmds, fx, &s, &err),
			 -ENAMETOOLONG);
	/* a directory that does not exist */
	assert_true(api_server_start(&fx->loop, "/nonexistent-dir/x.sock", test_cmds, ntest_cmds,
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

/* Issue 11: 16 idle connections once locked the operator out. A newcomer
 * beyond the limit is served and the client idle longest is closed (told
 * why); one with half a line buffered goes only after every idle one. */
static void test_client_limit_closes_the_idlest(void **state)
{
	struct fx *fx = *state;
	struct conn *cs[API_MAX_CLIENTS];
	for (int i = 0; i < API_MAX_CLIENTS; i++)
		cs[i] = conn_open(fx);
	/* All but cs[3] speak after arriving; cs[0] also leaves half a line. */
	for (int i = 0; i < API_MAX_CLIENTS; i++) {
		if (i == 3)
			continue;
		conn_send(fx, cs[i], "{\"execute\":\"qmp_capabilities\"}\n");
		assert_json(conn_obj(fx, cs[i]), "{\"return\":{}}");
	}
	conn_send(fx, cs[0], "{\"execute\":");
	pump(fx, 20);
	struct conn *extra = conn_open(fx); /* greeted: it has a place */
	assert_json(conn_obj(fx, cs[3]), "{\"error\":{\"class\":\"GenericError\",\"desc\":"
					 "\"closing: 16 clients are connected and this one was "
					 "idle longest\"}}");
	conn_expect_eof(fx, cs[3]);
	conn_send(fx, extra, "{\"execute\":\"qmp_capabilities\"}\n");
	assert_json(conn_obj(fx, extra), "{\"return\":{}}");
	/* The next newcomer closes the next idlest: cs[1] (cs[0] is mid-line). */
	struct conn *extra2 = conn_open(fx);
	json_object_put(conn_obj(fx, cs[1]));
	conn_expect_eof(fx, cs[1]);
	conn_send(fx, cs[0], "\"qmp_capabilities\"}\n");
	assert_json(conn_obj(fx, cs[0]), "{\"return\":{}}");
	for (int i = 0; i < API_MAX_CLIENTS; i++)
		conn_close(cs[i]);
	conn_close(extra);
	conn_close(extra2);
}

/* Another uid is refused even where the file mode would let it in (the
 * socket is opened up here on purpose): SO_PEERCRED decides. Needs root to
 * be another user; skipped otherwise. */
static void test_other_uid_refused(void **state)
{
	struct fx *fx = *state;
	if (geteuid() != 0) {
		skip();
		return;
	}
	assert_int_equal(chmod(fx->path, 0666), 0);
	char dir[sizeof(fx->path)];
	memcpy(dir, fx->path, sizeof(dir));
	*strrchr(dir, '/') = '\0';
	assert_int_equal(chmod(dir, 0711), 0); /* let the other uid reach the socket */
	int sv[2];
	assert_int_equal(pipe(sv), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		memcpy(sa.sun_path, fx->path, strnlen(fx->path, sizeof(sa.sun_path) - 1));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(3);
		char buf[512];
		ssize_t n, total = 0;
		while (total < (ssize_t)sizeof(buf) - 1 &&
		       (n = read(fd, buf + total, sizeof(buf) - 1 - (size_t)total)) > 0)
			total += n;
		(void)!write(sv[1], buf, (size_t)total);
		_exit(0);
	}
	close(sv[1]);
	char got[512] = {0};
	ssize_t total = 0;
	for (int i = 0; i < 200; i++) {
		pump(fx, 10);
		ssize_t n = read(sv[0], got + total, sizeof(got) - 1 - (size_t)total);
		if (n <= 0)
			break;
		total += n;
	}
	int status;
	while (waitpid(pid, &status, WNOHANG) == 0)
		pump(fx, 10);
	close(sv[0]);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_non_null(strstr(got, "uid 65534 may not use this control socket"));
	assert_null(strstr(got, "QMP")); /* never greeted */
}

/* A socket in a directory others may write (and that is not sticky) could
 * be replaced under us: refused at start-up. */
static void test_unsafe_directory_refused(void **state)
{
	struct fx *fx = *state;
	char dir[512], path[600];
	fx_path(fx, "open", dir, sizeof(dir));
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	snprintf(path, sizeof(path), "%s/api.sock", dir);
	struct api_server *s2 = NULL;
	struct vmm_error err = {0};
	assert_int_equal(api_server_start(&fx->loop, path, test_cmds, ntest_cmds, fx, &s2, &err),
			 -EPERM);
	assert_non_null(strstr(err.msg, "is writable by others and not sticky"));
	assert_int_equal(chmod(dir, 01777), 0); /* sticky, like /tmp: fine */
	assert_int_equal(api_server_start(&fx->loop, path, test_cmds, ntest_cmds, fx, &s2, &err), 0);
	api_server_close(s2);
	pump(fx, 10);
	rmdir(dir);
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

int main(int argc, char **argv)
{
	(void)argc, (void)argv;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_greeting_capabilities_echo, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_input_keeps_connection, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_framing, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_line_limit, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_socket_file, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stale_and_foreign_paths, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_events, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_client_limit_closes_the_idlest, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_client_vanishes_mid_write, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_other_uid_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_unsafe_directory_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_from_handler, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_peer_half_close, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

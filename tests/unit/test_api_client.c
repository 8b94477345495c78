/*
 * Unit tests for `vmm ctl` (api/client.c, api_client_main) against a fake
 * vmm served by a forked child.
 *
 * Manual checks: `test_api_client --serve SOCKET [STEPS]` runs the fake vmm
 * (a migration that stays active for STEPS polls), `test_api_client ctl ...`
 * runs the client as `vmm ctl ...` would.
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

/* Sends SIGINT once `vmm ctl` has installed its handler (never before: the
 * signal would then hit cmocka's or the default handler), whatever the
 * machine's load; gives up after DEADLINE_MS. */
static void *send_sigint(void *arg)
{
	struct sigaction before, now;
	sigaction(SIGINT, NULL, &before);
	long end = now_ms() + DEADLINE_MS;
	do {
		struct timespec ts = {0, 1000000L};
		nanosleep(&ts, NULL);
		sigaction(SIGINT, NULL, &now);
	} while (now.sa_handler == before.sa_handler && now_ms() < end);
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
	(void)argc, (void)argv;
	if (argc >= 3 && strcmp(argv[1], "--serve") == 0)
		return fake_vmm(argv[2], argc > 3 ? atoi(argv[3]) : 50, -1);
	if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
		return api_client_main(argc - 1, argv + 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ctl_commands, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_usage_errors, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_migrate_completes, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_migrate_fails, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_migrate_not_running, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_migrate_source_exits, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_migrate_connection_lost, ctl_setup, ctl_teardown),
		cmocka_unit_test_setup_teardown(test_ctl_migrate_interrupted, ctl_setup, ctl_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

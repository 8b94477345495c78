/* tests/unit/api_test_helpers.c: see api_test_helpers.h. */
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

long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

struct json_object *J(const char *s)
{
	struct json_object *o = json_tokener_parse(s);
	if (!o)
		fail_msg("bad JSON in the test itself: %s", s);
	return o;
}

void assert_json(struct json_object *got, const char *want)
{
	struct json_object *w = J(want);
	const char *g = json_object_to_json_string_ext(got, JSON_C_TO_STRING_PLAIN);
	if (!json_object_equal(got, w))
		fail_msg("got %s\nwant %s", g, want);
	json_object_put(w);
	json_object_put(got);
}

int h_echo(void *ctx, struct json_object *args, struct json_object **ret,
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
		  const char **err_class, struct vmm_error *err)
{
	(void)args, (void)ret, (void)err_class, (void)err;
	struct fx *fx = ctx;
	api_server_close(fx->srv);
	fx->srv = NULL;
	return 0;
}

const struct api_command test_cmds[] = {
	{"echo", h_echo, "returns its arguments"},
	{"fail", h_fail, NULL},
	{"fail-bare", h_fail_bare, NULL},
	{"quit", h_quit, "closes the server from inside a handler"},
};
const unsigned ntest_cmds = (unsigned)(sizeof(test_cmds) / sizeof(test_cmds[0]));

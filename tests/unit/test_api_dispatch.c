/*
 * Unit tests for the control API's dispatch (api/dispatch.c): one request
 * line in, one reply out, no sockets; QMP's shapes (errors, ids, the
 * built-in commands).
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

static struct json_object *dispatch(const char *line)
{
	return api_dispatch_line(test_cmds, ntest_cmds, NULL, line, strlen(line));
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
	assert_json(api_dispatch_line(test_cmds, ntest_cmds, NULL, nul, sizeof(nul) - 1),
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
		    "{\"name\":\"query-version\",\"help\":\"the vmm version, in QMP's shape\"},"
		    "{\"name\":\"echo\",\"help\":\"returns its arguments\"},"
		    "{\"name\":\"fail\"},{\"name\":\"fail-bare\"},"
		    "{\"name\":\"quit\",\"help\":\"closes the server from inside a handler\"}]}");
}

/* QMP clients read version.qemu.{major,minor,micro}: ours, as numbers. */
static void test_dispatch_query_version(void **state)
{
	(void)state;
	unsigned major, minor, micro;
	assert_int_equal(sscanf(VMM_VERSION, "%u.%u.%u", &major, &minor, &micro), 3);
	char want[256];
	snprintf(want, sizeof(want),
		 "{\"return\":{\"qemu\":{\"major\":%u,\"minor\":%u,\"micro\":%u},"
		 "\"package\":\"vmm %s\"},\"id\":9}",
		 major, minor, micro, VMM_VERSION);
	assert_json(dispatch("{\"execute\":\"query-version\",\"id\":9}"), want);
}

int main(int argc, char **argv)
{
	(void)argc, (void)argv;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch_requests),
		cmocka_unit_test(test_dispatch_bad_requests),
		cmocka_unit_test(test_dispatch_query_commands),
		cmocka_unit_test(test_dispatch_query_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

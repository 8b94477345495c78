/*
 * Unit tests for the text side of `vmm ctl` (api/format.c): KEY=VALUE
 * arguments, human output, the migration progress line and summary.
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

int main(int argc, char **argv)
{
	(void)argc, (void)argv;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctl_arg_values),
		cmocka_unit_test(test_ctl_parse_args),
		cmocka_unit_test(test_ctl_human_output),
		cmocka_unit_test(test_ctl_progress_line),
		cmocka_unit_test(test_ctl_summary_and_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for the source's channel (migration/channel.c): migration URIs.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "migration/channel.h"

static void test_uri_parse(void **state)
{
	(void)state;
	struct mig_uri u;
	struct vmm_error err = {0};
	assert_int_equal(mig_uri_parse("tcp:127.0.0.1:4444", &u, &err), 0);
	assert_int_equal(u.kind, MIG_TCP);
	assert_string_equal(u.host, "127.0.0.1");
	assert_string_equal(u.port, "4444");
	assert_int_equal(mig_uri_parse("tcp:[::]:4444", &u, &err), 0);
	assert_string_equal(u.host, "::");
	assert_int_equal(mig_uri_parse("tcp:0:4444", &u, &err), 0);
	assert_string_equal(u.host, "0");
	assert_int_equal(mig_uri_parse("unix:/tmp/x.sock", &u, &err), 0);
	assert_int_equal(u.kind, MIG_UNIX);
	assert_int_equal(mig_uri_parse("file:/tmp/snap", &u, &err), 0);
	assert_int_equal(u.kind, MIG_FILE);
	assert_int_equal(mig_uri_parse("tcp:host:99999", &u, &err), -EINVAL);
	assert_int_equal(mig_uri_parse("tcp:host", &u, &err), -EINVAL);
	assert_int_equal(mig_uri_parse("tcp:[::1:4444", &u, &err), -EINVAL);
	assert_int_equal(mig_uri_parse("http://x", &u, &err), -EINVAL);
	assert_int_equal(mig_uri_parse("file:", &u, &err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

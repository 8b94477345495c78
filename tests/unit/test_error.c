/* Unit tests for util/error. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/error.h"

static void test_set_returns_code_and_formats(void **state)
{
	(void)state;
	struct vmm_error e = {0};
	assert_int_equal(vmm_error_set(&e, -ENOENT, "file %s: missing", "x"), -ENOENT);
	assert_string_equal(e.msg, "file x: missing");
	assert_int_equal(e.code, -ENOENT);
}

static void test_set_never_returns_success(void **state)
{
	(void)state;
	struct vmm_error e = {0};
	assert_int_equal(vmm_error_set(&e, 0, "oops"), -EIO);
	assert_int_equal(vmm_error_set(NULL, 0, "oops"), -EIO);
}

static void test_prefix_adds_context(void **state)
{
	(void)state;
	struct vmm_error e = {0};
	vmm_error_set(&e, -EINVAL, "bad size");
	assert_int_equal(vmm_error_prefix(&e, "--memory %s", "12Q"), -EINVAL);
	assert_string_equal(e.msg, "--memory 12Q: bad size");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_returns_code_and_formats),
		cmocka_unit_test(test_set_never_returns_success),
		cmocka_unit_test(test_prefix_adds_context),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

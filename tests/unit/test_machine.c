/*
 * Unit tests for machine types: resolution, aliases, inheritance, property
 * access, and the frozen guest ABI of every released version (compared with
 * tests/data/machine-abi/<version>.txt; a new version needs its own file).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "machine-types/machine.h"
#include "core/vm.h"

static const char *abi_dir;

static void test_alias_resolves_to_newest(void **state)
{
	(void)state;
	unsigned n;
	const struct machine_version *v = machine_versions(&n);
	struct machine m;
	struct vmm_error err = {0};
	assert_int_equal(machine_resolve("microvm", &m, &err), 0);
	assert_string_equal(m.name, v[n - 1].name);
	assert_string_equal(machine_default_name(), "microvm");
}

static void test_versions_inherit_and_override(void **state)
{
	(void)state;
	struct machine a, b;
	struct vmm_error err = {0};
	assert_int_equal(machine_resolve("microvm-1.0", &a, &err), 0);
	assert_int_equal(machine_resolve("microvm-1.1", &b, &err), 0);
	assert_false(machine_has_device(&a, "serial1"));
	assert_true(machine_has_device(&b, "serial1"));
	uint64_t v;
	assert_int_equal(machine_get_u64(&b, "serial0", "iobase", &v, &err), 0); /* inherited */
	assert_int_equal(v, 0x3f8);
	assert_int_equal(machine_get_u64(&a, "memory", "default-size", &v, &err), 0);
	assert_int_equal(v, 256 << 20);
	assert_int_equal(machine_get_u64(&b, "memory", "default-size", &v, &err), 0);
	assert_int_equal(v, 512 << 20); /* overridden in 1.1 only */
}

static void test_unknown_names_and_properties(void **state)
{
	(void)state;
	struct machine m;
	struct vmm_error err = {0};
	assert_int_equal(machine_resolve("pc-q35-9.2", &m, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "known: microvm-1.0, microvm-1.1"));
	assert_int_equal(machine_resolve("microvm-1.0", &m, &err), 0);
	uint64_t v;
	assert_int_equal(machine_get_u64(&m, "serial9", "iobase", &v, &err), -ENOENT);
	assert_string_equal(err.msg, "machine microvm-1.0: no property serial9.iobase");
	assert_int_equal(machine_get_u64(&m, "boot", "type", &v, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "is not a number"));
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	static char buf[64 * 1024];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* Changing a released version's ABI must fail here; a new version is the way. */
static void test_abi_of_every_version_is_frozen(void **state)
{
	(void)state;
	unsigned n;
	const struct machine_version *v = machine_versions(&n);
	for (unsigned i = 0; i < n; i++) {
		char *dump = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&dump, &len);
		struct vmm_error err = {0};
		assert_int_equal(machine_abi_dump(v[i].name, f, &err), 0);
		fclose(f);
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s.txt", abi_dir, v[i].name);
		const char *expected = read_file(path);
		if (!expected)
			fail_msg("no expected ABI for %s: a new version needs its file "
				 "(vmm machine show %s > %s)",
				 v[i].name, v[i].name, path);
		if (strcmp(dump, expected) != 0) {
			fprintf(stderr, "--- expected %s\n%s\n+++ got\n%s\n", path, expected, dump);
			fail_msg("the guest ABI of released machine type %s changed: add a new "
				 "version instead",
				 v[i].name);
		}
		free(dump);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: test_machine ABI_DIR\n");
		return 2;
	}
	abi_dir = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alias_resolves_to_newest),
		cmocka_unit_test(test_versions_inherit_and_override),
		cmocka_unit_test(test_unknown_names_and_properties),
		cmocka_unit_test(test_abi_of_every_version_is_frozen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

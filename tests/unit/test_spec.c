/*
 * Unit tests for the VM description (core/spec.c): defaults come from the
 * machine type and say so; an unversioned CPU model name means the version
 * the machine type pins, also after a newer version of that model is added
 * to the data (a temporary copy of cpumodels/data); the destination's view
 * of an incoming stream (vm_spec_adopt). No KVM.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "core/vm.h"

static void test_defaults_from_the_machine_type(void **state)
{
	(void)state;
	struct vm_request req = {.machine = "microvm-1.0"};
	struct vm_spec s;
	struct vmm_error err = {0};
	assert_int_equal(vm_spec_resolve(&req, &s, &err), 0);
	assert_string_equal(s.machine.name, "microvm-1.0");
	assert_string_equal(s.cpu_model, "x86-64-v1-v1");
	assert_string_equal(s.cpu_spec, "x86-64-v1-v1");
	assert_int_equal(s.cpu_origin, SPEC_FROM_MACHINE);
	assert_int_equal(s.mem_size, 256ull << 20);
	assert_int_equal(s.mem_origin, SPEC_FROM_MACHINE);
	assert_int_equal(s.ncpus, 1);
	assert_int_equal(s.ncpus_origin, SPEC_FROM_MACHINE);

	req.machine = "microvm-1.1";
	req.mem_size = 1ull << 30;
	req.ncpus = 2;
	assert_int_equal(vm_spec_resolve(&req, &s, &err), 0);
	assert_int_equal(s.mem_size, 1ull << 30);
	assert_int_equal(s.mem_origin, SPEC_FROM_REQUEST);
	assert_int_equal(s.ncpus_origin, SPEC_FROM_REQUEST);

	req.machine = NULL; /* the default machine: the alias, newest version */
	assert_int_equal(vm_spec_resolve(&req, &s, &err), 0);
	assert_string_equal(s.machine_asked, machine_default_name());
	assert_int_equal(s.machine_origin, SPEC_FROM_MACHINE);

	req.machine = "microvm-0.9";
	assert_int_equal(vm_spec_resolve(&req, &s, &err), -ENOENT);
}

static void test_unversioned_names_follow_the_pin(void **state)
{
	(void)state;
	struct vm_request req = {.machine = "microvm-1.0", .cpu_model = "Skylake-Server,-hle"};
	struct vm_spec s;
	struct vmm_error err = {0};
	assert_int_equal(vm_spec_resolve(&req, &s, &err), 0);
	assert_string_equal(s.cpu_model, "Skylake-Server-v5");
	assert_string_equal(s.cpu_spec, "Skylake-Server-v5,-hle");
	assert_int_equal(s.cpu_origin, SPEC_FROM_MACHINE_PIN);
	/* A version, or a version's own alias, is taken as it is. */
	req.cpu_model = "Skylake-Server-v2";
	assert_int_equal(vm_spec_resolve(&req, &s, &err), 0);
	assert_string_equal(s.cpu_model, "Skylake-Server-v2");
	assert_int_equal(s.cpu_origin, SPEC_FROM_REQUEST);
	req.cpu_model = "Skylake-Server-IBRS";
	assert_int_equal(vm_spec_resolve(&req, &s, &err), 0);
	assert_string_equal(s.cpu_model, "Skylake-Server-v2");
	/* A model-level alias is unversioned: pinned like its model. */
	req.cpu_model = "EPYC-Naples";
	assert_int_equal(vm_spec_resolve(&req, &s, &err), 0);
	assert_string_equal(s.cpu_model, "EPYC-v3");
	/* Unknown names pass through for vm_create's full message. */
	req.cpu_model = "NoSuchLake";
	assert_int_equal(vm_spec_resolve(&req, &s, &err), 0);
	assert_string_equal(s.cpu_model, "NoSuchLake");
}

/* Copies the model data to a temporary directory, adding Skylake-Server-v6
 * and a new model "Testlake" with two versions. */
static char *data_with_new_versions(void)
{
	static char dir[] = "/tmp/vmm-spec-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cp %s/*.cpumodel %s/", VMM_CPU_MODEL_DIR_DEFAULT, dir);
	assert_int_equal(system(cmd), 0);
	char path[512];
	snprintf(path, sizeof(path), "%s/21-intel-skylake.cpumodel", dir);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char text[1 << 16];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	char *at = strstr(text, "\nmodel Cascadelake-Server");
	assert_non_null(at);
	f = fopen(path, "w");
	fwrite(text, 1, (size_t)(at - text), f);
	fputs("\nversion 6\n    note test only\n    remove xsaves\n", f);
	fputs(at, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/99-test.cpumodel", dir);
	f = fopen(path, "w");
	fputs("model Testlake\n    vendor GenuineIntel\n    family 6\n    model 1\n    stepping 1\n"
	      "    model-id Test\n    features fpu cx8 cmov mmx fxsr sse sse2 syscall nx lm\n"
	      "version 1\nversion 2\n    add pni\n",
	      f);
	fclose(f);
	return dir;
}

static void test_a_new_version_changes_nothing(void **state)
{
	(void)state;
	char *dir = data_with_new_versions();
	setenv("VMM_CPU_MODEL_DIR", dir, 1);
	struct vm_request req = {.machine = "microvm-1.0", .cpu_model = "Skylake-Server"};
	struct vm_spec s;
	struct vmm_error err = {0};
	assert_int_equal(vm_spec_resolve(&req, &s, &err), 0);
	assert_string_equal(s.cpu_model, "Skylake-Server-v5"); /* not v6 */
	/* A model the machine type does not pin means its first version. */
	req.cpu_model = "Testlake";
	assert_int_equal(vm_spec_resolve(&req, &s, &err), 0);
	assert_string_equal(s.cpu_model, "Testlake-v1");
	unsetenv("VMM_CPU_MODEL_DIR");
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void stream_spec(struct vm_spec *theirs)
{
	struct vm_request req = {.machine = "microvm-1.0", .cpu_model = "Skylake-Server-v4,-hle",
				 .mem_size = 512 << 20, .ncpus = 2};
	struct vmm_error err = {0};
	assert_int_equal(vm_spec_resolve(&req, theirs, &err), 0);
}

static void test_adopt_an_incoming_stream(void **state)
{
	(void)state;
	struct vm_spec theirs, out;
	stream_spec(&theirs);
	struct vm_request req = {.ncpus = 2, .mem_size = 512 << 20,
				 .cpu_model = "Skylake-Server,-hle"};
	struct vmm_error err = {0};

	/* Aliases and unversioned names take the stream's versions. */
	assert_int_equal(vm_spec_adopt(&req, &theirs, &out, &err), 0);
	assert_string_equal(out.cpu_spec, "Skylake-Server-v4,-hle");
	assert_string_equal(out.machine.name, "microvm-1.0");
	assert_int_equal(out.cpu_origin, SPEC_FROM_STREAM);
	req.machine = "microvm";
	assert_int_equal(vm_spec_adopt(&req, &theirs, &out, &err), 0);
	assert_string_equal(out.machine.name, "microvm-1.0");
	req.machine = "microvm-1.1";
	assert_int_equal(vm_spec_adopt(&req, &theirs, &out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "machine type mismatch"));
	req.machine = NULL;

	/* An explicit, different version or another model is refused. */
	req.cpu_model = "Skylake-Server-v5";
	assert_int_equal(vm_spec_adopt(&req, &theirs, &out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "cpu model mismatch"));
	req.cpu_model = "Cascadelake-Server";
	assert_int_equal(vm_spec_adopt(&req, &theirs, &out, &err), -EINVAL);
	req.cpu_model = "Skylake-Server-v4";
	assert_int_equal(vm_spec_adopt(&req, &theirs, &out, &err), 0);
	assert_string_equal(out.cpu_spec, "Skylake-Server-v4"); /* our adjustments: none */
	req.cpu_model = "Skylake";
	assert_int_equal(vm_spec_adopt(&req, &theirs, &out, &err), -EINVAL);

	/* A model whose name ends in -vN is still a model name. */
	strcpy(theirs.cpu_model, "x86-64-v2-v1");
	req.cpu_model = "x86-64-v2,+pdpe1gb";
	assert_int_equal(vm_spec_adopt(&req, &theirs, &out, &err), 0);
	assert_string_equal(out.cpu_spec, "x86-64-v2-v1,+pdpe1gb");
	req.cpu_model = "x86-64-v3";
	assert_int_equal(vm_spec_adopt(&req, &theirs, &out, &err), -EINVAL);
	stream_spec(&theirs);
	req.cpu_model = "Skylake-Server-v4";

	/* RAM size and vCPU count must match. */
	req.mem_size = 1 << 30;
	assert_int_equal(vm_spec_adopt(&req, &theirs, &out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "RAM size mismatch: stream 512 MiB, this side 1024 MiB"));
	req.mem_size = 512 << 20;
	req.ncpus = 1;
	assert_int_equal(vm_spec_adopt(&req, &theirs, &out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "vCPU count mismatch"));
	/* Host-side settings are this side's. */
	req.ncpus = 2;
	req.serial = SERIAL_FILE;
	req.serial_path = "/tmp/x.log";
	assert_int_equal(vm_spec_adopt(&req, &theirs, &out, &err), 0);
	assert_string_equal(out.serial_path, "/tmp/x.log");
	/* our adjustments (none) differ from the stream's (-hle): another guest */
	assert_false(vm_spec_same_guest(&out, &theirs));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_from_the_machine_type),
		cmocka_unit_test(test_unversioned_names_follow_the_pin),
		cmocka_unit_test(test_a_new_version_changes_nothing),
		cmocka_unit_test(test_adopt_an_incoming_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

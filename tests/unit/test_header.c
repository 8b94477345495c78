/*
 * Unit tests for the Header record and the versioned conversation
 * (migration/header.c, handshake.c): sanity checks before anything is
 * built, what a format 1.0 peer (no capability list) is taken to speak,
 * refusals that name the newer side, and the stream's guest as a spec.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "migration/migration.h"

static void test_header_basic_checks(void **state)
{
	(void)state;
	Vmm__Migration__Header h = VMM__MIGRATION__HEADER__INIT;
	struct vmm_error err = {0};
	Vmm__Migration__CpuidTable t = VMM__MIGRATION__CPUID_TABLE__INIT;
	Vmm__Migration__CpuidTable *tabs[] = {&t};
	Vmm__Migration__RamRegion rg = VMM__MIGRATION__RAM_REGION__INIT;
	Vmm__Migration__RamRegion *rgs[] = {&rg};
	h.format_major = MIG_FORMAT_MAJOR;
	h.machine_type = "microvm-1.0", h.cpu_model = "x-v1", h.cpu_model_spec = "x-v1";
	h.vcpu_count = 1, h.n_cpuid = 1, h.cpuid = tabs, h.page_size = 4096;
	h.n_ram = 1, h.ram = rgs, h.ram_size = 1 << 20;
	assert_int_equal(mig_header_check_basic(&h, &err), 0);
	h.vcpu_count = 2; /* tables for 1 */
	assert_int_equal(mig_header_check_basic(&h, &err), -EBADMSG);
	h.vcpu_count = 1;
	t.n_entries = CPUID_TABLE_MAX + 1;
	assert_int_equal(mig_header_check_basic(&h, &err), -EBADMSG);
	t.n_entries = 0;
	h.page_size = 65536;
	assert_int_equal(mig_header_check_basic(&h, &err), -EBADMSG);
	h.page_size = 4096;
	h.machine_type = "";
	assert_int_equal(mig_header_check_basic(&h, &err), -EBADMSG);
	h.machine_type = "microvm-1.0";
	h.format_major = 2;
	assert_int_equal(mig_header_check_basic(&h, &err), -EPROTONOSUPPORT);
}

static void test_peer_from_header(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	struct mig_peer p;
	Vmm__Migration__Header h = VMM__MIGRATION__HEADER__INIT;
	h.format_major = 1, h.format_minor = 0, h.vmm_version = "0.1.0";
	/* 1.0: no list; it speaks what vmm 0.1.0 spoke. */
	assert_int_equal(mig_peer_from_header(&h, &p, &err), 0);
	assert_int_equal(p.caps, MIG_CAP_ACCEPTED | MIG_CAP_GO_PAUSED);
	assert_string_equal(p.vmm_version, "0.1.0");

	/* 1.1 with a list: exactly what it lists (unknown names ignored). */
	char *caps[] = {"go-paused", "teleport"};
	h.format_minor = 1, h.n_capabilities = 2, h.capabilities = caps;
	assert_int_equal(mig_peer_from_header(&h, &p, &err), 0);
	assert_int_equal(p.caps, MIG_CAP_GO_PAUSED);

	/* A requirement this build lacks: refused, the source named newer. */
	char *req[] = {"teleport"};
	h.n_requires = 1, h.requires = req, h.vmm_version = "9.0.0", h.format_minor = 7;
	assert_int_equal(mig_peer_from_header(&h, &p, &err), -EPROTONOSUPPORT);
	assert_non_null(strstr(err.msg, "the source (vmm 9.0.0, format 1.7) is newer"));
	assert_non_null(strstr(err.msg, "\"teleport\""));
	char *req_known[] = {"go-paused"};
	h.requires = req_known;
	assert_int_equal(mig_peer_from_header(&h, &p, &err), 0);

	/* Another major format: refused, naming the newer side. */
	h.format_major = 2;
	assert_int_equal(mig_peer_from_header(&h, &p, &err), -EPROTONOSUPPORT);
	assert_non_null(strstr(err.msg, "the source is newer"));
}

static void test_peer_from_accepted(void **state)
{
	(void)state;
	struct mig_peer p;
	Vmm__Migration__Accepted a = VMM__MIGRATION__ACCEPTED__INIT;
	mig_peer_from_accepted(&a, &p); /* what a 1.0 destination sends */
	assert_int_equal(p.major, 1);
	assert_int_equal(p.minor, 0);
	assert_int_equal(p.caps, MIG_CAP_ACCEPTED | MIG_CAP_GO_PAUSED);

	const char *buf[8];
	mig_caps_to_accepted(&a, buf, 8); /* ours */
	mig_peer_from_accepted(&a, &p);
	struct mig_peer self;
	mig_peer_self(&self);
	assert_int_equal(p.major, self.major);
	assert_int_equal(p.minor, self.minor);
	assert_int_equal(p.caps, self.caps);
	assert_string_equal(p.vmm_version, self.vmm_version);
	char text[128];
	mig_caps_format(p.caps, text, sizeof(text));
	assert_string_equal(text, "accepted,go-paused,ram-pages,ack,multiconn,local");
}

static void test_header_to_spec(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	struct vm_spec s;
	Vmm__Migration__Header h = VMM__MIGRATION__HEADER__INIT;
	h.machine_type = "microvm-1.0";
	h.cpu_model = "x86-64-v1-v1";
	h.cpu_model_spec = "x86-64-v1-v1,+pdpe1gb";
	h.ram_size = 512 << 20;
	h.vcpu_count = 2;
	assert_int_equal(mig_header_to_spec(&h, &s, &err), 0);
	assert_string_equal(s.machine.name, "microvm-1.0");
	assert_string_equal(s.cpu_spec, "x86-64-v1-v1,+pdpe1gb");
	assert_int_equal(s.ncpus, 2);
	assert_int_equal(s.cpu_origin, SPEC_FROM_STREAM);
	h.machine_type = "microvm"; /* an alias is not a version */
	assert_int_equal(mig_header_to_spec(&h, &s, &err), -EBADMSG);
	h.machine_type = "microvm-9.9";
	assert_int_equal(mig_header_to_spec(&h, &s, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "microvm-9.9 is unknown to this vmm"));
	assert_non_null(strstr(err.msg, "the source is newer"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_basic_checks),
		cmocka_unit_test(test_peer_from_header),
		cmocka_unit_test(test_peer_from_accepted),
		cmocka_unit_test(test_header_to_spec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

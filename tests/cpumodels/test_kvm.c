/*
 * Tests against this machine's KVM: the host side from KVM_GET_SUPPORTED_CPUID,
 * x86-64-v1 runnable here, and every model that runs here round-trips
 * through KVM_SET_CPUID2 / KVM_GET_CPUID2 unchanged.
 *
 * Platform note: kvm_pvm (the paravirtual KVM of the development machines)
 * cannot intercept CPUID and replaces leaves 1 (ECX, EDX), 7.0 and 0xD of the
 * table with the physical CPU's values; on that platform those leaves are
 * reported, not compared. Every other leaf must come back as set. On any
 * other KVM the whole table must. Exits 77 without /dev/kvm.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "helpers.h"

static struct cpumodel_db *db;
static struct host_cpu *kvm;
static bool pvm;

static int setup(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	db = th_db();
	if (host_cpu_open_kvm(&kvm, &err) < 0)
		fail_msg("%s", err.msg);
	pvm = access("/sys/module/kvm_pvm", F_OK) == 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	host_cpu_free(kvm);
	cpumodel_db_free(db);
	return 0;
}

/* What the lead's tests boot here. */
static void test_x86_64_v1_runs_here(void **state)
{
	(void)state;
	struct guest_cpu *g = NULL;
	struct vmm_error err = {0};
	assert_true(kvm->is_kvm);
	assert_true(cpufeat_set_has_name(&kvm->features, "lm"));
	if (guest_cpu_resolve(db, "x86-64-v1", kvm, &g, &err) < 0)
		fail_msg("x86-64-v1 does not run on this KVM: %s", err.msg);
	assert_string_equal(guest_cpu_name(g), "x86-64-v1-v1");
	guest_cpu_free(g);
	/* the host pseudo-model resolves and builds here */
	assert_int_equal(guest_cpu_resolve(db, "host", kvm, &g, &err), 0);
	assert_false(g->migratable);
	struct cpuid_table t;
	assert_int_equal(guest_cpu_build_cpuid(g, 2, 1, &t, &err), 0);
	guest_cpu_free(g);
}

static bool replaced_by_pvm(uint32_t leaf)
{
	return leaf == 1 || leaf == 7 || leaf == 0xd;
}

/* Sets the table on a fresh vCPU and reads it back. */
static int round_trip(const struct cpuid_table *in, uint32_t apic_id, struct cpuid_table *out,
		      char *why, size_t len)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm = -1, vcpu = -1, rc = -1;
	size_t sz = sizeof(struct kvm_cpuid2) + CPUID_TABLE_MAX * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = calloc(1, sz);
	if (fd < 0 || !c)
		goto out;
	if ((vm = ioctl(fd, KVM_CREATE_VM, 0)) < 0 || ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0 ||
	    (vcpu = ioctl(vm, KVM_CREATE_VCPU, apic_id)) < 0) {
		snprintf(why, len, "VM set-up: %s", strerror(errno));
		goto out;
	}
	struct vmm_error err;
	if (cpuid_table_to_kvm(in, c, CPUID_TABLE_MAX, &err) < 0) {
		snprintf(why, len, "%.200s", err.msg);
		goto out;
	}
	if (ioctl(vcpu, KVM_SET_CPUID2, c) < 0) {
		snprintf(why, len, "KVM_SET_CPUID2: %s", strerror(errno));
		goto out;
	}
	memset(c, 0, sz);
	c->nent = CPUID_TABLE_MAX;
	if (ioctl(vcpu, KVM_GET_CPUID2, c) < 0) {
		snprintf(why, len, "KVM_GET_CPUID2: %s", strerror(errno));
		goto out;
	}
	if (cpuid_table_from_kvm(c, out, &err) < 0) {
		snprintf(why, len, "%.200s", err.msg);
		goto out;
	}
	rc = 0;
out:
	free(c);
	if (vcpu >= 0)
		close(vcpu);
	if (vm >= 0)
		close(vm);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Drops the leaves kvm_pvm rewrites from both tables (after reporting). */
static void drop_pvm_leaves(struct cpuid_table *t)
{
	unsigned j = 0;
	for (unsigned i = 0; i < t->n; i++)
		if (!replaced_by_pvm(t->leaves[i].leaf))
			t->leaves[j++] = t->leaves[i];
	t->n = j;
}

static void test_cpuid2_round_trip(void **state)
{
	(void)state;
	struct cpuid_table *t = malloc(sizeof(*t)), *got = malloc(sizeof(*got));
	unsigned tested = 0, bad = 0;
	for (unsigned i = 0; i < db->nmodels; i++)
		for (unsigned v = 0; v < db->models[i].nversions; v++) {
			const char *name = db->models[i].versions[v].name;
			struct guest_cpu *g = NULL;
			struct vmm_error err = {0};
			if (guest_cpu_resolve(db, name, kvm, &g, &err) < 0)
				continue; /* not runnable here: vmm would refuse it */
			for (unsigned vcpu = 0; vcpu < 2; vcpu++) {
				char why[256] = "", diff[1024];
				assert_int_equal(guest_cpu_build_cpuid(g, 2, vcpu, t, &err), 0);
				if (round_trip(t, guest_cpu_apic_id(g, 2, vcpu), got, why,
					       sizeof(why)) < 0)
					fail_msg("%s: %s", name, why);
				if (pvm) {
					if (cpuid_table_diff(t, got, diff, sizeof(diff)))
						printf("%s vCPU %u: kvm_pvm rewrote: %s\n", name,
						       vcpu, diff);
					drop_pvm_leaves(t);
					drop_pvm_leaves(got);
				}
				if (cpuid_table_diff(t, got, diff, sizeof(diff))) {
					printf("%s vCPU %u: KVM_GET_CPUID2 differs: %s\n", name,
					       vcpu, diff);
					bad++;
				}
				tested++;
			}
			guest_cpu_free(g);
		}
	if (pvm)
		printf("platform: kvm_pvm; leaves 1, 7 and 0xD are reported above, not "
		       "compared\n");
	free(t);
	free(got);
	assert_true(tested >= 2); /* at least x86-64-v1 */
	assert_int_equal(bad, 0);
}

int main(void)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		printf("SKIP: /dev/kvm not available (%s)\n", strerror(errno));
		return SKIP_EXIT;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_x86_64_v1_runs_here),
	    cmocka_unit_test(test_cpuid2_round_trip),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * cpumodels/host_kvm.c: this machine as a host: KVM_GET_SUPPORTED_CPUID,
 * and the one conversion between CPUID tables and KVM's kvm_cpuid2 (used by
 * the VM core for KVM_SET/GET_CPUID2 and by the tests). The only file of the
 * engine that knows KVM.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cpumodels/engine.h"

int cpuid_table_from_kvm(const struct kvm_cpuid2 *c, struct cpuid_table *t, struct vmm_error *err)
{
	memset(t, 0, sizeof(*t));
	if (c->nent > CPUID_TABLE_MAX)
		return vmm_error_set(err, -E2BIG, "KVM returned %u CPUID entries (max %d)", c->nent,
				     CPUID_TABLE_MAX);
	for (unsigned i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		bool sig = e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		/* KVM ignores the index of a leaf without sub-leaves: so do we. */
		uint32_t sub = sig ? e->index : 0;
		if (cpuid_table_set(t, e->function, sub, e->eax, e->ebx, e->ecx, e->edx) < 0)
			return vmm_error_set(err, -E2BIG, "KVM CPUID table: too many entries");
		struct cpuid_leaf *l = (struct cpuid_leaf *)cpuid_table_find(t, e->function, sub);
		l->subleaf_significant = sig; /* as KVM holds it */
	}
	return 0;
}

int cpuid_table_to_kvm(const struct cpuid_table *t, struct kvm_cpuid2 *c, unsigned max,
		       struct vmm_error *err)
{
	if (t->n > max)
		return vmm_error_set(err, -E2BIG, "CPUID table has %u entries (max %u)", t->n, max);
	c->nent = t->n;
	c->padding = 0;
	for (unsigned i = 0; i < t->n; i++) {
		const struct cpuid_leaf *l = &t->leaves[i];
		c->entries[i] = (struct kvm_cpuid_entry2){
			.function = l->leaf,
			.index = l->subleaf,
			.flags = l->subleaf_significant ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0,
			.eax = l->eax,
			.ebx = l->ebx,
			.ecx = l->ecx,
			.edx = l->edx,
		};
	}
	return 0;
}

int host_cpu_from_kvm(int kvm_fd, struct host_cpu **out, struct vmm_error *err)
{
	*out = NULL;
	size_t sz = sizeof(struct kvm_cpuid2) + CPUID_TABLE_MAX * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = calloc(1, sz);
	struct cpuid_table *t = calloc(1, sizeof(*t));
	int rc = 0;
	if (!c || !t) {
		rc = vmm_error_set(err, -ENOMEM, "out of memory");
		goto out_free;
	}
	c->nent = CPUID_TABLE_MAX;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		rc = vmm_error_set(err, -errno, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		goto out_free;
	}
	if ((rc = cpuid_table_from_kvm(c, t, err)) < 0) {
		vmm_error_prefix(err, "KVM_GET_SUPPORTED_CPUID");
		goto out_free;
	}
	rc = host_cpu_from_table("kvm", t, true, NULL, out, err);
out_free:
	free(t);
	free(c);
	return rc;
}

int host_cpu_open_kvm(struct host_cpu **out, struct vmm_error *err)
{
	const char *dev = getenv("VMM_KVM_DEV");
	if (!dev || !dev[0])
		dev = "/dev/kvm";
	*out = NULL;
	int fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return vmm_error_set(err, -e,
				     "cannot open %s (%s): this host needs KVM; to act as another "
				     "host use --host-cpu-profile FILE",
				     dev, strerror(e));
	}
	int rc = host_cpu_from_kvm(fd, out, err);
	close(fd);
	return rc;
}

/*
 * cpumodels/host_kvm.c: this machine as a host: KVM_GET_SUPPORTED_CPUID.
 * The only file of the engine that issues KVM ioctls.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cpumodels/engine.h"

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
	for (unsigned i = 0; i < c->nent && i < CPUID_TABLE_MAX; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		rc = cpuid_table_set(t, e->function, e->index, e->eax, e->ebx, e->ecx, e->edx);
		if (rc) {
			rc = vmm_error_set(err, rc, "KVM_GET_SUPPORTED_CPUID: too many entries");
			goto out_free;
		}
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

/*
 * cpumodels/host_kvm.c: this machine as a host: KVM_GET_SUPPORTED_CPUID and
 * the kvm facts the host rule consults (KVM_CHECK_EXTENSION,
 * KVM_GET_MSR_INDEX_LIST), and the one conversion between CPUID tables and
 * KVM's kvm_cpuid2 (used by the VM core for KVM_SET/GET_CPUID2 and by the
 * tests). The only file of the engine that knows KVM.
 */
#include <cpuid.h>
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

#define MSR_IA32_ARCH_CAPABILITIES 0x10a
#define MSR_LIST_MAX		   4096 /* KVM lists a few hundred at most */

static bool msr_listed(int kvm_fd, uint32_t msr)
{
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + MSR_LIST_MAX * sizeof(uint32_t));
	bool found = false;
	if (!l)
		return false;
	l->nmsrs = MSR_LIST_MAX;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) == 0)
		for (uint32_t i = 0; i < l->nmsrs && i < MSR_LIST_MAX; i++)
			found = found || l->indices[i] == msr;
	free(l);
	return found;
}

int host_kvm_read(int kvm_fd, struct cpuid_table *t, struct kvm_facts *facts, struct vmm_error *err)
{
	size_t sz = sizeof(struct kvm_cpuid2) + CPUID_TABLE_MAX * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = calloc(1, sz);
	int rc = 0;
	memset(t, 0, sizeof(*t));
	if (!c)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	c->nent = CPUID_TABLE_MAX;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		rc = vmm_error_set(err, -errno, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		goto out_free;
	}
	if ((rc = cpuid_table_from_kvm(c, t, err)) < 0) {
		vmm_error_prefix(err, "KVM_GET_SUPPORTED_CPUID");
		goto out_free;
	}
	facts->has[KVM_FACT_IRQCHIP] = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) > 0;
	facts->has[KVM_FACT_TSC_DEADLINE] =
	    ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
	facts->has[KVM_FACT_ARCH_CAPS_MSR] = msr_listed(kvm_fd, MSR_IA32_ARCH_CAPABILITIES);
out_free:
	free(c);
	return rc;
}

void host_cpu_brand_here(char *buf, size_t len)
{
	uint32_t r[12] = {0}, max = __get_cpuid_max(0x80000000, NULL);
	char brand[49] = {0};
	if (!len)
		return;
	buf[0] = '\0';
	if (max < 0x80000004)
		return;
	for (unsigned i = 0; i < 3; i++)
		__cpuid(0x80000002 + i, r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]);
	memcpy(brand, r, 48);
	const char *b = brand + strspn(brand, " ");
	size_t n = strnlen(b, 48);
	while (n && b[n - 1] == ' ')
		n--;
	for (size_t i = 0; i < n; i++)
		if (b[i] < 0x20 || b[i] > 0x7e)
			return; /* not a brand string */
	if (n >= len)
		n = len - 1;
	memcpy(buf, b, n);
	buf[n] = '\0';
}

int host_cpu_from_kvm(int kvm_fd, struct host_cpu **out, struct vmm_error *err)
{
	struct cpuid_table *t = calloc(1, sizeof(*t));
	struct kvm_facts facts = {0};
	*out = NULL;
	if (!t)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	int rc = host_kvm_read(kvm_fd, t, &facts, err);
	if (!rc)
		rc = host_cpu_from_kvm_table("kvm", t, &facts, NULL, out, err);
	/* KVM passes the brand string through on most hosts; where it does not
	 * (kvm_pvm reports zeros), name the CPU this runs on */
	if (!rc && !(*out)->brand[0])
		host_cpu_brand_here((*out)->brand, sizeof((*out)->brand));
	free(t);
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

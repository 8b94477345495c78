/*
 * core/vm.c: building a VM from the configuration: /dev/kvm, the machine
 * type, the CPU model, guest RAM, the in-kernel irqchip and PIT, the devices
 * the machine type lists, and the vCPUs.
 */
#include "core/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <asm/prctl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int open_kvm(struct vm *vm, struct vmm_error *err)
{
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return vmm_error_set(err, -e,
					     "/dev/kvm: not found: KVM is not available on this host "
					     "(load kvm_intel/kvm_amd or run on a machine with KVM)");
		if (e == EACCES || e == EPERM)
			return vmm_error_set(err, -e,
					     "/dev/kvm: permission denied (run as root or join the "
					     "group that owns /dev/kvm)");
		return vmm_error_set(err, -e, "/dev/kvm: %s", strerror(e));
	}
	int api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION)
		return vmm_error_set(err, -ENOTSUP, "/dev/kvm: API version %d, need %d", api,
				     KVM_API_VERSION);
	static const struct {
		int cap;
		const char *name;
	} required[] = {
		{KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
		{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
		{KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
		{KVM_CAP_PIT2, "KVM_CAP_PIT2"},
		{KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
		{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
	};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, required[i].cap) <= 0)
			return vmm_error_set(err, -ENOTSUP, "/dev/kvm: lacks %s", required[i].name);
	return 0;
}

static int check_cpu_count(struct vm *vm, unsigned ncpus, struct vmm_error *err)
{
	uint64_t machine_max;
	int r = machine_get_u64(&vm->spec.machine, "cpu", "max-cpus", &machine_max, err);
	if (r < 0)
		return r;
	int kvm_max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (kvm_max <= 0)
		kvm_max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (kvm_max <= 0)
		kvm_max = 4; /* the KVM API's documented fallback */
	if (ncpus > (unsigned)kvm_max)
		return vmm_error_set(err, -EINVAL, "--cpus %u: KVM on this host allows at most %d",
				     ncpus, kvm_max);
	if (ncpus > machine_max || ncpus > VMM_MAX_CPUS)
		return vmm_error_set(err, -EINVAL, "--cpus %u: machine %s allows at most %llu",
				     ncpus, vm->spec.machine.name, (unsigned long long)machine_max);
	int recommended = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (recommended > 0 && ncpus > (unsigned)recommended)
		fprintf(stderr, "vmm: warning: %u vCPUs, KVM recommends at most %d on this host\n",
			ncpus, recommended);
	return 0;
}

/* PC wiring, as the machine type declares it: ISA IRQs go to the 8259s
 * (IRQ 2 is the cascade) and to the I/O APIC pin of the same number, except
 * IRQ 0 (the PIT), which goes to the machine type's pit.ioapic-pin (2 on a
 * PC, where pin 0 is the 8259's ExtINT). KVM's default routing would put
 * IRQ 0 on pin 0, contradicting the MP table. */
static int set_gsi_routing(struct vm *vm, struct vmm_error *err)
{
	uint64_t pit_pin, pins;
	int r;
	if ((r = machine_get_u64(&vm->spec.machine, "pit", "ioapic-pin", &pit_pin, err)) < 0 ||
	    (r = machine_get_u64(&vm->spec.machine, "ioapic", "pins", &pins, err)) < 0)
		return r;
	if (pins > KVM_IOAPIC_NUM_PINS || pit_pin >= pins)
		return vmm_error_set(err, -EINVAL, "machine %s: bad I/O APIC pins", vm->spec.machine.name);
	struct {
		struct kvm_irq_routing hdr;
		struct kvm_irq_routing_entry e[64];
	} rt;
	memset(&rt, 0, sizeof(rt));
	unsigned n = 0;
	for (uint32_t gsi = 0; gsi < 16; gsi++) {
		if (gsi == 2)
			continue;
		rt.e[n++] = (struct kvm_irq_routing_entry){
			.gsi = gsi,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = {.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
				      .pin = gsi % 8},
		};
	}
	for (uint32_t gsi = 0; gsi < pins; gsi++) {
		if (gsi == pit_pin && pit_pin != 0)
			continue; /* that pin belongs to IRQ 0 */
		rt.e[n++] = (struct kvm_irq_routing_entry){
			.gsi = gsi,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC,
				      .pin = gsi == 0 ? (uint32_t)pit_pin : gsi},
		};
	}
	rt.hdr.nr = n;
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, &rt) < 0)
		return vmm_error_set(err, -errno, "KVM_SET_GSI_ROUTING: %s", strerror(errno));
	return 0;
}

static int create_kvm_platform(struct vm *vm, struct vmm_error *err)
{
	uint64_t tss, idmap;
	int r;
	if ((r = machine_get_u64(&vm->spec.machine, "kvm", "tss-addr", &tss, err)) < 0 ||
	    (r = machine_get_u64(&vm->spec.machine, "kvm", "identity-map-addr", &idmap, err)) < 0)
		return r;
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		return vmm_error_set(err, -errno, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)tss) < 0)
		return vmm_error_set(err, -errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return vmm_error_set(err, -errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	if ((r = set_gsi_routing(vm, err)) < 0)
		return r;
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return vmm_error_set(err, -errno, "KVM_CREATE_PIT2: %s", strerror(errno));
	return 0;
}

/* The spec's CPU model (already pinned to a version) on this host, or on
 * the host a CPU profile describes, intersected with this KVM. */
static int create_cpu_model(struct vm *vm, struct vmm_error *err)
{
	int r = cpumodel_db_load(cpumodel_default_dir(), &vm->cpumodels, err);
	if (r < 0)
		return r;
	if ((r = host_cpu_from_kvm(vm->kvm_fd, &vm->host, err)) < 0)
		return r;
	const char *profile_path = vm->spec.host_cpu_profile;
	if (profile_path[0]) {
		struct host_cpu *profile;
		r = host_cpu_from_profile(profile_path, vm->host, &profile, err);
		if (r < 0)
			return vmm_error_prefix(err, "--host-cpu-profile %s", profile_path);
		host_cpu_free(vm->host);
		vm->host = profile;
	}
	return guest_cpu_resolve(vm->cpumodels, vm->spec.cpu_spec, vm->host, &vm->cpu, err);
}

int vm_create_devices(struct vm *vm, struct vmm_error *err)
{
	const struct machine *m = &vm->spec.machine;
	for (unsigned i = 0; i < m->nprops; i++) {
		const struct machine_prop *p = &m->props[i];
		if (strcmp(p->prop, "type") != 0 || !machine_has_device(m, p->device))
			continue;
		const struct device_type *type = device_type_find(p->value);
		if (!type)
			return vmm_error_set(err, -ENOENT, "machine %s: device %s has unknown type %s",
					     m->name, p->device, p->value);
		if (!type->create)
			continue; /* provided by KVM or by the platform code */
		if (vm->ndevices == sizeof(vm->devices) / sizeof(vm->devices[0]))
			return vmm_error_set(err, -ENOSPC, "machine %s: too many devices", m->name);
		struct device *dev = &vm->devices[vm->ndevices++];
		dev->type = type;
		dev->name = p->device;
		dev->vm = vm;
		pthread_mutex_init(&dev->lock, NULL);
		int r = type->create(vm, dev, err);
		if (r < 0)
			return r;
	}
	return 0;
}

void vm_destroy_devices(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ndevices; i++) {
		struct device *dev = &vm->devices[i];
		if (dev->type->destroy)
			dev->type->destroy(dev);
		pthread_mutex_destroy(&dev->lock);
	}
	vm->ndevices = 0;
	vm->pio.n = vm->mmio.n = 0;
}

struct device *vm_find_device(struct vm *vm, const char *name)
{
	for (unsigned i = 0; i < vm->ndevices; i++)
		if (strcmp(vm->devices[i].name, name) == 0)
			return &vm->devices[i];
	return NULL;
}

void vm_init(struct vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = -1;
	vm->mem.fd = -1;
	vm->pio.name = "pio";
	vm->mmio.name = "mmio";
	pthread_mutex_init(&vm->run_lock, NULL);
	pthread_cond_init(&vm->run_cond, NULL);
	pthread_mutex_init(&vm->exit_lock, NULL);
}

/* Guest RAM must fit the physical address width the CPU model gives the
 * guest (CPUID 0x80000008 EAX[7:0]). */
static int check_phys_bits(struct vm *vm, struct vmm_error *err)
{
	unsigned bits = guest_cpu_phys_bits(vm->cpu);
	const struct mem_region *top = &vm->mem.regions[vm->mem.nregions - 1];
	if (bits < 64 && top->gpa + top->size > (1ull << bits))
		return vmm_error_set(err, -EINVAL,
				     "--memory %llu MiB: guest RAM ends at 0x%llx, beyond the %u-bit "
				     "physical address space of cpu model %s",
				     (unsigned long long)(vm->mem.size >> 20),
				     (unsigned long long)(top->gpa + top->size), bits,
				     guest_cpu_name(vm->cpu));
	return 0;
}

/* Dynamically enabled xsave state (AMX tile data, component 18) must be
 * granted to this process before KVM accepts a CPUID that exposes it. */
static int request_dynamic_xstate(struct vm *vm, struct vmm_error *err)
{
	const unsigned xtiledata = 18;
	if (!(guest_cpu_xcr0(vm->cpu) & (1ull << xtiledata)))
		return 0;
	if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_GUEST_PERM, xtiledata) < 0)
		return vmm_error_set(err, -errno,
				     "cpu model %s needs AMX state, the host kernel refused it "
				     "(ARCH_REQ_XCOMP_GUEST_PERM): %s",
				     guest_cpu_name(vm->cpu), strerror(errno));
	return 0;
}

int vm_create(struct vm *vm, const struct vm_spec *spec, struct vmm_error *err)
{
	int r;
	vm->spec = *spec;
	if ((r = open_kvm(vm, err)) < 0)
		return r;
	if ((r = check_cpu_count(vm, spec->ncpus, err)) < 0)
		return r;
	vm->ncpus = spec->ncpus; /* only now: vm_destroy walks vcpus[0..ncpus) */
	/* Memory first: size errors are the user's and should come before KVM's. */
	if ((r = guest_memory_create(&vm->mem, spec->mem_size, spec->mem_hugepages, &vm->spec.machine,
				       err)) < 0)
		return r;
	if ((r = create_cpu_model(vm, err)) < 0 || (r = check_phys_bits(vm, err)) < 0 ||
	    (r = request_dynamic_xstate(vm, err)) < 0)
		return r;

	do {
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	} while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0)
		return vmm_error_set(err, -errno, "KVM_CREATE_VM: %s", strerror(errno));
	if ((r = create_kvm_platform(vm, err)) < 0)
		return r;
	if ((r = guest_memory_register(&vm->mem, vm->vm_fd, 0, err)) < 0)
		return r;
	if ((r = vm_create_devices(vm, err)) < 0)
		return r;
	if ((r = vm_create_virtio_devices(vm, err)) < 0) /* --disk, --rng */
		return r;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if ((r = vcpu_create(vm, i, err)) < 0)
			return r;
	return 0;
}

int vm_recreate(struct vm *vm, const struct vm_spec *spec, struct vmm_error *err)
{
	void (*notify)(struct vm *) = vm->exit_notify;
	void *loop_data = vm->loop_data;
	vm_destroy(vm);
	vm_init(vm);
	vm->exit_notify = notify;
	vm->loop_data = loop_data;
	return vm_create(vm, spec, err);
}

void vm_destroy(struct vm *vm)
{
	vm_stop(vm);
	for (unsigned i = 0; i < vm->ncpus; i++) {
		vcpu_destroy(vm->vcpus[i]);
		vm->vcpus[i] = NULL;
	}
	vm_destroy_devices(vm);
	guest_memory_destroy(&vm->mem);
	guest_cpu_free(vm->cpu);
	host_cpu_free(vm->host);
	cpumodel_db_free(vm->cpumodels);
	vm->cpu = NULL;
	vm->host = NULL;
	vm->cpumodels = NULL;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
}

void vm_request_exit(struct vm *vm, enum vm_exit_reason reason, int status, const char *fmt, ...)
{
	pthread_mutex_lock(&vm->exit_lock);
	bool first = vm->exit_reason == VM_EXIT_NONE;
	if (first) {
		vm->exit_reason = reason;
		vm->exit_status = status;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(vm->exit_message, sizeof(vm->exit_message), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&vm->exit_lock);
	if (!first)
		return;
	vm_kick_stop(vm);
	if (vm->exit_notify)
		vm->exit_notify(vm);
}

void vm_set_irq(struct vm *vm, unsigned gsi, bool level)
{
	struct kvm_irq_level irq = {.irq = gsi, .level = level ? 1 : 0};
	/* Cannot fail for a valid GSI of the in-kernel irqchip; GSIs come from
	 * the machine type, which the tests check. */
	(void)ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq);
}

int vm_dump_cpuid(struct vm *vm, const char *path, struct vmm_error *err)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return vmm_error_set(err, -errno, "--dump-cpuid %s: %s", path, strerror(errno));
	int r = 0;
	for (unsigned i = 0; i < vm->ncpus && r == 0; i++) {
		fprintf(f, "# vcpu %u apic-id %u\n", i, vm->vcpus[i]->apic_id);
		if (cpuid_table_write(&vm->vcpus[i]->kvm_cpuid, f) < 0)
			r = vmm_error_set(err, -EIO, "--dump-cpuid %s: write failed", path);
	}
	if (fclose(f) != 0 && r == 0)
		r = vmm_error_set(err, -errno, "--dump-cpuid %s: %s", path, strerror(errno));
	return r;
}

int vm_set_tsc_khz(struct vm *vm, uint32_t khz, struct vmm_error *err)
{
	int have = ioctl(vm->vcpus[0]->fd, KVM_GET_TSC_KHZ, 0);
	if (!khz || have <= 0 || (uint32_t)have == khz)
		return 0;
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL) > 0) {
		for (unsigned i = 0; i < vm->ncpus; i++)
			if (ioctl(vm->vcpus[i]->fd, KVM_SET_TSC_KHZ, (unsigned long)khz) < 0)
				return vmm_error_set(err, -errno,
						     "vCPU %u: cannot give the guest its %u kHz TSC: "
						     "KVM_SET_TSC_KHZ: %s",
						     i, khz, strerror(errno));
		return 0;
	}
	fprintf(stderr,
		"vmm: warning: the guest's TSC ran at %u kHz on the source, this host gives "
		"%d kHz and this KVM cannot scale it: guest TSC-based timing will be off\n",
		khz, have);
	return 0;
}

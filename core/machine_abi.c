/*
 * core/machine_abi.c: the guest-visible ABI of a machine type version in a
 * canonical text form (CPUID excluded: that is the CPU model's). The dump
 * is read off the real code paths: the devices are created on a VM without
 * KVM and report the ports they claim and the fields of their migratable
 * state, and the e820 map comes from the boot code for two RAM sizes (below
 * and across the 32-bit hole). The ABI tests compare it with checked-in
 * files, so a field added without a state version bump is caught.
 */
#include "core/devices/devices.h"
#include "core/virtio/virtio.h"
#include "core/vm.h"
#include "core/x86/x86.h"

#include <errno.h>
#include <string.h>

static const char *const state_kind_names[] = {
	[STATE_U8] = "u8",     [STATE_U16] = "u16",   [STATE_U32] = "u32",	[STATE_U64] = "u64",
	[STATE_I64] = "i64",   [STATE_BOOL] = "bool", [STATE_BYTES] = "bytes",
};

static const char *e820_name(uint32_t type)
{
	return type == E820_RAM ? "ram" : type == E820_RESERVED ? "reserved" : "other";
}

static int dump_e820(const struct machine *m, uint64_t ram, FILE *out, struct vmm_error *err)
{
	static struct vm vm;
	vm_init(&vm);
	vm.spec.machine = *m;
	int r = guest_memory_create(&vm.mem, ram, false, m, err);
	if (r < 0)
		return r;
	struct e820_entry e[E820_MAX];
	int n = e820_build(&vm, e, E820_MAX, err);
	for (int i = 0; i < n; i++)
		fprintf(out, "e820 ram=%lluM 0x%016llx-0x%016llx %s\n",
			(unsigned long long)(ram >> 20), (unsigned long long)e[i].addr,
			(unsigned long long)(e[i].addr + e[i].size - 1), e820_name(e[i].type));
	guest_memory_destroy(&vm.mem);
	return n < 0 ? n : 0;
}

/* A device's migratable state: its version and every field, so a field
 * added without a version bump changes the frozen dump. */
static void dump_state(FILE *out, const char *name, const struct device_type *type)
{
	const struct state_desc *sd = type->state;
	fprintf(out, "state %s (%s) version %u (loads %u..%u)\n", name, type->name, sd->version,
		sd->min_version, sd->version);
	for (unsigned f = 0; f < sd->nfields; f++)
		fprintf(out, "state %s field %s %s %zu bytes since %u\n", name, sd->fields[f].name,
			state_kind_names[sd->fields[f].kind], sd->fields[f].size,
			sd->fields[f].since);
}

static int dump_devices(const struct machine *m, FILE *out, struct vmm_error *err)
{
	static struct vm vm;
	vm_init(&vm);
	vm.spec.serial = SERIAL_NONE;
	vm.spec.machine = *m;
	int r = vm_create_devices(&vm, err);
	for (unsigned i = 0; r == 0 && i < vm.pio.n; i++) {
		const struct io_range *rg = &vm.pio.ranges[i];
		fprintf(out, "pio 0x%04llx-0x%04llx %s (%s)\n", (unsigned long long)rg->base,
			(unsigned long long)(rg->base + rg->len - 1), rg->dev->name,
			rg->dev->type->name);
	}
	/* virtio-mmio slots, as the devices the command line adds get them */
	uint64_t base;
	unsigned irq;
	for (unsigned i = 0; r == 0 && virtio_slot(&vm, i, &base, &irq, NULL) == 0; i++)
		fprintf(out, "mmio 0x%08llx-0x%08llx virtio-mmio slot %u irq %u\n",
			(unsigned long long)base, (unsigned long long)(base + VIRTIO_MMIO_SIZE - 1), i,
			irq);
	static const struct device_type *const virtio_types[] = {
	    &device_virtio_blk, &device_virtio_rng, &device_virtio_net};
	for (size_t i = 0; r == 0 && machine_has_device(m, "virtio-mmio") &&
			   i < sizeof(virtio_types) / sizeof(virtio_types[0]);
	     i++)
		dump_state(out, virtio_types[i]->name, virtio_types[i]);
	for (unsigned i = 0; r == 0 && i < vm.ndevices; i++) {
		const struct state_desc *sd = vm.devices[i].type->state;
		if (sd)
			dump_state(out, vm.devices[i].name, vm.devices[i].type);
	}
	vm_destroy_devices(&vm);
	return r;
}

int machine_abi_dump(const char *name, FILE *out, struct vmm_error *err)
{
	struct machine m;
	int r = machine_resolve(name, &m, err);
	if (r < 0)
		return r;
	fprintf(out, "# guest ABI of machine type %s (CPUID excluded: see the CPU model)\n",
		m.name);
	for (unsigned i = 0; i < m.nprops; i++)
		fprintf(out, "property %s.%s = %s\n", m.props[i].device, m.props[i].prop,
			m.props[i].value);
	if ((r = dump_e820(&m, 256ull << 20, out, err)) < 0 ||
	    (r = dump_e820(&m, 4096ull << 20, out, err)) < 0)
		return r;
	return dump_devices(&m, out, err);
}


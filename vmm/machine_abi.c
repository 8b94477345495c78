/*
 * vmm/machine_abi.c: the guest-visible ABI of a machine type version in a
 * canonical text form (CPUID excluded: that is the CPU model's), and the
 * `vmm machine` subcommand. The dump is read off the real code paths: the
 * devices are created on a VM without KVM and report the ports they claim,
 * and the e820 map comes from the boot code for two RAM sizes (below and
 * across the 32-bit hole). The ABI tests compare it with checked-in files.
 */
#include "vmm/machine_abi.h"
#include "vmm/devices/devices.h"
#include "vmm/virtio/virtio.h"
#include "vmm/x86/x86.h"

#include <errno.h>
#include <json-c/json.h>
#include <string.h>

static const char *e820_name(uint32_t type)
{
	return type == E820_RAM ? "ram" : type == E820_RESERVED ? "reserved" : "other";
}

static int dump_e820(const struct machine *m, uint64_t ram, FILE *out, struct vmm_error *err)
{
	static struct vm vm;
	vm_init(&vm);
	vm.machine = *m;
	int r = guest_memory_create(&vm.mem, ram, m, err);
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

static int dump_devices(const struct machine *m, FILE *out, struct vmm_error *err)
{
	static struct vm vm;
	struct vmm_config cfg = {.serial = SERIAL_NONE};
	vm_init(&vm);
	vm.cfg = &cfg;
	vm.machine = *m;
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
	static const struct device_type *const virtio_types[] = {&device_virtio_blk,
								  &device_virtio_rng};
	for (size_t i = 0; r == 0 && machine_has_device(m, "virtio-mmio") && i < 2; i++)
		fprintf(out, "state (%s, per --disk/--rng) version %u\n", virtio_types[i]->name,
			virtio_types[i]->state->version);
	for (unsigned i = 0; r == 0 && i < vm.ndevices; i++) {
		const struct state_desc *sd = vm.devices[i].type->state;
		if (sd)
			fprintf(out, "state %s (%s) version %u\n", vm.devices[i].name,
				vm.devices[i].type->name, sd->version);
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

static void usage(FILE *f)
{
	fprintf(f, "usage: vmm machine list [--json]\n"
		   "       vmm machine show NAME     the guest ABI of a machine type version\n");
}

static int list(bool json)
{
	unsigned nv, na;
	const struct machine_version *v = machine_versions(&nv);
	const struct machine_alias *a = machine_aliases(&na);
	if (json) {
		struct json_object *arr = json_object_new_array();
		for (unsigned i = 0; i < nv; i++) {
			struct json_object *o = json_object_new_object();
			json_object_object_add(o, "name", json_object_new_string(v[i].name));
			json_object_object_add(o, "parent",
					       v[i].parent ? json_object_new_string(v[i].parent) : NULL);
			json_object_object_add(o, "changes", json_object_new_string(v[i].summary));
			struct json_object *al = json_object_new_array();
			for (unsigned j = 0; j < na; j++)
				if (strcmp(a[j].target, v[i].name) == 0)
					json_object_array_add(al, json_object_new_string(a[j].alias));
			json_object_object_add(o, "aliases", al);
			json_object_array_add(arr, o);
		}
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
		json_object_put(arr);
		return 0;
	}
	printf("%-14s %-14s %-10s %s\n", "VERSION", "BASED ON", "ALIASES", "WHAT CHANGED");
	for (unsigned i = 0; i < nv; i++) {
		char aliases[64] = "";
		for (unsigned j = 0; j < na; j++)
			if (strcmp(a[j].target, v[i].name) == 0)
				snprintf(aliases + strlen(aliases), sizeof(aliases) - strlen(aliases),
					 "%s%s", aliases[0] ? "," : "", a[j].alias);
		printf("%-14s %-14s %-10s %s\n", v[i].name, v[i].parent ? v[i].parent : "-",
		       aliases[0] ? aliases : "-", v[i].summary);
	}
	return 0;
}

int machine_cli(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return list(argc >= 3 && strcmp(argv[2], "--json") == 0);
	if (argc == 3 && strcmp(argv[1], "show") == 0) {
		struct vmm_error err = {0};
		if (machine_abi_dump(argv[2], stdout, &err) < 0) {
			fprintf(stderr, "vmm machine: %s\n", err.msg);
			return 1;
		}
		return 0;
	}
	usage(stderr);
	return 2;
}

/*
 * core/devices/devices.c: the table of device types, by the name machine
 * types use in their "type" properties. Types that KVM provides in the kernel
 * (irqchip, PIT) or that describe the platform rather than a device have no
 * create function: vm.c sets them up directly from the same properties.
 */
#include "core/devices/devices.h"

#include <string.h>

static const struct device_type platform_types[] = {
	{.name = "ram"},	{.name = "pvh"},	{.name = "kvm-x86"},
	{.name = "x86"},	{.name = "kvm-lapic"},	{.name = "kvm-ioapic"},
	{.name = "kvm-i8259"},	{.name = "kvm-pit2"},	{.name = "virtio-mmio"},
};

static const struct device_type *const device_types[] = {
	&device_uart_16550a, &device_cmos_rtc, &device_i8042, &device_reset_cf9,
	&device_debug_exit, &device_virtio_blk, &device_virtio_rng, &device_virtio_net,
};

const struct device_type *device_type_find(const char *name)
{
	for (size_t i = 0; i < sizeof(device_types) / sizeof(device_types[0]); i++)
		if (strcmp(device_types[i]->name, name) == 0)
			return device_types[i];
	for (size_t i = 0; i < sizeof(platform_types) / sizeof(platform_types[0]); i++)
		if (strcmp(platform_types[i].name, name) == 0)
			return &platform_types[i];
	return NULL;
}

int device_prop_u64(struct device *dev, const char *prop, uint64_t *out, struct vmm_error *err)
{
	return machine_get_u64(&dev->vm->spec.machine, dev->name, prop, out, err);
}

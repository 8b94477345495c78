/*
 * core/device_hooks.c: the migration hooks of struct device_type, called for
 * every device of a VM. migration/source.c and dest.c call these at the
 * points STREAM.md names (see the hooks' comment in vmm.h).
 */
#include "core/vm.h"

int vm_devices_quiesce(struct vm *vm, struct vmm_error *err)
{
	for (unsigned i = 0; i < vm->ndevices; i++) {
		struct device *dev = &vm->devices[i];
		int r = dev->type->quiesce ? dev->type->quiesce(dev, err) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

void vm_devices_handover(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ndevices; i++)
		if (vm->devices[i].type->handover)
			vm->devices[i].type->handover(&vm->devices[i]);
}

/* Keeps the first error and goes on: every device gets its chance. */
static void keep_first(int r, const struct vmm_error *e, int *first, struct vmm_error *err)
{
	if (r >= 0 || *first < 0)
		return;
	*first = r;
	if (err)
		*err = *e;
}

int vm_devices_unquiesce(struct vm *vm, struct vmm_error *err)
{
	int first = 0;
	for (unsigned i = 0; i < vm->ndevices; i++) {
		struct device *dev = &vm->devices[i];
		struct vmm_error e = {0};
		if (dev->type->unquiesce)
			keep_first(dev->type->unquiesce(dev, &e), &e, &first, err);
	}
	return first;
}

int vm_devices_activate(struct vm *vm, struct vmm_error *err)
{
	int first = 0;
	for (unsigned i = 0; i < vm->ndevices; i++) {
		struct device *dev = &vm->devices[i];
		struct vmm_error e = {0};
		if (dev->type->activate)
			keep_first(dev->type->activate(dev, &e), &e, &first, err);
	}
	return first;
}

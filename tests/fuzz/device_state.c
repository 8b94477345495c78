/*
 * tests/fuzz/device_state.c: one DeviceState payload loaded into the
 * devices of a microvm machine (created without KVM), by name, as the
 * destination's load step does after End.
 */
#include <string.h>

#include "core/vm.h"
#include "migration/migration.h"
#include "migration/records.h"
#include "tests/fuzz/fuzz.h"

static struct vm vm;
static bool ready;

static bool setup(void)
{
	struct vmm_error err;
	vm_init(&vm);
	vm.spec.serial = SERIAL_NONE;
	return machine_resolve("microvm", &vm.spec.machine, &err) == 0 &&
	       vm_create_devices(&vm, &err) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready && !(ready = setup()))
		return 0;
	Vmm__Migration__DeviceState *m;
	struct vmm_error err;
	if (size > MIG_MAX_PAYLOAD ||
	    mig_unpack_bytes(MIG_REC_DEVICE, &vmm__migration__device_state__descriptor, data, size,
			     (ProtobufCMessage **)&m, NULL, &err) < 0)
		return 0;
	struct device *dev = m->name ? vm_find_device(&vm, m->name) : NULL;
	if (dev)
		device_record_load(dev, m, &err);
	protobuf_c_message_free_unpacked(&m->base, NULL);
	return 0;
}

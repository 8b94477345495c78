/*
 * core/devices/debug_exit.c: a write to this port ends the VMM with the
 * written value (low 8 bits) as its exit status. Tests use it to learn the
 * guest's verdict. Same port as QEMU's isa-debug-exit (0x501), but the
 * status is passed through unchanged (QEMU exits with (value << 1) | 1).
 */
#include "core/devices/devices.h"

#include <string.h>

static void debug_exit_write(struct device *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	uint32_t v = 0;
	(void)off;
	memcpy(&v, data, size < sizeof(v) ? size : sizeof(v));
	vm_request_exit(dev->vm, VM_EXIT_GUEST_STATUS, (int)(v & 0xff),
			"guest exited with status %u via the debug-exit port", v & 0xff);
}

static int debug_exit_create(struct vm *vm, struct device *dev, struct vmm_error *err)
{
	uint64_t iobase, size;
	int r;
	if ((r = device_prop_u64(dev, "iobase", &iobase, err)) < 0 ||
	    (r = device_prop_u64(dev, "size", &size, err)) < 0)
		return r;
	return io_bus_register(&vm->pio, iobase, size, dev, NULL, debug_exit_write, err);
}

const struct device_type device_debug_exit = {
	.name = "debug-exit",
	.create = debug_exit_create,
};

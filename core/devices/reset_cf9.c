/*
 * core/devices/reset_cf9.c: the reset control register at 0xcf9. Writing it
 * with bit 2 (RST_CPU) set resets the machine; Linux uses it for reboot=pci
 * and as a fallback. A byte port: dword accesses at 0xcf8 are PCI
 * configuration and do not reach it.
 */
#include "core/devices/devices.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct reset_cf9_state {
	uint8_t value;
};

static void cf9_read(struct device *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct reset_cf9_state *s = dev->state;
	(void)off;
	memset(data, 0, size);
	data[0] = s->value;
}

static void cf9_write(struct device *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct reset_cf9_state *s = dev->state;
	(void)off;
	(void)size;
	s->value = data[0] & 0x0e;
	if (data[0] & 0x04)
		vm_request_exit(dev->vm, VM_EXIT_RESET, 0,
				"guest requested a reset (port 0xcf9 value 0x%02x)", data[0]);
}

static const struct state_field cf9_fields[] = {
	STATE_FIELD(struct reset_cf9_state, value, STATE_U8),
};
static const struct state_desc cf9_state_desc = STATE_DESC(1, 1, cf9_fields);

static void *cf9_state_ptr(struct device *dev)
{
	return dev->state;
}

static int cf9_create(struct vm *vm, struct device *dev, struct vmm_error *err)
{
	uint64_t iobase;
	int r = device_prop_u64(dev, "iobase", &iobase, err);
	if (r < 0)
		return r;
	dev->state = calloc(1, sizeof(struct reset_cf9_state));
	if (!dev->state)
		return vmm_error_set(err, -ENOMEM, "%s: out of memory", dev->name);
	return io_bus_register(&vm->pio, iobase, 1, dev, cf9_read, cf9_write, err);
}

static void cf9_destroy(struct device *dev)
{
	free(dev->state);
	dev->state = NULL;
}

const struct device_type device_reset_cf9 = {
	.name = "reset-cf9",
	.create = cf9_create,
	.destroy = cf9_destroy,
	.state = &cf9_state_desc,
	.state_ptr = cf9_state_ptr,
};

/*
 * core/io_bus.c: port-I/O and MMIO dispatch. Ranges are registered while the
 * VM is built and never change afterwards, so lookups need no lock; the
 * device's own lock serialises its handlers across vCPU threads.
 */
#include "core/vm.h"

#include <errno.h>
#include <string.h>

int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len, struct device *dev,
		    io_read_fn read, io_write_fn write, struct vmm_error *err)
{
	if (len == 0 || base + len < base)
		return vmm_error_set(err, -EINVAL, "%s: bad range 0x%llx+%llu for %s", bus->name,
				     (unsigned long long)base, (unsigned long long)len, dev->name);
	for (unsigned i = 0; i < bus->n; i++) {
		const struct io_range *o = &bus->ranges[i];
		if (base < o->base + o->len && o->base < base + len)
			return vmm_error_set(err, -EBUSY,
					     "%s: %s at 0x%llx overlaps %s at 0x%llx (machine type error)",
					     bus->name, dev->name, (unsigned long long)base,
					     o->dev->name, (unsigned long long)o->base);
	}
	if (bus->n == IO_BUS_MAX)
		return vmm_error_set(err, -ENOSPC, "%s: more than %d ranges", bus->name, IO_BUS_MAX);
	bus->ranges[bus->n++] = (struct io_range){base, len, dev, read, write};
	return 0;
}

bool io_bus_access(struct io_bus *bus, uint64_t addr, uint8_t *data, unsigned size, bool write)
{
	for (unsigned i = 0; i < bus->n; i++) {
		struct io_range *r = &bus->ranges[i];
		if (addr < r->base || addr - r->base >= r->len)
			continue;
		pthread_mutex_lock(&r->dev->lock);
		if (write) {
			if (r->write)
				r->write(r->dev, addr - r->base, data, size);
		} else if (r->read) {
			r->read(r->dev, addr - r->base, data, size);
		} else {
			memset(data, 0xff, size);
		}
		pthread_mutex_unlock(&r->dev->lock);
		return true;
	}
	if (!write)
		memset(data, 0xff, size); /* nothing there: the bus floats high */
	return false;
}

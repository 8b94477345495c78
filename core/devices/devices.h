/*
 * core/devices/devices.h: the device types and the few entry points other
 * parts of the VMM call on them.
 *
 * Every device file has the same shape: a guest-visible state struct kept
 * apart from runtime handles, I/O handlers, then create/destroy and its
 * `struct device_type` at the bottom. Devices read every address, IRQ and
 * default from the machine type. Handlers run on vCPU threads under
 * dev->lock.
 */
#ifndef VMM_CORE_DEVICES_H
#define VMM_CORE_DEVICES_H

#include "core/vm.h"

extern const struct device_type device_uart_16550a;
extern const struct device_type device_cmos_rtc;
extern const struct device_type device_i8042;
extern const struct device_type device_reset_cf9;
extern const struct device_type device_debug_exit;
extern const struct device_type device_virtio_blk;
extern const struct device_type device_virtio_rng;

/* Feeds host console input into a UART's receive FIFO (takes dev->lock).
 * Returns how many bytes were accepted (the FIFO may be full). */
size_t uart_receive(struct device *dev, const uint8_t *buf, size_t len);

/* A virtio-blk device's identity (for the migration header); false for
 * other devices. */
bool virtio_blk_identity(struct device *dev, uint64_t *size, const char **serial, bool *readonly);

/* Reads an integer property of this device instance from the machine type. */
int device_prop_u64(struct device *dev, const char *prop, uint64_t *out, struct vmm_error *err);

#endif

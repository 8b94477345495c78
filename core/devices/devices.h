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
extern const struct device_type device_virtio_net;

/* Feeds host console input into a UART's receive FIFO (takes dev->lock).
 * Returns how many bytes were accepted (the FIFO may be full). */
size_t uart_receive(struct device *dev, const uint8_t *buf, size_t len);

/* A virtio-blk device's identity (for the migration header); false for
 * other devices. */
bool virtio_blk_identity(struct device *dev, uint64_t *size, const char **serial, bool *readonly);

/* A virtio-net card's identity (for the migration header): its MAC and the
 * feature bits it offers (what its tap can do decides the offloads); false
 * for other devices. */
bool virtio_net_identity(struct device *dev, uint8_t mac[6], uint64_t *features);

/* How a card announced its guest after an incoming migration or a restore
 * (virtio_net.c): rounds done so far (of `rounds_max`), RARP frames the
 * VMM wrote to the tap, and rounds done through the guest
 * (VIRTIO_NET_F_GUEST_ANNOUNCE: the status bit and a config interrupt) and
 * how many of those it acknowledged. false for other devices. */
struct virtio_net_announce {
	unsigned rounds, rounds_max, rarp_frames, guest_requests, guest_acks;
	bool guest; /* the guest announces itself (it negotiated GUEST_ANNOUNCE) */
	uint64_t first_ns, last_ns; /* CLOCK_MONOTONIC of the first and last round, 0 if none */
};
bool virtio_net_announce_info(struct device *dev, struct virtio_net_announce *out);

/* ---- the tap behind a virtio-net card (net_tap.c) ---- */

/* Offloads a tap can take (the TUN_F_* bits of <linux/if_tun.h>). */
#define NET_TAP_CSUM 0x01u
#define NET_TAP_TSO4 0x02u
#define NET_TAP_TSO6 0x04u

struct net_tap {
	int fd;		   /* nonblocking; one frame per read/write */
	bool created;	   /* vmm created the interface: it goes away with the descriptor */
	bool is_tap;	   /* a real tap (TUNSETOFFLOAD works), not a stand-in */
	bool vnet_hdr;	   /* frames carry a 12-byte struct virtio_net_hdr_v1 */
	unsigned can;	   /* NET_TAP_* the tap accepts */
	unsigned offloads; /* NET_TAP_* set now */
	char name[16];
};

/* Opens the card's tap: attaches to the interface `cfg->tap` or creates it
 * (then it is brought up, and removed when vmm exits), asks for virtio-net
 * headers and probes the offloads it accepts; or takes cfg->fd (a dup).
 * Errors name the tap and why (in use, no permission, not a tap). */
int net_tap_open(const struct vm_net *cfg, struct net_tap *tap, struct vmm_error *err);
/* Which offloads the kernel may hand us in received frames (those the guest
 * accepted); a subset of tap->can. */
int net_tap_set_offloads(struct net_tap *tap, unsigned offloads, struct vmm_error *err);
void net_tap_close(struct net_tap *tap);

/* Reads an integer property of this device instance from the machine type. */
int device_prop_u64(struct device *dev, const char *prop, uint64_t *out, struct vmm_error *err);

#endif

/*
 * core/devices/net_tap.c: the host side of a virtio-net card, a Linux tap
 * (Documentation/networking/tuntap.rst): IFF_TAP | IFF_NO_PI, so one read
 * or write is one Ethernet frame, and IFF_VNET_HDR with TUNSETVNETHDRSZ 12
 * when the kernel has it, so each frame carries the virtio 1.x header
 * (struct virtio_net_hdr_v1) and checksum/TSO work can travel with it
 * instead of being done by the guest or the host stack.
 *
 * Nothing is assumed about the tap: the flags come from TUNGETFEATURES, and
 * which offloads the kernel may hand us is probed with TUNSETOFFLOAD (each
 * combination the card could ask for), then reset to none until the guest
 * accepts some (net_tap_set_offloads). Without virtio-net headers the card
 * offers no checksum or TSO feature at all.
 *
 * `tap=NAME` attaches to an existing tap (its owner keeps it: up, on a
 * bridge) or creates one (not persistent: it goes away when vmm closes it,
 * also on a crash) and brings it up. A tap takes one process at a time
 * (single queue): a second vmm on the same tap is refused with EBUSY, so a
 * migration on one host uses a tap per side (STREAM.md).
 */
#include "core/devices/devices.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define VNET_HDR_LEN 12 /* struct virtio_net_hdr_v1: VERSION_1 always has num_buffers */

/* NET_TAP_* are TUN_F_* by value: checked here, once. */
_Static_assert(NET_TAP_CSUM == TUN_F_CSUM && NET_TAP_TSO4 == TUN_F_TSO4 &&
		   NET_TAP_TSO6 == TUN_F_TSO6,
	       "NET_TAP_* follow TUN_F_*");

/* Every offload set a card may ask for (TSO needs checksums), probed in turn. */
static const unsigned offload_sets[] = {
    NET_TAP_CSUM,
    NET_TAP_CSUM | NET_TAP_TSO4,
    NET_TAP_CSUM | NET_TAP_TSO6,
    NET_TAP_CSUM | NET_TAP_TSO4 | NET_TAP_TSO6,
};

static void probe_offloads(struct net_tap *tap)
{
	tap->can = 0;
	if (!tap->vnet_hdr)
		return; /* no header: nowhere to carry the checksum or segment size */
	for (size_t i = 0; i < sizeof(offload_sets) / sizeof(offload_sets[0]); i++)
		if (ioctl(tap->fd, TUNSETOFFLOAD, (unsigned long)offload_sets[i]) == 0)
			tap->can |= offload_sets[i];
	ioctl(tap->fd, TUNSETOFFLOAD, 0ul); /* nothing until the guest accepts it */
	tap->offloads = 0;
}

/* A stand-in descriptor (tests): no ioctls, capabilities as declared. */
static int open_fd(const struct vm_net *cfg, struct net_tap *tap, struct vmm_error *err)
{
	tap->fd = fcntl(cfg->fd, F_DUPFD_CLOEXEC, 0);
	if (tap->fd < 0)
		return vmm_error_set(err, -errno, "--net fd %d: %s", cfg->fd, strerror(errno));
	int fl = fcntl(tap->fd, F_GETFL);
	if (fl < 0 || fcntl(tap->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return vmm_error_set(err, -errno, "--net fd %d: %s", cfg->fd, strerror(errno));
	struct ifreq ifr;
	tap->is_tap = ioctl(tap->fd, TUNGETIFF, &ifr) == 0;
	snprintf(tap->name, sizeof(tap->name), "%s", tap->is_tap ? ifr.ifr_name : "fd");
	if (tap->is_tap) {
		tap->vnet_hdr = ifr.ifr_flags & IFF_VNET_HDR;
		int len = VNET_HDR_LEN;
		if (tap->vnet_hdr && ioctl(tap->fd, TUNSETVNETHDRSZ, &len) < 0)
			return vmm_error_set(err, -errno, "--net fd %d: TUNSETVNETHDRSZ: %s",
					     cfg->fd, strerror(errno));
		probe_offloads(tap);
	} else {
		tap->vnet_hdr = cfg->fd_vnet_hdr;
		tap->can = tap->vnet_hdr ? NET_TAP_CSUM | NET_TAP_TSO4 | NET_TAP_TSO6 : 0;
	}
	return 0;
}

static int bring_up(const char *name, struct vmm_error *err)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return vmm_error_set(err, -errno, "--net tap=%s: socket: %s", name,
				     strerror(errno));
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	int r = ioctl(s, SIOCGIFFLAGS, &ifr);
	if (r == 0) {
		ifr.ifr_flags |= IFF_UP;
		r = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	if (r < 0)
		r = vmm_error_set(err, -errno, "--net tap=%s: cannot bring the new tap up: %s",
				  name, strerror(errno));
	close(s);
	return r;
}

int net_tap_open(const struct vm_net *cfg, struct net_tap *tap, struct vmm_error *err)
{
	memset(tap, 0, sizeof(*tap));
	tap->fd = -1;
	if (cfg->use_fd)
		return open_fd(cfg, tap, err);
	const char *name = cfg->tap;
	snprintf(tap->name, sizeof(tap->name), "%s", name);
	bool existed = if_nametoindex(name) != 0;
	tap->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (tap->fd < 0)
		return vmm_error_set(err, -errno, "--net tap=%s: /dev/net/tun: %s", name,
				     strerror(errno));
	unsigned features = 0;
	if (ioctl(tap->fd, TUNGETFEATURES, &features) < 0)
		features = 0; /* a kernel without it has no virtio-net headers either */
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (features & IFF_VNET_HDR ? IFF_VNET_HDR : 0);
	if (ioctl(tap->fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		const char *why = e == EBUSY   ? "it is attached to another process (a tap serves "
						 "one vmm: a migration on one host needs a tap "
						 "per side)"
				  : e == EPERM ? "no permission (creating or attaching a tap needs "
						 "CAP_NET_ADMIN, or a tap owned by this user)"
				  : e == EINVAL && existed
				      ? "an interface of that name exists and is not a tap"
				      : strerror(e);
		return vmm_error_set(err, -e, "--net tap=%s: %s", name, why);
	}
	tap->is_tap = true;
	tap->created = !existed;
	tap->vnet_hdr = ifr.ifr_flags & IFF_VNET_HDR;
	int len = VNET_HDR_LEN;
	if (tap->vnet_hdr && ioctl(tap->fd, TUNSETVNETHDRSZ, &len) < 0)
		return vmm_error_set(err, -errno, "--net tap=%s: TUNSETVNETHDRSZ %d: %s", name, len,
				     strerror(errno));
	probe_offloads(tap);
	if (tap->created) {
		int r = bring_up(name, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int net_tap_set_offloads(struct net_tap *tap, unsigned offloads, struct vmm_error *err)
{
	if (offloads & ~tap->can)
		return vmm_error_set(err, -EOPNOTSUPP, "tap %s: offloads 0x%x, it takes 0x%x",
				     tap->name, offloads, tap->can);
	if (offloads == tap->offloads)
		return 0;
	if (tap->is_tap && ioctl(tap->fd, TUNSETOFFLOAD, (unsigned long)offloads) < 0)
		return vmm_error_set(err, -errno, "tap %s: TUNSETOFFLOAD 0x%x: %s", tap->name,
				     offloads, strerror(errno));
	tap->offloads = offloads;
	return 0;
}

void net_tap_close(struct net_tap *tap)
{
	if (tap->fd >= 0)
		close(tap->fd); /* a tap vmm created goes away with it */
	tap->fd = -1;
}

/*
 * core/devices/virtio_net.h: what the two virtio-net files share, and only
 * they: virtio_net.c (the card: transport hooks, control queue, announce,
 * migration, create/destroy) and virtio_net_rxtx.c (frames between the tap
 * and the guest's receive and transmit queues). The rest of the VMM sees a
 * card through devices.h. Everything here runs with dev->lock held, on the
 * card's I/O thread or (register accesses) a vCPU thread.
 */
#ifndef VMM_CORE_VIRTIO_NET_H
#define VMM_CORE_VIRTIO_NET_H

#include <errno.h>
#include <unistd.h>

#include "core/devices/devices.h"
#include "core/virtio/virtio.h"

/* ---- virtio 1.x 5.1: features, header, config space, control queue ---- */

enum {
	NET_F_CSUM = 0,
	NET_F_GUEST_CSUM = 1,
	NET_F_MAC = 5,
	NET_F_GUEST_TSO4 = 7,
	NET_F_GUEST_TSO6 = 8,
	NET_F_HOST_TSO4 = 11,
	NET_F_HOST_TSO6 = 12,
	NET_F_MRG_RXBUF = 15,
	NET_F_STATUS = 16,
	NET_F_CTRL_VQ = 17,
	NET_F_GUEST_ANNOUNCE = 21,
};
#define BIT(b) (1ull << (b))

struct net_hdr { /* struct virtio_net_hdr_v1, little-endian */
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len, gso_size, csum_start, csum_offset;
	uint16_t num_buffers;
} __attribute__((packed));
#define HDR_LEN		 sizeof(struct net_hdr) /* 12 */
#define HDR_F_NEEDS_CSUM 1u
#define HDR_F_DATA_VALID 2u
#define GSO_NONE	 0u
#define GSO_TCPV4	 1u
#define GSO_TCPV6	 4u

#define S_LINK_UP  1u
#define S_ANNOUNCE 2u

struct net_config {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
} __attribute__((packed));

#define CTRL_ANNOUNCE	  3u
#define CTRL_ANNOUNCE_ACK 0u
#define CTRL_OK		  0u
#define CTRL_ERR	  1u

enum { RXQ, TXQ, CTRLQ, NQUEUES };

#define ETH_HLEN      14u
#define NET_FRAME_MAX (65535u + ETH_HLEN + 4u)	    /* a 64 KiB GSO packet, Ethernet + VLAN */
#define RXBUF_SIZE    (HDR_LEN + NET_FRAME_MAX + 1) /* +1: a read that fills it was too big */
#define RX_BUDGET     256u /* frames per turn; then the thread looks at its other work */
#define TX_BUDGET     256u
#define RX_IRQ_BATCH  64u /* used buffers between two interrupt decisions */
#define DRAIN_MAX     4096u

/* Why a frame was dropped: counted, and each reason logged once. */
enum vnet_drop {
	DROP_RX_RUNT,
	DROP_RX_TOO_BIG,
	DROP_RX_HDR,
	DROP_RX_NO_ROOM,
	DROP_RX_SWITCHOVER,
	DROP_TX_SIZE,
	DROP_TX_HDR,
	DROP_TX_TAP_ERROR,
	DROP_TX_NO_TAP,
	NDROP
};
/* Guest-visible state: what migration carries. The MAC is also a check. */
struct net_state {
	struct virtio_mmio_state t;
	uint8_t mac[6];
	uint16_t status; /* config space status: S_LINK_UP, S_ANNOUNCE */
};

struct net {
	struct virtio_mmio t; /* first: the transport finds itself in dev->state */
	struct net_state s;
	const struct vm_net *conf;
	const char *name;
	struct net_tap tap;
	bool tap_ok;  /* false once the tap failed for good: link down */
	int again_fd; /* eventfd: unfinished receive/transmit work */
	int timer_fd; /* announce rounds */

	/* receive: one frame at a time, in our buffer until it is placed */
	uint8_t *rxbuf;
	size_t rx_len;
	bool rx_pending;
	size_t rx_off;	  /* bytes of it placed in held chains */
	unsigned rx_held; /* chains taken for it, not yet used */
	struct virtq_chain rx_first, rx_chain;
	uint16_t heads[VIRTQ_MAX_SIZE];
	uint32_t lens[VIRTQ_MAX_SIZE];

	/* transmit */
	struct virtq_chain tx_chain;
	struct net_hdr tx_hdr;
	struct iovec tx_iov[VIRTQ_MAX_SEGS + 1];

	struct {
		uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes;
		uint64_t drops[NDROP];
	} st;

	struct {
		bool active;	  /* rounds left to do */
		bool waiting_ack; /* the guest has the announce bit */
		unsigned round;
		struct virtio_net_announce info;
	} ann;
};

static inline bool has(const struct net *n, unsigned bit)
{
	return virtio_mmio_has(&n->t, bit);
}

/* Wakes the I/O thread through one of the card's eventfds. */
static inline void wake(int fd)
{
	uint64_t one = 1;
	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* ---- virtio_net_rxtx.c ---- */

/* Counts a dropped frame (each reason logged once). */
void vnet_drop(struct net *n, enum vnet_drop why);
/* Marks [off, off+len) of a chain's writable part dirty (migration). */
void vnet_mark_written(struct net *n, const struct virtq_chain *c, size_t off, size_t len);
/* Config space status (link, announce): a config interrupt once the driver runs. */
void vnet_set_status(struct net *n, uint16_t status);
/* The tap is gone: link down, no more reads. */
void vnet_tap_failed(struct net *n, const char *op, int e);
/* The next frame from the tap: 1 read, 0 none, negative the tap failed. */
int vnet_rx_read(struct net *n);
/* Drops a frame waiting for buffers and gives its chains back. */
void vnet_rx_abandon(struct net *n, enum vnet_drop why);
/* Moves frames tap -> receive queue, and transmit queue -> tap. */
void vnet_rx_run(struct net *n);
void vnet_tx_run(struct net *n);

#endif

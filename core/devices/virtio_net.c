/*
 * core/devices/virtio_net.c: virtio-net (virtio 1.x, 5.1) on a host tap
 * (net_tap.c). Three queues: receive (0), transmit (1) and control (2).
 * Everything runs on the card's I/O thread: the queues' ioeventfds, the tap
 * (edge-triggered: readable or failed), an eventfd to come back to unfinished
 * work, and a timerfd for the announce rounds after a migration.
 *
 * Receive: a frame is read from the tap into a buffer of our own (as QEMU
 * does: only then is its length known), checked against what the guest
 * negotiated, and copied into the guest's receive buffers. With
 * VIRTIO_NET_F_MRG_RXBUF a frame may span several buffers: the chains are
 * held (taken, not yet used) until the frame fits, then all used entries
 * are published with one used-index update, num_buffers in the first
 * header. Without it a frame larger than the buffer offered is dropped and
 * the buffer kept. When the guest has no buffers the frame waits and the
 * tap is not read: the kernel's queue in front of the tap fills and drops,
 * as a real NIC's ring would.
 *
 * Transmit: each chain is header + frame; the header is copied and checked
 * (offloads the guest did not negotiate are refused, the frame dropped),
 * then written with the rest of the chain straight from guest memory
 * (writev). Every chain is returned at once: nothing is ever in flight, so
 * a migration's quiesce has nothing to wait for.
 *
 * Offloads are negotiated twice: the card offers a checksum/TSO feature
 * only if its tap takes virtio-net headers and the matching TUNSETOFFLOAD
 * bits (net_tap.c probes them), and once the driver accepts features the
 * tap is told which offloads it may hand us (GUEST_CSUM -> TUN_F_CSUM, ...).
 *
 * The guest is untrusted: a malformed chain, a receive buffer the device
 * may not write, a transmit chain without a header or a control command
 * without room for its answer set DEVICE_NEEDS_RESET; a frame that breaks
 * the negotiated rules or does not fit is dropped and counted. A tap that
 * returns errors drops that frame; a tap that vanished takes the link down
 * (VIRTIO_NET_S_LINK_UP cleared, a config interrupt): the guest and the
 * VMM go on.
 *
 * Migration (STREAM.md): quiesce stops reading the tap and drops a frame
 * still waiting for buffers (chains given back: none stays taken);
 * activate on the destination discards what its tap queued before Go (the
 * source may have delivered those frames already: never twice), then
 * announces the guest: VIRTIO_NET_S_ANNOUNCE and a config interrupt when
 * the guest negotiated VIRTIO_NET_F_GUEST_ANNOUNCE, else a RARP frame for
 * its MAC, in rounds at growing intervals.
 */
#include "core/devices/devices.h"
#include "core/virtio/virtio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

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

/* What a feature needs from the tap: virtio-net headers, and the offloads
 * the kernel must accept before it hands us such frames. */
static const struct {
	unsigned bit;
	unsigned tap;
} tap_needs[] = {
    {NET_F_CSUM, 0},
    {NET_F_HOST_TSO4, 0},
    {NET_F_HOST_TSO6, 0},
    {NET_F_GUEST_CSUM, NET_TAP_CSUM},
    {NET_F_GUEST_TSO4, NET_TAP_CSUM | NET_TAP_TSO4},
    {NET_F_GUEST_TSO6, NET_TAP_CSUM | NET_TAP_TSO6},
};

/* 5.1.3.1: a feature the driver accepts needs another. */
static const struct {
	unsigned bit, needs;
	const char *name, *needs_name;
} feature_deps[] = {
    {NET_F_GUEST_TSO4, NET_F_GUEST_CSUM, "GUEST_TSO4", "GUEST_CSUM"},
    {NET_F_GUEST_TSO6, NET_F_GUEST_CSUM, "GUEST_TSO6", "GUEST_CSUM"},
    {NET_F_HOST_TSO4, NET_F_CSUM, "HOST_TSO4", "CSUM"},
    {NET_F_HOST_TSO6, NET_F_CSUM, "HOST_TSO6", "CSUM"},
    {NET_F_GUEST_ANNOUNCE, NET_F_CTRL_VQ, "GUEST_ANNOUNCE", "CTRL_VQ"},
};

/* Receive offloads the guest accepted -> what the tap may hand us. */
static const struct {
	unsigned bit, tap;
} rx_offloads[] = {
    {NET_F_GUEST_CSUM, NET_TAP_CSUM},
    {NET_F_GUEST_TSO4, NET_TAP_TSO4},
    {NET_F_GUEST_TSO6, NET_TAP_TSO6},
};

/* A segmentation type and the feature that allows it, per direction. */
static const struct {
	uint8_t gso;
	unsigned rx_bit, tx_bit;
} gso_types[] = {
    {GSO_TCPV4, NET_F_GUEST_TSO4, NET_F_HOST_TSO4},
    {GSO_TCPV6, NET_F_GUEST_TSO6, NET_F_HOST_TSO6},
};

/* Why a frame was dropped: counted, and each reason logged once. */
enum drop {
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
static const char *const drop_names[NDROP] = {
    [DROP_RX_RUNT] = "received frame shorter than an Ethernet header",
    [DROP_RX_TOO_BIG] = "received frame larger than the receive buffer",
    [DROP_RX_HDR] = "received frame with offloads the guest did not accept",
    [DROP_RX_NO_ROOM] = "received frame larger than the whole receive queue",
    [DROP_RX_SWITCHOVER] = "received frame queued across a migration's switch-over",
    [DROP_TX_SIZE] = "transmitted frame of a bad size",
    [DROP_TX_HDR] = "transmitted frame with offloads the guest did not negotiate",
    [DROP_TX_TAP_ERROR] = "transmitted frame refused by the tap",
    [DROP_TX_NO_TAP] = "transmitted frame with the tap gone",
};

/* Announce rounds after an incoming migration: QEMU's defaults (a round at
 * once, then 50 ms, growing by 100 ms: announce-initial, -step, -rounds). */
static const unsigned announce_gap_ms[] = {0, 50, 150, 250, 350};
#define ANNOUNCE_ROUNDS (sizeof(announce_gap_ms) / sizeof(announce_gap_ms[0]))

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

static bool has(const struct net *n, unsigned bit)
{
	return virtio_mmio_has(&n->t, bit);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void wake(int fd)
{
	uint64_t one = 1;
	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void drop(struct net *n, enum drop why)
{
	if (n->st.drops[why]++ == 0)
		fprintf(stderr, "vmm: %s: dropped a %s (counted; logged once)\n", n->name,
			drop_names[why]);
}

static void mark_written(struct net *n, const struct virtq_chain *c, size_t off, size_t len)
{
	for (unsigned i = c->n_out; i < c->nseg && len; i++) {
		size_t seg = c->iov[i].iov_len;
		if (off >= seg) {
			off -= seg;
			continue;
		}
		size_t k = seg - off < len ? seg - off : len;
		virtio_mark_dirty(&n->t, c->gpa[i] + off, k);
		len -= k;
		off = 0;
	}
}

/* [skip, skip+len) of a segment list as a new list; returns its length. */
static unsigned slice(const struct iovec *src, unsigned n, size_t skip, size_t len,
		      struct iovec *dst)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && len; i++) {
		if (skip >= src[i].iov_len) {
			skip -= src[i].iov_len;
			continue;
		}
		size_t take = src[i].iov_len - skip < len ? src[i].iov_len - skip : len;
		dst[k++] = (struct iovec){(uint8_t *)src[i].iov_base + skip, take};
		len -= take;
		skip = 0;
	}
	return k;
}

/* Whether a header stays within what the guest negotiated for its
 * direction (`rx`: tap -> guest; else guest -> tap). */
static bool hdr_allowed(const struct net *n, const struct net_hdr *h, bool rx)
{
	unsigned csum = rx ? NET_F_GUEST_CSUM : NET_F_CSUM;
	uint8_t flags = rx ? HDR_F_NEEDS_CSUM | HDR_F_DATA_VALID : HDR_F_NEEDS_CSUM;
	if ((h->flags & ~flags) || (h->flags && !has(n, csum)))
		return false;
	if (h->gso_type == GSO_NONE)
		return true;
	for (size_t i = 0; i < sizeof(gso_types) / sizeof(gso_types[0]); i++)
		if (gso_types[i].gso == h->gso_type)
			return has(n, rx ? gso_types[i].rx_bit : gso_types[i].tx_bit);
	return false; /* ECN, UDP and unknown types are never offered */
}

/* ---- the link and the tap ---- */

static bool tap_gone(int e)
{
	return e == EBADFD || e == EBADF || e == ENODEV || e == ENXIO || e == EPIPE;
}

static void set_status(struct net *n, uint16_t status)
{
	if (n->s.status == status)
		return;
	n->s.status = status;
	if (n->t.s->status & VIRTIO_STATUS_DRIVER_OK)
		virtio_mmio_config_changed(&n->t);
	else
		n->t.s->config_generation++;
}

/* The tap is gone (deleted, its file in a bad state): link down, no more
 * reads; transmitted frames are dropped from now on. */
static void tap_failed(struct net *n, const char *op, int e)
{
	if (!n->tap_ok)
		return;
	fprintf(stderr, "vmm: %s: tap %s: %s: %s; the link is down\n", n->name, n->tap.name, op,
		strerror(e));
	n->tap_ok = false;
	iothread_unwatch(&n->t.io, n->tap.fd);
	n->rx_pending = false;
	set_status(n, n->s.status & ~S_LINK_UP);
}

/* ---- receive ---- */

/* The next frame from the tap into rxbuf: 1 a frame (maybe to drop), 0 none,
 * negative the tap failed. */
static int rx_read(struct net *n)
{
	size_t off = n->tap.vnet_hdr ? 0 : HDR_LEN; /* without: a header of zeros */
	for (;;) {
		ssize_t r = read(n->tap.fd, n->rxbuf + off, RXBUF_SIZE - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN ? 0 : -errno;
		if (r == 0)
			return -EPIPE; /* a stand-in whose peer closed (a tap never reads 0) */
		if (!n->tap.vnet_hdr)
			memset(n->rxbuf, 0, HDR_LEN);
		n->rx_len = (size_t)r + off;
		return 1;
	}
}

/* Checks the frame just read; false: dropped. */
static bool rx_check(struct net *n)
{
	if (n->rx_len < HDR_LEN + ETH_HLEN) {
		drop(n, DROP_RX_RUNT);
		return false;
	}
	if (n->rx_len >= RXBUF_SIZE) {
		drop(n, DROP_RX_TOO_BIG);
		return false;
	}
	struct net_hdr h;
	memcpy(&h, n->rxbuf, HDR_LEN);
	if (!has(n, NET_F_GUEST_CSUM))
		h.flags &= (uint8_t)~HDR_F_DATA_VALID; /* 5.1.6.4.1: flags 0 without GUEST_CSUM */
	if (!hdr_allowed(n, &h, true)) {
		drop(n, DROP_RX_HDR);
		return false;
	}
	h.num_buffers = 1;
	memcpy(n->rxbuf, &h, HDR_LEN);
	return true;
}

/* Gives back the chains held for the pending frame and forgets the frame. */
static void rx_abandon(struct net *n, enum drop why)
{
	if (!n->rx_pending)
		return;
	virtq_rewind(&n->t.vq[RXQ], n->rx_held);
	n->rx_pending = false;
	n->rx_held = 0;
	n->rx_off = 0;
	drop(n, why);
}

/* Places the pending frame in receive buffers. 1: done with it (used, or
 * dropped); 0: it waits for more buffers (the chains taken stay held);
 * -1: the driver broke the rules (the device needs a reset). */
static int rx_place(struct net *n)
{
	struct virtq *vq = &n->t.vq[RXQ];
	bool mrg = has(n, NET_F_MRG_RXBUF);
	struct vmm_error err = {0};
	while (n->rx_off < n->rx_len) {
		if (n->rx_held == vq->s->num) { /* the whole queue is not enough */
			rx_abandon(n, DROP_RX_NO_ROOM);
			return 1;
		}
		struct virtq_chain *c = n->rx_held ? &n->rx_chain : &n->rx_first;
		int r = virtq_pop(vq, c, &err);
		if (r == 0)
			return 0;
		if (r < 0 || c->n_out || c->in_len == 0) {
			if (r > 0)
				snprintf(err.msg, sizeof(err.msg), "receive buffer at head %u %s",
					 c->head,
					 c->n_out ? "has device-readable segments" : "has no room");
			n->rx_pending = false;
			n->rx_held = 0;
			n->rx_off = 0;
			vq->broken = true;
			virtio_mmio_set_needs_reset(&n->t, err.msg);
			return -1;
		}
		n->rx_held++;
		if (!mrg && c->in_len < n->rx_len) {
			rx_abandon(n, DROP_RX_TOO_BIG); /* the buffer stays the driver's */
			return 1;
		}
		size_t take = n->rx_len - n->rx_off;
		if (take > c->in_len)
			take = c->in_len;
		iov_from_buf(c->iov, c->nseg, 0, n->rxbuf + n->rx_off, take);
		mark_written(n, c, 0, take);
		n->heads[n->rx_held - 1] = c->head;
		n->lens[n->rx_held - 1] = (uint32_t)take;
		n->rx_off += take;
	}
	uint16_t nb = (uint16_t)n->rx_held; /* 5.1.6.4: the chains this frame used */
	iov_from_buf(n->rx_first.iov, n->rx_first.nseg, offsetof(struct net_hdr, num_buffers), &nb,
		     sizeof(nb));
	virtq_push_n(vq, n->heads, n->lens, n->rx_held);
	n->st.rx_frames++;
	n->st.rx_bytes += n->rx_len - HDR_LEN;
	n->rx_pending = false;
	n->rx_held = 0;
	n->rx_off = 0;
	return 1;
}

static bool rx_can_run(const struct net *n)
{
	return virtio_mmio_running(&n->t) && n->t.s->q[RXQ].ready && !n->t.vq[RXQ].broken &&
	       n->tap_ok;
}

/* Moves frames from the tap to the guest until the tap is empty, the guest
 * has no buffers, or the budget is spent (then the thread comes back). */
static void rx_run(struct net *n)
{
	if (!rx_can_run(n))
		return;
	struct virtq *vq = &n->t.vq[RXQ];
	uint16_t signalled = vq->s->used_idx;
	for (unsigned done = 0;;) {
		if (!n->rx_pending) {
			if (done == RX_BUDGET) {
				wake(n->again_fd);
				break;
			}
			int r = rx_read(n);
			if (r == 0)
				break; /* empty: the next frame is a new edge */
			if (r < 0) {
				tap_failed(n, "read", -r);
				break;
			}
			done++;
			if (!rx_check(n))
				continue;
			n->rx_pending = true;
		}
		int r = rx_place(n);
		if (r < 0)
			break;
		if (r == 0) {
			/* no buffers: ask for a kick, then look once more (the driver
			 * may have added some before it saw avail_event) */
			virtq_set_notify(vq, true);
			if (!virtq_has_avail(vq))
				break;
			continue;
		}
		if ((uint16_t)(vq->s->used_idx - signalled) >= RX_IRQ_BATCH) {
			virtio_mmio_notify_used(&n->t, RXQ);
			signalled = vq->s->used_idx;
		}
	}
	if (vq->s->used_idx != signalled)
		virtio_mmio_notify_used(&n->t, RXQ);
}

/* ---- transmit ---- */

static void tx_one(struct net *n, const struct virtq_chain *c)
{
	size_t len = c->out_len - HDR_LEN;
	if (len < ETH_HLEN || len > NET_FRAME_MAX) {
		drop(n, DROP_TX_SIZE);
		return;
	}
	/* our copy: the guest may rewrite its header while the kernel reads */
	iov_to_buf(c->iov, c->n_out, 0, &n->tx_hdr, HDR_LEN);
	if (!hdr_allowed(n, &n->tx_hdr, false) ||
	    (!n->tap.vnet_hdr && (n->tx_hdr.flags || n->tx_hdr.gso_type))) {
		drop(n, DROP_TX_HDR);
		return;
	}
	if (!n->tap_ok) {
		drop(n, DROP_TX_NO_TAP);
		return;
	}
	unsigned k = 0;
	if (n->tap.vnet_hdr) {
		n->tx_hdr.num_buffers = 0;
		n->tx_iov[k++] = (struct iovec){&n->tx_hdr, HDR_LEN};
	}
	k += slice(c->iov, c->n_out, HDR_LEN, len, n->tx_iov + k);
	ssize_t w;
	while ((w = writev(n->tap.fd, n->tx_iov, (int)k)) < 0 && errno == EINTR)
		;
	if (w < 0 && tap_gone(errno)) {
		tap_failed(n, "write", errno);
		drop(n, DROP_TX_NO_TAP);
	} else if (w < 0) {
		drop(n, DROP_TX_TAP_ERROR); /* link down (EIO), a frame the kernel refused */
	} else {
		n->st.tx_frames++;
		n->st.tx_bytes += len;
	}
}

static void tx_run(struct net *n)
{
	struct virtq *vq = &n->t.vq[TXQ];
	if (!virtio_mmio_running(&n->t) || !n->t.s->q[TXQ].ready || vq->broken)
		return;
	struct virtq_chain *c = &n->tx_chain;
	struct vmm_error err = {0};
	uint16_t used_before = vq->s->used_idx;
	unsigned done = 0;
	int r;
again:
	while ((r = virtq_pop(vq, c, &err)) > 0) {
		if (c->out_len < HDR_LEN) {
			snprintf(err.msg, sizeof(err.msg),
				 "transmit chain at head %u has %llu readable bytes: no header",
				 c->head, (unsigned long long)c->out_len);
			vq->broken = true;
			r = -EPROTO;
			break;
		}
		tx_one(n, c);
		virtq_push(vq, c->head, 0);
		if (++done == TX_BUDGET) {
			wake(n->again_fd);
			goto out;
		}
	}
	if (r < 0) {
		virtio_mmio_set_needs_reset(&n->t, err.msg);
	} else {
		virtq_set_notify(vq, true);
		if (virtq_has_avail(vq)) /* added before the driver could see avail_event */
			goto again;
	}
out:
	if (vq->s->used_idx != used_before)
		virtio_mmio_notify_used(&n->t, TXQ);
}

/* ---- announce ---- */

static void announce_arm(struct net *n, unsigned ms)
{
	struct itimerspec it = {
	    .it_value = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L + (ms ? 0 : 1)}};
	timerfd_settime(n->timer_fd, 0, &it, NULL);
}

/* A RARP request for the guest's MAC, as QEMU's self-announce sends: the
 * switches learn the new port from its source address. */
static void send_rarp(struct net *n)
{
	uint8_t f[HDR_LEN + 60] = {0};
	uint8_t *e = f + (n->tap.vnet_hdr ? HDR_LEN : 0);
	static const uint8_t arp[] = {0x80, 0x35,	       /* ethertype RARP */
				      0x00, 0x01, 0x08, 0x00,  /* Ethernet, IPv4 */
				      6,    4,	  0x00, 0x03}; /* sizes, reverse request */
	memset(e, 0xff, 6);
	memcpy(e + 6, n->s.mac, 6);
	memcpy(e + 12, arp, sizeof(arp));
	memcpy(e + 22, n->s.mac, 6); /* sender hardware address; IP 0 */
	memcpy(e + 32, n->s.mac, 6); /* target hardware address; IP 0 */
	size_t len = (size_t)(e - f) + 60;
	if (n->tap_ok && write(n->tap.fd, f, len) == (ssize_t)len)
		n->ann.info.rarp_frames++;
}

static bool guest_announces(const struct net *n)
{
	return virtio_mmio_running(&n->t) && has(n, NET_F_GUEST_ANNOUNCE) && has(n, NET_F_CTRL_VQ);
}

static void announce_round(struct net *n)
{
	struct virtio_net_announce *a = &n->ann.info;
	uint64_t t = now_ns();
	if (!a->first_ns)
		a->first_ns = t;
	a->last_ns = t;
	a->rounds = ++n->ann.round;
	a->guest = guest_announces(n);
	if (a->guest) {
		/* the guest sends its own announcement and acknowledges; the next
		 * round waits for that (as QEMU's) */
		a->guest_requests++;
		n->ann.waiting_ack = true;
		n->s.status |= S_ANNOUNCE; /* and an interrupt even if it was set already */
		virtio_mmio_config_changed(&n->t);
	} else {
		send_rarp(n);
	}
	if (n->ann.round == ANNOUNCE_ROUNDS)
		n->ann.active = false;
	else if (!a->guest)
		announce_arm(n, announce_gap_ms[n->ann.round]);
}

static void announce_start(struct net *n)
{
	memset(&n->ann, 0, sizeof(n->ann));
	n->ann.active = true;
	n->ann.info.rounds_max = ANNOUNCE_ROUNDS;
	announce_arm(n, announce_gap_ms[0]);
}

/* On the I/O thread: the announce timer. */
static void on_announce_timer(void *ctx)
{
	struct net *n = ctx;
	pthread_mutex_lock(&n->t.dev->lock);
	if (n->ann.active && !n->ann.waiting_ack && !n->t.paused)
		announce_round(n);
	pthread_mutex_unlock(&n->t.dev->lock);
}

/* ---- control queue ---- */

static uint8_t ctrl_announce_ack(struct net *n)
{
	set_status(n, n->s.status & ~S_ANNOUNCE); /* no interrupt: the driver asked */
	if (n->ann.waiting_ack) {
		n->ann.waiting_ack = false;
		n->ann.info.guest_acks++;
		if (n->ann.active)
			announce_arm(n, announce_gap_ms[n->ann.round]);
	}
	return CTRL_OK;
}

/* The commands this card knows, with the feature each needs. */
static const struct {
	uint8_t class, cmd;
	unsigned feature;
	uint8_t (*fn)(struct net *n);
} ctrl_commands[] = {
    {CTRL_ANNOUNCE, CTRL_ANNOUNCE_ACK, NET_F_GUEST_ANNOUNCE, ctrl_announce_ack},
};

static void ctrl_run(struct net *n)
{
	struct virtq *vq = &n->t.vq[CTRLQ];
	struct virtq_chain *c = &n->tx_chain; /* same thread, one at a time */
	struct vmm_error err = {0};
	uint16_t used_before = vq->s->used_idx;
	int r;
again:
	while ((r = virtq_pop(vq, c, &err)) > 0) {
		if (c->out_len < 2 || c->in_len < 1) {
			snprintf(err.msg, sizeof(err.msg),
				 "control command at head %u: %llu bytes of command, %llu for the "
				 "answer (need 2 and 1)",
				 c->head, (unsigned long long)c->out_len,
				 (unsigned long long)c->in_len);
			vq->broken = true;
			r = -EPROTO;
			break;
		}
		uint8_t cmd[2], ack = CTRL_ERR;
		iov_to_buf(c->iov, c->n_out, 0, cmd, 2);
		for (size_t i = 0; i < sizeof(ctrl_commands) / sizeof(ctrl_commands[0]); i++)
			if (ctrl_commands[i].class == cmd[0] && ctrl_commands[i].cmd == cmd[1] &&
			    has(n, ctrl_commands[i].feature))
				ack = ctrl_commands[i].fn(n);
		iov_from_buf(c->iov + c->n_out, c->nseg - c->n_out, 0, &ack, 1);
		mark_written(n, c, 0, 1);
		virtq_push(vq, c->head, 1);
	}
	if (r < 0) {
		virtio_mmio_set_needs_reset(&n->t, err.msg);
	} else {
		virtq_set_notify(vq, true);
		if (virtq_has_avail(vq))
			goto again;
	}
	if (vq->s->used_idx != used_before)
		virtio_mmio_notify_used(&n->t, CTRLQ);
}

/* ---- transport hooks (dev->lock held) ---- */

typedef void (*queue_fn)(struct net *n);

static void net_queue_notify(struct virtio_mmio *t, unsigned q)
{
	struct net *n = (struct net *)t;
	static const queue_fn run[NQUEUES] = {
	    [RXQ] = rx_run, /* the driver added receive buffers */
	    [TXQ] = tx_run,
	    [CTRLQ] = ctrl_run,
	};
	if (q < NQUEUES)
		run[q](n);
}

/* On the I/O thread: the tap has frames (or failed), or work was left over. */
static void on_tap(void *ctx)
{
	struct net *n = ctx;
	pthread_mutex_lock(&n->t.dev->lock);
	rx_run(n);
	pthread_mutex_unlock(&n->t.dev->lock);
}

static void on_again(void *ctx)
{
	struct net *n = ctx;
	pthread_mutex_lock(&n->t.dev->lock);
	rx_run(n);
	tx_run(n);
	pthread_mutex_unlock(&n->t.dev->lock);
}

static unsigned tap_offloads(uint64_t features)
{
	unsigned off = 0;
	for (size_t i = 0; i < sizeof(rx_offloads) / sizeof(rx_offloads[0]); i++)
		if (features & BIT(rx_offloads[i].bit))
			off |= rx_offloads[i].tap;
	return off;
}

static int net_set_features(struct virtio_mmio *t, uint64_t features)
{
	struct net *n = (struct net *)t;
	for (size_t i = 0; i < sizeof(feature_deps) / sizeof(feature_deps[0]); i++)
		if ((features & BIT(feature_deps[i].bit)) &&
		    !(features & BIT(feature_deps[i].needs))) {
			fprintf(stderr, "vmm: %s: driver features 0x%llx refused (%s without %s)\n",
				n->name, (unsigned long long)features, feature_deps[i].name,
				feature_deps[i].needs_name);
			return -EINVAL;
		}
	struct vmm_error err = {0};
	if (net_tap_set_offloads(&n->tap, tap_offloads(features), &err) < 0) {
		fprintf(stderr, "vmm: %s: driver features 0x%llx refused: %s\n", n->name,
			(unsigned long long)features, err.msg);
		return -EIO;
	}
	return 0;
}

static void net_reset(struct virtio_mmio *t)
{
	struct net *n = (struct net *)t;
	n->rx_pending = false; /* the rings are the driver's again */
	n->rx_held = 0;
	n->rx_off = 0;
	struct vmm_error ignored;
	net_tap_set_offloads(&n->tap, 0, &ignored);
	n->s.status &= (uint16_t)~S_ANNOUNCE;
	if (n->ann.waiting_ack) { /* go on with RARP frames */
		n->ann.waiting_ack = false;
		if (n->ann.active)
			announce_arm(n, announce_gap_ms[n->ann.round]);
	}
}

static void net_config_read(struct virtio_mmio *t, uint64_t off, uint8_t *data, unsigned size)
{
	struct net *n = (struct net *)t;
	struct net_config cfg = {.status = n->s.status, .max_virtqueue_pairs = 1};
	memcpy(cfg.mac, n->s.mac, 6);
	if (off < sizeof(cfg))
		memcpy(data, (uint8_t *)&cfg + off,
		       size < sizeof(cfg) - off ? size : sizeof(cfg) - off);
}

static const struct virtio_dev_ops net_ops = {
    .device_id = VIRTIO_ID_NET,
    .config_read = net_config_read, /* writes: the MAC is the command line's */
    .queue_notify = net_queue_notify,
    .reset = net_reset,
    .set_features = net_set_features,
};

/* ---- migration ---- */

static const struct state_field net_fields[] = {
    VIRTIO_MMIO_STATE_FIELDS(struct net_state, t),
    VIRTQ_STATE_FIELDS(struct net_state, t, 0),
    VIRTQ_STATE_FIELDS(struct net_state, t, 1),
    VIRTQ_STATE_FIELDS(struct net_state, t, 2),
    STATE_FIELD(struct net_state, mac, STATE_BYTES),
    STATE_FIELD(struct net_state, status, STATE_U16),
};
static const struct state_desc net_state_desc = STATE_DESC(1, 1, net_fields);

static void *net_state_ptr(struct device *dev)
{
	return &((struct net *)dev->state)->s;
}

static int net_post_load(struct device *dev, struct vmm_error *err)
{
	struct net *n = dev->state;
	if (memcmp(n->s.mac, n->conf->mac, 6) != 0)
		return vmm_error_set(err, -EINVAL,
				     "%s: MAC %02x:%02x:%02x:%02x:%02x:%02x in the stream, "
				     "%02x:%02x:%02x:%02x:%02x:%02x here",
				     dev->name, n->s.mac[0], n->s.mac[1], n->s.mac[2], n->s.mac[3],
				     n->s.mac[4], n->s.mac[5], n->conf->mac[0], n->conf->mac[1],
				     n->conf->mac[2], n->conf->mac[3], n->conf->mac[4],
				     n->conf->mac[5]);
	int r = virtio_mmio_post_load(&n->t, err);
	if (r < 0)
		return r;
	/* the offloads the guest accepted at the source, on this tap */
	uint64_t features =
	    n->t.s->status & VIRTIO_STATUS_FEATURES_OK ? n->t.s->driver_features : 0;
	if ((r = net_tap_set_offloads(&n->tap, tap_offloads(features), err)) < 0)
		return vmm_error_prefix(err, "%s", dev->name);
	return 0;
}

/* Source, vCPUs paused: no more reads from the tap; a frame still waiting
 * for buffers is dropped and its chains given back. */
static int net_quiesce(struct device *dev, struct vmm_error *err)
{
	(void)err;
	struct net *n = dev->state;
	pthread_mutex_lock(&dev->lock);
	virtio_mmio_pause(&n->t);
	rx_abandon(n, DROP_RX_SWITCHOVER);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

/* Source: the guest runs here after all. Frames that came meanwhile are
 * read again (their edge went by while paused). */
static int net_unquiesce(struct device *dev, struct vmm_error *err)
{
	(void)err;
	struct net *n = dev->state;
	pthread_mutex_lock(&dev->lock);
	virtio_mmio_resume(&n->t);
	wake(n->again_fd);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

/* Destination at Go (or a restore): what the tap queued before is stale
 * (the source may have delivered it), the link is this tap's, the guest
 * is announced. */
static int net_activate(struct device *dev, struct vmm_error *err)
{
	(void)err;
	struct net *n = dev->state;
	pthread_mutex_lock(&dev->lock);
	unsigned drained = 0;
	while (n->tap_ok && drained < DRAIN_MAX) {
		int r = rx_read(n);
		if (r < 0)
			tap_failed(n, "read", -r);
		if (r <= 0)
			break;
		drained++;
		drop(n, DROP_RX_SWITCHOVER);
	}
	set_status(n, n->tap_ok ? n->s.status | S_LINK_UP : n->s.status & ~S_LINK_UP);
	virtio_mmio_resume(&n->t);
	wake(n->again_fd);
	announce_start(n);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

bool virtio_net_identity(struct device *dev, uint8_t mac[6], uint64_t *features)
{
	if (dev->type != &device_virtio_net || !dev->state)
		return false;
	struct net *n = dev->state;
	memcpy(mac, n->conf->mac, 6);
	*features = n->t.offered;
	return true;
}

bool virtio_net_announce_info(struct device *dev, struct virtio_net_announce *out)
{
	if (dev->type != &device_virtio_net || !dev->state)
		return false;
	struct net *n = dev->state;
	pthread_mutex_lock(&dev->lock);
	*out = n->ann.info;
	pthread_mutex_unlock(&dev->lock);
	return true;
}

/* ---- create / destroy ---- */

static void net_destroy(struct device *dev)
{
	struct net *n = dev->state;
	if (!n)
		return;
	virtio_mmio_destroy(&n->t); /* stops the I/O thread first */
	uint64_t dropped = 0;
	for (unsigned i = 0; i < NDROP; i++)
		dropped += n->st.drops[i];
	if (n->st.rx_frames || n->st.tx_frames || dropped)
		fprintf(stderr,
			"vmm: %s: %llu frames received (%llu bytes), %llu sent (%llu bytes), "
			"%llu dropped\n",
			dev->name, (unsigned long long)n->st.rx_frames,
			(unsigned long long)n->st.rx_bytes, (unsigned long long)n->st.tx_frames,
			(unsigned long long)n->st.tx_bytes, (unsigned long long)dropped);
	net_tap_close(&n->tap);
	if (n->again_fd >= 0)
		close(n->again_fd);
	if (n->timer_fd >= 0)
		close(n->timer_fd);
	free(n->rxbuf);
	free(n);
	dev->state = NULL;
}

/* The machine type's offer, less what this card's tap cannot do. */
static uint64_t offer(uint64_t features, const struct net_tap *tap)
{
	for (size_t i = 0; i < sizeof(tap_needs) / sizeof(tap_needs[0]); i++)
		if (!tap->vnet_hdr || (tap_needs[i].tap & ~tap->can))
			features &= ~BIT(tap_needs[i].bit);
	return features;
}

static int net_create(struct vm *vm, struct device *dev, struct vmm_error *err)
{
	const struct vm_net *conf = dev->config;
	uint64_t features;
	uint16_t qsize;
	int r = virtio_type_props(vm, "virtio-net", &features, &qsize, err);
	if (r < 0)
		return r;
	struct net *n = calloc(1, sizeof(*n));
	if (!n)
		return vmm_error_set(err, -ENOMEM, "%s: out of memory", dev->name);
	dev->state = n;
	n->tap.fd = n->again_fd = n->timer_fd = -1;
	n->conf = conf;
	n->name = dev->name;
	if (!(n->rxbuf = malloc(RXBUF_SIZE)))
		return vmm_error_set(err, -ENOMEM, "%s: out of memory", dev->name);
	/* the destination opens its tap here, at start-up: before Accepted,
	 * so none of this is part of a migration's downtime */
	if ((r = net_tap_open(conf, &n->tap, err)) < 0)
		return r; /* vm_destroy_devices() calls net_destroy */
	n->tap_ok = true;
	n->again_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	n->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (n->again_fd < 0 || n->timer_fd < 0)
		return vmm_error_set(err, -errno, "%s: eventfd/timerfd: %s", dev->name,
				     strerror(errno));
	if ((r = virtio_mmio_init(&n->t, dev, &n->s.t, &net_ops, dev->slot, NQUEUES, qsize,
				  offer(features, &n->tap), err)) < 0)
		return r;
	memcpy(n->s.mac, conf->mac, 6);
	n->s.status = S_LINK_UP;
	n->ann.info.rounds_max = ANNOUNCE_ROUNDS;
	if ((r = iothread_watch_edge(&n->t.io, n->tap.fd, on_tap, n, err)) < 0 ||
	    (r = iothread_watch(&n->t.io, n->again_fd, on_again, n, err)) < 0 ||
	    (r = iothread_watch(&n->t.io, n->timer_fd, on_announce_timer, n, err)) < 0 ||
	    (r = virtio_mmio_start(&n->t, err)) < 0)
		return r;
	return 0;
}

const struct device_type device_virtio_net = {
    .name = "virtio-net",
    .create = net_create,
    .destroy = net_destroy,
    .state = &net_state_desc,
    .state_ptr = net_state_ptr,
    .post_load = net_post_load,
    .quiesce = net_quiesce,
    .unquiesce = net_unquiesce,
    .activate = net_activate,
};

/*
 * core/devices/virtio_net_rxtx.c: the frames of a virtio-net card
 * (virtio_net.c has the rest): from the tap into the guest's receive
 * buffers, and from its transmit chains to the tap. On the card's I/O
 * thread, dev->lock held. See virtio_net.c for what is checked and why.
 */
#include "core/devices/virtio_net.h"

#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

/* A segmentation type and the feature that allows it, per direction. */
static const struct {
	uint8_t gso;
	unsigned rx_bit, tx_bit;
} gso_types[] = {
    {GSO_TCPV4, NET_F_GUEST_TSO4, NET_F_HOST_TSO4},
    {GSO_TCPV6, NET_F_GUEST_TSO6, NET_F_HOST_TSO6},
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

void vnet_drop(struct net *n, enum vnet_drop why)
{
	if (n->st.drops[why]++ == 0)
		fprintf(stderr, "vmm: %s: dropped a %s (counted; logged once)\n", n->name,
			drop_names[why]);
}

void vnet_mark_written(struct net *n, const struct virtq_chain *c, size_t off, size_t len)
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

void vnet_set_status(struct net *n, uint16_t status)
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
void vnet_tap_failed(struct net *n, const char *op, int e)
{
	if (!n->tap_ok)
		return;
	fprintf(stderr, "vmm: %s: tap %s: %s: %s; the link is down\n", n->name, n->tap.name, op,
		strerror(e));
	n->tap_ok = false;
	iothread_unwatch(&n->t.io, n->tap.fd);
	n->rx_pending = false;
	vnet_set_status(n, n->s.status & ~S_LINK_UP);
}

/* ---- receive ---- */

/* The next frame from the tap into rxbuf: 1 a frame (maybe to drop), 0 none,
 * negative the tap failed. */
int vnet_rx_read(struct net *n)
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
		vnet_drop(n, DROP_RX_RUNT);
		return false;
	}
	if (n->rx_len >= RXBUF_SIZE) {
		vnet_drop(n, DROP_RX_TOO_BIG);
		return false;
	}
	struct net_hdr h;
	memcpy(&h, n->rxbuf, HDR_LEN);
	if (!has(n, NET_F_GUEST_CSUM))
		h.flags &= (uint8_t)~HDR_F_DATA_VALID; /* 5.1.6.4.1: flags 0 without GUEST_CSUM */
	if (!hdr_allowed(n, &h, true)) {
		vnet_drop(n, DROP_RX_HDR);
		return false;
	}
	h.num_buffers = 1;
	memcpy(n->rxbuf, &h, HDR_LEN);
	return true;
}

/* Gives back the chains held for the pending frame and forgets the frame. */
void vnet_rx_abandon(struct net *n, enum vnet_drop why)
{
	if (!n->rx_pending)
		return;
	virtq_rewind(&n->t.vq[RXQ], n->rx_held);
	n->rx_pending = false;
	n->rx_held = 0;
	n->rx_off = 0;
	vnet_drop(n, why);
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
			vnet_rx_abandon(n, DROP_RX_NO_ROOM);
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
			vnet_rx_abandon(n, DROP_RX_TOO_BIG); /* the buffer stays the driver's */
			return 1;
		}
		size_t take = n->rx_len - n->rx_off;
		if (take > c->in_len)
			take = c->in_len;
		iov_from_buf(c->iov, c->nseg, 0, n->rxbuf + n->rx_off, take);
		vnet_mark_written(n, c, 0, take);
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
void vnet_rx_run(struct net *n)
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
			int r = vnet_rx_read(n);
			if (r == 0)
				break; /* empty: the next frame is a new edge */
			if (r < 0) {
				vnet_tap_failed(n, "read", -r);
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
		vnet_drop(n, DROP_TX_SIZE);
		return;
	}
	/* our copy: the guest may rewrite its header while the kernel reads */
	iov_to_buf(c->iov, c->n_out, 0, &n->tx_hdr, HDR_LEN);
	if (!hdr_allowed(n, &n->tx_hdr, false) ||
	    (!n->tap.vnet_hdr && (n->tx_hdr.flags || n->tx_hdr.gso_type))) {
		vnet_drop(n, DROP_TX_HDR);
		return;
	}
	if (!n->tap_ok) {
		vnet_drop(n, DROP_TX_NO_TAP);
		return;
	}
	unsigned k = 0;
	if (n->tap.vnet_hdr) {
		n->tx_hdr.num_buffers = 0;
		n->tx_iov[k++] = (struct iovec){&n->tx_hdr, HDR_LEN};
	}
	k += iov_slice(c->iov, c->n_out, HDR_LEN, len, n->tx_iov + k);
	ssize_t w;
	while ((w = writev(n->tap.fd, n->tx_iov, (int)k)) < 0 && errno == EINTR)
		;
	if (w < 0 && tap_gone(errno)) {
		vnet_tap_failed(n, "write", errno);
		vnet_drop(n, DROP_TX_NO_TAP);
	} else if (w < 0) {
		vnet_drop(n, DROP_TX_TAP_ERROR); /* link down (EIO), a frame the kernel refused */
	} else {
		n->st.tx_frames++;
		n->st.tx_bytes += len;
	}
}

void vnet_tx_run(struct net *n)
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

/*
 * core/devices/virtio_net.c: virtio-net (virtio 1.x, 5.1) on a host tap
 * (net_tap.c); the data path is in virtio_net_rxtx.c (shared declarations:
 * virtio_net.h). Three queues: receive (0), transmit (1) and control (2).
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
#include "core/devices/virtio_net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>

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

/* Announce rounds after an incoming migration: QEMU's defaults (a round at
 * once, then 50 ms, growing by 100 ms: announce-initial, -step, -rounds). */
static const unsigned announce_gap_ms[] = {0, 50, 150, 250, 350};
#define ANNOUNCE_ROUNDS (sizeof(announce_gap_ms) / sizeof(announce_gap_ms[0]))

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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
	vnet_set_status(n, n->s.status & ~S_ANNOUNCE); /* no interrupt: the driver asked */
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
		vnet_mark_written(n, c, 0, 1);
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
	    [RXQ] = vnet_rx_run, /* the driver added receive buffers */
	    [TXQ] = vnet_tx_run,
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
	vnet_rx_run(n);
	pthread_mutex_unlock(&n->t.dev->lock);
}

static void on_again(void *ctx)
{
	struct net *n = ctx;
	pthread_mutex_lock(&n->t.dev->lock);
	vnet_rx_run(n);
	vnet_tx_run(n);
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
	vnet_rx_abandon(n, DROP_RX_SWITCHOVER);
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
		int r = vnet_rx_read(n);
		if (r < 0)
			vnet_tap_failed(n, "read", -r);
		if (r <= 0)
			break;
		drained++;
		vnet_drop(n, DROP_RX_SWITCHOVER);
	}
	vnet_set_status(n, n->tap_ok ? n->s.status | S_LINK_UP : n->s.status & ~S_LINK_UP);
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

/*
 * u_net.c: net=echo. The first virtio-net card's every received frame goes
 * back out with its source and destination MAC addresses swapped, so a
 * host-side sender sees its own frames return (tests/integration/
 * test_net.py, bench/net-bench.py). All at CPL3, polling, on vCPU 0.
 *
 * Features taken: MAC, STATUS, MRG_RXBUF, EVENT_IDX, and CTRL_VQ with
 * GUEST_ANNOUNCE unless net-announce=off. No offloads: frames are echoed
 * as they come. Receive buffers are 2 KiB (a frame of more, from mergeable
 * buffers, is gathered into one transmit buffer); transmit buffers carry a
 * zero header and the frame in one descriptor. When the card sets
 * VIRTIO_NET_S_ANNOUNCE (after a migration) the guest sends a RARP frame
 * for its MAC, as the VMM would, and acknowledges on the control queue.
 *
 * Counters (frames, bytes, drops, announcements) live in guest RAM, so a
 * migrated guest goes on counting.
 */
#include "user.h"
#include "x86.h"

#define VIRTIO_ID_NET	    1
#define F_MAC		    5
#define F_MRG_RXBUF	    15
#define F_STATUS	    16
#define F_CTRL_VQ	    17
#define F_GUEST_ANNOUNCE    21
#define F_EVENT_IDX	    29
#define HDR		    12u
#define BUF		    2048u
#define QMAX		    256u
#define S_ANNOUNCE	    2u
#define DESC_F_NEXT	    1
#define DESC_F_WRITE	    2
#define BATCH		    64u
#define ANNOUNCE_WAIT_TICKS 100

static struct vdev d UBSS;
static struct vq rxq UBSS, txq UBSS, ctlq UBSS;
static uint64_t rxb UBSS, txb UBSS, ctlb UBSS;
static uint16_t tx_free[QMAX] UBSS;
static uint32_t n_free UBSS;
static uint8_t mac[6] UBSS;
static uint64_t rx UBSS, tx UBSS, bytes UBSS, dropped UBSS, announces UBSS, errors UBSS;

static bool has(unsigned bit)
{
	return (d.features >> bit) & 1;
}

static void copy(void *dst, const void *src, uint64_t n)
{
	__asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

static uint8_t *rx_buf(uint32_t id)
{
	return (uint8_t *)(uintptr_t)(rxb + (uint64_t)id * BUF);
}

static uint8_t *tx_buf(uint16_t head)
{
	return (uint8_t *)(uintptr_t)(txb + (uint64_t)head * BUF);
}

static void bad_id(const char *q, uint32_t id, uint32_t len)
{
	if (errors++ < 4)
		u_printf("testguest: net: the %s queue returned chain %u len %u\n", q, id, len);
}

static void reclaim_tx(void)
{
	uint32_t id, len;

	while (vq_take_used(&txq, &id, &len)) {
		if (id >= txq.num || n_free == txq.num)
			bad_id("transmit", id, len);
		else
			tx_free[n_free++] = (uint16_t)id;
	}
}

/* A free transmit buffer; waits for the card to give one back. */
static uint16_t tx_take(void)
{
	if (!n_free) {
		vq_kick(&d, &txq); /* this batch's frames are not notified yet */
		while (!n_free) {
			reclaim_tx();
			cpu_relax();
		}
	}
	return tx_free[--n_free];
}

static void tx_add(uint16_t head, uint32_t len)
{
	vq_set_desc(&txq, head, txb + (uint64_t)head * BUF, len, 0, 0);
	vq_add(&txq, head);
}

/* One received frame (num_buffers chains from `id` on), echoed. */
static void echo(uint32_t id, uint32_t len)
{
	uint16_t head = tx_take(), nb = 1;
	uint8_t *t = tx_buf(head), tmp[6];
	uint32_t flen = 0, k, id2, len2;
	bool ok = id < rxq.num && len >= HDR && len <= BUF;

	memset(t, 0, HDR);
	if (ok) {
		nb = *(volatile uint16_t *)(rx_buf(id) + 10);
		flen = len - HDR;
		copy(t + HDR, rx_buf(id) + HDR, flen);
		vq_add(&rxq, (uint16_t)id);
	} else {
		bad_id("receive", id, len);
	}
	for (k = 1; ok && k < nb; k++) { /* mergeable: the rest are published with it */
		while (!vq_take_used(&rxq, &id2, &len2))
			cpu_relax();
		if (id2 >= rxq.num || len2 > BUF) {
			bad_id("receive", id2, len2);
			ok = false;
			break;
		}
		if (flen + len2 <= BUF - HDR)
			copy(t + HDR + flen, rx_buf(id2), len2);
		flen += len2;
		vq_add(&rxq, (uint16_t)id2);
	}
	rx++;
	if (!ok || flen < 14 || flen > BUF - HDR) {
		dropped++;
		tx_free[n_free++] = head;
		return;
	}
	copy(tmp, t + HDR, 6);
	copy(t + HDR, t + HDR + 6, 6);
	copy(t + HDR + 6, tmp, 6);
	tx_add(head, HDR + flen);
	tx++;
	bytes += flen;
}

/* After a migration the card asks the guest to announce itself: a RARP
 * frame for our MAC (what the VMM sends for guests that cannot), then the
 * acknowledgement on the control queue. */
static void check_announce(void)
{
	uint16_t old, head;
	uint32_t id, len;
	uint8_t *t;
	uint64_t until;
	static const uint8_t rarp[] = {0x80, 0x35, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03};

	if (!has(F_GUEST_ANNOUNCE) || !((vdev_config32(&d, 4) >> 16) & S_ANNOUNCE))
		return;
	old = txq.avail_idx;
	head = tx_take();
	t = tx_buf(head);
	memset(t, 0, HDR + 60);
	memset(t + HDR, 0xff, 6);
	copy(t + HDR + 6, mac, 6);
	copy(t + HDR + 12, rarp, sizeof(rarp));
	copy(t + HDR + 22, mac, 6);
	copy(t + HDR + 32, mac, 6);
	tx_add(head, HDR + 60);
	vq_notify(&d, &txq, old);

	*(volatile uint8_t *)(uintptr_t)ctlb = 3;	    /* VIRTIO_NET_CTRL_ANNOUNCE */
	*(volatile uint8_t *)(uintptr_t)(ctlb + 1) = 0;	    /* ..._ACK */
	*(volatile uint8_t *)(uintptr_t)(ctlb + 64) = 0xff; /* the answer */
	vq_set_desc(&ctlq, 0, ctlb, 2, DESC_F_NEXT, 1);
	vq_set_desc(&ctlq, 1, ctlb + 64, 1, DESC_F_WRITE, 0);
	old = ctlq.avail_idx;
	vq_add(&ctlq, 0);
	vq_notify(&d, &ctlq, old);
	for (until = u_ticks() + ANNOUNCE_WAIT_TICKS; !vq_take_used(&ctlq, &id, &len);)
		if (u_ticks() > until) {
			u_printf("testguest: net: no answer to ANNOUNCE_ACK\n");
			errors++;
			return;
		}
	announces++;
	u_printf("net announce n=%lu ack=%u t=%lu\n", announces,
		 *(volatile uint8_t *)(uintptr_t)(ctlb + 64), u_ms());
}

static bool net_open(void)
{
	uint64_t want =
	    1ull << F_MAC | 1ull << F_STATUS | 1ull << F_MRG_RXBUF | 1ull << F_EVENT_IDX;
	uint32_t i, lo, hi;

	if (u_cfg.net_announce)
		want |= 1ull << F_CTRL_VQ | 1ull << F_GUEST_ANNOUNCE;
	if (!vdev_begin(&d, VIRTIO_ID_NET, want) || !vdev_queue(&d, &rxq, 0, QMAX) ||
	    !vdev_queue(&d, &txq, 1, QMAX) || (has(F_CTRL_VQ) && !vdev_queue(&d, &ctlq, 2, 8)))
		return false;
	rxb = mem_alloc((uint64_t)rxq.num * BUF);
	txb = mem_alloc((uint64_t)txq.num * BUF);
	ctlb = mem_alloc(4096);
	if (!rxb || !txb || !ctlb) {
		u_printf("testguest: net: no free memory for buffers\n");
		return false;
	}
	vdev_ready(&d);
	lo = vdev_config32(&d, 0);
	hi = vdev_config32(&d, 4);
	for (i = 0; i < 4; i++)
		mac[i] = (uint8_t)(lo >> (8 * i));
	mac[4] = (uint8_t)hi;
	mac[5] = (uint8_t)(hi >> 8);
	for (i = 0; i < rxq.num; i++) {
		vq_set_desc(&rxq, (uint16_t)i, rxb + (uint64_t)i * BUF, BUF, DESC_F_WRITE, 0);
		vq_add(&rxq, (uint16_t)i);
	}
	vq_notify(&d, &rxq, 0);
	for (i = 0; i < txq.num; i++)
		tx_free[n_free++] = (uint16_t)(txq.num - 1 - i);
	u_printf("net mac=%02x:%02x:%02x:%02x:%02x:%02x features=0x%lx status=0x%x base=0x%lx "
		 "irq=%u\n",
		 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], d.features, (hi >> 16) & 0xffff,
		 d.base, d.irq);
	return true;
}

static void progress_line(void)
{
	u_printf("net t=%lu rx=%lu tx=%lu bytes=%lu dropped=%lu announces=%lu\n", u_ms(), rx, tx,
		 bytes, dropped, announces);
}

uint64_t net_run(void)
{
	uint64_t tick, last = 0, next_progress, end = 0;
	uint32_t id, len, n;
	uint16_t rx_old, tx_old;

	if (!net_open())
		u_exit(EXIT_INTERNAL);
	next_progress = u_ticks() + u_cfg.progress * HZ / 1000;
	if (u_cfg.has_runtime)
		end = u_ticks() + u_cfg.runtime * HZ;
	for (;;) {
		rx_old = rxq.avail_idx;
		tx_old = txq.avail_idx;
		for (n = 0; n < BATCH && vq_take_used(&rxq, &id, &len); n++)
			echo(id, len);
		vq_notify(&d, &txq, tx_old);
		vq_notify(&d, &rxq, rx_old);
		reclaim_tx();
		tick = u_ticks();
		if (tick != last) { /* once a tick: a config read is an exit */
			last = tick;
			check_announce();
			if (u_cfg.progress && tick >= next_progress) {
				progress_line();
				next_progress = tick + u_cfg.progress * HZ / 1000;
			}
			if (end && tick >= end)
				break;
		}
		if (!n)
			cpu_relax();
	}
	u_printf("net-final rx=%lu tx=%lu bytes=%lu dropped=%lu announces=%lu errors=%lu\n", rx, tx,
		 bytes, dropped, announces, errors);
	return errors;
}

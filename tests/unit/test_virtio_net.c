/*
 * tests/unit/test_virtio_net.c: virtio-net (core/devices/virtio_net.c)
 * driven through its registers like a hostile driver, with guest RAM the
 * real memfd-backed guest_memory, on a VM without /dev/kvm (QueueNotify
 * goes through the MMIO handler to the card's I/O thread), and a
 * SOCK_SEQPACKET socketpair standing in for the tap (one frame per
 * message; with or without virtio-net headers).
 *
 * Every case of issue 13's untrusted input: malformed chains on each
 * queue, receive buffers the device may not write, transmit chains without
 * a header or with offloads never negotiated, frames larger than the
 * buffers or than any frame, a tap that refuses frames and a tap that
 * vanishes. The card must set DEVICE_NEEDS_RESET or drop the frame, write
 * nothing outside the guest's buffers, and the entropy device next to it
 * keeps working. Also: mergeable buffers, waiting for buffers, feature
 * dependencies, the control queue, the migration hooks (quiesce gives
 * chains back, activate drops what the tap queued and announces the guest
 * by RARP or through the guest), the Header's identity check and --net.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/devices/devices.h"
#include "core/virtio/virtio.h"
#include "migration/migration.h"

#define RAM   (16u << 20)
#define RNG   0xfeb00000ull /* slot 0: --rng comes before --net */
#define NET   0xfeb00200ull /* slot 1 */
#define QNUM  8
#define RXBUF 0x100000ull /* RX buffer of head i at RXBUF + i * 0x1000 */
#define TXBUF 0x200000ull
#define CTBUF 0x300000ull
#define RNGB  0x400000ull

enum { RXQ, TXQ, CTRLQ };
static const struct {
	uint64_t desc, avail, used;
} Q[3] = {{0x10000, 0x11000, 0x12000}, {0x13000, 0x14000, 0x15000}, {0x16000, 0x17000, 0x18000}};

/* feature bits */
#define F(b)		 (1ull << (b))
#define F_CSUM		 F(0)
#define F_GUEST_CSUM	 F(1)
#define F_MAC		 F(5)
#define F_GUEST_TSO4	 F(7)
#define F_GUEST_TSO6	 F(8)
#define F_HOST_TSO4	 F(11)
#define F_HOST_TSO6	 F(12)
#define F_MRG		 F(15)
#define F_STATUS	 F(16)
#define F_CTRL_VQ	 F(17)
#define F_GUEST_ANNOUNCE F(21)
#define F_V1		 F(32)
#define OFFLOADS	 (F_CSUM | F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_TSO6 | F_HOST_TSO4 | F_HOST_TSO6)
#define BASIC		 (F_V1 | F_MAC | F_STATUS)

static const uint8_t MAC[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};

static struct vm vm;
static int peer = -1;	 /* the test's end of the "tap" */
static uint16_t aidx[3]; /* next avail index the driver publishes, per queue */
static bool vnet;	 /* the stand-in carries virtio-net headers */

static uint8_t *g(uint64_t gpa)
{
	return guest_ptr(&vm.mem, gpa, 1);
}

static uint32_t rd(uint64_t base, uint64_t off)
{
	uint32_t v = 0;
	io_bus_access(&vm.mmio, base + off, (uint8_t *)&v, 4, false);
	return v;
}

static void wr(uint64_t base, uint64_t off, uint32_t v)
{
	io_bus_access(&vm.mmio, base + off, (uint8_t *)&v, 4, true);
}

static void sleep_ms(int ms)
{
	nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000}, NULL);
}

static int setup_with(bool with_vnet, int sndbuf)
{
	signal(SIGPIPE, SIG_IGN); /* as vmm: a closed peer is an error, not a signal */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	if (sndbuf)
		assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)),
				 0);
	vnet = with_vnet;
	vm_init(&vm);
	vm.spec.serial = SERIAL_NONE;
	vm.spec.rng = true;
	vm.spec.nnets = 1;
	vm.spec.nets[0] = (struct vm_net){
	    .tap = "stand-in", .use_fd = true, .fd = sv[1], .fd_vnet_hdr = with_vnet};
	memcpy(vm.spec.nets[0].mac, MAC, 6);
	struct vmm_error err = {0};
	assert_int_equal(machine_resolve("microvm-1.2", &vm.spec.machine, &err), 0);
	assert_int_equal(guest_memory_create(&vm.mem, RAM, false, &vm.spec.machine, &err), 0);
	if (vm_create_virtio_devices(&vm, &err) < 0)
		fail_msg("%s", err.msg);
	close(sv[1]); /* the card has its own */
	peer = sv[0];
	memset(aidx, 0, sizeof(aidx));
	return 0;
}

static int setup(void **state)
{
	(void)state;
	return setup_with(true, 0);
}

static int setup_plain(void **state)
{
	(void)state;
	return setup_with(false, 0);
}

static int setup_small_sndbuf(void **state)
{
	(void)state;
	return setup_with(true, 4096);
}

static int teardown(void **state)
{
	(void)state;
	vm_destroy_devices(&vm);
	guest_memory_destroy(&vm.mem);
	if (peer >= 0)
		close(peer);
	peer = -1;
	return 0;
}

/* ---- the driver side ---- */

static uint32_t status(void)
{
	return rd(NET, VMMIO_STATUS);
}

/* Negotiates `features`, sets up all three queues; returns Status. */
static uint32_t drv_init(uint64_t features)
{
	memset(g(0x10000), 0, 0x9000);
	memset(aidx, 0, sizeof(aidx));
	wr(NET, VMMIO_STATUS, 0);
	wr(NET, VMMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(NET, VMMIO_DRIVER_FEATURES_SEL, 0);
	wr(NET, VMMIO_DRIVER_FEATURES, (uint32_t)features);
	wr(NET, VMMIO_DRIVER_FEATURES_SEL, 1);
	wr(NET, VMMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	uint32_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
	wr(NET, VMMIO_STATUS, st);
	if (!(status() & VIRTIO_STATUS_FEATURES_OK))
		return status();
	for (unsigned q = 0; q < 3; q++) {
		wr(NET, VMMIO_QUEUE_SEL, q);
		wr(NET, VMMIO_QUEUE_NUM, QNUM);
		wr(NET, VMMIO_QUEUE_DESC_LOW, (uint32_t)Q[q].desc);
		wr(NET, VMMIO_QUEUE_DRIVER_LOW, (uint32_t)Q[q].avail);
		wr(NET, VMMIO_QUEUE_DEVICE_LOW, (uint32_t)Q[q].used);
		wr(NET, VMMIO_QUEUE_READY, 1);
	}
	wr(NET, VMMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
	return status();
}

static void desc(unsigned q, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct virtq_desc d = {addr, len, flags, next};
	memcpy(g(Q[q].desc + 16ull * i), &d, sizeof(d));
}

/* Makes head available on queue q (not notified). */
static void publish(unsigned q, uint16_t head)
{
	memcpy(g(Q[q].avail + 4 + 2u * (aidx[q] % QNUM)), &head, 2);
	aidx[q]++;
	memcpy(g(Q[q].avail + 2), &aidx[q], 2);
}

static void kick(unsigned q)
{
	wr(NET, VMMIO_QUEUE_NOTIFY, q);
}

static uint16_t used_idx(unsigned q)
{
	uint16_t v;
	memcpy(&v, g(Q[q].used + 2), 2);
	return v;
}

static void used_elem(unsigned q, unsigned i, uint32_t *id, uint32_t *len)
{
	memcpy(id, g(Q[q].used + 4 + 8ull * (i % QNUM)), 4);
	memcpy(len, g(Q[q].used + 8 + 8ull * (i % QNUM)), 4);
}

/* Waits (bounded) until queue q's used index reaches `want`. */
static bool wait_used(unsigned q, uint16_t want)
{
	for (int i = 0; i < 2000; i++) {
		if (used_idx(q) == want)
			return true;
		sleep_ms(1);
	}
	return false;
}

static bool wait_status(uint32_t bit, bool set)
{
	for (int i = 0; i < 2000; i++) {
		if (!!(status() & bit) == set)
			return true;
		sleep_ms(1);
	}
	return false;
}

static uint16_t cfg_status(void)
{
	return (uint16_t)rd(NET, VIRTIO_MMIO_CONFIG + 6);
}

/* One receive buffer of `len` bytes for head `head`. */
static void post_rx(uint16_t head, uint32_t len)
{
	memset(g(RXBUF + 0x1000ull * head), 0xee, len);
	desc(RXQ, head, RXBUF + 0x1000ull * head, len, VIRTQ_DESC_F_WRITE, 0);
	publish(RXQ, head);
}

/* A frame: `hdr` (12 bytes, or NULL for zeros) when the stand-in carries
 * headers, then an Ethernet header to our MAC and `len` - 14 pattern bytes. */
static size_t frame(uint8_t *buf, const uint8_t *hdr, size_t len, uint8_t seed)
{
	size_t off = 0;
	if (vnet) {
		memset(buf, 0, 12);
		if (hdr)
			memcpy(buf, hdr, 12);
		off = 12;
	}
	memcpy(buf + off, MAC, 6);
	memcpy(buf + off + 6, "\x02\x00\x00\x00\x00\x01", 6);
	buf[off + 12] = 0x88, buf[off + 13] = 0xb5;
	for (size_t i = 14; i < len; i++)
		buf[off + i] = (uint8_t)(seed + i);
	return off + len;
}

static void peer_send(const void *buf, size_t len)
{
	assert_int_equal(send(peer, buf, len, 0), (ssize_t)len);
}

/* One message from the card within `ms`, or -1. */
static ssize_t peer_recv(void *buf, size_t cap, int ms)
{
	struct pollfd p = {.fd = peer, .events = POLLIN};
	if (poll(&p, 1, ms) <= 0)
		return -1;
	return recv(peer, buf, cap, MSG_DONTWAIT);
}

/* A transmit chain at head h: the 12-byte header and the frame in two
 * descriptors. */
static void post_tx(uint16_t h, const uint8_t *hdr12, const uint8_t *eth, uint32_t len)
{
	uint64_t b = TXBUF + 0x20000ull * h;
	memcpy(g(b), hdr12, 12);
	memcpy(g(b + 64), eth, len);
	desc(TXQ, h, b, 12, VIRTQ_DESC_F_NEXT, (uint16_t)(h + 1));
	desc(TXQ, h + 1u, b + 64, len, 0, 0);
	publish(TXQ, h);
}

/* ---- identity, config space ---- */

static uint64_t offered(void)
{
	wr(NET, VMMIO_DEVICE_FEATURES_SEL, 0);
	uint64_t lo = rd(NET, VMMIO_DEVICE_FEATURES);
	wr(NET, VMMIO_DEVICE_FEATURES_SEL, 1);
	return lo | (uint64_t)rd(NET, VMMIO_DEVICE_FEATURES) << 32;
}

static void test_ids_and_config(void **state)
{
	(void)state;
	assert_int_equal(rd(NET, VMMIO_DEVICE_ID), VIRTIO_ID_NET);
	assert_int_equal(rd(RNG, VMMIO_DEVICE_ID), VIRTIO_ID_ENTROPY);
	assert_int_equal(offered(), 0x1302399a3ull); /* the machine type's whole offer */
	uint8_t mac[6];
	for (int i = 0; i < 6; i++)
		io_bus_access(&vm.mmio, NET + VIRTIO_MMIO_CONFIG + i, &mac[i], 1, false);
	assert_memory_equal(mac, MAC, 6);
	assert_int_equal(cfg_status(), 1);			       /* LINK_UP */
	assert_int_equal(rd(NET, VIRTIO_MMIO_CONFIG + 8) & 0xffff, 1); /* max_virtqueue_pairs */
	uint64_t f;
	assert_true(virtio_net_identity(&vm.devices[1], mac, &f));
	assert_memory_equal(mac, MAC, 6);
	assert_int_equal(f, 0x1302399a3ull);
	assert_false(virtio_net_identity(&vm.devices[0], mac, &f));
}

static void test_no_vnet_header_no_offloads(void **state)
{
	(void)state;
	/* a descriptor without virtio-net headers: no checksum or TSO bit */
	assert_int_equal(offered(), 0x1302399a3ull & ~OFFLOADS);
	assert_false(drv_init(BASIC | F_CSUM) & VIRTIO_STATUS_FEATURES_OK);
	assert_false(drv_init(BASIC | F_MRG) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* transmit: the frame without header */
	uint8_t hdr[12] = {0}, eth[60], buf[128];
	frame(eth, NULL, 60, 1);
	post_tx(0, hdr, eth, 60);
	kick(TXQ);
	assert_int_equal(peer_recv(buf, sizeof(buf), 2000), 60);
	assert_memory_equal(buf, eth, 60);
	/* receive: a header of zeros, num_buffers 1 */
	post_rx(0, 2048);
	kick(RXQ);
	peer_send(eth, 60);
	assert_true(wait_used(RXQ, 1));
	uint32_t id, len;
	used_elem(RXQ, 0, &id, &len);
	assert_int_equal(len, 72);
	static const uint8_t want_hdr[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
	assert_memory_equal(g(RXBUF), want_hdr, 12);
	assert_memory_equal(g(RXBUF + 12), eth, 60);
}

/* ---- the data path ---- */

static void test_tx(void **state)
{
	(void)state;
	assert_false(drv_init(BASIC | F_MRG) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	uint8_t hdr[12] = {0}, eth[1514], buf[2048];
	vnet = false;
	frame(eth, NULL, 1514, 7);
	vnet = true;
	post_tx(0, hdr, eth, 1514);
	kick(TXQ);
	assert_true(wait_used(TXQ, 1));
	uint32_t id, len;
	used_elem(TXQ, 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 0);
	assert_int_equal(peer_recv(buf, sizeof(buf), 2000), 12 + 1514);
	assert_memory_equal(buf, hdr, 12);
	assert_memory_equal(buf + 12, eth, 1514);
	/* header and frame in one descriptor */
	memcpy(g(TXBUF + 0x100000), hdr, 12);
	memcpy(g(TXBUF + 0x100000 + 12), eth, 100);
	desc(TXQ, 4, TXBUF + 0x100000, 112, 0, 0);
	publish(TXQ, 4);
	kick(TXQ);
	assert_int_equal(peer_recv(buf, sizeof(buf), 2000), 112);
	assert_memory_equal(buf + 12, eth, 100);
}

static void test_rx(void **state)
{
	(void)state;
	assert_false(drv_init(BASIC | F_MRG) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	post_rx(0, 2048);
	post_rx(1, 2048);
	kick(RXQ);
	uint8_t f[2048];
	size_t n = frame(f, NULL, 100, 3);
	peer_send(f, n);
	assert_true(wait_used(RXQ, 1));
	uint32_t id, len;
	used_elem(RXQ, 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 112);
	uint16_t nb;
	memcpy(&nb, g(RXBUF + 10), 2);
	assert_int_equal(nb, 1);
	assert_memory_equal(g(RXBUF + 12), f + 12, 100);
	assert_int_equal(*g(RXBUF + 112), 0xee); /* nothing past the frame */
}

static void test_rx_mergeable(void **state)
{
	(void)state;
	assert_false(drv_init(BASIC | F_MRG) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	for (uint16_t h = 0; h < 4; h++)
		post_rx(h, 1024);
	kick(RXQ);
	static uint8_t f[4096];
	size_t n = frame(f, NULL, 2500, 9); /* 2512 bytes with the header: 3 buffers */
	peer_send(f, n);
	assert_true(wait_used(RXQ, 3));
	uint32_t id, len, lens[3];
	f[10] = 3; /* num_buffers, as the card writes it */
	for (unsigned i = 0; i < 3; i++) {
		used_elem(RXQ, i, &id, &lens[i]);
		assert_int_equal(id, i);
		assert_memory_equal(g(RXBUF + 0x1000ull * i), f + 1024 * i, lens[i]);
	}
	assert_int_equal(lens[0], 1024);
	assert_int_equal(lens[1], 1024);
	assert_int_equal(lens[2], 2512 - 2048);
	uint16_t nb;
	memcpy(&nb, g(RXBUF + 10), 2);
	assert_int_equal(nb, 3);
	assert_int_equal(*g(RXBUF + 0x3000), 0xee); /* the fourth buffer untouched */
	(void)len;
}

/* Without MRG_RXBUF a frame larger than the buffer is dropped and the
 * buffer stays the driver's: the next frame lands in it. */
static void test_rx_too_big_for_buffer(void **state)
{
	(void)state;
	assert_false(drv_init(BASIC) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	post_rx(0, 256);
	kick(RXQ);
	uint8_t f[2048];
	peer_send(f, frame(f, NULL, 1000, 1));
	sleep_ms(50);
	assert_int_equal(used_idx(RXQ), 0);
	for (int i = 256; i < 0x1000; i++)
		assert_int_equal(*g(RXBUF + i), 0); /* nothing beyond the 256-byte buffer */
	peer_send(f, frame(f, NULL, 200, 2));
	assert_true(wait_used(RXQ, 1));
	uint32_t id, len;
	used_elem(RXQ, 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 212);
	assert_memory_equal(g(RXBUF + 12), f + 12, 200);
	assert_false(status() & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* Larger than any frame (a 64 KiB packet + headers): dropped whole. */
static void test_rx_oversized_from_tap(void **state)
{
	(void)state;
	assert_false(drv_init(BASIC | F_MRG) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	for (uint16_t h = 0; h < QNUM; h++)
		post_rx(h, 4096);
	kick(RXQ);
	static uint8_t f[70000];
	peer_send(f, frame(f, NULL, 69000, 1));
	peer_send(f, frame(f, NULL, 64, 2));
	assert_true(wait_used(RXQ, 1));
	uint32_t id, len;
	used_elem(RXQ, 0, &id, &len);
	assert_int_equal(len, 76); /* only the small one */
	sleep_ms(20);
	assert_int_equal(used_idx(RXQ), 1);
}

/* Mergeable, but the whole queue holds less than the frame: dropped, every
 * buffer given back; the next frame that fits uses them. */
static void test_rx_larger_than_queue(void **state)
{
	(void)state;
	assert_false(drv_init(BASIC | F_MRG) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	for (uint16_t h = 0; h < QNUM; h++)
		post_rx(h, 64); /* 512 bytes in all */
	kick(RXQ);
	uint8_t f[2048];
	peer_send(f, frame(f, NULL, 1000, 1));
	peer_send(f, frame(f, NULL, 100, 2)); /* 112 bytes: two buffers */
	assert_true(wait_used(RXQ, 2));
	uint32_t id, len;
	used_elem(RXQ, 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 64);
	used_elem(RXQ, 1, &id, &len);
	assert_int_equal(id, 1);
	assert_int_equal(len, 48);
	assert_memory_equal(g(RXBUF + 0x1000 + 0), f + 64, 48);
	sleep_ms(20);
	assert_int_equal(used_idx(RXQ), 2);
	assert_false(status() & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* No buffers: the frame waits, the tap is not read, and it goes out when
 * the driver adds buffers; a frame needing three buffers waits with one. */
static void test_rx_waits_for_buffers(void **state)
{
	(void)state;
	assert_false(drv_init(BASIC | F_MRG) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	uint8_t f[4096];
	peer_send(f, frame(f, NULL, 2500, 5));
	sleep_ms(30);
	post_rx(0, 1024);
	kick(RXQ);
	sleep_ms(30);
	assert_int_equal(used_idx(RXQ), 0); /* one buffer is not enough */
	post_rx(1, 1024);
	post_rx(2, 1024);
	kick(RXQ);
	assert_true(wait_used(RXQ, 3));
	uint16_t nb;
	memcpy(&nb, g(RXBUF + 10), 2);
	assert_int_equal(nb, 3);
	assert_memory_equal(g(RXBUF + 0x2000), f + 2048, 2512 - 2048);
}

/* A receive buffer the device may not write, or a loop: NEEDS_RESET, and
 * the buffer keeps its contents. The entropy device goes on. */
static void test_rx_bad_chains(void **state)
{
	(void)state;
	uint8_t f[256];
	for (int c = 0; c < 3; c++) {
		assert_false(drv_init(BASIC | F_MRG) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
		memset(g(RXBUF), 0x77, 0x2000);
		switch (c) {
		case 0: /* device-readable */
			desc(RXQ, 0, RXBUF, 2048, 0, 0);
			break;
		case 1: /* a loop */
			desc(RXQ, 0, RXBUF, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
			desc(RXQ, 1, RXBUF + 16, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
			break;
		case 2: /* outside guest RAM */
			desc(RXQ, 0, RAM - 100, 2048, VIRTQ_DESC_F_WRITE, 0);
			break;
		}
		publish(RXQ, 0);
		kick(RXQ);
		peer_send(f, frame(f, NULL, 100, 1));
		assert_true(wait_status(VIRTIO_STATUS_DEVICE_NEEDS_RESET, true));
		assert_int_equal(used_idx(RXQ), 0);
		for (int i = 0; i < 0x2000; i++)
			assert_int_equal(*g(RXBUF + i), 0x77);
	}
	/* the entropy device next to it still serves */
	wr(RNG, VMMIO_STATUS, 0);
	wr(RNG, VMMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(RNG, VMMIO_DRIVER_FEATURES_SEL, 1);
	wr(RNG, VMMIO_DRIVER_FEATURES, 1);
	wr(RNG, VMMIO_STATUS,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	memset(g(0x20000), 0, 0x3000);
	wr(RNG, VMMIO_QUEUE_SEL, 0);
	wr(RNG, VMMIO_QUEUE_NUM, 8);
	wr(RNG, VMMIO_QUEUE_DESC_LOW, 0x20000);
	wr(RNG, VMMIO_QUEUE_DRIVER_LOW, 0x21000);
	wr(RNG, VMMIO_QUEUE_DEVICE_LOW, 0x22000);
	wr(RNG, VMMIO_QUEUE_READY, 1);
	wr(RNG, VMMIO_STATUS,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
	       VIRTIO_STATUS_DRIVER_OK);
	struct virtq_desc d = {RNGB, 64, VIRTQ_DESC_F_WRITE, 0};
	memcpy(g(0x20000), &d, sizeof(d));
	uint16_t one = 1, used = 0;
	memcpy(g(0x21000 + 2), &one, 2);
	wr(RNG, VMMIO_QUEUE_NOTIFY, 0);
	for (int i = 0; i < 2000 && used != 1; i++) {
		sleep_ms(1);
		memcpy(&used, g(0x22000 + 2), 2);
	}
	assert_int_equal(used, 1);
}

/* Transmit chains: no header, a header promising offloads never
 * negotiated, sizes no frame has. */
static void test_tx_bad(void **state)
{
	(void)state;
	uint8_t buf[256], eth[100];
	vnet = false;
	frame(eth, NULL, 100, 4);
	vnet = true;
	static const struct {
		uint8_t hdr[12];
		const char *what;
	} bad_hdr[] = {
	    {{1, 0}, "NEEDS_CSUM without CSUM"},      {{0, 1}, "GSO_TCPV4 without HOST_TSO4"},
	    {{0, 4}, "GSO_TCPV6 without HOST_TSO6"},  {{0, 3}, "GSO_UDP: never offered"},
	    {{2, 0}, "DATA_VALID is a receive flag"},
	};
	assert_false(drv_init(BASIC) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	for (unsigned i = 0; i < sizeof(bad_hdr) / sizeof(bad_hdr[0]); i++) {
		post_tx((uint16_t)(2 * (i % 4)), bad_hdr[i].hdr, eth, 100);
		kick(TXQ);
		assert_true(wait_used(TXQ, (uint16_t)(i + 1)));
		if (peer_recv(buf, sizeof(buf), 20) >= 0)
			fail_msg("%s: the frame went out", bad_hdr[i].what);
	}
	/* too short, too long: dropped */
	uint8_t zero[12] = {0};
	post_tx(0, zero, eth, 10);
	kick(TXQ);
	assert_true(wait_used(TXQ, 6));
	memcpy(g(TXBUF + 0x40000), zero, 12);
	desc(TXQ, 2, TXBUF + 0x40000, 12 + 70000, 0, 0);
	publish(TXQ, 2);
	kick(TXQ);
	assert_true(wait_used(TXQ, 7));
	assert_true(peer_recv(buf, sizeof(buf), 20) < 0);
	assert_false(status() & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* a good one still goes out */
	post_tx(4, zero, eth, 100);
	kick(TXQ);
	assert_int_equal(peer_recv(buf, sizeof(buf), 2000), 112);
	/* a chain without a header: NEEDS_RESET */
	desc(TXQ, 6, TXBUF, 8, 0, 0);
	publish(TXQ, 6);
	kick(TXQ);
	assert_true(wait_status(VIRTIO_STATUS_DEVICE_NEEDS_RESET, true));
	assert_true(peer_recv(buf, sizeof(buf), 20) < 0);
}

/* Negotiated offloads pass, in both directions; receive headers the guest
 * cannot take are dropped, DATA_VALID cleared without GUEST_CSUM. */
static void test_offloads(void **state)
{
	(void)state;
	uint8_t f[256], buf[256], eth[100];
	uint32_t id, len;
	assert_false(drv_init(BASIC | F_MRG) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	for (uint16_t h = 0; h < 4; h++)
		post_rx(h, 2048);
	kick(RXQ);
	static const uint8_t needs_csum[12] = {1, 0, 0, 0, 0, 0, 34, 0, 16, 0};
	static const uint8_t data_valid[12] = {2};
	static const uint8_t tso4[12] = {1, 1, 54, 0, 0x5a, 0x05, 34, 0, 16, 0};
	peer_send(f, frame(f, needs_csum, 100, 1)); /* dropped */
	peer_send(f, frame(f, tso4, 100, 1));	    /* dropped */
	peer_send(f, frame(f, data_valid, 100, 2)); /* delivered, flag cleared */
	assert_true(wait_used(RXQ, 1));
	assert_int_equal(*g(RXBUF), 0);
	sleep_ms(20);
	assert_int_equal(used_idx(RXQ), 1);

	/* with the offloads negotiated */
	assert_false(drv_init(BASIC | F_MRG | OFFLOADS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	for (uint16_t h = 0; h < 4; h++)
		post_rx(h, 2048);
	kick(RXQ);
	peer_send(f, frame(f, needs_csum, 100, 1));
	peer_send(f, frame(f, tso4, 100, 1));
	assert_true(wait_used(RXQ, 2));
	used_elem(RXQ, 1, &id, &len);
	assert_memory_equal(g(RXBUF + 0x1000ull * id), tso4, 10);
	vnet = false;
	frame(eth, NULL, 100, 4);
	vnet = true;
	post_tx(0, tso4, eth, 100);
	kick(TXQ);
	assert_int_equal(peer_recv(buf, sizeof(buf), 2000), 112);
	assert_memory_equal(buf, tso4, 10);
}

/* 5.1.3.1: what depends on what; only what was offered. */
static void test_feature_dependencies(void **state)
{
	(void)state;
	static const uint64_t refused[] = {
	    BASIC | F_GUEST_TSO4,     /* without GUEST_CSUM */
	    BASIC | F_GUEST_TSO6,     /* without GUEST_CSUM */
	    BASIC | F_HOST_TSO4,      /* without CSUM */
	    BASIC | F_HOST_TSO6,      /* without CSUM */
	    BASIC | F_GUEST_ANNOUNCE, /* without CTRL_VQ */
	    F_MAC,		      /* without VERSION_1 */
	    BASIC | F(22),	      /* MQ: never offered */
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (drv_init(refused[i]) & VIRTIO_STATUS_FEATURES_OK)
			fail_msg("features 0x%llx accepted", (unsigned long long)refused[i]);
	assert_true(drv_init(BASIC | F_GUEST_CSUM | F_GUEST_TSO4 | F_CSUM | F_HOST_TSO6) &
		    VIRTIO_STATUS_FEATURES_OK);
}

/* ---- the control queue ---- */

/* A control command at head h: class, cmd (readable), ack (writable). */
static uint8_t ctrl(uint16_t h, uint8_t class, uint8_t cmd)
{
	uint64_t b = CTBUF + 0x100ull * h;
	*g(b) = class;
	*g(b + 1) = cmd;
	*g(b + 64) = 0xee;
	desc(CTRLQ, h, b, 2, VIRTQ_DESC_F_NEXT, (uint16_t)(h + 1));
	desc(CTRLQ, h + 1u, b + 64, 1, VIRTQ_DESC_F_WRITE, 0);
	publish(CTRLQ, h);
	uint16_t want = aidx[CTRLQ];
	kick(CTRLQ);
	assert_true(wait_used(CTRLQ, want));
	return *g(b + 64);
}

static void test_ctrl(void **state)
{
	(void)state;
	assert_false(drv_init(BASIC | F_CTRL_VQ | F_GUEST_ANNOUNCE) &
		     VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(ctrl(0, 3, 0), 0);   /* ANNOUNCE_ACK: OK */
	assert_int_equal(ctrl(2, 0, 0), 1);   /* RX mode (CTRL_RX not offered): ERR */
	assert_int_equal(ctrl(4, 200, 7), 1); /* unknown: ERR */
	/* without GUEST_ANNOUNCE the ack is refused too */
	assert_false(drv_init(BASIC | F_CTRL_VQ) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(ctrl(0, 3, 0), 1);
	/* a command without room for the answer: NEEDS_RESET */
	*g(CTBUF) = 3;
	desc(CTRLQ, 6, CTBUF, 2, 0, 0);
	publish(CTRLQ, 6);
	kick(CTRLQ);
	assert_true(wait_status(VIRTIO_STATUS_DEVICE_NEEDS_RESET, true));
}

/* ---- the tap misbehaving ---- */

/* The tap takes no more (its queue is full): those frames are dropped and
 * counted, every chain comes back, the card works on. */
static void test_tap_refuses_frames(void **state)
{
	(void)state;
	assert_false(drv_init(BASIC) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	uint8_t hdr[12] = {0}, eth[1514], buf[2048];
	vnet = false;
	frame(eth, NULL, 1514, 4);
	vnet = true;
	/* 32 frames, not read: an 8 KiB send buffer (4 KiB doubled) holds a few */
	memcpy(g(TXBUF), hdr, 12);
	memcpy(g(TXBUF + 12), eth, 1514);
	for (uint16_t round = 1; round <= 4; round++) {
		for (uint16_t i = 0; i < QNUM; i++) {
			desc(TXQ, i, TXBUF, 12 + 1514, 0, 0);
			publish(TXQ, i);
		}
		kick(TXQ);
		assert_true(wait_used(TXQ, (uint16_t)(round * QNUM)));
	}
	int got = 0;
	while (peer_recv(buf, sizeof(buf), 20) > 0)
		got++;
	assert_true(got >= 1 && got < 32);
	assert_false(status() & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	publish(TXQ, 0);
	kick(TXQ);
	assert_int_equal(peer_recv(buf, sizeof(buf), 2000), 12 + 1514);
}

/* The tap vanishes: link down (status bit and a config interrupt), frames
 * sent are dropped but their chains come back; no reset needed. */
static void test_tap_vanishes(void **state)
{
	(void)state;
	assert_false(drv_init(BASIC | F_MRG) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	post_rx(0, 2048);
	kick(RXQ);
	uint32_t gen = rd(NET, VMMIO_CONFIG_GENERATION);
	close(peer);
	peer = -1;
	for (int i = 0; i < 2000 && (cfg_status() & 1); i++)
		sleep_ms(1);
	assert_int_equal(cfg_status() & 1, 0);
	assert_true(rd(NET, VMMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	assert_int_not_equal(rd(NET, VMMIO_CONFIG_GENERATION), gen);
	uint8_t hdr[12] = {0}, eth[60];
	vnet = false;
	frame(eth, NULL, 60, 1);
	vnet = true;
	post_tx(2, hdr, eth, 60);
	kick(TXQ);
	assert_true(wait_used(TXQ, 1));
	assert_false(status() & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(used_idx(RXQ), 0);
}

/* ---- migration ---- */

/* Quiesce gives back the chains a waiting frame held (none stays taken);
 * activate drops what the tap queued before Go and announces by RARP when
 * the guest did not negotiate GUEST_ANNOUNCE: 5 rounds, growing gaps. */
static void test_migration_rarp(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	struct device *dev = &vm.devices[1];
	assert_false(drv_init(BASIC | F_MRG) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	uint8_t f[4096], buf[256];
	post_rx(0, 1024);
	kick(RXQ);
	peer_send(f, frame(f, NULL, 2500, 5)); /* needs 3 buffers: holds the one */
	sleep_ms(50);
	assert_int_equal(vm.devices[1].type, &device_virtio_net);
	assert_int_equal(dev->type->quiesce(dev, &err), 0);
	struct virtio_mmio *t = dev->state;
	assert_int_equal(t->s->q[RXQ].last_avail_idx, 0); /* given back */
	assert_int_equal(used_idx(RXQ), 0);
	/* frames the tap queues during the switch-over are stale at Go */
	for (int i = 0; i < 3; i++)
		peer_send(f, frame(f, NULL, 60, (uint8_t)i));
	post_rx(1, 1024);
	post_rx(2, 1024);
	post_rx(3, 1024);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(dev->type->activate(dev, &err), 0);
	int rarps = 0;
	ssize_t n;
	while ((n = peer_recv(buf, sizeof(buf), 1500)) > 0) {
		assert_int_equal(n, 12 + 60);
		assert_memory_equal(buf + 12, "\xff\xff\xff\xff\xff\xff", 6);
		assert_memory_equal(buf + 18, MAC, 6);
		assert_int_equal(buf[24], 0x80);
		assert_int_equal(buf[25], 0x35);
		assert_memory_equal(buf + 12 + 22, MAC, 6);
		if (++rarps == 5)
			break;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(rarps, 5);
	double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms >= 700); /* 0, 50, 200, 450, 800 ms */
	sleep_ms(30);
	assert_int_equal(used_idx(RXQ), 0); /* none of the stale frames reached the guest */
	struct virtio_net_announce a;
	assert_true(virtio_net_announce_info(dev, &a));
	assert_int_equal(a.rounds, 5);
	assert_int_equal(a.rarp_frames, 5);
	assert_false(a.guest);
	/* and the card receives again */
	peer_send(f, frame(f, NULL, 60, 9));
	assert_true(wait_used(RXQ, 1));
}

/* With GUEST_ANNOUNCE the guest announces itself: the status bit and a
 * config interrupt per round, the next round after its acknowledgement. */
static void test_migration_guest_announce(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	struct device *dev = &vm.devices[1];
	assert_false(drv_init(BASIC | F_CTRL_VQ | F_GUEST_ANNOUNCE) &
		     VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(dev->type->quiesce(dev, &err), 0);
	assert_int_equal(dev->type->activate(dev, &err), 0);
	uint8_t buf[128];
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 2000 && !(cfg_status() & 2); i++)
			sleep_ms(1);
		assert_int_equal(cfg_status() & 2, 2);
		assert_true(rd(NET, VMMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
		wr(NET, VMMIO_INTERRUPT_ACK, VIRTIO_INT_CONFIG);
		assert_int_equal(ctrl((uint16_t)(2 * (round % 4)), 3, 0), 0);
		assert_int_equal(cfg_status() & 2, 0);
	}
	assert_true(peer_recv(buf, sizeof(buf), 100) < 0); /* no RARP: the guest did it */
	struct virtio_net_announce a;
	assert_true(virtio_net_announce_info(dev, &a));
	assert_int_equal(a.rounds, 5);
	assert_int_equal(a.guest_requests, 5);
	assert_int_equal(a.guest_acks, 5);
	assert_true(a.guest);
	assert_int_equal(a.rarp_frames, 0);
}

/* The Header's identity check: MAC, offer and count, before Accepted. */
static void test_header_identity(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	Vmm__Migration__Header h = VMM__MIGRATION__HEADER__INIT;
	Vmm__Migration__RamRegion rg[GUEST_MEM_MAX_REGIONS], *rgp[GUEST_MEM_MAX_REGIONS];
	for (unsigned i = 0; i < vm.mem.nregions; i++) {
		vmm__migration__ram_region__init(&rg[i]);
		rg[i].gpa = vm.mem.regions[i].gpa;
		rg[i].size = vm.mem.regions[i].size;
		rgp[i] = &rg[i];
	}
	h.n_ram = vm.mem.nregions;
	h.ram = rgp;
	uint8_t mac[6];
	memcpy(mac, MAC, 6);
	Vmm__Migration__NetInfo ni = VMM__MIGRATION__NET_INFO__INIT, *nip[] = {&ni};
	ni.name = "net0";
	ni.mac = (ProtobufCBinaryData){6, mac};
	ni.features = 0x1302399a3ull;
	h.n_nets = 1;
	h.nets = nip;
	assert_int_equal(mig_header_check_vm(&h, &vm, &err), 0);
	mac[5] ^= 1;
	assert_int_equal(mig_header_check_vm(&h, &vm, &err), -EINVAL);
	assert_string_equal(err.msg, "net mismatch: net0 has MAC 52:54:00:ab:cd:ee at the source, "
				     "52:54:00:ab:cd:ef here");
	mac[5] ^= 1;
	ni.features |= 1ull << 22;
	assert_int_equal(mig_header_check_vm(&h, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "net0 offers features 0x1306399a3 at the source"));
	ni.features = 0x1302399a3ull;
	ni.name = "net1";
	assert_int_equal(mig_header_check_vm(&h, &vm, &err), -EINVAL);
	assert_string_equal(err.msg, "net mismatch: net0 is not in the stream");
	h.n_nets = 0; /* an older source without cards */
	assert_int_equal(mig_header_check_vm(&h, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "net0 is not in the stream"));
	Vmm__Migration__Header basic = h;
	basic.n_nets = VM_MAX_NETS + 1;
	basic.nets = NULL;
	basic.format_major = MIG_FORMAT_MAJOR;
	basic.machine_type = basic.cpu_model = basic.cpu_model_spec = "x";
	Vmm__Migration__CpuidTable ct = VMM__MIGRATION__CPUID_TABLE__INIT, *ctp[] = {&ct};
	basic.vcpu_count = 1, basic.n_cpuid = 1, basic.cpuid = ctp, basic.page_size = 4096;
	basic.ram_size = 1 << 20;
	assert_int_equal(mig_header_check_basic(&basic, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "network cards"));
}

/* ---- the command line ---- */

static void test_net_options(void **state)
{
	(void)state;
	struct vm_request r;
	struct vmm_error err = {0};
	memset(&r, 0, sizeof(r));
	assert_int_equal(vm_request_add_net(&r, "tap=tap0", &err), 0);
	assert_string_equal(r.nets[0].tap, "tap0");
	assert_memory_equal(r.nets[0].mac, "\x52\x54\x00\x12\x34\x56", 6);
	assert_false(r.nets[0].use_fd);
	assert_int_equal(vm_request_add_net(&r, "mac=02:00:00:aa:BB:cc,tap=tap1", &err), 0);
	assert_memory_equal(r.nets[1].mac, "\x02\x00\x00\xaa\xbb\xcc", 6);
	assert_int_equal(vm_request_add_net(&r, "tap=tap2", &err), 0);
	assert_memory_equal(r.nets[2].mac, "\x52\x54\x00\x12\x34\x58", 6); /* + index */
	static const struct {
		const char *arg, *msg;
	} bad[] = {
	    {"mac=52:54:00:12:34:99", "no tap=IFNAME"},
	    {"tap=", "not an interface name"},
	    {"tap=0123456789abcdef", "not an interface name"},
	    {"tap=a/b", "not an interface name"},
	    {"tap=a b", "not an interface name"},
	    {"tap=..", "not an interface name"},
	    {"tap=t9,mac=01:00:5e:00:00:01", "multicast"},
	    {"tap=t9,mac=00:00:00:00:00:00", "all zeros"},
	    {"tap=t9,mac=52:54:00:12:34", "six hex bytes"},
	    {"tap=t9,mac=52:54:00:12:34:5g", "six hex bytes"},
	    {"tap=t9,mac=52:54:00:12:34:566", "six hex bytes"},
	    {"tap=t9,mac= 2:54:00:12:34:56", "six hex bytes"},
	    {"tap=t9,vhost=on", "unknown key"},
	    {"tap=t9,junk", "not KEY=VALUE"},
	    {"tap=tap0", "given twice"},
	    {"tap=t9,mac=02:00:00:aa:bb:cc", "two cards with MAC"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (vm_request_add_net(&r, bad[i].arg, &err) >= 0)
			fail_msg("--net %s accepted", bad[i].arg);
		if (!strstr(err.msg, bad[i].msg))
			fail_msg("--net %s: \"%s\" does not say \"%s\"", bad[i].arg, err.msg,
				 bad[i].msg);
	}
	assert_int_equal(vm_request_add_net(&r, "tap=tap3", &err), 0);
	assert_int_equal(vm_request_add_net(&r, "tap=tap4", &err), -E2BIG);
}

/* The real thing (root and /dev/net/tun, else skipped): a tap vmm creates
 * is up, takes virtio-net headers and has its offloads probed; a second
 * opener is refused (a tap serves one vmm); a name that is not a tap is
 * refused; closing removes what vmm created. */
static void test_real_tap(void **state)
{
	(void)state;
	if (geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK) != 0)
		skip();
	char name[16];
	snprintf(name, sizeof(name), "vmmut%d", (int)getpid() % 100000);
	struct vm_net conf = {.fd = -1};
	snprintf(conf.tap, sizeof(conf.tap), "%s", name);
	struct net_tap tap, second;
	struct vmm_error err = {0};
	if (net_tap_open(&conf, &tap, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(tap.created && tap.is_tap && tap.vnet_hdr);
	assert_true(tap.can & NET_TAP_CSUM); /* Linux has taken checksums since 2.6.27 */
	assert_int_equal(tap.offloads, 0);   /* none until the guest accepts some */
	unsigned idx = if_nametoindex(name);
	assert_int_not_equal(idx, 0);
	char path[64], flags[32] = {0};
	snprintf(path, sizeof(path), "/sys/class/net/%s/flags", name);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(flags, sizeof(flags), f));
	fclose(f);
	assert_true(strtoul(flags, NULL, 0) & 1); /* IFF_UP */
	assert_int_equal(net_tap_set_offloads(&tap, NET_TAP_CSUM, &err), 0);
	assert_int_equal(net_tap_open(&conf, &second, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "attached to another process"));
	net_tap_close(&second);
	net_tap_close(&tap);
	assert_int_equal(if_nametoindex(name), 0); /* gone with vmm's descriptor */
	snprintf(conf.tap, sizeof(conf.tap), "lo");
	assert_true(net_tap_open(&conf, &tap, &err) < 0);
	assert_non_null(strstr(err.msg, "--net tap=lo: "));
	net_tap_close(&tap);
}

static void test_old_machines_refuse(void **state)
{
	(void)state;
	static const char *const old[] = {"microvm-1.0", "microvm-1.1"};
	for (int i = 0; i < 2; i++) {
		static struct vm o;
		struct vmm_error err = {0};
		vm_init(&o);
		o.spec.serial = SERIAL_NONE;
		o.spec.nnets = 1;
		o.spec.nets[0] = (struct vm_net){.tap = "t0", .fd = -1};
		assert_int_equal(machine_resolve(old[i], &o.spec.machine, &err), 0);
		assert_int_equal(vm_create_virtio_devices(&o, &err), -ENODEV);
		assert_non_null(strstr(err.msg, "--net: machine type "));
		assert_non_null(strstr(err.msg, "the first version with them is microvm-1.2"));
		vm_destroy_devices(&o);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ids_and_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_vnet_header_no_offloads, setup_plain, teardown),
	    cmocka_unit_test_setup_teardown(test_tx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_mergeable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_too_big_for_buffer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_oversized_from_tap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_larger_than_queue, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_waits_for_buffers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_bad_chains, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_bad, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_offloads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_feature_dependencies, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ctrl, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tap_refuses_frames, setup_small_sndbuf, teardown),
	    cmocka_unit_test_setup_teardown(test_tap_vanishes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migration_rarp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migration_guest_announce, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_header_identity, setup, teardown),
	    cmocka_unit_test(test_net_options),
	    cmocka_unit_test(test_real_tap),
	    cmocka_unit_test(test_old_machines_refuse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

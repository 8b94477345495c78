/*
 * tests/fuzz/virtio_net.c: the virtio-net card (core/devices/
 * virtio_net.c) with its three queues on guest memory made of fuzzer input
 * and a socketpair standing in for its tap. The card's I/O thread is
 * stopped at once, so every queue is processed here, in order: the run is
 * deterministic.
 *
 * Input: 16 bytes of set-up, then guest RAM from address 0 (64 KiB).
 *   [0..3]   driver features (little-endian; masked to the card's offer,
 *            VERSION_1 always), [4] log2 queue sizes (2 bits each),
 *   [5..13]  ring pages of the three queues (desc, avail, used) << 8,
 *   [14]     frames to inject into the tap (low 3 bits) and whether to pass
 *            through quiesce/activate (bit 3), [15] frame size seed.
 * Frames come from RAM bytes at fixed offsets (sizes 0..70000: runts,
 * normal, larger than any frame), with or without offload headers.
 *
 * Checked after each run: every guest byte that changed was marked dirty
 * (else a migration would lose it), and lies in a buffer the driver made
 * device-writable or in a used ring (when no writable buffer overlaps a
 * ring or table: then the tables themselves could change under the card);
 * every frame written to the tap stays within the offloads negotiated.
 * ASan/UBSan (with -Dfuzz=true) catch the rest.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/devices/devices.h"
#include "core/virtio/virtio.h"
#include "tests/fuzz/fuzz.h"

#define RAM_SIZE (64u << 10)
#define NET_BASE 0xfeb00000ull
#define F_CSUM	 (1ull << 0)
#define HOST_TSO ((1ull << 11) | (1ull << 12))

static void check(int cond)
{
	if (!cond)
		abort(); /* the card broke its contract */
}

static struct vm vm;
static uint8_t *ram, *before, *dirty, *writable;
static int peer = -1;
static struct device *dev;

/* The fuzz target's own dirty log: records what the card says it wrote. */
void guest_memory_mark_dirty(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	(void)mem;
	for (uint64_t i = 0; i < len && gpa + i < RAM_SIZE; i++)
		dirty[gpa + i] = 1;
}

void guest_memory_take_dirty(const struct guest_memory *mem, unsigned region, unsigned long *bitmap,
			     size_t words)
{
	(void)mem, (void)region, (void)bitmap, (void)words;
}

static int init(void)
{
	ram = aligned_alloc(4096, RAM_SIZE);
	before = malloc(RAM_SIZE);
	dirty = malloc(RAM_SIZE);
	writable = malloc(RAM_SIZE);
	int sv[2];
	if (!ram || !before || !dirty || !writable ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	int big = 1 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	vm_init(&vm);
	vm.spec.serial = SERIAL_NONE;
	vm.spec.nnets = 1;
	vm.spec.nets[0] = (struct vm_net){.tap = "fuzz",
					  .mac = {0x52, 0x54, 0, 0x12, 0x34, 0x56},
					  .use_fd = true,
					  .fd = sv[1],
					  .fd_vnet_hdr = true};
	if (machine_resolve("microvm-1.2", &vm.spec.machine, NULL) < 0)
		return -1;
	vm.mem = (struct guest_memory){.fd = -1, .size = RAM_SIZE, .base = ram, .nregions = 1};
	vm.mem.regions[0] = (struct mem_region){.gpa = 0, .size = RAM_SIZE, .hva = ram};
	if (vm_create_virtio_devices(&vm, NULL) < 0)
		return -1;
	close(sv[1]);
	peer = sv[0];
	dev = &vm.devices[0];
	/* no I/O thread: this thread processes every queue, in a fixed order */
	iothread_destroy(&((struct virtio_mmio *)dev->state)->io);
	return 0;
}

static void wr(uint64_t off, uint32_t v)
{
	io_bus_access(&vm.mmio, NET_BASE + off, (uint8_t *)&v, 4, true);
}

/* What the driver made device-writable: direct and indirect descriptors. */
static void allow(uint64_t addr, uint64_t len)
{
	for (uint64_t i = 0; i < len && addr + i < RAM_SIZE; i++)
		writable[addr + i] = 1;
}

static bool overlaps(uint64_t a, uint64_t alen)
{
	for (uint64_t i = 0; i < alen && a + i < RAM_SIZE; i++)
		if (writable[a + i])
			return true;
	return false;
}

/* Marks every writable buffer; returns false when one of them covers a ring
 * or a table (then what the card may write is not known in advance). */
static bool map_writable(const struct virtq_state *qs, unsigned nq)
{
	memset(writable, 0, RAM_SIZE);
	for (unsigned q = 0; q < nq; q++) {
		if (!qs[q].ready)
			continue;
		for (unsigned i = 0; i < qs[q].num; i++) {
			struct virtq_desc d;
			memcpy(&d, ram + qs[q].desc + 16ull * i, sizeof(d));
			if (d.flags & VIRTQ_DESC_F_WRITE)
				allow(d.addr, d.len);
			if ((d.flags & VIRTQ_DESC_F_INDIRECT) && d.addr < RAM_SIZE &&
			    d.len <= RAM_SIZE - d.addr)
				for (uint64_t j = 0; j + 16 <= d.len; j += 16) {
					struct virtq_desc e;
					memcpy(&e, ram + d.addr + j, sizeof(e));
					if (e.flags & VIRTQ_DESC_F_WRITE)
						allow(e.addr, e.len);
				}
		}
	}
	for (unsigned q = 0; q < nq; q++) {
		if (!qs[q].ready)
			continue;
		unsigned n = qs[q].num;
		if (overlaps(qs[q].desc, 16ull * n) || overlaps(qs[q].avail, 6ull + 2 * n) ||
		    overlaps(qs[q].used, 6ull + 8 * n))
			return false;
		for (unsigned i = 0; i < n; i++) { /* indirect tables */
			struct virtq_desc d;
			memcpy(&d, ram + qs[q].desc + 16ull * i, sizeof(d));
			if ((d.flags & VIRTQ_DESC_F_INDIRECT) && overlaps(d.addr, d.len))
				return false;
		}
	}
	for (unsigned q = 0; q < nq; q++)
		if (qs[q].ready)
			allow(qs[q].used, 6ull + 8 * qs[q].num);
	return true;
}

static void process(struct virtio_mmio *t, unsigned q)
{
	pthread_mutex_lock(&dev->lock);
	if (virtio_mmio_running(t) && t->s->q[q].ready && !t->vq[q].broken)
		t->ops->queue_notify(t, q);
	pthread_mutex_unlock(&dev->lock);
}

/* Frames the card wrote to its tap: within the negotiated offloads. */
static void drain_tap(uint64_t features)
{
	static uint8_t buf[70000];
	ssize_t n;
	while ((n = recv(peer, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		check(n >= 12 + 14 && n <= 12 + 65535 + 18);
		if (!(features & F_CSUM))
			check(buf[0] == 0);
		if (!(features & HOST_TSO))
			check(buf[1] == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	static uint8_t frame[70000];
	if (!ready) {
		if (init() < 0)
			abort();
		ready = true;
	}
	if (size < 16)
		return 0;
	struct virtio_mmio *t = dev->state;
	/* what the last input left in the card: a frame in its tap, one waiting */
	dev->type->quiesce(dev, NULL);
	dev->type->activate(dev, NULL);
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + 16, size - 16 < RAM_SIZE ? size - 16 : RAM_SIZE);

	/* driver set-up through the registers, as a guest would */
	wr(VMMIO_STATUS, 0);
	wr(VMMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	uint32_t lo;
	memcpy(&lo, data, 4);
	uint64_t features = (t->offered & lo) | (1ull << 32);
	wr(VMMIO_DRIVER_FEATURES_SEL, 0);
	wr(VMMIO_DRIVER_FEATURES, (uint32_t)features);
	wr(VMMIO_DRIVER_FEATURES_SEL, 1);
	wr(VMMIO_DRIVER_FEATURES, 1);
	wr(VMMIO_STATUS,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	for (unsigned q = 0; q < 3; q++) {
		wr(VMMIO_QUEUE_SEL, q);
		wr(VMMIO_QUEUE_NUM, 1u << (2 + (data[4] >> (2 * q) & 3))); /* 4..32 */
		wr(VMMIO_QUEUE_DESC_LOW, (uint32_t)data[5 + 3 * q] << 8);
		wr(VMMIO_QUEUE_DRIVER_LOW, (uint32_t)data[6 + 3 * q] << 8);
		wr(VMMIO_QUEUE_DEVICE_LOW, (uint32_t)data[7 + 3 * q] << 8);
		wr(VMMIO_QUEUE_READY, 1);
	}
	wr(VMMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	features = t->s->driver_features;

	memcpy(before, ram, RAM_SIZE);
	memset(dirty, 0, RAM_SIZE);
	bool exact = map_writable(t->s->q, 3);

	process(t, 1); /* transmit */
	process(t, 2); /* control */
	unsigned nframes = data[14] & 7;
	for (unsigned i = 0; i < nframes; i++) {
		static const size_t sizes[] = {0, 5, 26, 60, 1514, 4000, 65000, 70000};
		size_t len = sizes[(data[15] + i) & 7];
		/* a header from RAM (offloads the guest may not have taken), then bytes */
		for (size_t j = 0; j < len; j++)
			frame[j] = ram[(1024 * i + j) % RAM_SIZE];
		if (len)
			send(peer, frame, len, MSG_DONTWAIT);
	}
	if (data[14] & 8) { /* a migration's switch-over in the middle */
		dev->type->quiesce(dev, NULL);
		dev->type->activate(dev, NULL);
	}
	process(t, 0); /* receive */
	process(t, 0); /* again: a frame may wait for buffers */
	drain_tap(features);

	for (size_t i = 0; i < RAM_SIZE; i++) {
		if (ram[i] == before[i])
			continue;
		check(dirty[i]);	      /* every write is in the dirty log */
		check(!exact || writable[i]); /* and lands where the driver allowed */
	}
	/* leftovers from this input must not reach the next one */
	while (recv(peer, frame, sizeof(frame), MSG_DONTWAIT) > 0)
		;
	return 0;
}

/*
 * tests/unit/test_virtio.c: the descriptor-chain walker and the virtio
 * devices against guest memory the test writes like a hostile driver.
 * No KVM: guest RAM is the real memfd-backed guest_memory, the devices are
 * created on a VM without /dev/kvm (no irqfd/ioeventfd: QueueNotify goes
 * through the MMIO handler to the device's I/O thread).
 *
 * Every malformed-queue case of the issue: chains that loop, point outside
 * guest RAM, exceed the queue size or claim huge lengths; bad indirect
 * tables; bad queue sizes and ring addresses; writes to a read-only disk.
 * The device must set DEVICE_NEEDS_RESET (or fail the request), keep the
 * process alive, and write nothing where it must not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/devices/devices.h"
#include "core/virtio/virtio.h"

#define RAM   (16u << 20)
#define DESC  0x10000
#define AVAIL 0x11000
#define USED  0x12000
#define BUF   0x20000
#define QNUM  8

static struct guest_memory mem;
static struct virtq_state qs;
static struct virtq vq;
static struct virtq_chain chain;

static uint8_t *g(uint64_t gpa)
{
	return guest_ptr(&mem, gpa, 1);
}

static void desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	struct virtq_desc d = {addr, len, flags, next};
	memcpy(g(table + 16ull * i), &d, sizeof(d));
}

/* Makes head available as avail entry `slot` and sets avail idx. */
static void avail(unsigned slot, uint16_t head, uint16_t idx)
{
	memcpy(g(AVAIL + 4 + 2 * slot), &head, 2);
	memcpy(g(AVAIL + 2), &idx, 2);
}

static int setup(void **state)
{
	(void)state;
	struct machine m;
	assert_int_equal(machine_resolve("microvm-1.2", &m, NULL), 0);
	assert_int_equal(guest_memory_create(&mem, RAM, false, &m, NULL), 0);
	memset(mem.base, 0, RAM);
	qs = (struct virtq_state){.desc = DESC, .avail = AVAIL, .used = USED, .num = QNUM};
	vq = (struct virtq){.s = &qs, .mem = &mem, .num_max = 256, .indirect = true};
	assert_int_equal(virtq_setup(&vq, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	guest_memory_destroy(&mem);
	return 0;
}

/* Fresh RAM and queue between cases of one test. */
static void again(void)
{
	teardown(NULL);
	setup(NULL);
}

static int pop(struct vmm_error *err)
{
	return virtq_pop(&vq, &chain, err);
}

static void test_valid_chain(void **state)
{
	(void)state;
	desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 3);
	desc(DESC, 3, BUF + 0x1000, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 5);
	desc(DESC, 5, BUF + 0x3000, 1, VIRTQ_DESC_F_WRITE, 0);
	avail(0, 0, 1);
	assert_int_equal(pop(NULL), 1);
	assert_int_equal(chain.head, 0);
	assert_int_equal(chain.nseg, 3);
	assert_int_equal(chain.n_out, 1);
	assert_int_equal(chain.out_len, 16);
	assert_int_equal(chain.in_len, 4097);
	assert_ptr_equal(chain.iov[1].iov_base, g(BUF + 0x1000));
	assert_int_equal(pop(NULL), 0); /* nothing more */
	virtq_push(&vq, chain.head, 4097);
	uint16_t used_idx;
	uint32_t id, len;
	memcpy(&used_idx, g(USED + 2), 2);
	memcpy(&id, g(USED + 4), 4);
	memcpy(&len, g(USED + 8), 4);
	assert_int_equal(used_idx, 1);
	assert_int_equal(id, 0);
	assert_int_equal(len, 4097);
}

static void expect_broken(int code, const char *what)
{
	struct vmm_error err = {0};
	uint8_t used_before[64];
	memcpy(used_before, g(USED), sizeof(used_before));
	assert_int_equal(pop(&err), code);
	assert_true(vq.broken);
	assert_non_null(strstr(err.msg, what));
	assert_int_equal(qs.last_avail_idx, 0);				/* nothing taken */
	assert_memory_equal(used_before, g(USED), sizeof(used_before)); /* nothing written */
	assert_int_equal(pop(NULL), 0); /* a broken queue stays quiet */
}

static void test_loop(void **state)
{
	(void)state;
	desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(DESC, 1, BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	avail(0, 0, 1);
	expect_broken(-ELOOP, "a loop");
}

static void test_self_loop_indirect(void **state)
{
	(void)state;
	desc(DESC, 0, BUF, 32, VIRTQ_DESC_F_INDIRECT, 0);
	desc(BUF, 0, BUF + 0x1000, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(BUF, 1, BUF + 0x1000, 16, VIRTQ_DESC_F_NEXT, 0);
	avail(0, 0, 1);
	expect_broken(-ELOOP, "a loop");
}

static void test_outside_ram(void **state)
{
	(void)state;
	desc(DESC, 0, RAM - 8, 16, 0, 0); /* straddles the end of RAM */
	avail(0, 0, 1);
	expect_broken(-EFAULT, "outside guest RAM");
}

static void test_huge_length(void **state)
{
	(void)state;
	desc(DESC, 0, BUF, 0xffffffffu, VIRTQ_DESC_F_WRITE, 0);
	avail(0, 0, 1);
	expect_broken(-EFAULT, "outside guest RAM");
}

static void test_avail_beyond_queue_size(void **state)
{
	(void)state;
	desc(DESC, 0, BUF, 16, 0, 0);
	avail(0, 0, QNUM + 1); /* more entries than the queue holds */
	expect_broken(-EPROTO, "entries ahead");
}

static void test_head_beyond_queue_size(void **state)
{
	(void)state;
	avail(0, QNUM, 1);
	expect_broken(-EPROTO, "beyond queue size");
}

static void test_next_beyond_queue_size(void **state)
{
	(void)state;
	desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, QNUM);
	avail(0, 0, 1);
	expect_broken(-EPROTO, "next 8 beyond 8");
}

static void test_readable_after_writable(void **state)
{
	(void)state;
	desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	desc(DESC, 1, BUF, 16, 0, 0);
	avail(0, 0, 1);
	expect_broken(-EPROTO, "device-readable segment after");
}

static void test_indirect_rules(void **state)
{
	(void)state;
	/* nested */
	desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc(BUF, 0, BUF + 0x1000, 16, VIRTQ_DESC_F_INDIRECT, 0);
	avail(0, 0, 1);
	expect_broken(-EPROTO, "inside an indirect table");
	again();
	/* INDIRECT together with NEXT */
	desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	avail(0, 0, 1);
	expect_broken(-EPROTO, "also has NEXT");
	again();
	/* a table length that is no multiple of 16, and a huge one */
	desc(DESC, 0, BUF, 20, VIRTQ_DESC_F_INDIRECT, 0);
	avail(0, 0, 1);
	expect_broken(-EPROTO, "multiple of 16");
	again();
	desc(DESC, 0, BUF, 0xfffffff0u, VIRTQ_DESC_F_INDIRECT, 0);
	avail(0, 0, 1);
	expect_broken(-EPROTO, "indirect table");
	again();
	/* the table outside RAM */
	desc(DESC, 0, RAM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	avail(0, 0, 1);
	expect_broken(-EFAULT, "outside guest RAM");
	again();
	/* not negotiated */
	vq.indirect = false;
	desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_INDIRECT, 0);
	avail(0, 0, 1);
	expect_broken(-EPROTO, "without VIRTIO_F_INDIRECT_DESC");
	again();
	/* a good one */
	desc(DESC, 0, BUF, 48, VIRTQ_DESC_F_INDIRECT, 0);
	desc(BUF, 0, BUF + 0x1000, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(BUF, 1, BUF + 0x2000, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	desc(BUF, 2, BUF + 0x3000, 1, VIRTQ_DESC_F_WRITE, 0);
	avail(0, 0, 1);
	assert_int_equal(pop(NULL), 1);
	assert_int_equal(chain.nseg, 3);
	assert_int_equal(chain.in_len, 513);
}

static void test_too_many_segments(void **state)
{
	(void)state;
	/* an indirect table of VIRTQ_MAX_SEGS+1 entries is refused up front */
	desc(DESC, 0, BUF, 16 * (VIRTQ_MAX_SEGS + 1), VIRTQ_DESC_F_INDIRECT, 0);
	avail(0, 0, 1);
	expect_broken(-EPROTO, "indirect table");
}

static void test_setup_checks(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	static const struct {
		uint16_t num;
		uint64_t desc, avail, used;
		const char *what;
	} bad[] = {
	    {0, DESC, AVAIL, USED, "power of 2"},
	    {6, DESC, AVAIL, USED, "power of 2"},
	    {512, DESC, AVAIL, USED, "power of 2"}, /* above num_max */
	    {8, DESC + 8, AVAIL, USED, "misaligned"},
	    {8, DESC, AVAIL + 1, USED, "misaligned"},
	    {8, DESC, AVAIL, USED + 2, "misaligned"},
	    {8, RAM - 64, AVAIL, USED, "outside guest RAM"},
	    {8, DESC, 0xfeb00000, USED, "outside guest RAM"},
	    {8, DESC, AVAIL, (1ull << 40), "outside guest RAM"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		qs = (struct virtq_state){.desc = bad[i].desc,
					  .avail = bad[i].avail,
					  .used = bad[i].used,
					  .num = bad[i].num};
		assert_true(virtq_setup(&vq, &err) < 0);
		assert_non_null(strstr(err.msg, bad[i].what));
		assert_null(vq.avail);
		assert_int_equal(pop(NULL), 0);
	}
}

static void test_event_idx(void **state)
{
	(void)state;
	vq.event_idx = true;
	desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
	uint16_t used_event = 0;
	memcpy(g(AVAIL + 4 + 2 * QNUM), &used_event, 2);
	avail(0, 0, 1);
	assert_int_equal(pop(NULL), 1);
	virtq_push(&vq, 0, 16);
	assert_true(virtq_need_interrupt(&vq)); /* used_event 0 crossed */
	avail(1, 0, 2);
	assert_int_equal(pop(NULL), 1);
	virtq_push(&vq, 0, 16);
	assert_false(virtq_need_interrupt(&vq)); /* the driver still wants only index 0 */
	virtq_set_notify(&vq, true);
	uint16_t avail_event;
	memcpy(&avail_event, g(USED + 4 + 8 * QNUM), 2);
	assert_int_equal(avail_event, 2);
}

/* ---- devices through their registers ---- */

#define SLOT0 0xfeb00000ull

static struct vm vm;
static char image[64], ro_image[64];

static uint32_t rd(uint64_t base, uint64_t off)
{
	uint32_t v;
	io_bus_access(&vm.mmio, base + off, (uint8_t *)&v, 4, false);
	return v;
}

static void wr(uint64_t base, uint64_t off, uint32_t v)
{
	io_bus_access(&vm.mmio, base + off, (uint8_t *)&v, 4, true);
}

static int make_image(char *path, size_t size, uint8_t fill)
{
	strcpy(path, "/tmp/vmm-test-virtio-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	uint8_t *buf = malloc(size);
	memset(buf, fill, size);
	ssize_t n = write(fd, buf, size);
	free(buf);
	close(fd);
	return n == (ssize_t)size ? 0 : -1;
}

static int dev_setup(void **state)
{
	(void)state;
	assert_int_equal(make_image(image, 1 << 20, 0xaa), 0);
	assert_int_equal(make_image(ro_image, 1 << 20, 0x55), 0);
	vm_init(&vm);
	vm.spec.serial = SERIAL_NONE;
	snprintf(vm.spec.disks[0].path, sizeof(vm.spec.disks[0].path), "%s", image);
	snprintf(vm.spec.disks[0].serial, sizeof(vm.spec.disks[0].serial), "unit-0");
	snprintf(vm.spec.disks[1].path, sizeof(vm.spec.disks[1].path), "%s", ro_image);
	vm.spec.disks[1].readonly = true;
	vm.spec.ndisks = 2;
	vm.spec.rng = true;
	struct vmm_error err = {0};
	assert_int_equal(machine_resolve("microvm-1.2", &vm.spec.machine, &err), 0);
	assert_int_equal(guest_memory_create(&vm.mem, RAM, false, &vm.spec.machine, &err), 0);
	int r = vm_create_virtio_devices(&vm, &err);
	if (r < 0)
		fail_msg("%s", err.msg);
	mem = vm.mem; /* the helpers above address this VM's RAM */
	return 0;
}

static int dev_teardown(void **state)
{
	(void)state;
	vm_destroy_devices(&vm);
	guest_memory_destroy(&vm.mem);
	unlink(image);
	unlink(ro_image);
	return 0;
}

/* Driver set-up of queue 0 of the device at `base` (rings at DESC..). */
static uint32_t driver_init(uint64_t base, uint32_t num, uint64_t desc_gpa)
{
	memset(g(DESC), 0, 0x3000);
	wr(base, VMMIO_STATUS, 0);
	wr(base, VMMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(base, VMMIO_DRIVER_FEATURES_SEL, 1);
	wr(base, VMMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	wr(base, VMMIO_STATUS,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	wr(base, VMMIO_QUEUE_SEL, 0);
	wr(base, VMMIO_QUEUE_NUM, num);
	wr(base, VMMIO_QUEUE_DESC_LOW, (uint32_t)desc_gpa);
	wr(base, VMMIO_QUEUE_DESC_HIGH, (uint32_t)(desc_gpa >> 32));
	wr(base, VMMIO_QUEUE_DRIVER_LOW, AVAIL);
	wr(base, VMMIO_QUEUE_DEVICE_LOW, USED);
	wr(base, VMMIO_QUEUE_READY, 1);
	wr(base, VMMIO_STATUS,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
	       VIRTIO_STATUS_DRIVER_OK);
	return rd(base, VMMIO_STATUS);
}

/* Kicks queue 0 and waits (bounded) for the used index to reach `want`. */
static bool kick_wait(uint64_t base, uint16_t want)
{
	wr(base, VMMIO_QUEUE_NOTIFY, 0);
	for (int i = 0; i < 2000; i++) {
		uint16_t idx;
		memcpy(&idx, g(USED + 2), 2);
		if (idx == want)
			return true;
		if (rd(base, VMMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
			return false;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	return false;
}

static bool needs_reset_soon(uint64_t base)
{
	for (int i = 0; i < 2000; i++) {
		if (rd(base, VMMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
			return true;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	return false;
}

/* A blk request: header, data, status (direct descriptors 0..2). */
static void blk_req(uint32_t type, uint64_t sector, uint32_t len, uint16_t slot, uint16_t idx)
{
	uint32_t hdr[4] = {type, 0, (uint32_t)sector, (uint32_t)(sector >> 32)};
	memcpy(g(BUF), hdr, 16);
	*g(BUF + 0x100) = 0xee;
	desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(DESC, 1, BUF + 0x1000, len,
	     (uint16_t)(VIRTQ_DESC_F_NEXT | (type == 1 ? 0 : VIRTQ_DESC_F_WRITE)), 2);
	desc(DESC, 2, BUF + 0x100, 1, VIRTQ_DESC_F_WRITE, 0);
	avail(slot, 0, idx);
}

static void test_device_ids(void **state)
{
	(void)state;
	assert_int_equal(rd(SLOT0, VMMIO_MAGIC), VIRTIO_MMIO_MAGIC);
	assert_int_equal(rd(SLOT0, VMMIO_VERSION), 2);
	assert_int_equal(rd(SLOT0, VMMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
	assert_int_equal(rd(SLOT0 + 0x400, VMMIO_DEVICE_ID), VIRTIO_ID_ENTROPY);
	wr(SLOT0, VMMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(rd(SLOT0, VMMIO_DEVICE_FEATURES) & (1u << 5), 0); /* writable: no RO */
	wr(SLOT0 + 0x200, VMMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_not_equal(rd(SLOT0 + 0x200, VMMIO_DEVICE_FEATURES) & (1u << 5), 0);
	char words[256];
	assert_true(vm_virtio_cmdline(&vm, words, sizeof(words)) > 0);
	assert_string_equal(words, " virtio_mmio.device=512@0xfeb00000:5"
				   " virtio_mmio.device=512@0xfeb00200:6"
				   " virtio_mmio.device=512@0xfeb00400:7");
}

static void test_blk_write_read(void **state)
{
	(void)state;
	assert_false(driver_init(SLOT0, 8, DESC) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	memset(g(BUF + 0x1000), 0x3c, 1024);
	blk_req(1, 2, 1024, 0, 1); /* write sectors 2-3 */
	assert_true(kick_wait(SLOT0, 1));
	assert_int_equal(*g(BUF + 0x100), 0);
	memset(g(BUF + 0x1000), 0, 1024);
	blk_req(0, 2, 1024, 1, 2);
	assert_true(kick_wait(SLOT0, 2));
	assert_int_equal(*g(BUF + 0x100), 0);
	assert_int_equal(*g(BUF + 0x1000), 0x3c);
	uint8_t disk[1536];
	int fd = open(image, O_RDONLY);
	assert_int_equal(pread(fd, disk, sizeof(disk), 512), (ssize_t)sizeof(disk));
	close(fd);
	assert_int_equal(disk[0], 0xaa);   /* sector 1 untouched */
	assert_int_equal(disk[512], 0x3c); /* sectors 2-3 written */
	assert_int_equal(disk[1535], 0x3c);
	/* GET_ID */
	blk_req(8, 0, 20, 2, 3);
	assert_true(kick_wait(SLOT0, 3));
	assert_memory_equal(g(BUF + 0x1000), "unit-0\0", 7);
	/* beyond the end, not a multiple of 512, unknown type: failed requests, device fine */
	static const struct {
		uint32_t type;
		uint64_t sector;
		uint32_t len;
		uint8_t status;
	} bad[] = {
	    {0, 2047, 1024, 1}, {1, UINT64_MAX / 512, 512, 1}, {0, 0, 100, 1}, {77, 0, 512, 2}};
	for (unsigned i = 0; i < 4; i++) {
		blk_req(bad[i].type, bad[i].sector, bad[i].len, (uint16_t)(3 + i),
			(uint16_t)(4 + i));
		assert_true(kick_wait(SLOT0, (uint16_t)(4 + i)));
		assert_int_equal(*g(BUF + 0x100), bad[i].status);
	}
	assert_false(rd(SLOT0, VMMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* Requests of adjacent sectors made available together go out as one
 * transfer (merged) and each completes with its own status and data. */
static void test_blk_merged_requests(void **state)
{
	(void)state;
	assert_false(driver_init(SLOT0, 16, DESC) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* four writes: sectors 8-9, 10-11, 12-13 (adjacent), then 40-41 */
	static const uint64_t sectors[] = {8, 10, 12, 40};
	for (unsigned i = 0; i < 4; i++) {
		uint64_t hdr = BUF + 0x100 * i, data = BUF + 0x1000 + 0x400 * i;
		uint32_t h[4] = {1, 0, (uint32_t)sectors[i], 0};
		memcpy(g(hdr), h, 16);
		memset(g(data), 0x10 + i, 1024);
		*g(hdr + 0x80) = 0xee;
		desc(DESC, (uint16_t)(3 * i), hdr, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(3 * i + 1));
		desc(DESC, (uint16_t)(3 * i + 1), data, 1024, VIRTQ_DESC_F_NEXT,
		     (uint16_t)(3 * i + 2));
		desc(DESC, (uint16_t)(3 * i + 2), hdr + 0x80, 1, VIRTQ_DESC_F_WRITE, 0);
		uint16_t head = (uint16_t)(3 * i);
		memcpy(g(AVAIL + 4 + 2 * i), &head, 2);
	}
	uint16_t idx = 4;
	memcpy(g(AVAIL + 2), &idx, 2); /* all four at once */
	assert_true(kick_wait(SLOT0, 4));
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(*g(BUF + 0x100 * i + 0x80), 0);
	uint8_t disk[42 * 512];
	int fd = open(image, O_RDONLY);
	assert_int_equal(pread(fd, disk, sizeof(disk), 0), (ssize_t)sizeof(disk));
	close(fd);
	assert_int_equal(disk[7 * 512], 0xaa);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(disk[sectors[i] * 512], 0x10 + i);
		assert_int_equal(disk[sectors[i] * 512 + 1023], 0x10 + i);
	}
	assert_int_equal(disk[14 * 512], 0xaa);
	/* and read them back in one batch: each buffer gets its own sectors */
	for (unsigned i = 0; i < 4; i++) {
		uint64_t hdr = BUF + 0x100 * i, data = BUF + 0x1000 + 0x400 * i;
		uint32_t h[4] = {0, 0, (uint32_t)sectors[i], 0};
		memcpy(g(hdr), h, 16);
		memset(g(data), 0, 1024);
		desc(DESC, (uint16_t)(3 * i + 1), data, 1024,
		     VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, (uint16_t)(3 * i + 2));
		uint16_t head = (uint16_t)(3 * i);
		memcpy(g(AVAIL + 4 + 2 * (4 + i)), &head, 2);
	}
	idx = 8;
	memcpy(g(AVAIL + 2), &idx, 2);
	assert_true(kick_wait(SLOT0, 8));
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(*g(BUF + 0x100 * i + 0x80), 0);
		assert_int_equal(*g(BUF + 0x1000 + 0x400 * i), 0x10 + i);
		assert_int_equal(*g(BUF + 0x1000 + 0x400 * i + 1023), 0x10 + i);
		uint32_t len;
		memcpy(&len, g(USED + 8 + 8 * (4 + i)), 4);
		assert_int_equal(len, 1025);
	}
}

static void test_blk_readonly_write_fails(void **state)
{
	(void)state;
	uint64_t base = SLOT0 + 0x200;
	assert_false(driver_init(base, 8, DESC) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	memset(g(BUF + 0x1000), 0x00, 4096);
	blk_req(1, 0, 4096, 0, 1);
	assert_true(kick_wait(base, 1));
	assert_int_equal(*g(BUF + 0x100), 1); /* IOERR */
	uint8_t disk[4096];
	int fd = open(ro_image, O_RDONLY);
	assert_int_equal(pread(fd, disk, sizeof(disk), 0), (ssize_t)sizeof(disk));
	close(fd);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(disk[i], 0x55); /* the image is untouched */
}

static void test_blk_bad_queue_size_and_rings(void **state)
{
	(void)state;
	assert_true(driver_init(SLOT0, 6, DESC) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_true(rd(SLOT0, VMMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	assert_int_equal(rd(SLOT0, VMMIO_QUEUE_READY), 0);
	assert_true(driver_init(SLOT0, 512, DESC) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_true(driver_init(SLOT0, 8, RAM + 0x1000) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_true(driver_init(SLOT0, 8, DESC + 4) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* a reset clears it, and the device works again */
	assert_false(driver_init(SLOT0, 8, DESC) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	blk_req(0, 0, 512, 0, 1);
	assert_true(kick_wait(SLOT0, 1));
}

static void test_blk_malformed_chains(void **state)
{
	(void)state;
	/* each case: driver set-up, a poisoned chain, NEEDS_RESET, nothing written */
	for (int c = 0; c < 5; c++) {
		assert_false(driver_init(SLOT0, 8, DESC) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
		switch (c) {
		case 0: /* loop */
			desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
			desc(DESC, 1, BUF + 0x1000, 512, VIRTQ_DESC_F_NEXT, 0);
			avail(0, 0, 1);
			break;
		case 1: /* data outside RAM */
			blk_req(0, 0, 512, 0, 1);
			desc(DESC, 1, RAM - 256, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
			break;
		case 2: /* huge length */
			blk_req(0, 0, 512, 0, 1);
			desc(DESC, 1, BUF + 0x1000, 0xfffff000u,
			     VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
			break;
		case 3: /* more available than the queue size */
			blk_req(0, 0, 512, 0, 9);
			break;
		case 4: /* no status byte */
			desc(DESC, 0, BUF, 16, 0, 0);
			avail(0, 0, 1);
			break;
		}
		memset(g(BUF + 0x1000), 0x77, 512);
		wr(SLOT0, VMMIO_QUEUE_NOTIFY, 0);
		assert_true(needs_reset_soon(SLOT0));
		uint16_t used_idx;
		memcpy(&used_idx, g(USED + 2), 2);
		assert_int_equal(used_idx, 0);
		assert_int_equal(*g(BUF + 0x1000), 0x77); /* no read data landed */
	}
}

static void test_rng(void **state)
{
	(void)state;
	uint64_t base = SLOT0 + 0x400;
	assert_false(driver_init(base, 8, DESC) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	memset(g(BUF), 0, 256);
	desc(DESC, 0, BUF, 256, VIRTQ_DESC_F_WRITE, 0);
	avail(0, 0, 1);
	assert_true(kick_wait(base, 1));
	uint32_t len;
	memcpy(&len, g(USED + 8), 4);
	assert_int_equal(len, 256);
	int zeros = 0;
	for (int i = 0; i < 256; i++)
		zeros += *g(BUF + i) == 0;
	assert_true(zeros < 16);
	/* a loop on the rng: needs reset, process alive */
	desc(DESC, 1, BUF, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	avail(1, 1, 2);
	wr(base, VMMIO_QUEUE_NOTIFY, 0);
	assert_true(needs_reset_soon(base));
}

static void test_features_refused(void **state)
{
	(void)state;
	wr(SLOT0, VMMIO_STATUS, 0);
	wr(SLOT0, VMMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(SLOT0, VMMIO_DRIVER_FEATURES_SEL, 0);
	wr(SLOT0, VMMIO_DRIVER_FEATURES, 1u << 5); /* RO: not offered on a writable disk */
	wr(SLOT0, VMMIO_DRIVER_FEATURES_SEL, 1);
	wr(SLOT0, VMMIO_DRIVER_FEATURES, 1);
	wr(SLOT0, VMMIO_STATUS,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_false(rd(SLOT0, VMMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
	/* without VERSION_1 (a legacy driver) */
	wr(SLOT0, VMMIO_STATUS, 0);
	wr(SLOT0, VMMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(SLOT0, VMMIO_STATUS,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_false(rd(SLOT0, VMMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
}

static void test_disk_options(void **state)
{
	(void)state;
	struct vm_request c;
	struct vmm_error err = {0};
	memset(&c, 0, sizeof(c));
	assert_int_equal(vm_request_add_disk(&c, "path=/x,readonly=on,serial=abc", &err), 0);
	assert_string_equal(c.disks[0].path, "/x");
	assert_true(c.disks[0].readonly);
	assert_string_equal(c.disks[0].serial, "abc");
	static const struct {
		const char *arg, *msg;
	} bad[] = {
	    {"readonly=on", "no path"},
	    {"path=/x,readonly=yes", "expected on or off"},
	    {"path=/x,serial=123456789012345678901", "longer than"},
	    {"path=/x,serial=a b", "printable"},
	    {"path=/x,cache=none", "unknown key"},
	    {"path=/x,junk", "not KEY=VALUE"},
	    {"path=", "empty path"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_true(vm_request_add_disk(&c, bad[i].arg, &err) < 0);
		assert_non_null(strstr(err.msg, bad[i].msg));
	}
}

static void test_old_machines_refuse(void **state)
{
	(void)state;
	static struct vm old;
	struct vmm_error err = {0};
	vm_init(&old);
	old.spec.serial = SERIAL_NONE;
	old.spec.rng = true;
	assert_int_equal(machine_resolve("microvm-1.1", &old.spec.machine, &err), 0);
	assert_int_equal(vm_create_virtio_devices(&old, &err), -ENODEV);
	assert_string_equal(err.msg,
			    "--rng: machine type microvm-1.1 has no virtio-mmio slots (the "
			    "first version with them is microvm-1.2)");
}

/* The migration protocol of the image lock (STREAM.md), with two VMs in
 * one process: OFD locks belong to open file descriptions, so they
 * conflict here as between two vmm processes. */
static void test_lock_protocol(void **state)
{
	(void)state;
	static struct vm dst;
	struct vmm_error err = {0};
	vm_init(&dst);
	dst.spec = vm.spec;
	dst.spec.incoming = true; /* opens the images, takes no lock */
	dst.spec.rng = false;
	assert_int_equal(guest_memory_create(&dst.mem, RAM, false, &dst.spec.machine, &err), 0);
	assert_int_equal(vm_create_virtio_devices(&dst, &err), 0);
	/* the source still owns the image: the destination cannot take it */
	assert_int_equal(vm_devices_activate(&dst, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "locked by another process"));
	/* a third vmm starting normally is refused too */
	static struct vm third;
	vm_init(&third);
	third.spec = vm.spec;
	third.spec.rng = false;
	assert_int_equal(guest_memory_create(&third.mem, RAM, false, &third.spec.machine, &err), 0);
	assert_int_equal(vm_create_virtio_devices(&third, &err), -EBUSY);
	vm_destroy_devices(&third);
	guest_memory_destroy(&third.mem);
	/* quiesce, then hand over: now the destination takes it at "Go" */
	assert_int_equal(vm_devices_quiesce(&vm, &err), 0);
	vm_devices_handover(&vm);
	assert_int_equal(vm_devices_activate(&dst, &err), 0);
	/* and the source cannot take the guest back */
	assert_int_equal(vm_devices_unquiesce(&vm, &err), -EBUSY);
	/* once the destination is gone, it can (a failed migration, resumed here) */
	vm_destroy_devices(&dst);
	guest_memory_destroy(&dst.mem);
	assert_int_equal(vm_devices_unquiesce(&vm, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_valid_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_self_loop_indirect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outside_ram, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_huge_length, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_avail_beyond_queue_size, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_head_beyond_queue_size, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_next_beyond_queue_size, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readable_after_writable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_many_segments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_setup_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event_idx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_device_ids, dev_setup, dev_teardown),
	    cmocka_unit_test_setup_teardown(test_blk_write_read, dev_setup, dev_teardown),
	    cmocka_unit_test_setup_teardown(test_blk_merged_requests, dev_setup, dev_teardown),
	    cmocka_unit_test_setup_teardown(test_blk_readonly_write_fails, dev_setup, dev_teardown),
	    cmocka_unit_test_setup_teardown(test_blk_bad_queue_size_and_rings, dev_setup,
					    dev_teardown),
	    cmocka_unit_test_setup_teardown(test_blk_malformed_chains, dev_setup, dev_teardown),
	    cmocka_unit_test_setup_teardown(test_rng, dev_setup, dev_teardown),
	    cmocka_unit_test_setup_teardown(test_features_refused, dev_setup, dev_teardown),
	    cmocka_unit_test_setup_teardown(test_lock_protocol, dev_setup, dev_teardown),
	    cmocka_unit_test(test_disk_options),
	    cmocka_unit_test(test_old_machines_refuse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * u_virtio.c: a small virtio-mmio driver at CPL3 (the registers are mapped
 * user-accessible like all memory below 4 GiB). Version 2 registers only,
 * split queues (one for the disk and the entropy device, three for the
 * network card), polled: the guest never unmasks the devices' I/O APIC
 * pins, so the CPL0 part (emulated on our KVM) stays untouched. Devices
 * come from the virtio_mmio.device=SIZE@ADDR:IRQ words of the command line
 * (our vmm and QEMU's microvm both append them).
 */
#include "user.h"
#include "x86.h"

#define MAGIC 0x74726976
enum {
	R_MAGIC = 0x000,
	R_VERSION = 0x004,
	R_DEVICE_ID = 0x008,
	R_DEVICE_FEATURES = 0x010,
	R_DEVICE_FEATURES_SEL = 0x014,
	R_DRIVER_FEATURES = 0x020,
	R_DRIVER_FEATURES_SEL = 0x024,
	R_QUEUE_SEL = 0x030,
	R_QUEUE_NUM_MAX = 0x034,
	R_QUEUE_NUM = 0x038,
	R_QUEUE_READY = 0x044,
	R_QUEUE_NOTIFY = 0x050,
	R_INTERRUPT_STATUS = 0x060,
	R_INTERRUPT_ACK = 0x064,
	R_STATUS = 0x070,
	R_QUEUE_DESC = 0x080,
	R_QUEUE_DRIVER = 0x090,
	R_QUEUE_DEVICE = 0x0a0,
	R_CONFIG = 0x100,
};
#define S_ACK	      1
#define S_DRIVER      2
#define S_DRIVER_OK   4
#define S_FEATURES_OK 8
#define F_EVENT_IDX   29
#define F_VERSION_1   32

static uint32_t rd(const struct vdev *d, uint32_t reg)
{
	return *(volatile uint32_t *)(uintptr_t)(d->base + reg);
}

static void wr(const struct vdev *d, uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)(d->base + reg) = v;
}

uint32_t vdev_status(struct vdev *d)
{
	return rd(d, R_STATUS);
}

bool vdev_use_irq(struct vdev *d)
{
	if (u_syscall(SYS_IRQ_ROUTE, u_sys.ioapic, d->irq, VEC_DEVICE) != 0)
		return false;
	d->q.want_irq = true;
	return true;
}

void vdev_ack_irq(struct vdev *d)
{
	wr(d, R_INTERRUPT_ACK, rd(d, R_INTERRUPT_STATUS));
}

uint32_t vdev_config32(struct vdev *d, uint32_t off)
{
	return rd(d, R_CONFIG + off);
}

static void wr64(const struct vdev *d, uint32_t reg, uint64_t v)
{
	wr(d, reg, (uint32_t)v);
	wr(d, reg + 4, (uint32_t)(v >> 32));
}

bool vdev_queue(struct vdev *d, struct vq *q, uint16_t index, uint16_t qmax)
{
	uint32_t max;
	uint64_t desc, avail, used;

	wr(d, R_QUEUE_SEL, index);
	max = rd(d, R_QUEUE_NUM_MAX);
	if (!max) {
		u_printf("testguest: virtio device at 0x%lx has no queue %u\n", d->base, index);
		return false;
	}
	q->index = index;
	q->num = (uint16_t)(max < qmax ? max : qmax);
	desc = mem_alloc(16ull * q->num);
	avail = mem_alloc(6ull + 2ull * q->num);
	used = mem_alloc(6ull + 8ull * q->num);
	if (!desc || !avail || !used) {
		u_printf("testguest: no free memory for virtio queue %u\n", index);
		return false;
	}
	q->desc = (volatile uint8_t *)(uintptr_t)desc;
	q->avail = (volatile uint8_t *)(uintptr_t)avail;
	q->used = (volatile uint8_t *)(uintptr_t)used;
	q->event_idx = (d->features >> F_EVENT_IDX) & 1;
	wr(d, R_QUEUE_NUM, q->num);
	wr64(d, R_QUEUE_DESC, desc);
	wr64(d, R_QUEUE_DRIVER, avail);
	wr64(d, R_QUEUE_DEVICE, used);
	wr(d, R_QUEUE_READY, 1);
	if (rd(d, R_QUEUE_READY) != 1) {
		u_printf("testguest: virtio device at 0x%lx: queue %u refused (status 0x%x)\n",
			 d->base, index, rd(d, R_STATUS));
		return false;
	}
	return true;
}

bool vdev_begin(struct vdev *d, uint32_t id, uint64_t want)
{
	uint32_t i;
	uint64_t offered;

	for (i = 0; i < u_cfg.nvirtio; i++) {
		d->base = u_cfg.virtio[i].base;
		d->irq = u_cfg.virtio[i].irq;
		if (rd(d, R_MAGIC) == MAGIC && rd(d, R_DEVICE_ID) == id)
			break;
	}
	if (i == u_cfg.nvirtio) {
		u_printf("testguest: no virtio device of type %u on the command line\n", id);
		return false;
	}
	if (rd(d, R_VERSION) != 2) {
		u_printf("testguest: virtio device at 0x%lx: version %u, need 2 (modern)\n",
			 d->base, rd(d, R_VERSION));
		return false;
	}
	wr(d, R_STATUS, 0);
	while (rd(d, R_STATUS) != 0)
		cpu_relax();
	wr(d, R_STATUS, S_ACK);
	wr(d, R_STATUS, S_ACK | S_DRIVER);
	wr(d, R_DEVICE_FEATURES_SEL, 0);
	offered = rd(d, R_DEVICE_FEATURES);
	wr(d, R_DEVICE_FEATURES_SEL, 1);
	offered |= (uint64_t)rd(d, R_DEVICE_FEATURES) << 32;
	d->features = offered & (want | (1ull << F_VERSION_1));
	if (!((d->features >> F_VERSION_1) & 1)) {
		u_printf("testguest: virtio device at 0x%lx does not offer VERSION_1\n", d->base);
		return false;
	}
	wr(d, R_DRIVER_FEATURES_SEL, 0);
	wr(d, R_DRIVER_FEATURES, (uint32_t)d->features);
	wr(d, R_DRIVER_FEATURES_SEL, 1);
	wr(d, R_DRIVER_FEATURES, (uint32_t)(d->features >> 32));
	wr(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd(d, R_STATUS) & S_FEATURES_OK)) {
		u_printf("testguest: virtio device at 0x%lx: set-up refused (status 0x%x)\n",
			 d->base, rd(d, R_STATUS));
		return false;
	}
	return true;
}

void vdev_ready(struct vdev *d)
{
	wr(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

bool vdev_open(struct vdev *d, uint32_t id, uint64_t want, uint16_t qmax)
{
	if (!vdev_begin(d, id, want) || !vdev_queue(d, &d->q, 0, qmax))
		return false;
	vdev_ready(d);
	return true;
}

void vq_set_desc(struct vq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	volatile uint8_t *e = q->desc + 16u * i;

	*(volatile uint64_t *)e = addr;
	*(volatile uint32_t *)(e + 8) = len;
	*(volatile uint16_t *)(e + 12) = flags;
	*(volatile uint16_t *)(e + 14) = next;
}

void vq_add(struct vq *q, uint16_t head)
{
	*(volatile uint16_t *)(q->avail + 4 + 2u * (q->avail_idx % q->num)) = head;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	q->avail_idx = (uint16_t)(q->avail_idx + 1);
	*(volatile uint16_t *)(q->avail + 2) = q->avail_idx;
}

void vq_notify(struct vdev *d, struct vq *q, uint16_t old)
{
	uint16_t event;

	if (q->avail_idx == old)
		return;
	__atomic_thread_fence(__ATOMIC_SEQ_CST); /* idx out before reading avail_event */
	if (q->event_idx) {
		event = *(volatile uint16_t *)(q->used + 4 + 8u * q->num);
		if ((uint16_t)(q->avail_idx - event - 1) >= (uint16_t)(q->avail_idx - old))
			return; /* the device will look anyway */
	} else if (*(volatile uint16_t *)q->used & 1) {
		return; /* VIRTQ_USED_F_NO_NOTIFY */
	}
	wr(d, R_QUEUE_NOTIFY, q->index);
}

void vq_kick(struct vdev *d, struct vq *q)
{
	wr(d, R_QUEUE_NOTIFY, q->index);
}

void vq_publish(struct vdev *d, uint16_t head)
{
	uint16_t old = d->q.avail_idx;

	vq_add(&d->q, head);
	vq_notify(d, &d->q, old);
}

bool vq_take_used(struct vq *q, uint32_t *id, uint32_t *len)
{
	volatile uint8_t *e;

	if (*(volatile uint16_t *)(q->used + 2) == q->used_seen)
		return false;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	e = q->used + 4 + 8u * (q->used_seen % q->num);
	*id = *(volatile uint32_t *)e;
	*len = *(volatile uint32_t *)(e + 4);
	q->used_seen++;
	/* EVENT_IDX: an interrupt for the next buffer, or (polling) none: used_event behind */
	if (q->event_idx)
		*(volatile uint16_t *)(q->avail + 4 + 2u * q->num) =
			(uint16_t)(q->want_irq ? q->used_seen : q->used_seen - 1);
	return true;
}

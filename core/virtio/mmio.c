/*
 * core/virtio/mmio.c: the virtio-mmio transport, version 2 ("modern") only
 * (virtio 1.x, 4.2.2). Registers are 32-bit; config space (0x100+) is the
 * device's. Queue notifications arrive through KVM ioeventfds (one per
 * queue, data-matched on the queue index) and reach the device's I/O
 * thread without a trip through a vCPU thread; interrupts leave through a
 * KVM irqfd on the slot's I/O APIC pin (an edge, as for ISA devices: the
 * driver reads InterruptStatus and handles every queue, so nothing is lost).
 *
 * A driver that breaks the rules (bad queue size or ring address, a
 * malformed chain) gets DEVICE_NEEDS_RESET and a configuration interrupt;
 * the device then ignores its queues until the driver resets it.
 */
#include "core/virtio/virtio.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void raise_irq(struct virtio_mmio *t)
{
	if (t->irq_fd >= 0) {
		uint64_t one = 1;
		while (write(t->irq_fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	} else if (t->vm->vm_fd >= 0) {
		vm_set_irq(t->vm, t->irq, true); /* an edge: up, then down */
		vm_set_irq(t->vm, t->irq, false);
	}
}

bool virtio_mmio_has(const struct virtio_mmio *t, unsigned bit)
{
	return (t->s->driver_features >> bit) & 1;
}

bool virtio_mmio_running(const struct virtio_mmio *t)
{
	return (t->s->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(t->s->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) && !t->paused;
}

void virtio_mark_dirty(struct virtio_mmio *t, uint64_t gpa, uint64_t len)
{
	guest_memory_mark_dirty(&t->vm->mem, gpa, len);
}

void virtio_mmio_set_needs_reset(struct virtio_mmio *t, const char *why)
{
	if (!t->reported)
		fprintf(stderr, "vmm: %s: guest driver error: %s; the device needs a reset\n",
			t->dev->name, why);
	t->reported = true;
	t->s->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	t->s->interrupt_status |= VIRTIO_INT_CONFIG;
	raise_irq(t);
}

void virtio_mmio_config_changed(struct virtio_mmio *t)
{
	t->s->config_generation++;
	t->s->interrupt_status |= VIRTIO_INT_CONFIG;
	raise_irq(t);
}

void virtio_mmio_notify_used(struct virtio_mmio *t, unsigned q)
{
	if (virtq_need_interrupt(&t->vq[q])) {
		t->s->interrupt_status |= VIRTIO_INT_USED;
		raise_irq(t);
	}
}

static void kick_queue(struct virtio_mmio *t, unsigned q)
{
	uint64_t one = 1;
	while (write(t->notify_fd[q], &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* On the I/O thread: the driver notified queue q (or we re-check it). */
static void on_kick(void *ctx)
{
	struct virtio_kick *k = ctx;
	struct virtio_mmio *t = k->t;
	pthread_mutex_lock(&t->dev->lock);
	if (virtio_mmio_running(t) && t->s->q[k->q].ready && !t->vq[k->q].broken)
		t->ops->queue_notify(t, k->q);
	pthread_mutex_unlock(&t->dev->lock);
}

static void derive_queue(struct virtio_mmio *t, unsigned q)
{
	t->vq[q].event_idx = virtio_mmio_has(t, VIRTIO_F_EVENT_IDX);
	t->vq[q].indirect = virtio_mmio_has(t, VIRTIO_F_INDIRECT_DESC);
}

static void reset(struct virtio_mmio *t)
{
	if (t->ops->reset)
		t->ops->reset(t);
	struct virtio_mmio_state *s = t->s;
	uint64_t offered = s->device_features, base = s->base;
	memset(s, 0, sizeof(*s));
	s->device_features = offered;
	s->base = base;
	for (unsigned q = 0; q < t->nqueues; q++) {
		t->vq[q].desc = NULL;
		t->vq[q].avail = NULL;
		t->vq[q].used = NULL;
		t->vq[q].broken = false;
	}
	t->reported = false;
}

static void set_status(struct virtio_mmio *t, uint32_t v)
{
	struct virtio_mmio_state *s = t->s;
	if (v == 0) {
		reset(t);
		return;
	}
	uint32_t old = s->status;
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		/* Accept only what we offered, and only the modern interface. */
		uint64_t extra = s->driver_features & ~s->device_features;
		if (extra || !virtio_mmio_has(t, VIRTIO_F_VERSION_1)) {
			fprintf(stderr, "vmm: %s: driver features 0x%llx refused (%s)\n",
				t->dev->name, (unsigned long long)s->driver_features,
				extra ? "not offered" : "no VIRTIO_F_VERSION_1");
			v &= ~VIRTIO_STATUS_FEATURES_OK;
		} else if (t->ops->set_features &&
			   t->ops->set_features(t, s->driver_features) < 0) {
			v &= ~VIRTIO_STATUS_FEATURES_OK; /* the device said why */
		}
	}
	s->status = v | (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	if ((v & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
		for (unsigned q = 0; q < t->nqueues; q++) {
			derive_queue(t, q);
			if (s->q[q].ready)
				kick_queue(t, q); /* buffers made available before DRIVER_OK */
		}
	}
}

static void set_queue_ready(struct virtio_mmio *t, unsigned q, uint32_t v)
{
	struct virtq_state *qs = &t->s->q[q];
	if (!v) {
		qs->ready = false;
		t->vq[q].desc = NULL;
		t->vq[q].avail = NULL;
		t->vq[q].used = NULL;
		return;
	}
	struct vmm_error err = {0};
	derive_queue(t, q);
	if (virtq_setup(&t->vq[q], &err) < 0) {
		char why[VMM_ERROR_MAX + 16];
		snprintf(why, sizeof(why), "queue %u: %s", q, err.msg);
		virtio_mmio_set_needs_reset(t, why);
		return;
	}
	qs->ready = true;
	qs->signalled_valid = false;
}

/* The 64-bit queue address registers, as (register, field, high half). */
static uint64_t *queue_addr(struct virtq_state *qs, uint64_t off, bool *high)
{
	*high = off & 4;
	switch (off & ~4ull) {
	case VMMIO_QUEUE_DESC_LOW:
		return &qs->desc;
	case VMMIO_QUEUE_DRIVER_LOW:
		return &qs->avail;
	case VMMIO_QUEUE_DEVICE_LOW:
		return &qs->used;
	}
	return NULL;
}

static void mmio_read(struct device *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct virtio_mmio *t = dev->state; /* first member of every virtio device */
	struct virtio_mmio_state *s = t->s;
	if (off >= VIRTIO_MMIO_CONFIG) {
		memset(data, 0, size);
		if (t->ops->config_read)
			t->ops->config_read(t, off - VIRTIO_MMIO_CONFIG, data, size);
		return;
	}
	uint32_t v = 0;
	struct virtq_state *qs = s->queue_sel < t->nqueues ? &s->q[s->queue_sel] : NULL;
	bool high;
	uint64_t *addr;
	switch (off) {
	case VMMIO_MAGIC:
		v = VIRTIO_MMIO_MAGIC;
		break;
	case VMMIO_VERSION:
		v = VIRTIO_MMIO_VERSION;
		break;
	case VMMIO_DEVICE_ID:
		v = t->ops->device_id;
		break;
	case VMMIO_VENDOR_ID:
		v = VIRTIO_MMIO_VENDOR;
		break;
	case VMMIO_DEVICE_FEATURES:
		if (s->device_features_sel < 2)
			v = (uint32_t)(s->device_features >> (32 * s->device_features_sel));
		break;
	case VMMIO_QUEUE_NUM_MAX:
		v = qs ? t->queue_max : 0;
		break;
	case VMMIO_QUEUE_NUM:
		v = qs ? qs->num : 0;
		break;
	case VMMIO_QUEUE_READY:
		v = qs ? qs->ready : 0;
		break;
	case VMMIO_INTERRUPT_STATUS:
		v = s->interrupt_status;
		break;
	case VMMIO_STATUS:
		v = s->status;
		break;
	case VMMIO_CONFIG_GENERATION:
		v = s->config_generation;
		break;
	default:
		if (qs && (addr = queue_addr(qs, off, &high)))
			v = (uint32_t)(*addr >> (high ? 32 : 0));
		break;
	}
	memset(data, 0, size);
	memcpy(data, &v, size < 4 ? size : 4);
}

static void mmio_write(struct device *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct virtio_mmio *t = dev->state; /* first member of every virtio device */
	struct virtio_mmio_state *s = t->s;
	if (off >= VIRTIO_MMIO_CONFIG) {
		if (t->ops->config_write)
			t->ops->config_write(t, off - VIRTIO_MMIO_CONFIG, data, size);
		return;
	}
	if (size != 4)
		return; /* registers are 32-bit (4.2.2.2: the driver MUST use 32-bit accesses) */
	uint32_t v;
	memcpy(&v, data, 4);
	unsigned q = s->queue_sel;
	struct virtq_state *qs = q < t->nqueues ? &s->q[q] : NULL;
	bool high;
	uint64_t *addr;
	switch (off) {
	case VMMIO_DEVICE_FEATURES_SEL:
		s->device_features_sel = v;
		break;
	case VMMIO_DRIVER_FEATURES_SEL:
		s->driver_features_sel = v;
		break;
	case VMMIO_DRIVER_FEATURES:
		if (s->driver_features_sel < 2 && !(s->status & VIRTIO_STATUS_FEATURES_OK)) {
			unsigned shift = 32 * s->driver_features_sel;
			s->driver_features &= ~(0xffffffffull << shift);
			s->driver_features |= (uint64_t)v << shift;
		}
		break;
	case VMMIO_QUEUE_SEL:
		s->queue_sel = v;
		break;
	case VMMIO_QUEUE_NUM:
		if (qs && !qs->ready)
			qs->num = v > UINT16_MAX ? 0 : (uint16_t)v; /* checked at QueueReady */
		break;
	case VMMIO_QUEUE_READY:
		if (qs)
			set_queue_ready(t, q, v);
		break;
	case VMMIO_QUEUE_NOTIFY:
		/* Only when KVM did not take it (no ioeventfd, or another width). */
		if (v < t->nqueues)
			kick_queue(t, v);
		break;
	case VMMIO_INTERRUPT_ACK:
		s->interrupt_status &= ~v;
		break;
	case VMMIO_STATUS:
		set_status(t, v);
		break;
	default:
		if (qs && !qs->ready && (addr = queue_addr(qs, off, &high))) {
			if (high)
				*addr = (*addr & 0xffffffffull) | ((uint64_t)v << 32);
			else
				*addr = (*addr & ~0xffffffffull) | v;
		}
		break;
	}
}

int virtio_mmio_init(struct virtio_mmio *t, struct device *dev, struct virtio_mmio_state *s,
		     const struct virtio_dev_ops *ops, unsigned slot, unsigned nqueues,
		     uint16_t queue_max, uint64_t offered, struct vmm_error *err)
{
	struct vm *vm = dev->vm;
	t->dev = dev;
	t->ops = ops;
	t->s = s;
	t->vm = vm;
	t->nqueues = nqueues;
	t->queue_max = queue_max;
	t->offered = offered;
	t->irq_fd = -1;
	t->io.epfd = t->io.stop_fd = -1;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		t->notify_fd[q] = -1;
	t->paused = vm->spec.incoming; /* an incoming guest runs only from Go */
	if (nqueues == 0 || nqueues > VIRTIO_MAX_QUEUES || queue_max == 0 ||
	    queue_max > VIRTQ_MAX_SIZE || (queue_max & (queue_max - 1)))
		return vmm_error_set(err, -EINVAL,
				     "%s: %u queues of up to %u entries: not supported", dev->name,
				     nqueues, queue_max);
	int r = virtio_slot(vm, slot, &t->base, &t->irq, err);
	if (r < 0)
		return vmm_error_prefix(err, "%s", dev->name);
	memset(s, 0, sizeof(*s));
	s->device_features = offered;
	s->base = t->base;
	for (unsigned q = 0; q < nqueues; q++) {
		t->vq[q] = (struct virtq){.s = &s->q[q], .mem = &vm->mem, .num_max = queue_max};
		t->kick[q] = (struct virtio_kick){t, q};
		t->notify_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->notify_fd[q] < 0)
			return vmm_error_set(err, -errno, "%s: eventfd: %s", dev->name,
					     strerror(errno));
	}
	if ((r = iothread_init(&t->io, dev->name, err)) < 0)
		return r;
	if (vm->vm_fd >= 0) {
		t->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		struct kvm_irqfd irqfd = {.fd = (uint32_t)t->irq_fd, .gsi = t->irq};
		if (t->irq_fd < 0 || ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0)
			return vmm_error_set(err, -errno, "%s: KVM_IRQFD on GSI %u: %s", dev->name,
					     t->irq, strerror(errno));
		for (unsigned q = 0; q < nqueues; q++) {
			struct kvm_ioeventfd io = {
			    .datamatch = q,
			    .addr = t->base + VMMIO_QUEUE_NOTIFY,
			    .len = 4,
			    .fd = t->notify_fd[q],
			    .flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
			};
			/* Without it QueueNotify still works, through an MMIO exit. */
			t->ioeventfd[q] = ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) == 0;
		}
	}
	return io_bus_register(&vm->mmio, t->base, VIRTIO_MMIO_SIZE, dev, mmio_read, mmio_write,
			       err);
}

int virtio_mmio_start(struct virtio_mmio *t, struct vmm_error *err)
{
	int r;
	for (unsigned q = 0; q < t->nqueues; q++)
		if ((r = iothread_watch(&t->io, t->notify_fd[q], on_kick, &t->kick[q], err)) < 0)
			return r;
	return iothread_start(&t->io, err);
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
	if (!t->dev)
		return;
	iothread_destroy(&t->io);
	int vm_fd = t->vm->vm_fd;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (t->ioeventfd[q] && vm_fd >= 0) {
			struct kvm_ioeventfd io = {
			    .datamatch = q,
			    .addr = t->base + VMMIO_QUEUE_NOTIFY,
			    .len = 4,
			    .fd = t->notify_fd[q],
			    .flags = KVM_IOEVENTFD_FLAG_DATAMATCH | KVM_IOEVENTFD_FLAG_DEASSIGN,
			};
			ioctl(vm_fd, KVM_IOEVENTFD, &io);
		}
		if (t->notify_fd[q] >= 0)
			close(t->notify_fd[q]);
		t->notify_fd[q] = -1;
		t->ioeventfd[q] = false;
	}
	if (t->irq_fd >= 0) {
		if (vm_fd >= 0) {
			struct kvm_irqfd irqfd = {.fd = (uint32_t)t->irq_fd,
						  .gsi = t->irq,
						  .flags = KVM_IRQFD_FLAG_DEASSIGN};
			ioctl(vm_fd, KVM_IRQFD, &irqfd);
		}
		close(t->irq_fd);
	}
	t->irq_fd = -1;
	t->dev = NULL;
}

int virtio_mmio_post_load(struct virtio_mmio *t, struct vmm_error *err)
{
	struct virtio_mmio_state *s = t->s;
	const char *name = t->dev->name;
	if (s->base != t->base)
		return vmm_error_set(err, -EINVAL, "%s: at 0x%llx in the stream, at 0x%llx here",
				     name, (unsigned long long)s->base,
				     (unsigned long long)t->base);
	if (s->device_features != t->offered)
		return vmm_error_set(
		    err, -EINVAL, "%s: the guest saw features 0x%llx, this device offers 0x%llx",
		    name, (unsigned long long)s->device_features, (unsigned long long)t->offered);
	if (s->driver_features & ~s->device_features)
		return vmm_error_set(err, -EINVAL, "%s: driver features 0x%llx were never offered",
				     name, (unsigned long long)s->driver_features);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (q >= t->nqueues) {
			if (s->q[q].ready)
				return vmm_error_set(err, -EINVAL, "%s: queue %u does not exist",
						     name, q);
			continue;
		}
		derive_queue(t, q);
		t->vq[q].broken = false;
		if (!s->q[q].ready)
			continue;
		if (virtq_setup(&t->vq[q], err) < 0)
			return vmm_error_prefix(err, "%s: queue %u", name, q);
	}
	return 0;
}

void virtio_mmio_pause(struct virtio_mmio *t)
{
	t->paused = true;
}

void virtio_mmio_resume(struct virtio_mmio *t)
{
	t->paused = false;
	for (unsigned q = 0; q < t->nqueues; q++)
		if (t->s->q[q].ready)
			kick_queue(t, q);
}

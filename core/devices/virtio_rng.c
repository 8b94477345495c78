/*
 * core/devices/virtio_rng.c: virtio-rng (virtio 1.x, 5.4), an entropy
 * source fed by the host's getrandom(). One queue; every device-writable
 * buffer the driver offers is filled (at most RNG_MAX_PER_CHAIN bytes per
 * chain, so a guest cannot make one request take long) and returned.
 */
#include "core/devices/devices.h"
#include "core/virtio/virtio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define RNG_MAX_PER_CHAIN (64u << 10)

/* Guest-visible state: what migration carries. */
struct rng_state {
	struct virtio_mmio_state t;
};

struct rng {
	struct virtio_mmio t; /* first: the transport finds itself in dev->state */
	struct rng_state s;
	struct virtq_chain chain;
};

static size_t fill(void *p, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = getrandom((uint8_t *)p + done, len - done, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return done;
}

static void rng_queue_notify(struct virtio_mmio *t, unsigned q)
{
	struct rng *rng = (struct rng *)t;
	struct virtq *vq = &t->vq[q];
	struct virtq_chain *c = &rng->chain;
	struct vmm_error err = {0};
	bool used = false;
	int r;
again:
	while ((r = virtq_pop(vq, c, &err)) > 0) {
		uint32_t written = 0;
		for (unsigned i = c->n_out; i < c->nseg && written < RNG_MAX_PER_CHAIN; i++) {
			size_t want = c->iov[i].iov_len;
			if (want > RNG_MAX_PER_CHAIN - written)
				want = RNG_MAX_PER_CHAIN - written;
			size_t got = fill(c->iov[i].iov_base, want);
			virtio_mark_dirty(t, c->gpa[i], got);
			written += (uint32_t)got;
			if (got < want)
				break;
		}
		virtq_push(vq, c->head, written);
		used = true;
	}
	if (r < 0) {
		virtio_mmio_set_needs_reset(t, err.msg);
	} else {
		virtq_set_notify(vq, true);
		if (virtq_has_avail(vq)) /* added before the driver could see avail_event */
			goto again;
	}
	if (used)
		virtio_mmio_notify_used(t, q);
}

static const struct virtio_dev_ops rng_ops = {
    .device_id = VIRTIO_ID_ENTROPY,
    .queue_notify = rng_queue_notify,
};

static const struct state_field rng_fields[] = {
    VIRTIO_MMIO_STATE_FIELDS(struct rng_state, t),
    VIRTQ_STATE_FIELDS(struct rng_state, t, 0),
};
static const struct state_desc rng_state_desc = STATE_DESC(1, 1, rng_fields);

static void *rng_state_ptr(struct device *dev)
{
	return &((struct rng *)dev->state)->s;
}

static int rng_post_load(struct device *dev, struct vmm_error *err)
{
	return virtio_mmio_post_load(dev->state, err);
}

static int rng_quiesce(struct device *dev, struct vmm_error *err)
{
	(void)err;
	pthread_mutex_lock(&dev->lock);
	virtio_mmio_pause(dev->state); /* requests complete synchronously: nothing in flight */
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

static int rng_resume(struct device *dev, struct vmm_error *err)
{
	(void)err;
	pthread_mutex_lock(&dev->lock);
	virtio_mmio_resume(dev->state);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

static void rng_destroy(struct device *dev)
{
	struct rng *rng = dev->state;
	if (!rng)
		return;
	virtio_mmio_destroy(&rng->t);
	free(rng);
	dev->state = NULL;
}

static int rng_create(struct vm *vm, struct device *dev, struct vmm_error *err)
{
	uint64_t features;
	uint16_t qsize;
	int r = virtio_type_props(vm, "virtio-rng", &features, &qsize, err);
	if (r < 0)
		return r;
	struct rng *rng = calloc(1, sizeof(*rng));
	if (!rng)
		return vmm_error_set(err, -ENOMEM, "%s: out of memory", dev->name);
	dev->state = rng;
	if ((r = virtio_mmio_init(&rng->t, dev, &rng->s.t, &rng_ops, dev->slot, 1, qsize, features,
				  err)) < 0 ||
	    (r = virtio_mmio_start(&rng->t, err)) < 0)
		return r; /* vm_destroy_devices() calls rng_destroy */
	return 0;
}

const struct device_type device_virtio_rng = {
    .name = "virtio-rng",
    .create = rng_create,
    .destroy = rng_destroy,
    .state = &rng_state_desc,
    .state_ptr = rng_state_ptr,
    .post_load = rng_post_load,
    .quiesce = rng_quiesce,
    .unquiesce = rng_resume,
    .activate = rng_resume,
};

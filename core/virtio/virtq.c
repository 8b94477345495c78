/*
 * core/virtio/virtq.c: one split virtqueue (virtio 1.x, 2.7): taking chains
 * from the available ring, returning them on the used ring, and the
 * notification suppression of VIRTIO_F_EVENT_IDX.
 *
 * The rings and descriptors live in guest memory the guest may rewrite at
 * any moment, so every descriptor is copied once before it is checked and
 * used, every index is reduced or checked against the queue size, and every
 * buffer goes through guest_ptr(). A rule broken marks the queue broken;
 * the transport then sets DEVICE_NEEDS_RESET. Nothing here writes guest
 * memory except the used ring and avail_event.
 */
#include "core/virtio/virtio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static uint16_t rd16(const volatile void *p)
{
	uint16_t v;
	memcpy(&v, (const void *)p, sizeof(v));
	return v;
}

static void wr16(volatile void *p, uint16_t v)
{
	memcpy((void *)p, &v, sizeof(v));
}

static void wr32(volatile void *p, uint32_t v)
{
	memcpy((void *)p, &v, sizeof(v));
}

/* Ring sizes in bytes (virtio 1.x 2.7: desc 16*n, avail 6+2n, used 6+8n). */
static uint64_t desc_bytes(unsigned n)
{
	return 16ull * n;
}

static uint64_t avail_bytes(unsigned n)
{
	return 6ull + 2ull * n;
}

static uint64_t used_bytes(unsigned n)
{
	return 6ull + 8ull * n;
}

int virtq_setup(struct virtq *vq, struct vmm_error *err)
{
	struct virtq_state *s = vq->s;
	unsigned n = s->num;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	if (n == 0 || n > vq->num_max || (n & (n - 1)))
		return vmm_error_set(err, -EINVAL, "queue size %u: not a power of 2 in 1..%u", n,
				     vq->num_max);
	if ((s->desc & 15) || (s->avail & 1) || (s->used & 3))
		return vmm_error_set(
		    err, -EINVAL, "ring addresses desc 0x%llx avail 0x%llx used 0x%llx misaligned",
		    (unsigned long long)s->desc, (unsigned long long)s->avail,
		    (unsigned long long)s->used);
	void *d = guest_ptr(vq->mem, s->desc, desc_bytes(n));
	void *a = guest_ptr(vq->mem, s->avail, avail_bytes(n));
	void *u = guest_ptr(vq->mem, s->used, used_bytes(n));
	if (!d || !a || !u)
		return vmm_error_set(err, -EFAULT,
				     "%s ring at 0x%llx (queue size %u) is outside guest RAM",
				     !d	  ? "descriptor"
				     : !a ? "available"
					  : "used",
				     (unsigned long long)(!d   ? s->desc
							  : !a ? s->avail
							       : s->used),
				     n);
	vq->desc = d;
	vq->avail = a;
	vq->used = u;
	vq->broken = false;
	return 0;
}

static int broken(struct virtq *vq, struct vmm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int broken(struct virtq *vq, struct vmm_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (err) {
		err->code = code;
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	}
	va_end(ap);
	vq->broken = true;
	return code;
}

bool virtq_has_avail(struct virtq *vq)
{
	if (!vq->avail || vq->broken)
		return false;
	uint16_t idx = rd16(&vq->avail[1]);
	return idx != vq->s->last_avail_idx;
}

static void read_desc(const volatile uint8_t *table, unsigned i, struct virtq_desc *d)
{
	memcpy(d, (const void *)(table + 16ull * i), sizeof(*d)); /* one copy, then checked */
}

int virtq_pop(struct virtq *vq, struct virtq_chain *c, struct vmm_error *err)
{
	struct virtq_state *s = vq->s;
	if (!vq->avail || vq->broken)
		return 0;
	uint16_t avail_idx = rd16(&vq->avail[1]);
	uint16_t pending = (uint16_t)(avail_idx - s->last_avail_idx);
	if (pending == 0)
		return 0;
	if (pending > s->num)
		return broken(
		    vq, err, -EPROTO,
		    "available index %u is %u entries ahead of the device's %u (queue size %u)",
		    avail_idx, pending, s->last_avail_idx, s->num);
	atomic_thread_fence(memory_order_acquire); /* ring entries after the index */
	uint16_t head = rd16(&vq->avail[2 + s->last_avail_idx % s->num]);
	if (head >= s->num)
		return broken(vq, err, -EPROTO, "chain head %u beyond queue size %u", head, s->num);

	c->head = head;
	c->nseg = c->n_out = 0;
	c->out_len = c->in_len = 0;
	const volatile uint8_t *table = (const volatile uint8_t *)vq->desc;
	unsigned tsize = s->num, seen = 0, i = head;
	bool indirect = false;
	for (;;) {
		struct virtq_desc d;
		read_desc(table, i, &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (!vq->indirect)
				return broken(vq, err, -EPROTO,
					      "indirect descriptor %u without "
					      "VIRTIO_F_INDIRECT_DESC",
					      i);
			if (indirect || seen)
				return broken(vq, err, -EPROTO, "indirect descriptor %u %s", i,
					      indirect ? "inside an indirect table"
						       : "in the middle of a chain");
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return broken(vq, err, -EPROTO,
					      "indirect descriptor %u also has NEXT", i);
			if (d.len == 0 || d.len % 16 || d.len / 16 > VIRTQ_MAX_SEGS)
				return broken(
				    vq, err, -EPROTO,
				    "indirect table of %u bytes (must be 16..%u, a multiple "
				    "of 16)",
				    d.len, 16 * VIRTQ_MAX_SEGS);
			table = guest_ptr(vq->mem, d.addr, d.len);
			if (!table)
				return broken(vq, err, -EFAULT,
					      "indirect table 0x%llx+%u outside guest RAM",
					      (unsigned long long)d.addr, d.len);
			tsize = d.len / 16;
			indirect = true;
			i = 0;
			continue;
		}
		if (++seen > tsize)
			return broken(vq, err, -ELOOP,
				      "chain from head %u is longer than its table (%u): a loop",
				      head, tsize);
		if (c->nseg == VIRTQ_MAX_SEGS)
			return broken(vq, err, -E2BIG,
				      "chain from head %u has more than %u segments", head,
				      VIRTQ_MAX_SEGS);
		bool write = d.flags & VIRTQ_DESC_F_WRITE;
		if (!write && c->nseg > c->n_out)
			return broken(vq, err, -EPROTO,
				      "chain from head %u: a device-readable segment after a "
				      "device-writable one",
				      head);
		if (d.len) {
			void *p = guest_ptr(vq->mem, d.addr, d.len);
			if (!p)
				return broken(
				    vq, err, -EFAULT,
				    "chain from head %u: buffer 0x%llx+%u outside guest RAM", head,
				    (unsigned long long)d.addr, d.len);
			c->iov[c->nseg] = (struct iovec){p, d.len};
			c->gpa[c->nseg] = d.addr;
			c->nseg++;
			if (write)
				c->in_len += d.len;
			else
				c->out_len += d.len, c->n_out++;
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		if (d.next >= tsize)
			return broken(vq, err, -EPROTO, "chain from head %u: next %u beyond %u",
				      head, d.next, tsize);
		i = d.next;
	}
	s->last_avail_idx++;
	return 1;
}

void virtq_push_n(struct virtq *vq, const uint16_t *heads, const uint32_t *written, unsigned n)
{
	struct virtq_state *s = vq->s;
	if (!vq->used || n == 0)
		return;
	for (unsigned i = 0; i < n; i++) {
		unsigned slot = (uint16_t)(s->used_idx + i) % s->num;
		volatile uint8_t *e = vq->used + 4 + 8ull * slot;
		wr32(e, heads[i]);
		wr32(e + 4, written[i]);
		guest_memory_mark_dirty(vq->mem, s->used + 4 + 8ull * slot, 8);
	}
	atomic_thread_fence(memory_order_release); /* the entries before the index */
	s->used_idx = (uint16_t)(s->used_idx + n);
	wr16(vq->used + 2, s->used_idx);
	guest_memory_mark_dirty(vq->mem, s->used, 4);
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t written)
{
	virtq_push_n(vq, &head, &written, 1);
}

void virtq_rewind(struct virtq *vq, unsigned n)
{
	vq->s->last_avail_idx = (uint16_t)(vq->s->last_avail_idx - n);
}

bool virtq_need_interrupt(struct virtq *vq)
{
	struct virtq_state *s = vq->s;
	if (!vq->avail)
		return false;
	atomic_thread_fence(memory_order_seq_cst); /* used idx out before reading used_event */
	bool need;
	if (vq->event_idx) {
		uint16_t event = rd16(&vq->avail[2 + s->num]);
		uint16_t new_idx = s->used_idx, old = s->signalled_used;
		/* virtio 1.x 2.7.10: interrupt when used_event lies in [old, new) */
		need = !s->signalled_valid ||
		       (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
	} else {
		need = !(rd16(&vq->avail[0]) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	s->signalled_used = s->used_idx;
	s->signalled_valid = true;
	return need;
}

void virtq_set_notify(struct virtq *vq, bool enable)
{
	struct virtq_state *s = vq->s;
	if (!vq->used)
		return;
	if (vq->event_idx) {
		if (!enable)
			return; /* the driver stops kicking once it passes avail_event anyway */
		wr16(vq->used + 4 + 8ull * s->num, s->last_avail_idx);
		guest_memory_mark_dirty(vq->mem, s->used + 4 + 8ull * s->num, 2);
	} else {
		wr16(vq->used, enable ? 0 : VIRTQ_USED_F_NO_NOTIFY);
		guest_memory_mark_dirty(vq->mem, s->used, 2);
	}
	/* avail_event out before the caller looks at the avail index again */
	atomic_thread_fence(memory_order_seq_cst);
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t k = iov[i].iov_len - off;
		if (k > len - done)
			k = len - done;
		memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + off, k);
		done += k;
		off = 0;
	}
	return done;
}

unsigned iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len,
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

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t off, const void *buf, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t k = iov[i].iov_len - off;
		if (k > len - done)
			k = len - done;
		memcpy((uint8_t *)iov[i].iov_base + off, (const uint8_t *)buf + done, k);
		done += k;
		off = 0;
	}
	return done;
}

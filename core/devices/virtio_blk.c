/*
 * core/devices/virtio_blk.c: virtio-blk (virtio 1.x, 5.2) on a raw image:
 * read, write, flush, get-id and discard, asynchronously through io_uring
 * (one ring per disk, its completions an eventfd on the device's I/O
 * thread; bench/aio-bench.c compares it with a thread pool). Buffers go
 * straight from guest RAM to the file (readv/writev on the chain's
 * segments); the page cache is the host's, and flush is fdatasync.
 *
 * One writer per image: the vmm that owns the guest holds an OFD lock on
 * the image (write lock, or a read lock for readonly=on), so a second vmm
 * is refused. A migration's destination opens the image at start-up but
 * takes the lock only when it gets the guest (activate, at Go); the source
 * drains and flushes when it stops the guest (quiesce) and gives the lock
 * up right before Go (handover). See migration/STREAM.md.
 *
 * Guest mistakes: a malformed chain or a request without header or status
 * byte sets DEVICE_NEEDS_RESET; a bad sector, a length that is not a
 * multiple of 512, a write to a read-only disk fail the request (IOERR).
 */
#include "core/devices/devices.h"
#include "core/virtio/virtio.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR	      512ull
#define BLK_ASYNC_MIN (128u << 10)
#define BLK_MERGE_MAX (4u << 20) /* largest merged transfer */

/* Request types and statuses (5.2.6) */
enum { BLK_T_IN = 0, BLK_T_OUT = 1, BLK_T_FLUSH = 4, BLK_T_GET_ID = 8, BLK_T_DISCARD = 11 };
enum { BLK_S_OK = 0, BLK_S_IOERR = 1, BLK_S_UNSUPP = 2 };
#define BLK_F_RO      5
#define BLK_ID_BYTES  20
#define DISCARD_UNMAP 1u

/* Config space (5.2.4), little-endian, read-only for the driver. */
struct blk_config {
	uint64_t capacity; /* 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads, sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp, alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback, unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors, max_discard_seg, discard_sector_alignment;
	uint32_t max_write_zeroes_sectors, max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap, unused1[3];
} __attribute__((packed));

/* Guest-visible state: what migration carries. The capacity is derived
 * from the image; it travels as a check. */
struct blk_state {
	struct virtio_mmio_state t;
	uint64_t capacity;
};

struct blk_req {
	struct virtq_chain c;
	struct iovec data[VIRTQ_MAX_SEGS]; /* the data part of the chain */
	unsigned ndata;
	uint64_t len;	 /* bytes of data */
	uint8_t *status; /* last byte of the chain */
	uint64_t status_gpa;
	uint32_t type;
	bool busy;
	uint64_t sector;
	/* A group: reads (or writes) of adjacent sectors taken in one batch go
	 * out as one transfer, as QEMU's virtio-blk merges them. The leader
	 * holds all members' segments in data[]; members are chained by next. */
	uint64_t total; /* leader: bytes of the whole group */
	int next, tail; /* next member (-1: none); leader: the last member */
};

struct blk {
	struct virtio_mmio t; /* first: the transport finds itself in dev->state */
	struct blk_state s;
	struct blk_config cfg;
	const struct vm_disk *disk;
	const char *name;
	int fd;
	bool locked;
	uint64_t size;
	struct io_uring ring;
	bool ring_ok;
	int ring_efd;
	struct blk_req *req;
	unsigned nreq, inflight;
	int group;	 /* leader of the group being built, -1 */
	unsigned queued; /* SQEs prepared, not yet submitted */
	bool dropping;	 /* a reset: completions are not returned to the driver */
};

/* ---- the image and its lock ---- */

static int image_lock(struct blk *b, struct vmm_error *err)
{
	struct flock fl = {.l_type = b->disk->readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(b->fd, F_OFD_SETLK, &fl) < 0) {
		int e = errno;
		if (e == EAGAIN || e == EACCES)
			return vmm_error_set(
			    err, -EBUSY,
			    "--disk %s: the image is locked by another process (another "
			    "vmm %s it): refusing to use it %s",
			    b->disk->path, b->disk->readonly ? "writes" : "uses",
			    b->disk->readonly ? "while it is written" : "as a second writer");
		return vmm_error_set(err, -e, "--disk %s: cannot lock the image: %s", b->disk->path,
				     strerror(e));
	}
	b->locked = true;
	return 0;
}

static void image_unlock(struct blk *b)
{
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
	if (b->locked && fcntl(b->fd, F_OFD_SETLK, &fl) < 0)
		fprintf(stderr, "vmm: %s: releasing the image lock: %s\n", b->name,
			strerror(errno));
	b->locked = false;
}

static int image_open(struct blk *b, struct vmm_error *err)
{
	const char *path = b->disk->path;
	b->fd = open(path, (b->disk->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0)
		return vmm_error_set(err, -errno, "--disk %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(b->fd, &st) < 0)
		return vmm_error_set(err, -errno, "--disk %s: %s", path, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		b->size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(b->fd, BLKGETSIZE64, &b->size) < 0)
			return vmm_error_set(err, -errno, "--disk %s: BLKGETSIZE64: %s", path,
					     strerror(errno));
	} else {
		return vmm_error_set(err, -EINVAL, "--disk %s: not a regular file or block device",
				     path);
	}
	if (b->size == 0 || b->size % SECTOR)
		return vmm_error_set(
		    err, -EINVAL,
		    "--disk %s: %llu bytes: a raw image must be a non-empty multiple "
		    "of 512 bytes",
		    path, (unsigned long long)b->size);
	return 0;
}

/* ---- requests ---- */

static void mark_in_dirty(struct blk *b, const struct virtq_chain *c, uint64_t len)
{
	for (unsigned i = c->n_out; i < c->nseg && len; i++) {
		uint64_t k = c->iov[i].iov_len < len ? c->iov[i].iov_len : len;
		virtio_mark_dirty(&b->t, c->gpa[i], k);
		len -= k;
	}
}

/* Writes the status, returns the chain; `written` counts the status byte. */
static void finish(struct blk *b, struct blk_req *r, uint8_t status, uint64_t data_written)
{
	if (!b->dropping) {
		*r->status = status;
		virtio_mark_dirty(&b->t, r->status_gpa, 1);
		mark_in_dirty(b, &r->c, data_written);
		virtq_push(&b->t.vq[0], r->c.head, (uint32_t)(data_written + 1));
	}
	r->busy = false;
}

static bool in_range(const struct blk *b, uint64_t sector, uint64_t len)
{
	uint64_t cap = b->size / SECTOR;
	return sector <= cap && len / SECTOR <= cap - sector;
}

static struct io_uring_sqe *sqe(struct blk *b)
{
	struct io_uring_sqe *e = io_uring_get_sqe(&b->ring);
	if (!e) { /* full: push what is queued (cannot happen with ring >= queue size) */
		io_uring_submit(&b->ring);
		e = io_uring_get_sqe(&b->ring);
	}
	return e;
}

/* Sends the group being built as one read or write. */
static void close_group(struct blk *b)
{
	if (b->group < 0)
		return;
	unsigned idx = (unsigned)b->group;
	struct blk_req *l = &b->req[idx];
	b->group = -1;
	struct io_uring_sqe *e = sqe(b);
	if (!e) { /* cannot happen: the ring holds twice the queue */
		for (int i = (int)idx, nx; i >= 0; i = nx) {
			nx = b->req[i].next;
			finish(b, &b->req[i], BLK_S_IOERR, 0);
		}
		return;
	}
	if (l->type == BLK_T_OUT)
		io_uring_prep_writev(e, b->fd, l->data, l->ndata, l->sector * SECTOR);
	else
		io_uring_prep_readv(e, b->fd, l->data, l->ndata, l->sector * SECTOR);
	/* Large transfers go straight to io_uring's workers: their copies then
	 * run in parallel instead of one after the other inside io_uring_submit
	 * on this thread. Small ones stay inline: cheaper. */
	if (l->total >= BLK_ASYNC_MIN)
		io_uring_sqe_set_flags(e, IOSQE_ASYNC);
	io_uring_sqe_set_data64(e, idx);
	b->inflight++;
	b->queued++;
}

/* Joins the group being built when r continues it, else starts a new one. */
static void add_to_group(struct blk *b, struct blk_req *r, unsigned idx)
{
	r->next = -1;
	r->total = r->len;
	if (b->group >= 0) {
		struct blk_req *l = &b->req[b->group];
		if (l->type == r->type && l->sector + l->total / SECTOR == r->sector &&
		    l->ndata + r->ndata <= VIRTQ_MAX_SEGS && l->total + r->len <= BLK_MERGE_MAX) {
			memcpy(&l->data[l->ndata], r->data, r->ndata * sizeof(r->data[0]));
			l->ndata += r->ndata;
			l->total += r->len;
			b->req[l->tail].next = (int)idx;
			l->tail = (int)idx;
			return;
		}
		close_group(b);
	}
	b->group = (int)idx;
	r->tail = (int)idx;
}

/* Starts one request: finished at once, added to a group, or queued. */
static void start(struct blk *b, struct blk_req *r, unsigned idx)
{
	struct virtq_chain *c = &r->c;
	struct {
		uint32_t type, reserved;
		uint64_t sector;
	} hdr;
	iov_to_buf(c->iov, c->n_out, 0, &hdr, sizeof(hdr));
	r->type = hdr.type;
	uint64_t out_data = c->out_len - sizeof(hdr), in_data = c->in_len - 1;
	struct io_uring_sqe *e;

	switch (hdr.type) {
	case BLK_T_IN:
	case BLK_T_OUT: {
		bool out = hdr.type == BLK_T_OUT;
		r->len = out ? out_data : in_data;
		if (out && b->disk->readonly) {
			finish(b, r, BLK_S_IOERR, 0); /* 5.2.6.2: writes to a read-only disk fail */
			return;
		}
		if (r->len % SECTOR || !in_range(b, hdr.sector, r->len) || r->len == 0) {
			finish(b, r, BLK_S_IOERR, 0);
			return;
		}
		r->ndata =
		    out ? iov_slice(c->iov, c->n_out, sizeof(hdr), r->len, r->data)
			: iov_slice(c->iov + c->n_out, c->nseg - c->n_out, 0, r->len, r->data);
		r->sector = hdr.sector;
		add_to_group(b, r, idx);
		return;
	}
	case BLK_T_FLUSH:
		r->len = 0;
		close_group(b); /* in the order taken */
		if (b->disk->readonly || !(e = sqe(b))) {
			finish(b, r, BLK_S_OK, 0); /* nothing of ours to write back */
			return;
		}
		io_uring_prep_fsync(e, b->fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_T_GET_ID: {
		char id[BLK_ID_BYTES] = {0};
		memcpy(id, b->disk->serial, strnlen(b->disk->serial, BLK_ID_BYTES));
		size_t n = iov_from_buf(c->iov + c->n_out, c->nseg - c->n_out, 0, id,
					in_data < BLK_ID_BYTES ? in_data : BLK_ID_BYTES);
		finish(b, r, BLK_S_OK, n);
		return;
	}
	case BLK_T_DISCARD: {
		struct {
			uint64_t sector;
			uint32_t num, flags;
		} seg;
		if (b->disk->readonly || out_data != sizeof(seg)) { /* max_discard_seg is 1 */
			finish(b, r, b->disk->readonly ? BLK_S_IOERR : BLK_S_UNSUPP, 0);
			return;
		}
		iov_to_buf(c->iov, c->n_out, sizeof(hdr), &seg, sizeof(seg));
		r->len = (uint64_t)seg.num * SECTOR;
		close_group(b);
		if ((seg.flags & ~DISCARD_UNMAP) || !in_range(b, seg.sector, r->len) ||
		    !(e = sqe(b))) {
			finish(b, r, seg.flags & ~DISCARD_UNMAP ? BLK_S_UNSUPP : BLK_S_IOERR, 0);
			return;
		}
		io_uring_prep_fallocate(e, b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					seg.sector * SECTOR, r->len);
		break;
	}
	default:
		finish(b, r, BLK_S_UNSUPP, 0);
		return;
	}
	io_uring_sqe_set_data64(e, idx);
	r->total = r->len;
	r->next = -1;
	b->inflight++;
	b->queued++;
}

static void complete(struct blk *b, struct io_uring_cqe *cqe)
{
	uint64_t idx = io_uring_cqe_get_data64(cqe);
	if (idx >= b->nreq || !b->req[idx].busy)
		return;
	struct blk_req *r = &b->req[idx];
	b->inflight--;
	int res = cqe->res;
	bool ok;
	if (r->type == BLK_T_DISCARD)
		ok = res == 0 ||
		     res == -EOPNOTSUPP; /* a hint: a file system without holes is fine */
	else if (r->type == BLK_T_FLUSH)
		ok = res == 0;
	else
		ok = res >= 0 && (uint64_t)res == r->total; /* short transfers only past the end */
	if (!ok)
		fprintf(stderr, "vmm: %s: request type %u: %s\n", b->name, r->type,
			res < 0 ? strerror(-res) : "short transfer");
	for (int i = (int)idx, nx; i >= 0; i = nx) { /* the leader, then its group */
		struct blk_req *m = &b->req[i];
		nx = m->next;
		finish(b, m, ok ? BLK_S_OK : BLK_S_IOERR, ok && m->type == BLK_T_IN ? m->len : 0);
	}
}

/* Reaps every completion there is; with `wait`, until nothing is in flight. */
static unsigned reap(struct blk *b, bool wait)
{
	unsigned n = 0;
	struct io_uring_cqe *cqe;
	for (;;) {
		int r = io_uring_peek_cqe(&b->ring, &cqe);
		if (r == -EAGAIN && wait && b->inflight)
			r = io_uring_wait_cqe(&b->ring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0)
			break;
		complete(b, cqe);
		io_uring_cqe_seen(&b->ring, cqe);
		n++;
	}
	return n;
}

static void blk_queue_notify(struct virtio_mmio *t, unsigned q)
{
	struct blk *b = (struct blk *)t;
	struct virtq *vq = &t->vq[q];
	struct vmm_error err = {0};
	uint16_t used_before = vq->s->used_idx;
	int r = 0;
	bool full = false;
again:
	for (unsigned i = 0;; i++) {
		if (i == b->nreq) {
			full = true; /* cannot happen: no more chains than entries; retried on
					completion */
			break;
		}
		struct blk_req *req = &b->req[i];
		if (req->busy)
			continue;
		if ((r = virtq_pop(vq, &req->c, &err)) <= 0)
			break;
		req->busy = true;
		if (req->c.out_len < 16 || req->c.in_len < 1) {
			req->busy = false;
			snprintf(err.msg, sizeof(err.msg),
				 "request at head %u has no 16-byte header or no status byte",
				 req->c.head);
			r = -EPROTO;
			vq->broken = true;
			break;
		}
		unsigned last = req->c.nseg - 1;
		req->status = (uint8_t *)req->c.iov[last].iov_base + req->c.iov[last].iov_len - 1;
		req->status_gpa = req->c.gpa[last] + req->c.iov[last].iov_len - 1;
		start(b, req, i);
	}
	close_group(b);
	if (b->queued)
		io_uring_submit(&b->ring); /* start them before looking again */
	b->queued = 0;
	if (r < 0) {
		virtio_mmio_set_needs_reset(t, err.msg);
	} else {
		virtq_set_notify(vq, true);
		/* the driver may have added a chain before it could see avail_event */
		if (!full && virtq_has_avail(vq))
			goto again;
	}
	if (vq->s->used_idx != used_before)
		virtio_mmio_notify_used(t, q);
}

/* On the I/O thread: io_uring has completions. */
static void on_complete(void *ctx)
{
	struct blk *b = ctx;
	pthread_mutex_lock(&b->t.dev->lock);
	uint16_t used_before = b->t.vq[0].s->used_idx;
	reap(b, false);
	if (b->t.vq[0].s->used_idx != used_before)
		virtio_mmio_notify_used(&b->t, 0);
	if (virtio_mmio_running(&b->t) && b->t.s->q[0].ready && virtq_has_avail(&b->t.vq[0]))
		blk_queue_notify(&b->t, 0); /* chains left when every request slot was taken */
	pthread_mutex_unlock(&b->t.dev->lock);
}

/* Waits for everything in flight (dev->lock held). */
static void drain(struct blk *b)
{
	uint16_t used_before = b->t.vq[0].s->used_idx;
	reap(b, true);
	if (!b->dropping && b->t.vq[0].s->used_idx != used_before && b->t.vq[0].avail)
		virtio_mmio_notify_used(&b->t, 0);
}

static void blk_reset(struct virtio_mmio *t)
{
	struct blk *b = (struct blk *)t;
	b->dropping = true; /* the rings are the driver's again: write nothing there */
	drain(b);
	b->dropping = false;
}

static void blk_config_read(struct virtio_mmio *t, uint64_t off, uint8_t *data, unsigned size)
{
	struct blk *b = (struct blk *)t;
	if (off < sizeof(b->cfg))
		memcpy(data, (uint8_t *)&b->cfg + off,
		       size < sizeof(b->cfg) - off ? size : sizeof(b->cfg) - off);
}

static const struct virtio_dev_ops blk_ops = {
    .device_id = VIRTIO_ID_BLOCK,
    .config_read = blk_config_read,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
};

/* ---- migration ---- */

static const struct state_field blk_fields[] = {
    VIRTIO_MMIO_STATE_FIELDS(struct blk_state, t),
    VIRTQ_STATE_FIELDS(struct blk_state, t, 0),
    STATE_FIELD(struct blk_state, capacity, STATE_U64),
};
static const struct state_desc blk_state_desc = STATE_DESC(1, 1, blk_fields);

static void *blk_state_ptr(struct device *dev)
{
	return &((struct blk *)dev->state)->s;
}

static int blk_post_load(struct device *dev, struct vmm_error *err)
{
	struct blk *b = dev->state;
	if (b->s.capacity != b->cfg.capacity)
		return vmm_error_set(err, -EINVAL, "%s: %llu sectors at the source, %llu here",
				     dev->name, (unsigned long long)b->s.capacity,
				     (unsigned long long)b->cfg.capacity);
	return virtio_mmio_post_load(&b->t, err);
}

/* Source, vCPUs paused: finish what is in flight, write it back. */
static int blk_quiesce(struct device *dev, struct vmm_error *err)
{
	struct blk *b = dev->state;
	int r = 0;
	pthread_mutex_lock(&dev->lock);
	virtio_mmio_pause(&b->t);
	drain(b);
	if (!b->disk->readonly && fdatasync(b->fd) < 0)
		r = vmm_error_set(err, -errno, "%s: fdatasync %s: %s", dev->name, b->disk->path,
				  strerror(errno));
	pthread_mutex_unlock(&dev->lock);
	return r;
}

/* Source, right before Go: the destination takes the lock at Go. */
static void blk_handover(struct device *dev)
{
	struct blk *b = dev->state;
	pthread_mutex_lock(&dev->lock);
	image_unlock(b);
	pthread_mutex_unlock(&dev->lock);
}

/* Destination at Go (or a restore), or the source taking the guest back:
 * the lock first, then the queues. */
static int blk_activate(struct device *dev, struct vmm_error *err)
{
	struct blk *b = dev->state;
	int r = 0;
	pthread_mutex_lock(&dev->lock);
	if (!b->locked)
		r = image_lock(b, err);
	if (r == 0)
		virtio_mmio_resume(&b->t);
	else
		vmm_error_prefix(err, "%s", dev->name);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

bool virtio_blk_identity(struct device *dev, uint64_t *size, const char **serial, bool *readonly)
{
	if (dev->type != &device_virtio_blk || !dev->state)
		return false;
	struct blk *b = dev->state;
	*size = b->size;
	*serial = b->disk->serial;
	*readonly = b->disk->readonly;
	return true;
}

/* ---- create / destroy ---- */

static void blk_destroy(struct device *dev)
{
	struct blk *b = dev->state;
	if (!b)
		return;
	virtio_mmio_destroy(&b->t); /* stops the I/O thread first */
	if (b->ring_ok) {
		pthread_mutex_lock(&dev->lock);
		b->dropping = true; /* the VM is going away: nothing more to tell it */
		drain(b);
		pthread_mutex_unlock(&dev->lock);
		io_uring_queue_exit(&b->ring);
	}
	if (b->ring_efd >= 0)
		close(b->ring_efd);
	if (b->fd >= 0)
		close(b->fd); /* also drops the OFD lock */
	free(b->req);
	free(b);
	dev->state = NULL;
}

static int blk_create(struct vm *vm, struct device *dev, struct vmm_error *err)
{
	const struct vm_disk *disk = dev->config;
	uint64_t features, seg_max, blk_size, max_discard, discard_align;
	uint16_t qsize;
	int r;
	if ((r = virtio_type_props(vm, "virtio-blk", &features, &qsize, err)) < 0 ||
	    (r = machine_get_u64(&vm->spec.machine, "virtio-blk", "seg-max", &seg_max, err)) < 0 ||
	    (r = machine_get_u64(&vm->spec.machine, "virtio-blk", "blk-size", &blk_size, err)) < 0 ||
	    (r = machine_get_u64(&vm->spec.machine, "virtio-blk", "max-discard-sectors", &max_discard,
				 err)) < 0 ||
	    (r = machine_get_u64(&vm->spec.machine, "virtio-blk", "discard-sector-alignment",
				 &discard_align, err)) < 0)
		return r;
	struct blk *b = calloc(1, sizeof(*b));
	if (!b)
		return vmm_error_set(err, -ENOMEM, "%s: out of memory", dev->name);
	dev->state = b;
	b->fd = b->ring_efd = -1;
	b->disk = disk;
	b->name = dev->name;
	b->group = -1;
	b->nreq = qsize;
	if (!(b->req = calloc(qsize, sizeof(*b->req))))
		return vmm_error_set(err, -ENOMEM, "%s: out of memory", dev->name);
	if ((r = image_open(b, err)) < 0)
		return r;
	/* The owner of the guest holds the lock; an incoming guest's owner is
	 * still the source until Go (activate). */
	if (!vm->spec.incoming && (r = image_lock(b, err)) < 0)
		return r;
	if (!disk->readonly)
		features &= ~(1ull << BLK_F_RO);
	b->cfg = (struct blk_config){
	    .capacity = b->size / SECTOR,
	    .seg_max = (uint32_t)seg_max,
	    .blk_size = (uint32_t)blk_size,
	    .num_queues = 1,
	    .max_discard_sectors = (uint32_t)max_discard,
	    .max_discard_seg = 1,
	    .discard_sector_alignment = (uint32_t)discard_align,
	};
	b->s.capacity = b->cfg.capacity;
	if ((r = io_uring_queue_init(2u * qsize, &b->ring, 0)) < 0)
		return vmm_error_set(err, r, "%s: io_uring: %s", dev->name, strerror(-r));
	b->ring_ok = true;
	b->ring_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->ring_efd < 0 || (r = io_uring_register_eventfd(&b->ring, b->ring_efd)) < 0)
		return vmm_error_set(err, b->ring_efd < 0 ? -errno : r,
				     "%s: io_uring completion eventfd: %s", dev->name,
				     strerror(b->ring_efd < 0 ? errno : -r));
	if ((r = virtio_mmio_init(&b->t, dev, &b->s.t, &blk_ops, dev->slot, 1, qsize, features,
				  err)) < 0 ||
	    (r = iothread_watch(&b->t.io, b->ring_efd, on_complete, b, err)) < 0 ||
	    (r = virtio_mmio_start(&b->t, err)) < 0)
		return r; /* vm_destroy_devices() calls blk_destroy */
	return 0;
}

const struct device_type device_virtio_blk = {
    .name = "virtio-blk",
    .create = blk_create,
    .destroy = blk_destroy,
    .state = &blk_state_desc,
    .state_ptr = blk_state_ptr,
    .post_load = blk_post_load,
    .quiesce = blk_quiesce,
    .handover = blk_handover,
    .unquiesce = blk_activate,
    .activate = blk_activate,
};

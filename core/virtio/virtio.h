/*
 * core/virtio/virtio.h: virtio 1.x over MMIO: split virtqueues (with
 * EVENT_IDX and INDIRECT_DESC), the one checked descriptor-chain walker
 * every device uses, the virtio-mmio transport (version 2 registers only),
 * the per-device I/O thread, and creating virtio devices from the command
 * line on the machine type's slots.
 *
 * Who owns what:
 *   - virtq.c: one queue. Pure functions over guest memory: every guest
 *     address goes through guest_ptr(); nothing here trusts the guest.
 *   - mmio.c: the register file, feature negotiation, queue set-up, the
 *     interrupt (irqfd) and notifications (ioeventfd). A device embeds a
 *     `struct virtio_mmio` and a `struct virtio_mmio_state` (guest-visible,
 *     migrated: its fields are declared with VIRTIO_MMIO_STATE_FIELDS).
 *   - iothread.c: one epoll thread per device; handlers run there.
 *   - slots.c: --disk/--rng parsing, slot assignment, kernel command-line
 *     words. (The migration hooks of all devices: core/device_hooks.c.)
 *
 * Locking: everything guest-visible of a device (registers, queues,
 * requests in flight) is guarded by dev->lock. MMIO handlers already run
 * under it (io_bus_access); I/O-thread handlers take it themselves.
 * All functions return 0 or negative errno with a message in `err`.
 */
#ifndef VMM_VIRTIO_H
#define VMM_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/vm.h"

/* ---- spec constants (virtio 1.x) ---- */

#define VIRTIO_MMIO_MAGIC   0x74726976 /* "virt" */
#define VIRTIO_MMIO_VERSION 2	       /* modern only: no legacy (version 1) registers */
#define VIRTIO_MMIO_VENDOR  0x554d4551 /* "QEMU": drivers ignore it; the value most report */
#define VIRTIO_MMIO_SIZE    0x200      /* registers 0x000-0x0ff, config space 0x100-0x1ff */
#define VIRTIO_MMIO_CONFIG  0x100

enum virtio_mmio_reg {
	VMMIO_MAGIC = 0x000,
	VMMIO_VERSION = 0x004,
	VMMIO_DEVICE_ID = 0x008,
	VMMIO_VENDOR_ID = 0x00c,
	VMMIO_DEVICE_FEATURES = 0x010,
	VMMIO_DEVICE_FEATURES_SEL = 0x014,
	VMMIO_DRIVER_FEATURES = 0x020,
	VMMIO_DRIVER_FEATURES_SEL = 0x024,
	VMMIO_QUEUE_SEL = 0x030,
	VMMIO_QUEUE_NUM_MAX = 0x034,
	VMMIO_QUEUE_NUM = 0x038,
	VMMIO_QUEUE_READY = 0x044,
	VMMIO_QUEUE_NOTIFY = 0x050,
	VMMIO_INTERRUPT_STATUS = 0x060,
	VMMIO_INTERRUPT_ACK = 0x064,
	VMMIO_STATUS = 0x070,
	VMMIO_QUEUE_DESC_LOW = 0x080,
	VMMIO_QUEUE_DESC_HIGH = 0x084,
	VMMIO_QUEUE_DRIVER_LOW = 0x090,
	VMMIO_QUEUE_DRIVER_HIGH = 0x094,
	VMMIO_QUEUE_DEVICE_LOW = 0x0a0,
	VMMIO_QUEUE_DEVICE_HIGH = 0x0a4,
	VMMIO_CONFIG_GENERATION = 0x0fc,
};

#define VIRTIO_STATUS_ACKNOWLEDGE	 1u
#define VIRTIO_STATUS_DRIVER		 2u
#define VIRTIO_STATUS_DRIVER_OK		 4u
#define VIRTIO_STATUS_FEATURES_OK	 8u
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 64u
#define VIRTIO_STATUS_FAILED		 128u

#define VIRTIO_INT_USED	  1u /* InterruptStatus: a used buffer */
#define VIRTIO_INT_CONFIG 2u /* InterruptStatus: configuration change (also NEEDS_RESET) */

#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32

#define VIRTIO_ID_NET	  1
#define VIRTIO_ID_BLOCK	  2
#define VIRTIO_ID_ENTROPY 4

#define VIRTQ_DESC_F_NEXT	   1
#define VIRTQ_DESC_F_WRITE	   2
#define VIRTQ_DESC_F_INDIRECT	   4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY	   1

#define VIRTQ_MAX_SIZE 1024 /* largest queue size any machine type may offer */
#define VIRTQ_MAX_SEGS 256  /* longest chain (direct or through an indirect table) */

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* ---- one split virtqueue (virtq.c) ---- */

/* Guest-visible and migrated: what the driver configured and how far the
 * device got. Everything else about a queue is derived from this. */
struct virtq_state {
	uint64_t desc, avail, used; /* guest-physical ring addresses */
	uint16_t num;		    /* QueueNum: entries (a power of 2) */
	uint16_t last_avail_idx;    /* next avail entry the device takes */
	uint16_t used_idx;	    /* next used index the device publishes */
	uint16_t signalled_used;    /* used_idx when the driver was last interrupted */
	bool signalled_valid;	    /* signalled_used means something (EVENT_IDX) */
	bool ready;		    /* QueueReady */
};

/* A queue at run time: the state plus checked host pointers to the rings. */
struct virtq {
	struct virtq_state *s;
	const struct guest_memory *mem;
	uint16_t num_max;
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;	/* VIRTIO_F_INDIRECT_DESC negotiated */
	bool broken;	/* the guest broke the rules: no more processing until reset */
	volatile struct virtq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[num], used_event */
	volatile uint8_t *used;	  /* flags, idx, {id, len}[num], avail_event */
};

/* A descriptor chain as the device sees it: device-readable segments
 * first (n_out of them), then device-writable ones. Every segment lies
 * inside guest RAM (checked). */
struct virtq_chain {
	uint16_t head;
	unsigned nseg, n_out;
	uint64_t out_len, in_len;
	struct iovec iov[VIRTQ_MAX_SEGS];
	uint64_t gpa[VIRTQ_MAX_SEGS]; /* guest address of each segment, for dirty tracking */
};

/* Checks a queue the driver is about to enable: size a power of 2 within
 * num_max, rings aligned and inside RAM; fills the host pointers. */
int virtq_setup(struct virtq *vq, struct vmm_error *err);
/* Takes the next available chain. 1: *c filled; 0: nothing available;
 * negative: the driver broke the rules (message in err, vq->broken set). */
int virtq_pop(struct virtq *vq, struct virtq_chain *c, struct vmm_error *err);
/* Returns the chain to the driver with `written` bytes written into it. */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t written);
/* Several chains at once (virtio-net's mergeable receive buffers): the used
 * entries are written first and the used index moves once, so the driver
 * never sees part of a frame. */
void virtq_push_n(struct virtq *vq, const uint16_t *heads, const uint32_t *written, unsigned n);
/* Gives back the last n chains taken and not pushed (the device could not
 * use them after all: virtio-net waiting for more receive buffers). */
void virtq_rewind(struct virtq *vq, unsigned n);
/* After pushes: does the driver want an interrupt (flags or EVENT_IDX)?
 * Records what was signalled when it returns true. */
bool virtq_need_interrupt(struct virtq *vq);
/* Tells the driver whether to notify (kick) us: EVENT_IDX avail_event or
 * the NO_NOTIFY flag. Call with enable before sleeping on the queue. */
void virtq_set_notify(struct virtq *vq, bool enable);
/* More chains available than the device has taken? */
bool virtq_has_avail(struct virtq *vq);

/* Copy helpers over a chain's segments [first, first+n): bounded. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t off, const void *buf, size_t len);
/* [skip, skip+len) of a segment list as a new list in dst (room for n);
 * returns its length. */
unsigned iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len,
		   struct iovec *dst);

/* ---- the I/O thread (iothread.c) ---- */

typedef void (*iothread_fn)(void *ctx);

#define IOTHREAD_MAX_WATCH 16

struct iothread {
	int epfd;
	int stop_fd; /* eventfd: leave the loop */
	pthread_t thread;
	bool started;
	unsigned nwatch;
	struct {
		int fd;
		iothread_fn fn;
		void *ctx;
		bool counter; /* an eventfd/timerfd: read its counter before fn */
	} watch[IOTHREAD_MAX_WATCH];
	char name[16];
};

int iothread_init(struct iothread *t, const char *name, struct vmm_error *err);
/* Calls fn(ctx) on the thread whenever the eventfd `fd` fires (the
 * counter is read first). Only before iothread_start. */
int iothread_watch(struct iothread *t, int fd, iothread_fn fn, void *ctx, struct vmm_error *err);
/* Calls fn(ctx) when `fd` (not an eventfd: nothing is read from it, e.g. a
 * tap) becomes readable or fails, edge-triggered: fn must read until EAGAIN
 * or arrange to be called again. Only before iothread_start. */
int iothread_watch_edge(struct iothread *t, int fd, iothread_fn fn, void *ctx,
			struct vmm_error *err);
/* Stops watching `fd` (on the I/O thread itself, e.g. a tap that vanished). */
void iothread_unwatch(struct iothread *t, int fd);
int iothread_start(struct iothread *t, struct vmm_error *err);
/* Stops and joins the thread, closes its descriptors (not the watched ones). */
void iothread_destroy(struct iothread *t);

/* ---- the virtio-mmio transport (mmio.c) ---- */

#define VIRTIO_MAX_QUEUES 4

/* Guest-visible transport state, migrated with the device. */
struct virtio_mmio_state {
	uint64_t device_features; /* offered: checked on load against this build's offer */
	uint64_t driver_features; /* accepted by the driver */
	uint32_t status;
	uint32_t device_features_sel, driver_features_sel;
	uint32_t queue_sel;
	uint32_t interrupt_status;
	uint32_t config_generation;
	uint64_t base; /* slot address: a check on load, not settable by the guest */
	struct virtq_state q[VIRTIO_MAX_QUEUES];
};

struct virtio_mmio;

/* What a device type gives the transport. */
struct virtio_dev_ops {
	uint32_t device_id;
	/* Config space reads and writes (offset from 0x100); NULL = zeros/ignored. */
	void (*config_read)(struct virtio_mmio *t, uint64_t off, uint8_t *data, unsigned size);
	void (*config_write)(struct virtio_mmio *t, uint64_t off, const uint8_t *data,
			     unsigned size);
	/* A queue has work (on the I/O thread, dev->lock held, device running). */
	void (*queue_notify)(struct virtio_mmio *t, unsigned q);
	/* The driver reset the device (dev->lock held): drop everything in flight. */
	void (*reset)(struct virtio_mmio *t);
	/* The driver sets FEATURES_OK with `features` (already a subset of the
	 * offer, with VERSION_1): the device checks what depends on what and
	 * configures its backend; negative refuses FEATURES_OK. NULL = accept. */
	int (*set_features)(struct virtio_mmio *t, uint64_t features);
};

struct virtio_mmio {
	struct device *dev;
	const struct virtio_dev_ops *ops;
	struct virtio_mmio_state *s; /* inside the device's state struct */
	struct vm *vm;
	unsigned nqueues;
	uint16_t queue_max;
	unsigned irq;
	int irq_fd;			   /* eventfd registered with KVM_IRQFD, -1 without KVM */
	int notify_fd[VIRTIO_MAX_QUEUES];  /* eventfds registered with KVM_IOEVENTFD */
	bool ioeventfd[VIRTIO_MAX_QUEUES]; /* KVM took it (else QueueNotify exits to us) */
	struct virtq vq[VIRTIO_MAX_QUEUES];
	struct iothread io;
	bool paused;	  /* quiesced for migration, or not yet activated (incoming) */
	uint64_t base;	  /* this slot's address (the state's copy is checked on load) */
	uint64_t offered; /* feature bits this instance offers */
	bool reported;	  /* a guest error was logged since the last reset */
	struct virtio_kick {
		struct virtio_mmio *t;
		unsigned q;
	} kick[VIRTIO_MAX_QUEUES];
};

/* Sets the transport up on a machine-type slot: registers the MMIO range,
 * creates the eventfds (irqfd, one ioeventfd per queue) and the I/O thread
 * (not started). `s` lives in the device's state struct. `offered` are the
 * feature bits this instance offers (already reduced from the machine
 * type's for instance options such as read-only). */
int virtio_mmio_init(struct virtio_mmio *t, struct device *dev, struct virtio_mmio_state *s,
		     const struct virtio_dev_ops *ops, unsigned slot, unsigned nqueues,
		     uint16_t queue_max, uint64_t offered, struct vmm_error *err);
/* Watches the queue eventfds and starts the I/O thread (after the device
 * added its own watches). */
int virtio_mmio_start(struct virtio_mmio *t, struct vmm_error *err);
void virtio_mmio_destroy(struct virtio_mmio *t);
/* Interrupt the driver for used buffers on queue q, if it wants one. */
void virtio_mmio_notify_used(struct virtio_mmio *t, unsigned q);
/* The device changed its config space (e.g. virtio-net's link status):
 * ConfigGeneration moves on and the driver gets a configuration interrupt. */
void virtio_mmio_config_changed(struct virtio_mmio *t);
/* The driver broke the rules: DEVICE_NEEDS_RESET, a config interrupt, and
 * no more processing until it resets the device. Logs why (once). */
void virtio_mmio_set_needs_reset(struct virtio_mmio *t, const char *why);
/* Negotiated feature bit? */
bool virtio_mmio_has(const struct virtio_mmio *t, unsigned bit);
/* Device running: DRIVER_OK, not NEEDS_RESET, not paused. */
bool virtio_mmio_running(const struct virtio_mmio *t);
/* After a migration load: re-check and re-derive every ready queue. */
int virtio_mmio_post_load(struct virtio_mmio *t, struct vmm_error *err);
/* Pause / resume processing (dev->lock held). Resuming re-checks every
 * queue: the driver may have kicked while we were paused. */
void virtio_mmio_pause(struct virtio_mmio *t);
void virtio_mmio_resume(struct virtio_mmio *t);
/* Marks [gpa, gpa+len) written by the VMM (dirty for migration). */
void virtio_mark_dirty(struct virtio_mmio *t, uint64_t gpa, uint64_t len);

/* The transport's migrated fields, for a device state struct `type` whose
 * member `m` is the struct virtio_mmio_state (queues 0..nq-1 listed by the
 * VIRTQ_STATE_FIELDS rows that follow). */
#define VIRTIO_MMIO_STATE_FIELDS(type, m)                                                          \
	STATE_FIELD(type, m.device_features, STATE_U64),                                           \
	    STATE_FIELD(type, m.driver_features, STATE_U64),                                       \
	    STATE_FIELD(type, m.status, STATE_U32),                                                \
	    STATE_FIELD(type, m.device_features_sel, STATE_U32),                                   \
	    STATE_FIELD(type, m.driver_features_sel, STATE_U32),                                   \
	    STATE_FIELD(type, m.queue_sel, STATE_U32),                                             \
	    STATE_FIELD(type, m.interrupt_status, STATE_U32),                                      \
	    STATE_FIELD(type, m.config_generation, STATE_U32),                                     \
	    STATE_FIELD(type, m.base, STATE_U64)
#define VIRTQ_STATE_FIELDS(type, m, i)                                                             \
	STATE_FIELD(type, m.q[i].desc, STATE_U64), STATE_FIELD(type, m.q[i].avail, STATE_U64),     \
	    STATE_FIELD(type, m.q[i].used, STATE_U64), STATE_FIELD(type, m.q[i].num, STATE_U16),   \
	    STATE_FIELD(type, m.q[i].last_avail_idx, STATE_U16),                                   \
	    STATE_FIELD(type, m.q[i].used_idx, STATE_U16),                                         \
	    STATE_FIELD(type, m.q[i].signalled_used, STATE_U16),                                   \
	    STATE_FIELD(type, m.q[i].signalled_valid, STATE_BOOL),                                 \
	    STATE_FIELD(type, m.q[i].ready, STATE_BOOL)

/* ---- slots and the command line (slots.c) ---- */

/* The machine type's virtio-mmio slot `i`: address and IRQ. -ENODEV with a
 * message naming the first machine version that has slots when this one
 * has none; -ENOSPC when i is past the last slot. */
int virtio_slot(const struct vm *vm, unsigned i, uint64_t *base, unsigned *irq,
		struct vmm_error *err);
/* The machine type's properties of a device type ("virtio-blk"): offered
 * features and queue size. */
int virtio_type_props(const struct vm *vm, const char *type, uint64_t *features,
		      uint16_t *queue_size, struct vmm_error *err);

#endif

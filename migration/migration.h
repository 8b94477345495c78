/*
 * migration/migration.h: live migration and snapshots.
 *
 * The stream (documented in migration/STREAM.md): a 16-byte preamble, then
 * records, each an 8-byte header {u32 length, u16 type, u8 version,
 * u8 flags} and a protobuf payload (migration/proto/stream.proto), then an
 * End record with the XXH3-64 of everything before it. Over sockets the
 * destination answers on the same connection (Ready/Refused, Resumed) and
 * the source hands the guest over with Go.
 *
 * Pieces, one job each:
 *   stream.c      framing: writer (pack, hash, emit) and incremental reader
 *   header.c      the Header record: build at the source, check at the destination
 *   instream.c    the destination's pull reader (page data read straight into RAM)
 *   ram*.c, populate.c, zpool.c, flow.c   guest RAM in the stream (ram.h)
 *   multiconn.c   data connections (several connections per migration)
 *   local.c       same-host moves: the RAM memfd instead of pages
 *   sections.c    the table of state sections both sides walk (save, receive, load)
 *   *_record(s).c each state record <-> its plain struct (records.h, pbmap.h)
 *   channel.c     the source's connection (libuv socket on the worker's own loop, or a file)
 *   source.c      the outgoing migration: pre-copy, stop-and-copy, handover, statistics
 *   dest.c        the incoming side: listen, parse, build the VM, load, resume
 * Migration never issues a KVM ioctl: the core gets and sets state as
 * plain structs (core/state.h). All functions return 0 or negative errno
 * with a one-line message.
 */
#ifndef VMM_MIGRATION_H
#define VMM_MIGRATION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <xxhash.h>

#include "migration/proto/stream.pb-c.h"
#include "util/error.h"
#include "core/state.h"

#define MIG_MAGIC "VMMSTRM"	     /* 8 bytes with the NUL */
#define MIG_FORMAT_MAJOR 1
#define MIG_FORMAT_MINOR 2 /* 1.1: versioned conversation (capabilities), Header.disks;
			    * 1.2: Header.nets, the data path (ram-map, ram-pages,
			    * several connections, local moves) */
#define MIG_PREAMBLE_SIZE 16	     /* magic[8], u16 major, u16 minor, u32 reserved */
#define MIG_RECORD_HEADER_SIZE 8
#define MIG_MAX_PAYLOAD (32u << 20) /* no record is larger; bounds every allocation */
#define MIG_RAM_BATCH_PAGES 256	     /* pages per RamBatch at the source */
#define MIG_RAM_BATCH_MAX_PAGES 4096 /* what a destination accepts in one RamBatch (v1) */
#define MIG_RAM_PAGES_MAX 1024	      /* data (or zero) pages in one ram-pages record (1.2) */

#define MIG_FLAG_REQUIRED 0x01 /* a reader that does not know this type must refuse */

enum mig_record_type {
	MIG_REC_HEADER = 1,
	MIG_REC_RAM = 2,
	MIG_REC_VCPU = 3,
	MIG_REC_IRQCHIP = 4,
	MIG_REC_PIT = 5,
	MIG_REC_CLOCK = 6,
	MIG_REC_DEVICE = 7,
	MIG_REC_END = 8,
	/* return path and handover */
	MIG_REC_READY = 16,
	MIG_REC_REFUSED = 17,
	MIG_REC_GO = 18,
	MIG_REC_RESUMED = 19,
	MIG_REC_ACCEPTED = 20,
	/* format 1.2 */
	MIG_REC_RAM_MAP = 9,	/* populated ranges, before the pages (optional) */
	MIG_REC_RAM_PAGES = 10, /* envelope + page data outside it */
	MIG_REC_HELLO = 11,	/* first record of a data connection */
	MIG_REC_ACK = 12,	/* destination -> source: applied so far (optional) */
	MIG_REC_DATA_END = 13,	/* last record of a data connection */
	MIG_REC_MEM_FD = 14,	/* same-host move: the RAM memfd rides with it */
};

/* What this build writes and accepts, per record type (stream.c). */
struct mig_record_desc {
	enum mig_record_type type;
	const char *name;
	uint8_t version;     /* written by this build */
	uint8_t min_version; /* oldest this build can read */
	bool required;	     /* written with MIG_FLAG_REQUIRED */
	unsigned unpack_factor; /* unpacking may cost this many times the payload size */
};
const struct mig_record_desc *mig_record_desc(unsigned type);
const char *mig_record_name(unsigned type);

/* ---- writer (stream.c) ---- */

/* Where packed bytes go: a channel at the source, a buffer in tests. */
typedef int (*mig_sink_fn)(void *ctx, const void *data, size_t len, struct vmm_error *err);
/* Optional: several buffers in order, in one go (page data straight from
 * guest memory: nothing is copied on the way to the socket). */
typedef int (*mig_sink_iov_fn)(void *ctx, const struct iovec *iov, int n, struct vmm_error *err);

struct mig_writer {
	mig_sink_fn sink;
	mig_sink_iov_fn sink_iov; /* NULL: sink() is called per buffer */
	void *sink_ctx;
	XXH3_state_t *hash;
	uint64_t records;
	uint64_t bytes;
	uint8_t *buf; /* scratch for packing one record */
	size_t buf_size;
};

int mig_writer_init(struct mig_writer *w, mig_sink_fn sink, void *ctx, struct vmm_error *err);
void mig_writer_free(struct mig_writer *w);
int mig_write_preamble(struct mig_writer *w, struct vmm_error *err);
/* Packs one record (header + payload), adds it to the running hash. */
int mig_write_record(struct mig_writer *w, enum mig_record_type type, const ProtobufCMessage *msg,
		     struct vmm_error *err);
/* A record with data outside its envelope (ram-pages): the payload is
 * u32 envelope length, the packed `msg`, then data_len bytes from `data`.
 * The running hash covers the header, the length and the envelope, not the
 * data (which carries its own checks, STREAM.md); the data is handed to the
 * sink as it is, never copied here. */
int mig_write_record_data(struct mig_writer *w, enum mig_record_type type,
			  const ProtobufCMessage *msg, const struct iovec *data, int ndata,
			  size_t data_len, struct vmm_error *err);
/* Writes the End record carrying the hash and count of everything before. */
int mig_write_end(struct mig_writer *w, uint64_t ram_pages, struct vmm_error *err);
/* The DataEnd record of a data connection: the same, for its own stream. */
int mig_write_data_end(struct mig_writer *w, uint64_t ram_pages, struct vmm_error *err);

/* ---- reader (stream.c) ---- */

struct mig_record {
	unsigned type;
	unsigned version;
	unsigned flags;
	const uint8_t *payload; /* ram-pages from the pull reader: the envelope only */
	size_t len;
	size_t data_len; /* ram-pages from the pull reader: data bytes still to read */
	uint64_t hash_before; /* XXH3 of the stream up to this record's header */
	uint64_t index;	      /* records before this one */
};

/* Called once per complete record; a negative return stops the reader. */
typedef int (*mig_record_fn)(void *ctx, const struct mig_record *rec, struct vmm_error *err);

enum mig_reader_state { MIG_READ_PREAMBLE, MIG_READ_HEADER, MIG_READ_PAYLOAD, MIG_READ_DONE };

struct mig_reader {
	enum mig_reader_state state;
	bool expect_preamble; /* false for the return path (records only) */
	mig_record_fn on_record;
	void *ctx;
	XXH3_state_t *hash;
	uint8_t hdr[MIG_RECORD_HEADER_SIZE > MIG_PREAMBLE_SIZE ? MIG_RECORD_HEADER_SIZE
							       : MIG_PREAMBLE_SIZE];
	size_t have;
	uint8_t *payload;
	size_t payload_cap;
	uint32_t len;
	unsigned type, version, flags;
	uint64_t records;
	uint64_t bytes;
	unsigned major, minor; /* from the preamble */
};

int mig_reader_init(struct mig_reader *r, bool expect_preamble, mig_record_fn fn, void *ctx,
		    struct vmm_error *err);
void mig_reader_free(struct mig_reader *r);
/* Feeds bytes; calls on_record for each complete record. Errors: malformed
 * preamble, newer major version, oversized record, unknown required type. */
int mig_reader_feed(struct mig_reader *r, const uint8_t *data, size_t len, struct vmm_error *err);
/* Marks the stream as finished (after End): further bytes are an error. */
void mig_reader_finish(struct mig_reader *r);

/* Unpacking is bounded: protobuf-c allocates through a budget of
 * unpack_factor x payload size + MIG_UNPACK_SLACK bytes (stream.c's record
 * table), so no record can make the reader allocate more than a small
 * multiple of what it weighs; -EMSGSIZE once a record would. */
#define MIG_UNPACK_SLACK (64u << 10)
size_t mig_unpack_budget(unsigned type, size_t len);
/* Unpacks `len` bytes as `desc` for a record of `type`; *cost (optional)
 * gets the bytes it allocated. The caller frees with
 * protobuf_c_message_free_unpacked(msg, NULL). */
int mig_unpack_bytes(unsigned type, const ProtobufCMessageDescriptor *desc, const uint8_t *data,
		     size_t len, ProtobufCMessage **out, size_t *cost, struct vmm_error *err);
/* The same for a record a reader delivered. For a ram-pages record this is
 * the envelope (mig_record_split). */
int mig_unpack(const struct mig_record *rec, const ProtobufCMessageDescriptor *desc,
	       ProtobufCMessage **out, struct vmm_error *err);

/* The envelope and data of a ram-pages record whose whole payload is in
 * memory (the push reader): checks the envelope length against the record. */
#define MIG_MAX_ENVELOPE (256u << 10) /* no ram-pages envelope is larger */
/* The framing checks both readers make (stream.c). */
struct mig_record_hdr {
	uint32_t len;
	unsigned type, version, flags;
};
int mig_check_preamble(const uint8_t *p, unsigned *major, unsigned *minor, struct vmm_error *err);
/* A record header at position `index`: size cap, known type or optional,
 * version within what this build reads. */
int mig_check_record_header(const uint8_t *h, uint64_t index, struct mig_record_hdr *out,
			    struct vmm_error *err);
/* How many bytes of a record's payload the stream hash covers. */
size_t mig_hashed_len(unsigned type, const uint8_t *payload, size_t len);
int mig_record_split(const struct mig_record *rec, struct mig_record *envelope,
		     const uint8_t **data, size_t *data_len, struct vmm_error *err);

/* ---- pull reader (instream.c): a connection read record by record ---- */

struct mig_conn;
/* The destination reads its connections with this one: exact reads, so
 * the data of a ram-pages record is never buffered here but read by the
 * caller straight into guest memory (mig_in_readv). Same checks and the
 * same running hash as the push reader. */
struct mig_in {
	struct mig_conn *conn;
	uint32_t max_payload; /* of any record but ram-pages; 0: MIG_MAX_PAYLOAD */
	XXH3_state_t *hash;
	uint64_t records;
	uint64_t bytes;	       /* consumed so far (what an Ack reports once applied) */
	unsigned major, minor; /* from the preamble */
	uint8_t *payload;
	size_t payload_cap;
	size_t data_left; /* of the current ram-pages record */
	unsigned current_type;
};
int mig_in_init(struct mig_in *in, struct mig_conn *conn, struct vmm_error *err);
void mig_in_free(struct mig_in *in);
/* Reads and checks the preamble; timeout_ms for the first byte to come. */
int mig_in_preamble(struct mig_in *in, unsigned timeout_ms, struct vmm_error *err);
/* The next record: its payload (the envelope, for ram-pages) is valid until
 * the next call. A ram-pages record's data must be consumed with
 * mig_in_readv / mig_in_skip_data before the next call. Unknown optional
 * records are skipped here. timeout_ms: the most any read may wait. */
int mig_in_next(struct mig_in *in, struct mig_record *rec, unsigned timeout_ms,
		struct vmm_error *err);
/* Reads exactly the iovecs' bytes of the current record's data. */
int mig_in_readv(struct mig_in *in, struct iovec *iov, int n, unsigned timeout_ms,
		 struct vmm_error *err);
int mig_in_skip_data(struct mig_in *in, unsigned timeout_ms, struct vmm_error *err);

/* ---- the conversation's versions and capabilities (handshake.c) ---- */

/* What one side of a migration can do. Format 1.0 peers (vmm 0.1.0) send
 * no list; they speak "accepted" and "go-paused". */
enum mig_cap {
	MIG_CAP_ACCEPTED = 1u << 0,  /* destination answers the header with Accepted */
	MIG_CAP_GO_PAUSED = 1u << 1, /* Go.paused: a guest paused at the source stays paused */
	/* format 1.2 */
	MIG_CAP_RAM_PAGES = 1u << 2, /* reads ram-pages records (page data outside the envelope) */
	MIG_CAP_ACK = 1u << 3,	     /* source: reads Acks; destination: sends them */
	MIG_CAP_MULTICONN = 1u << 4, /* pages over several connections (Header.connections) */
	MIG_CAP_LOCAL = 1u << 5,     /* same-host move: RAM as a memfd (MemFd) */
};

struct mig_peer {
	unsigned major, minor; /* stream format */
	char vmm_version[32];
	unsigned caps;	       /* enum mig_cap bits */
};

/* This build, as a peer. */
void mig_peer_self(struct mig_peer *p);
/* The source as its Header describes it; -EPROTONOSUPPORT (naming the
 * source as the newer side) when it requires a capability this build lacks
 * or speaks another major format. */
int mig_peer_from_header(const Vmm__Migration__Header *h, struct mig_peer *out,
			 struct vmm_error *err);
/* The destination as its Accepted describes it. */
void mig_peer_from_accepted(const Vmm__Migration__Accepted *a, struct mig_peer *out);
/* Fills the Header's (or Accepted's) capability list with this build's;
 * `requires` what this particular stream needs from the destination. The
 * strings are static. */
void mig_caps_to_header(Vmm__Migration__Header *h, unsigned requires, const char **buf,
			size_t bufn);
void mig_caps_to_accepted(Vmm__Migration__Accepted *a, const char **buf, size_t bufn);
/* "accepted,go-paused" */
void mig_caps_format(unsigned caps, char *buf, size_t len);

/* ---- header (header.c) ---- */

/* Builds the Header for this VM (its spec, every vCPU's CPUID table, RAM
 * layout); &(*out)->h is the message (it is the first member). Free with
 * mig_header_buf_free(). */
struct mig_header_buf;
int mig_header_build(struct vm *vm, unsigned requires, struct mig_header_buf **out,
		     struct vmm_error *err);
void mig_header_buf_free(struct mig_header_buf *b);
#define mig_header_msg(buf) ((Vmm__Migration__Header *)(void *)(buf))
/* Record-level sanity (names, counts, sizes) before anything is built. */
int mig_header_check_basic(const Vmm__Migration__Header *h, struct vmm_error *err);
/* The guest the stream describes, as a spec (its machine type must be known
 * to this build: the message then says the source is newer). */
int mig_header_to_spec(const Vmm__Migration__Header *h, struct vm_spec *out,
		       struct vmm_error *err);
/* After the destination VM is built: same RAM layout, and every vCPU's
 * CPUID equal to the stream's (differences named as features). */
int mig_header_check_vm(const Vmm__Migration__Header *h, struct vm *vm, struct vmm_error *err);

/* RAM: migration/ram.h. */

/* ---- state sections (sections.c) ---- */

/* What the destination keeps from the state sections until the End record
 * proves the stream whole; then loaded into the VM in load order. */
struct mig_state_in {
	struct vm *vm;
	struct vcpu_state *vcpus; /* vm->ncpus of each */
	bool *have_vcpu;
	struct vm_irqchip_state irqchip;
	struct vm_pit_state pit;
	struct vm_clock_state clock;
	bool have_irqchip, have_pit, have_clock;
	Vmm__Migration__DeviceState *devs[VM_MAX_DEVICES];
	unsigned ndevs;
};

enum mig_save_point {
	MIG_SAVE_AT_STOP,   /* right after the vCPUs stopped, before the last RAM pages */
	MIG_SAVE_AFTER_RAM, /* after the last RAM pages, before End */
};

/* One kind of state: its record type, when the source saves it and in which
 * order the destination loads it. */
struct mig_section {
	enum mig_record_type type;
	const char *name;
	enum mig_save_point save_point;
	unsigned load_order;
	/* source, vCPUs paused: writes this section's records */
	int (*save)(struct vm *vm, struct mig_writer *w, struct vmm_error *err);
	/* destination: unpacks and checks one record and keeps it */
	int (*receive)(struct mig_state_in *in, const struct mig_record *rec, struct vmm_error *err);
	/* destination, after End: checks the section is complete, loads it */
	int (*load)(struct mig_state_in *in, struct vmm_error *err);
};

/* The section a record type belongs to, or NULL (not a state record). */
const struct mig_section *mig_section_find(unsigned type);
int mig_sections_save(struct vm *vm, struct mig_writer *w, enum mig_save_point at,
		      struct vmm_error *err);
int mig_state_in_init(struct mig_state_in *in, struct vm *vm, struct vmm_error *err);
void mig_state_in_free(struct mig_state_in *in);
/* Every section's load, in load order; fails on the first incomplete one. */
int mig_sections_load(struct mig_state_in *in, struct vmm_error *err);

#endif

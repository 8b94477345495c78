/*
 * migration/ram.h: guest RAM in the stream, both sides, and what steers it.
 *
 *   ram_map.c   the source's populated-range walk: the RamMap records, and
 *               pass 0's ranges (SEEK_DATA, or the page cache on hugetlbfs)
 *   ram_send.c  one sender per connection: pages -> ram-pages records
 *               written straight from guest memory (raw), or staged and
 *               compressed on worker threads; RamBatch v1 for older peers
 *   ram_recv.c  one receiver per connection: ram-pages read straight into
 *               guest memory, per-page hashes checked, zero pages, zstd
 *               batches handed to worker threads; RamBatch v1 as before
 *   populate.c  the destination maps the announced ranges on its own
 *               thread ahead of the arriving pages
 *   zpool.c     the worker threads that (de)compress batches
 *   flow.c      what the destination has applied (Acks), the backlog, the
 *               end-to-end rate, the bandwidth cap, and the compression
 *               choice made from measured rates
 *
 * Pages are spread over connections by 2 MiB chunk of guest-physical
 * address (chunk % connections), so every version of a page travels on the
 * same connection, in order: a destination never applies an older copy
 * over a newer one.
 */
#ifndef VMM_MIGRATION_RAM_H
#define VMM_MIGRATION_RAM_H

#include <pthread.h>
#include <stdatomic.h>

#include "migration/migration.h"

#define MIG_PAGE_SIZE	   4096u
#define MIG_PAGE_SHIFT	   12
#define MIG_CHUNK_SHIFT	   9	/* 512 pages: the unit pages are spread over connections by */
#define MIG_MAP_MAX_RANGES 4096 /* per RamMap record */
#define MIG_BITS_PER_WORD  (8 * sizeof(unsigned long))

static inline unsigned mig_page_conn(uint64_t pfn, unsigned nconns)
{
	return nconns <= 1 ? 0 : (unsigned)((pfn >> MIG_CHUNK_SHIFT) % nconns);
}

/* The page's index in the memfd, or -1 if pfn is not guest RAM. */
int64_t mig_page_index(const struct guest_memory *mem, uint64_t pfn);

/* ---- flow.c ---- */

enum mig_compress_mode {
	MIG_COMPRESS_AUTO, /* zstd only while it pays (measured), the default */
	MIG_COMPRESS_ON,   /* always zstd (compress-level) */
	MIG_COMPRESS_OFF,  /* never */
};
const char *mig_compress_mode_name(enum mig_compress_mode m);
int mig_compress_mode_parse(const char *s, enum mig_compress_mode *out);

/* The compression choice from measured rates (pure, unit-tested):
 *   raw:  pages move at the link's rate L (bytes the destination applies/s)
 *   zstd: pages move at min(W x Z, R x L): W workers compressing Z bytes/s
 *         each, R = uncompressed/compressed
 * zstd is chosen when that beats raw by 10%, and only where compressing
 * costs nothing else: not on this host's own memory (unix:, loopback: the
 * "link" is a memory copy, the CPUs it shares are the limit), and only with
 * idle CPU to do it (W workers need W x (what they carry / Z) cores; the
 * host had `idle_cores` idle). A max-bandwidth cap is a link by itself.
 * Without a measured link (or sample) raw stays. */
struct mig_compress_inputs {
	enum mig_compress_mode mode;
	int level;
	double link_bps; /* 0: not measured yet */
	double zstd_bps; /* per worker, 0: no sample yet */
	double ratio;	 /* uncompressed / compressed of the samples */
	unsigned workers;
	bool capped;	   /* the link is a max-bandwidth cap */
	bool same_host;	   /* unix:, or a loopback address */
	double idle_cores; /* idle CPUs of this host, < 0: unknown */
};
/* Returns whether to compress; `why` says why in one line. */
bool mig_compress_choose(const struct mig_compress_inputs *in, char *why, size_t len);

/* Rates over a sliding window of (time, bytes) samples. */
#define MIG_RATE_SAMPLES 64
struct mig_rate {
	uint64_t t[MIG_RATE_SAMPLES], v[MIG_RATE_SAMPLES];
	unsigned head, n;
};
void mig_rate_add(struct mig_rate *r, uint64_t t_ns, uint64_t total);
/* Bytes/s over the samples within window_ns of the newest; 0 if too few. */
double mig_rate_get(const struct mig_rate *r, uint64_t window_ns);

/* Shared by every sender of one migration (thread-safe). */
struct mig_flow {
	atomic_uint_fast64_t sent;	   /* bytes the transports took, all connections */
	atomic_uint_fast64_t applied;	   /* bytes the destination reported applied (Acks) */
	atomic_bool acks;		   /* the destination sends Acks */
	atomic_bool compress;		   /* what senders do with the next batch */
	atomic_uint_fast64_t dest_wait_ns; /* Acks: time the destination's readers waited */
	pthread_mutex_t lock;		   /* guards everything below */
	unsigned nconns;
	struct mig_rate rate; /* of `applied` (of `sent` without Acks) */
	struct mig_rate idle; /* of dest_wait_ns */
	double dest_idle;     /* fraction of time waiting for input, -1 unknown */
	bool probing;
	uint64_t last_tick_ns;
	/* the bandwidth cap, one window per second over all connections */
	uint64_t max_bandwidth, win_start_ns, win_bytes;
	/* compression */
	enum mig_compress_mode mode;
	int level;
	unsigned workers;
	double zstd_bps, ratio; /* moving averages of the samples */
	unsigned samples;
	double link_bps;	/* measured while sending raw */
	uint64_t mode_since_ns; /* when `compress` last changed */
	uint64_t last_sample_ns;
	uint64_t zstd_bytes_in, zstd_bytes_out;
	char reason[200];
	bool same_host;
	uint64_t cpu_idle_prev, cpu_total_prev, cpu_sample_ns;
	double idle_cores; /* moving average, -1 unknown */
	bool idle_cores_fixed; /* tests: idle_cores as set, /proc/stat not read */
	unsigned ncpus;
};
void mig_flow_init(struct mig_flow *f, enum mig_compress_mode mode, int level, unsigned workers,
		   uint64_t max_bandwidth);
void mig_flow_free(struct mig_flow *f);
/* The destination is on this host (unix:, loopback): zstd never pays there. */
void mig_flow_same_host(struct mig_flow *f, bool same);
void mig_flow_set_bandwidth(struct mig_flow *f, uint64_t max_bandwidth);
/* Sleeps as needed so all connections together stay under the cap. */
void mig_flow_throttle(struct mig_flow *f, size_t len);
/* A compression sample: raw bytes in, compressed out, time taken. */
void mig_flow_sample(struct mig_flow *f, size_t raw, size_t packed, uint64_t ns);
/* Whether a sender should take a sample now (rate-limited). */
bool mig_flow_want_sample(struct mig_flow *f, uint64_t now_ns);
/* Records a rate sample and revisits the compression choice; any thread. */
void mig_flow_tick(struct mig_flow *f, uint64_t now_ns);
/* End-to-end bytes/s (applied, or sent without Acks); 0 if not known yet. */
double mig_flow_rate(struct mig_flow *f);
uint64_t mig_flow_backlog(struct mig_flow *f);
/* For query-migrate: "zstd-1"/"none" and why. */
void mig_flow_describe(struct mig_flow *f, char *mode, size_t mlen, char *why, size_t wlen);

/* ---- zpool.c: (de)compression workers ---- */

struct mig_zpool;
struct mig_zjob;
typedef void (*mig_zjob_fn)(struct mig_zjob *job, void *cctx, void *dctx);
struct mig_zjob {
	mig_zjob_fn fn;
	void *arg;
	atomic_int state; /* 0 idle, 1 queued/running, 2 done */
	uint64_t ns;	  /* time the worker spent */
};
int mig_zpool_start(struct mig_zpool **out, unsigned threads, struct vmm_error *err);
void mig_zpool_submit(struct mig_zpool *p, struct mig_zjob *job);
/* Waits until `job` is done. */
void mig_zpool_wait(struct mig_zpool *p, struct mig_zjob *job);
bool mig_zjob_done(struct mig_zjob *job);
void mig_zpool_stop(struct mig_zpool *p);
unsigned mig_zpool_threads(const struct mig_zpool *p);

/* ---- ram_map.c (source) ---- */

/* Calls fn for every populated range [first_pfn, first_pfn+count) of guest
 * RAM, in address order (never reads the pages). Untouched pages are
 * counted in *untouched. */
typedef int (*mig_range_fn)(void *ctx, uint64_t first_pfn, uint64_t count, struct vmm_error *err);
int mig_ram_walk_populated(const struct guest_memory *mem, atomic_bool *cancel, mig_range_fn fn,
			   void *ctx, uint64_t *untouched, struct vmm_error *err);
/* The ranges of that walk, kept for pass 0 (every connection's), so the
 * memfd is walked once per migration: SEEK_HOLE scans the page cache of a
 * populated range page by page. Bounded: beyond MIG_RANGES_MAX ranges it
 * is not kept (complete = false) and each pass walks for itself. */
#define MIG_RANGES_MAX (64u << 10)
struct mig_ram_ranges {
	uint64_t *first, *count;
	size_t n;
	uint64_t untouched;
	bool complete;
};
void mig_ram_ranges_free(struct mig_ram_ranges *r);
/* Writes the populated-range map as RamMap records; fills *keep if given. */
int mig_ram_send_map(struct vm *vm, struct mig_writer *w, atomic_bool *cancel,
		     struct mig_ram_ranges *keep, struct vmm_error *err);

/* ---- ram_send.c ---- */

struct mig_ram_stats {
	uint64_t normal_pages;	  /* sent with data */
	uint64_t zero_pages;	  /* sent as numbers only */
	uint64_t untouched_pages; /* never populated, never read */
	uint64_t data_bytes;	  /* uncompressed page bytes */
	uint64_t wire_bytes;	  /* RAM record bytes */
	uint64_t zstd_pages;	  /* pages that went compressed */
};

enum mig_ram_encoding {
	MIG_RAM_ENC_PAGES, /* ram-pages records (format 1.2) */
	MIG_RAM_ENC_V1,	   /* RamBatch records, for destinations before 1.2 */
};

#define MIG_TX_JOBS 4 /* compressed batches in flight per connection */
struct mig_tx_job;

/* One connection's sender. Not thread-safe: one thread uses it at a time. */
struct mig_ram_tx {
	struct vm *vm;
	struct mig_writer *w;
	struct mig_flow *flow;		     /* shared; NULL: raw always (tests) */
	const struct mig_ram_ranges *ranges; /* pass 0 from these when complete */
	struct mig_zpool *zpool;	     /* shared; NULL: compress in this thread */
	enum mig_ram_encoding enc;
	bool hash_pages; /* raw pages carry their XXH3-64 (the default; see source.c) */
	int v1_level;	 /* RamBatch: zstd level as before 1.2 (0: none) */
	unsigned index, nconns;
	uint32_t iteration;
	/* the batch being collected */
	unsigned npages, nzeros;
	uint64_t pages[MIG_RAM_BATCH_PAGES];
	uint64_t zeros[MIG_RAM_BATCH_PAGES];
	uint64_t hashes[MIG_RAM_BATCH_PAGES];
	struct iovec iov[MIG_RAM_BATCH_PAGES];
	void *scratch;	/* page runs of one batch */
	uint8_t *stage; /* MIG_RAM_BATCH_PAGES pages: v1 batches, samples */
	uint8_t *packed;
	size_t packed_cap;
	void *zctx; /* this thread's ZSTD_CCtx */
	unsigned skip_compress;
	/* compressed batches in flight, sent in order */
	struct mig_tx_job *jobs;
	unsigned job_head, job_count;
	struct mig_ram_stats stats;
};

int mig_ram_tx_init(struct mig_ram_tx *tx, struct vm *vm, struct mig_writer *w,
		    enum mig_ram_encoding enc, unsigned index, unsigned nconns,
		    struct vmm_error *err);
void mig_ram_tx_free(struct mig_ram_tx *tx);
/* Queues one guest page (by frame number); sends a batch when full. */
int mig_ram_tx_page(struct mig_ram_tx *tx, uint64_t pfn, struct vmm_error *err);
/* Sends what is queued and every compressed batch still in flight. */
int mig_ram_tx_flush(struct mig_ram_tx *tx, struct vmm_error *err);
/* Pass 0: this connection's share of every populated page. */
int mig_ram_tx_populated(struct mig_ram_tx *tx, atomic_bool *cancel, struct vmm_error *err);
/* A later pass: this connection's share of the pages in the dirty bitmaps. */
int mig_ram_tx_dirty(struct mig_ram_tx *tx, const struct vm_dirty_log *d, atomic_bool *cancel,
		     struct vmm_error *err);

/* ---- ram_recv.c ---- */

/* What all receivers of one migration share. */
struct mig_ram_in {
	struct vm *vm;
	uint64_t npages_total;
	unsigned long *received; /* written before: a zero page then needs clearing */
	unsigned long *torn;	 /* hash mismatch, not sent again yet */
	atomic_long torn_pages;
	atomic_uint_fast64_t pages;
	atomic_uint_fast64_t high_water; /* highest memfd offset written, for populate */
	atomic_uint last_iteration;	 /* the latest pass any receiver has seen */
	struct mig_zpool *zpool;	 /* decompression workers, started on demand */
	pthread_mutex_t lock;
	unsigned nconns;
};
int mig_ram_in_init(struct mig_ram_in *in, struct vm *vm, unsigned nconns, struct vmm_error *err);
void mig_ram_in_free(struct mig_ram_in *in);
/* After the last record: every page that arrived torn was sent again. */
int mig_ram_in_check(struct mig_ram_in *in, struct vmm_error *err);

#define MIG_RX_JOBS 4
struct mig_rx_job;

/* One connection's receiver. */
struct mig_ram_rx {
	struct mig_ram_in *in;
	unsigned index;
	void *dctx; /* ZSTD_DCtx for v1 batches */
	uint8_t *stage;
	uint64_t pages;		      /* this connection's */
	uint64_t applied_end;	      /* stream bytes applied in order (for Acks) */
	uint64_t acked_bytes, ack_ns; /* the last Ack sent */
	struct mig_rx_job *jobs;
	void *scratch;
	unsigned job_head, job_count;
	uint32_t jobs_iteration;
	int job_error;
	char job_msg[VMM_ERROR_MAX];
};
int mig_ram_rx_init(struct mig_ram_rx *rx, struct mig_ram_in *in, unsigned index,
		    struct vmm_error *err);
void mig_ram_rx_free(struct mig_ram_rx *rx);
/* A RamBatch (v1) record, whole in memory. */
int mig_ram_rx_batch(struct mig_ram_rx *rx, const struct mig_record *rec, struct vmm_error *err);
/* A ram-pages record: the envelope is rec; its data is read from `src`
 * (the pull reader) straight into guest memory, or into a job for the
 * decompression workers. stream_end: src's byte count after the record. */
int mig_ram_rx_pages(struct mig_ram_rx *rx, const struct mig_record *rec, struct mig_in *src,
		     unsigned timeout_ms, struct vmm_error *err);
/* The same for a ram-pages record whole in memory (push reader, tests). */
int mig_ram_rx_pages_buf(struct mig_ram_rx *rx, const struct mig_record *rec,
			 struct vmm_error *err);
/* Waits for every batch handed to workers; fails with their first error. */
int mig_ram_rx_drain(struct mig_ram_rx *rx, struct vmm_error *err);
/* A connection's stream ends (End, DataEnd): its checksum and record count
 * (`rec` is the end record, which they describe) prove every record came
 * whole; then, every batch applied, the pages the source counted must be
 * the pages this receiver took. */
int mig_ram_rx_end(struct mig_ram_rx *rx, const struct mig_record *rec, uint64_t checksum,
		   uint64_t records, uint64_t pages, struct vmm_error *err);
/* Stream bytes of this connection whose records are fully applied. */
uint64_t mig_ram_rx_applied(struct mig_ram_rx *rx, uint64_t stream_bytes);

/* ---- populate.c (destination) ---- */

struct mig_populate;
/* Starts the thread that maps announced ranges of `mem` ahead of the pages
 * (MADV_POPULATE_WRITE; touching on kernels without it). `in` gives the
 * receivers' progress so it keeps ahead of them instead of behind. */
int mig_populate_start(struct mig_populate **out, const struct guest_memory *mem,
		       struct mig_ram_in *in, struct vmm_error *err);
/* One RamMap record: checks every range lies in guest RAM, queues them
 * (bounded: beyond MIG_POPULATE_MAX_RANGES the rest is left to the faults
 * of the receive path; it is only a hint). */
#define MIG_POPULATE_MAX_RANGES (64u << 10)
#define MIG_POPULATE_THREADS	2
int mig_populate_map(struct mig_populate *p, const struct mig_record *rec, struct vmm_error *err);
/* Asks the threads to stop after their current step, without waiting. */
void mig_populate_request_stop(struct mig_populate *p);
/* Stops and joins the threads, frees. Statistics: bytes mapped and the
 * threads' time. */
void mig_populate_stop(struct mig_populate *p, uint64_t *bytes, uint64_t *ns);

#endif

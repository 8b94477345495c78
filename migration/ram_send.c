/*
 * migration/ram_send.c: one connection's RAM sender.
 *
 * Pages are read where they are. A raw batch is written with writev()
 * straight from guest memory: the record header and envelope (page runs,
 * zero-page runs, and unless switched off one XXH3-64 per page) in one
 * small buffer, then the page runs themselves; nothing is copied on the way
 * to the socket. Zero pages
 * go as numbers only. When the flow says compression pays (flow.c), a
 * batch is copied once into a job buffer (zstd needs input that does not
 * change under it) and compressed by a worker thread; up to MIG_TX_JOBS
 * batches are in flight and go out in the order they were made. Now and
 * then a raw batch is compressed on the side, timed, as a sample for that
 * choice. A destination older than format 1.2 gets RamBatch records as
 * before (copied, compressed here).
 */
#include "migration/ram.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#define BATCH_BYTES	      ((size_t)MIG_RAM_BATCH_PAGES * MIG_PAGE_SIZE)
#define SKIP_COMPRESS_BATCHES 16 /* v1: batches sent raw after one did not compress */

struct mig_tx_job {
	struct mig_zjob z;
	struct mig_ram_tx *tx;
	int level;
	uint32_t iteration;
	unsigned npages, nzeros;
	uint64_t pages[MIG_RAM_BATCH_PAGES];
	uint64_t zeros[MIG_RAM_BATCH_PAGES];
	uint64_t hashes[MIG_RAM_BATCH_PAGES]; /* only when it went raw after all */
	uint8_t *raw;
	uint8_t *out;
	size_t out_cap, out_len;
	bool compressed; /* false: zstd did not shrink it, send job->raw raw */
	int error;
	char msg[128];
};

/* Page runs: consecutive frames are one run (and one contiguous buffer:
 * frames never continue across a region boundary, there is a hole). */
struct runs {
	uint64_t first[MIG_RAM_BATCH_PAGES];
	uint32_t count[MIG_RAM_BATCH_PAGES];
	unsigned n;
};

struct tx_scratch {
	struct runs data, zero;
	struct iovec iov[MIG_RAM_BATCH_PAGES];
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	for (unsigned i = 0; i < MIG_PAGE_SIZE / 8; i += 8) {
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		    w[i + 7])
			return false;
	}
	return true;
}

int mig_ram_tx_init(struct mig_ram_tx *tx, struct vm *vm, struct mig_writer *w,
		    enum mig_ram_encoding enc, unsigned index, unsigned nconns,
		    struct vmm_error *err)
{
	memset(tx, 0, sizeof(*tx));
	tx->vm = vm;
	tx->w = w;
	tx->enc = enc;
	tx->index = index;
	tx->nconns = nconns ? nconns : 1;
	tx->hash_pages = true;
	tx->stage = malloc(BATCH_BYTES);
	tx->packed_cap = ZSTD_compressBound(BATCH_BYTES);
	tx->packed = malloc(tx->packed_cap);
	tx->zctx = ZSTD_createCCtx();
	tx->jobs = calloc(MIG_TX_JOBS, sizeof(*tx->jobs));
	tx->scratch = calloc(1, sizeof(struct tx_scratch));
	if (!tx->stage || !tx->packed || !tx->zctx || !tx->jobs || !tx->scratch) {
		mig_ram_tx_free(tx);
		return vmm_error_set(err, -ENOMEM, "migration: out of memory for RAM batches");
	}
	return 0;
}

void mig_ram_tx_free(struct mig_ram_tx *tx)
{
	if (tx->jobs) {
		for (unsigned i = 0; i < MIG_TX_JOBS; i++) {
			if (tx->zpool)
				mig_zpool_wait(tx->zpool, &tx->jobs[i].z);
			free(tx->jobs[i].raw);
			free(tx->jobs[i].out);
		}
		free(tx->jobs);
	}
	free(tx->stage);
	free(tx->packed);
	free(tx->scratch);
	tx->scratch = NULL;
	if (tx->zctx)
		ZSTD_freeCCtx(tx->zctx);
	tx->jobs = NULL;
	tx->stage = tx->packed = NULL;
	tx->zctx = NULL;
}

static void make_runs(const uint64_t *pfns, unsigned n, struct runs *r)
{
	r->n = 0;
	for (unsigned i = 0; i < n; i++) {
		if (r->n && r->first[r->n - 1] + r->count[r->n - 1] == pfns[i]) {
			r->count[r->n - 1]++;
			continue;
		}
		r->first[r->n] = pfns[i];
		r->count[r->n] = 1;
		r->n++;
	}
}

static int write_pages(struct mig_ram_tx *tx, const struct runs *data, const struct runs *zero,
		       Vmm__Migration__Compression comp, const uint64_t *hashes, unsigned npages,
		       const struct iovec *iov, int niov, size_t data_len, uint32_t iteration,
		       struct vmm_error *err)
{
	Vmm__Migration__RamPages env = VMM__MIGRATION__RAM_PAGES__INIT;
	env.n_run_first = env.n_run_count = data->n;
	env.run_first = (uint64_t *)data->first;
	env.run_count = (uint32_t *)data->count;
	env.n_zero_first = env.n_zero_count = zero->n;
	env.zero_first = (uint64_t *)zero->first;
	env.zero_count = (uint32_t *)zero->count;
	env.compression = comp;
	env.data_len = (uint32_t)data_len;
	env.iteration = iteration;
	if (hashes) {
		env.n_page_hash = npages;
		env.page_hash = (uint64_t *)hashes;
	}
	uint64_t before = tx->w->bytes;
	int r =
	    mig_write_record_data(tx->w, MIG_REC_RAM_PAGES, &env.base, iov, niov, data_len, err);
	tx->stats.wire_bytes += tx->w->bytes - before;
	if (tx->flow)
		mig_flow_tick(tx->flow, mono_ns());
	return r;
}

/* ---- compressed batches (worker threads) ---- */

static void compress_job(struct mig_zjob *z, void *cctx, void *dctx)
{
	(void)dctx;
	struct mig_tx_job *j = (struct mig_tx_job *)z;
	size_t raw_len = (size_t)j->npages * MIG_PAGE_SIZE;
	ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, j->level);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1); /* the data's own check */
	size_t n = ZSTD_compress2(cctx, j->out, j->out_cap, j->raw, raw_len);
	if (ZSTD_isError(n)) {
		j->error = -EIO;
		snprintf(j->msg, sizeof(j->msg), "zstd: %s", ZSTD_getErrorName(n));
		return;
	}
	j->compressed = n < raw_len - raw_len / 16;
	j->out_len = n;
	if (!j->compressed) /* goes raw from this consistent copy: hash it */
		for (unsigned i = 0; i < j->npages; i++)
			j->hashes[i] =
			    XXH3_64bits(j->raw + (size_t)i * MIG_PAGE_SIZE, MIG_PAGE_SIZE);
}

static int write_job(struct mig_ram_tx *tx, struct mig_tx_job *j, struct vmm_error *err)
{
	if (tx->zpool)
		mig_zpool_wait(tx->zpool, &j->z);
	if (j->error)
		return vmm_error_set(err, j->error, "migration: %s", j->msg);
	struct tx_scratch *sc = tx->scratch;
	struct runs *data = &sc->data, *zero = &sc->zero;
	make_runs(j->pages, j->npages, data);
	make_runs(j->zeros, j->nzeros, zero);
	size_t raw_len = (size_t)j->npages * MIG_PAGE_SIZE;
	struct iovec iov;
	int r;
	if (j->compressed) {
		iov = (struct iovec){j->out, j->out_len};
		r = write_pages(tx, data, zero, VMM__MIGRATION__COMPRESSION__COMPRESSION_ZSTD, NULL,
				j->npages, &iov, 1, j->out_len, j->iteration, err);
		tx->stats.zstd_pages += j->npages;
		if (tx->flow) {
			pthread_mutex_lock(&tx->flow->lock);
			tx->flow->zstd_bytes_in += raw_len;
			tx->flow->zstd_bytes_out += j->out_len;
			pthread_mutex_unlock(&tx->flow->lock);
		}
	} else {
		iov = (struct iovec){j->raw, raw_len};
		r = write_pages(tx, data, zero, VMM__MIGRATION__COMPRESSION__COMPRESSION_NONE,
				j->hashes, j->npages, &iov, raw_len ? 1 : 0, raw_len, j->iteration,
				err);
	}
	atomic_store(&j->z.state, 0);
	return r;
}

/* Sends finished batches from the head, in order; with `all`, waits. */
static int drain_jobs(struct mig_ram_tx *tx, bool all, struct vmm_error *err)
{
	while (tx->job_count) {
		struct mig_tx_job *j = &tx->jobs[tx->job_head];
		if (!all && tx->zpool && !mig_zjob_done(&j->z))
			return 0;
		int r = write_job(tx, j, err);
		tx->job_head = (tx->job_head + 1) % MIG_TX_JOBS;
		tx->job_count--;
		if (r < 0)
			return r;
	}
	return 0;
}

static int flush_compressed(struct mig_ram_tx *tx, struct vmm_error *err)
{
	int r;
	if (tx->job_count == MIG_TX_JOBS) { /* the oldest must go first */
		struct mig_tx_job *j = &tx->jobs[tx->job_head];
		r = write_job(tx, j, err);
		tx->job_head = (tx->job_head + 1) % MIG_TX_JOBS;
		tx->job_count--;
		if (r < 0)
			return r;
	}
	struct mig_tx_job *j = &tx->jobs[(tx->job_head + tx->job_count) % MIG_TX_JOBS];
	if (!j->raw) {
		j->out_cap = ZSTD_compressBound(BATCH_BYTES);
		j->raw = malloc(BATCH_BYTES);
		j->out = malloc(j->out_cap);
		if (!j->raw || !j->out)
			return vmm_error_set(err, -ENOMEM, "migration: out of memory for a batch");
	}
	j->tx = tx;
	j->level = tx->flow ? tx->flow->level : 1;
	j->iteration = tx->iteration;
	j->npages = tx->npages;
	j->nzeros = tx->nzeros;
	j->error = 0;
	memcpy(j->pages, tx->pages, tx->npages * sizeof(uint64_t));
	memcpy(j->zeros, tx->zeros, tx->nzeros * sizeof(uint64_t));
	for (unsigned i = 0; i < tx->npages; i++)
		memcpy(j->raw + (size_t)i * MIG_PAGE_SIZE, tx->iov[i].iov_base, MIG_PAGE_SIZE);
	j->z.fn = compress_job;
	tx->job_count++;
	tx->stats.normal_pages += tx->npages;
	tx->stats.zero_pages += tx->nzeros;
	tx->stats.data_bytes += (size_t)tx->npages * MIG_PAGE_SIZE;
	tx->npages = tx->nzeros = 0;
	if (tx->zpool) {
		mig_zpool_submit(tx->zpool, &j->z);
		return drain_jobs(tx, false, err);
	}
	compress_job(&j->z, tx->zctx, NULL);
	atomic_store(&j->z.state, 2);
	return drain_jobs(tx, true, err);
}

/* ---- raw batches, straight from guest memory ---- */

/* A timed compression of this batch on the side, for the flow's choice. */
static void sample(struct mig_ram_tx *tx)
{
	uint64_t t0 = mono_ns();
	for (unsigned i = 0; i < tx->npages; i++)
		memcpy(tx->stage + (size_t)i * MIG_PAGE_SIZE, tx->iov[i].iov_base, MIG_PAGE_SIZE);
	size_t raw = (size_t)tx->npages * MIG_PAGE_SIZE;
	size_t n = ZSTD_compressCCtx(tx->zctx, tx->packed, tx->packed_cap, tx->stage, raw,
				     tx->flow->level);
	if (!ZSTD_isError(n))
		mig_flow_sample(tx->flow, raw, n, mono_ns() - t0);
}

static int flush_raw(struct mig_ram_tx *tx, struct vmm_error *err)
{
	struct tx_scratch *sc = tx->scratch;
	struct runs *data = &sc->data, *zero = &sc->zero;
	struct iovec *iov = sc->iov;
	if (tx->flow && tx->npages >= MIG_RAM_BATCH_PAGES / 4 &&
	    mig_flow_want_sample(tx->flow, mono_ns()))
		sample(tx);
	make_runs(tx->pages, tx->npages, data);
	make_runs(tx->zeros, tx->nzeros, zero);
	/* one buffer per run: the run's pages are contiguous in guest memory */
	unsigned k = 0;
	for (unsigned i = 0; i < data->n; i++) {
		iov[i] =
		    (struct iovec){tx->iov[k].iov_base, (size_t)data->count[i] * MIG_PAGE_SIZE};
		k += data->count[i];
	}
	size_t len = (size_t)tx->npages * MIG_PAGE_SIZE;
	int r = write_pages(tx, data, zero, VMM__MIGRATION__COMPRESSION__COMPRESSION_NONE,
			    tx->hash_pages ? tx->hashes : NULL, tx->npages, iov, (int)data->n, len,
			    tx->iteration, err);
	tx->stats.normal_pages += tx->npages;
	tx->stats.zero_pages += tx->nzeros;
	tx->stats.data_bytes += len;
	tx->npages = tx->nzeros = 0;
	return r;
}

/* ---- RamBatch (format 1.0/1.1 destinations) ---- */

static int flush_v1(struct mig_ram_tx *tx, struct vmm_error *err)
{
	Vmm__Migration__RamBatch b = VMM__MIGRATION__RAM_BATCH__INIT;
	size_t raw_len = (size_t)tx->npages * MIG_PAGE_SIZE;
	for (unsigned i = 0; i < tx->npages; i++)
		memcpy(tx->stage + (size_t)i * MIG_PAGE_SIZE, tx->iov[i].iov_base, MIG_PAGE_SIZE);
	b.n_pages = tx->npages;
	b.pages = tx->pages;
	b.n_zero_pages = tx->nzeros;
	b.zero_pages = tx->zeros;
	b.iteration = tx->iteration;
	b.compression = VMM__MIGRATION__COMPRESSION__COMPRESSION_NONE;
	b.data.data = tx->stage;
	b.data.len = raw_len;
	if (raw_len && tx->v1_level && tx->skip_compress) {
		tx->skip_compress--; /* recent batches did not compress: do not try */
	} else if (raw_len && tx->v1_level) {
		size_t n = ZSTD_compressCCtx(tx->zctx, tx->packed, tx->packed_cap, tx->stage,
					     raw_len, tx->v1_level);
		if (ZSTD_isError(n))
			return vmm_error_set(err, -EIO, "migration: zstd: %s",
					     ZSTD_getErrorName(n));
		if (n < raw_len - raw_len / 16) {
			b.compression = VMM__MIGRATION__COMPRESSION__COMPRESSION_ZSTD;
			b.data.data = tx->packed;
			b.data.len = n;
		} else {
			tx->skip_compress = SKIP_COMPRESS_BATCHES;
		}
	}
	uint64_t before = tx->w->bytes;
	int r = mig_write_record(tx->w, MIG_REC_RAM, &b.base, err);
	tx->stats.normal_pages += tx->npages;
	tx->stats.zero_pages += tx->nzeros;
	tx->stats.data_bytes += raw_len;
	tx->stats.wire_bytes += tx->w->bytes - before;
	tx->npages = tx->nzeros = 0;
	return r;
}

static int flush_batch(struct mig_ram_tx *tx, struct vmm_error *err)
{
	if (!tx->npages && !tx->nzeros)
		return 0;
	if (tx->enc == MIG_RAM_ENC_V1)
		return flush_v1(tx, err);
	if (tx->flow && atomic_load(&tx->flow->compress) && tx->npages)
		return flush_compressed(tx, err);
	/* Raw after compressed batches: those go first (order per page). */
	int r = drain_jobs(tx, true, err);
	return r < 0 ? r : flush_raw(tx, err);
}

int mig_ram_tx_flush(struct mig_ram_tx *tx, struct vmm_error *err)
{
	int r = flush_batch(tx, err);
	return r < 0 ? r : drain_jobs(tx, true, err);
}

int mig_ram_tx_page(struct mig_ram_tx *tx, uint64_t pfn, struct vmm_error *err)
{
	uint8_t *src = guest_ptr(&tx->vm->mem, pfn << MIG_PAGE_SHIFT, MIG_PAGE_SIZE);
	if (!src)
		return vmm_error_set(err, -EFAULT, "migration: page 0x%llx outside guest RAM",
				     (unsigned long long)pfn);
	if (page_is_zero(src)) {
		tx->zeros[tx->nzeros++] = pfn;
	} else {
		/* The hash is of the page as read now; if the guest changes it
		 * before the socket has copied it, the destination sees a
		 * mismatch, and the page, being dirty, goes again. */
		if (tx->enc == MIG_RAM_ENC_PAGES && tx->hash_pages)
			tx->hashes[tx->npages] = XXH3_64bits(src, MIG_PAGE_SIZE);
		tx->iov[tx->npages] = (struct iovec){src, MIG_PAGE_SIZE};
		tx->pages[tx->npages++] = pfn;
	}
	if (tx->npages == MIG_RAM_BATCH_PAGES || tx->nzeros == MIG_RAM_BATCH_PAGES)
		return flush_batch(tx, err);
	return 0;
}

/* ---- passes ---- */

struct populated_ctx {
	struct mig_ram_tx *tx;
	atomic_bool *cancel;
};

static int send_range(void *ctx, uint64_t first, uint64_t count, struct vmm_error *err)
{
	struct populated_ctx *c = ctx;
	struct mig_ram_tx *tx = c->tx;
	uint64_t p = first, end = first + count;
	while (p < end) {
		if (atomic_load(c->cancel))
			return vmm_error_set(err, -ECANCELED, "migration cancelled");
		uint64_t chunk_end = ((p >> MIG_CHUNK_SHIFT) + 1) << MIG_CHUNK_SHIFT;
		if (chunk_end > end)
			chunk_end = end;
		if (mig_page_conn(p, tx->nconns) == tx->index)
			for (uint64_t q = p; q < chunk_end; q++) {
				int r = mig_ram_tx_page(tx, q, err);
				if (r < 0)
					return r;
			}
		p = chunk_end;
	}
	return 0;
}

int mig_ram_tx_populated(struct mig_ram_tx *tx, atomic_bool *cancel, struct vmm_error *err)
{
	struct populated_ctx c = {tx, cancel};
	uint64_t untouched = 0;
	int r = 0;
	if (tx->ranges && tx->ranges->complete) { /* the map's walk, kept */
		for (size_t i = 0; i < tx->ranges->n && r == 0; i++)
			r = send_range(&c, tx->ranges->first[i], tx->ranges->count[i], err);
		untouched = tx->ranges->untouched;
	} else {
		r = mig_ram_walk_populated(&tx->vm->mem, cancel, send_range, &c, &untouched, err);
	}
	/* every connection walks all of RAM: count the untouched pages once */
	if (tx->index == 0)
		tx->stats.untouched_pages += untouched;
	return r < 0 ? r : mig_ram_tx_flush(tx, err);
}

int mig_ram_tx_dirty(struct mig_ram_tx *tx, const struct vm_dirty_log *d, atomic_bool *cancel,
		     struct vmm_error *err)
{
	for (unsigned i = 0; i < d->vm->mem.nregions; i++) {
		uint64_t base_pfn = d->vm->mem.regions[i].gpa >> MIG_PAGE_SHIFT;
		for (size_t w = 0; w < d->words[i]; w++) {
			unsigned long bits = d->bitmaps[i][w];
			if (!bits)
				continue;
			uint64_t pfn0 = base_pfn + w * MIG_BITS_PER_WORD;
			/* a word (64 pages) lies inside one chunk */
			if (mig_page_conn(pfn0, tx->nconns) != tx->index)
				continue;
			if (atomic_load(cancel))
				return vmm_error_set(err, -ECANCELED, "migration cancelled");
			while (bits) {
				unsigned b = (unsigned)__builtin_ctzl(bits);
				bits &= bits - 1;
				int r = mig_ram_tx_page(tx, pfn0 + b, err);
				if (r < 0)
					return r;
			}
		}
	}
	return mig_ram_tx_flush(tx, err);
}

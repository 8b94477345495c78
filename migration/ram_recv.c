/*
 * migration/ram_recv.c: one connection's RAM receiver, and what all of a
 * migration's receivers share (which pages arrived, which arrived torn).
 *
 * Every page number and length is checked before anything is written: page
 * runs must lie in guest RAM, in one region, on this connection's chunks;
 * counts are bounded; raw data is exactly pages x 4096 bytes; a zstd frame
 * decompresses to exactly that and carries its checksum. Raw pages are
 * read from the socket straight into guest memory (readv into the runs),
 * then checked against the source's per-page hash. A mismatch means the
 * guest changed the page while the source was sending it (it is dirty, it
 * comes again) or the stream is corrupt: the page is marked torn, and the
 * stream is refused at its end if a torn page was never sent again.
 * Compressed batches go to worker threads; where pages could overlap
 * (another pass, or a raw record) the receiver first waits for them, so a
 * page's copies are always applied in the order they were sent.
 */
#include "migration/ram.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define MAX_PAGES      MIG_RAM_PAGES_MAX /* per ram-pages record: bounds every buffer below */
#define BATCH_BYTES    ((size_t)MAX_PAGES * MIG_PAGE_SIZE)
#define V1_MAX_PAGES   MIG_RAM_BATCH_MAX_PAGES
#define V1_BATCH_BYTES ((size_t)V1_MAX_PAGES * MIG_PAGE_SIZE)

/* ---- shared state ---- */

int mig_ram_in_init(struct mig_ram_in *in, struct vm *vm, unsigned nconns, struct vmm_error *err)
{
	memset(in, 0, sizeof(*in));
	in->vm = vm;
	in->nconns = nconns ? nconns : 1;
	in->npages_total = vm->mem.size / MIG_PAGE_SIZE;
	size_t words = (in->npages_total + MIG_BITS_PER_WORD - 1) / MIG_BITS_PER_WORD;
	in->received = calloc(words, sizeof(unsigned long));
	in->torn = calloc(words, sizeof(unsigned long));
	pthread_mutex_init(&in->lock, NULL);
	atomic_init(&in->torn_pages, 0);
	atomic_init(&in->pages, 0);
	atomic_init(&in->high_water, 0);
	atomic_init(&in->last_iteration, 0);
	if (!in->received || !in->torn) {
		mig_ram_in_free(in);
		return vmm_error_set(err, -ENOMEM, "migration: out of memory for receiving RAM");
	}
	return 0;
}

void mig_ram_in_free(struct mig_ram_in *in)
{
	mig_zpool_stop(in->zpool);
	in->zpool = NULL;
	free(in->received);
	free(in->torn);
	in->received = in->torn = NULL;
	pthread_mutex_destroy(&in->lock);
}

int mig_ram_in_check(struct mig_ram_in *in, struct vmm_error *err)
{
	long torn = atomic_load(&in->torn_pages);
	if (torn == 0)
		return 0;
	size_t words = (in->npages_total + MIG_BITS_PER_WORD - 1) / MIG_BITS_PER_WORD;
	uint64_t first = 0;
	for (size_t w = 0; w < words; w++)
		if (in->torn[w]) {
			first = w * MIG_BITS_PER_WORD + (uint64_t)__builtin_ctzl(in->torn[w]);
			break;
		}
	return vmm_error_set(err, -EBADMSG,
			     "%ld page%s arrived corrupted (page hash mismatch, e.g. RAM page %llu "
			     "of the memfd) and %s never sent again: the stream is damaged",
			     torn, torn == 1 ? "" : "s", (unsigned long long)first,
			     torn == 1 ? "was" : "were");
}

/* Bits of the shared bitmaps: atomics, since a connection's worker threads
 * and the connection itself may mark pages of the same word. */
static bool bit_set(unsigned long *map, uint64_t idx)
{
	unsigned long bit = 1ul << (idx % MIG_BITS_PER_WORD);
	return __atomic_fetch_or(&map[idx / MIG_BITS_PER_WORD], bit, __ATOMIC_RELAXED) & bit;
}

static bool bit_clear(unsigned long *map, uint64_t idx)
{
	unsigned long bit = 1ul << (idx % MIG_BITS_PER_WORD);
	return __atomic_fetch_and(&map[idx / MIG_BITS_PER_WORD], ~bit, __ATOMIC_RELAXED) & bit;
}

static bool bit_test(const unsigned long *map, uint64_t idx)
{
	return __atomic_load_n(&map[idx / MIG_BITS_PER_WORD], __ATOMIC_RELAXED) &
	       (1ul << (idx % MIG_BITS_PER_WORD));
}

static void mark_good(struct mig_ram_in *in, uint64_t idx)
{
	bit_set(in->received, idx);
	if (bit_test(in->torn, idx) && bit_clear(in->torn, idx))
		atomic_fetch_sub(&in->torn_pages, 1);
}

static void mark_torn(struct mig_ram_in *in, uint64_t idx)
{
	bit_set(in->received, idx);
	if (!bit_set(in->torn, idx))
		atomic_fetch_add(&in->torn_pages, 1);
}

static void note_written(struct mig_ram_in *in, uint64_t end_off)
{
	uint64_t cur = atomic_load(&in->high_water);
	while (end_off > cur && !atomic_compare_exchange_weak(&in->high_water, &cur, end_off))
		;
}

static uint8_t *page_at(struct mig_ram_in *in, uint64_t idx)
{
	return in->vm->mem.base + (idx << MIG_PAGE_SHIFT);
}

static void apply_zero(struct mig_ram_in *in, uint64_t idx)
{
	/* Fresh memory is zero: only a page written before needs clearing. */
	if (bit_test(in->received, idx))
		memset(page_at(in, idx), 0, MIG_PAGE_SIZE);
	mark_good(in, idx);
}

/* ---- receivers ---- */

struct mig_rx_job {
	struct mig_zjob z;
	struct mig_ram_rx *rx;
	uint8_t *in;
	size_t in_cap, in_len;
	uint8_t *out;
	unsigned nruns, nzruns, npages;
	uint64_t run_idx[MAX_PAGES]; /* memfd page index of each run's first page */
	uint32_t run_count[MAX_PAGES];
	uint64_t zero_idx[MAX_PAGES];
	uint32_t zero_count[MAX_PAGES];
	uint64_t stream_end;
	uint32_t iteration;
	int error;
	char msg[128];
};

/* Per receiver: one envelope's runs, converted and checked. */
struct rx_scratch {
	uint64_t run_idx[MAX_PAGES], zero_idx[MAX_PAGES];
	uint32_t run_count[MAX_PAGES], zero_count[MAX_PAGES];
	struct iovec iov[MAX_PAGES];
};

int mig_ram_rx_init(struct mig_ram_rx *rx, struct mig_ram_in *in, unsigned index,
		    struct vmm_error *err)
{
	memset(rx, 0, sizeof(*rx));
	rx->in = in;
	rx->index = index;
	rx->dctx = ZSTD_createDCtx();
	rx->jobs = calloc(MIG_RX_JOBS, sizeof(*rx->jobs));
	rx->scratch = malloc(sizeof(struct rx_scratch));
	if (!rx->dctx || !rx->jobs || !rx->scratch) {
		mig_ram_rx_free(rx);
		return vmm_error_set(err, -ENOMEM, "migration: out of memory for receiving RAM");
	}
	return 0;
}

void mig_ram_rx_free(struct mig_ram_rx *rx)
{
	if (rx->jobs) {
		for (unsigned i = 0; i < MIG_RX_JOBS; i++) {
			if (rx->in && rx->in->zpool)
				mig_zpool_wait(rx->in->zpool, &rx->jobs[i].z);
			free(rx->jobs[i].in);
			free(rx->jobs[i].out);
		}
		free(rx->jobs);
	}
	if (rx->dctx)
		ZSTD_freeDCtx(rx->dctx);
	free(rx->stage);
	free(rx->scratch);
	rx->scratch = NULL;
	rx->jobs = NULL;
	rx->dctx = NULL;
	rx->stage = NULL;
}

/* ---- RamBatch (format 1.0/1.1 sources) ---- */

int mig_ram_rx_batch(struct mig_ram_rx *rx, const struct mig_record *rec, struct vmm_error *err)
{
	struct mig_ram_in *in = rx->in;
	Vmm__Migration__RamBatch *b;
	int rc = mig_ram_rx_drain(rx, err);
	if (rc < 0)
		return rc;
	if ((rc = mig_unpack(rec, &vmm__migration__ram_batch__descriptor, (ProtobufCMessage **)&b,
			     err)) < 0)
		return rc;
	const uint8_t *data = b->data.data;
	size_t expect = b->n_pages * MIG_PAGE_SIZE;
	if (b->n_pages > V1_MAX_PAGES || b->n_zero_pages > V1_MAX_PAGES) {
		rc = vmm_error_set(err, -EMSGSIZE, "RAM batch of %zu + %zu pages exceeds %d",
				   b->n_pages, b->n_zero_pages, V1_MAX_PAGES);
		goto out;
	}
	if (b->compression == VMM__MIGRATION__COMPRESSION__COMPRESSION_ZSTD) {
		unsigned long long size = ZSTD_getFrameContentSize(b->data.data, b->data.len);
		if (size != expect) {
			rc = vmm_error_set(
			    err, -EBADMSG,
			    "RAM batch: compressed data holds %llu bytes, %zu pages need %zu", size,
			    b->n_pages, expect);
			goto out;
		}
		if (!rx->stage && !(rx->stage = malloc(V1_BATCH_BYTES))) {
			rc = vmm_error_set(err, -ENOMEM, "migration: out of memory for RAM");
			goto out;
		}
		size_t n =
		    ZSTD_decompressDCtx(rx->dctx, rx->stage, expect, b->data.data, b->data.len);
		if (ZSTD_isError(n) || n != expect) {
			rc = vmm_error_set(err, -EBADMSG, "RAM batch: zstd: %s",
					   ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short output");
			goto out;
		}
		data = rx->stage;
	} else if (b->compression != VMM__MIGRATION__COMPRESSION__COMPRESSION_NONE) {
		rc = vmm_error_set(err, -EPROTONOSUPPORT, "RAM batch: unknown compression %d",
				   b->compression);
		goto out;
	} else if (b->data.len != expect) {
		rc = vmm_error_set(err, -EBADMSG, "RAM batch: %zu data bytes for %zu pages",
				   b->data.len, b->n_pages);
		goto out;
	}
	for (size_t i = 0; i < b->n_pages; i++) {
		int64_t idx = mig_page_index(&in->vm->mem, b->pages[i]);
		if (idx < 0) {
			rc = vmm_error_set(err, -EFAULT, "RAM batch: page 0x%llx is not guest RAM",
					   (unsigned long long)b->pages[i]);
			goto out;
		}
		memcpy(page_at(in, (uint64_t)idx), data + i * MIG_PAGE_SIZE, MIG_PAGE_SIZE);
		mark_good(in, (uint64_t)idx);
		note_written(in, ((uint64_t)idx + 1) << MIG_PAGE_SHIFT);
	}
	for (size_t i = 0; i < b->n_zero_pages; i++) {
		int64_t idx = mig_page_index(&in->vm->mem, b->zero_pages[i]);
		if (idx < 0) {
			rc = vmm_error_set(err, -EFAULT,
					   "RAM batch: zero page 0x%llx is not guest RAM",
					   (unsigned long long)b->zero_pages[i]);
			goto out;
		}
		apply_zero(in, (uint64_t)idx);
	}
	rx->pages += b->n_pages + b->n_zero_pages;
	atomic_fetch_add(&in->pages, b->n_pages + b->n_zero_pages);
out:
	protobuf_c_message_free_unpacked(&b->base, NULL);
	return rc;
}

/* ---- ram-pages ---- */

/* Checks runs (pfn, count) and converts them to memfd page indexes: each
 * run inside one region, on this connection's chunks, counts bounded. */
static int check_runs(struct mig_ram_rx *rx, const char *what, size_t n, const uint64_t *first,
		      const uint32_t *count, uint64_t *idx_out, uint32_t *count_out,
		      unsigned *total, struct vmm_error *err)
{
	const struct guest_memory *mem = &rx->in->vm->mem;
	unsigned nconns = rx->in->nconns;
	*total = 0;
	if (n > MAX_PAGES)
		return vmm_error_set(err, -EMSGSIZE, "ram-pages: %zu %s runs exceed %d", n, what,
				     MAX_PAGES);
	for (size_t i = 0; i < n; i++) {
		if (count[i] == 0 || count[i] > MAX_PAGES || *total + count[i] > MAX_PAGES)
			return vmm_error_set(err, -EMSGSIZE, "ram-pages: more than %d %s pages",
					     MAX_PAGES, what);
		int64_t a = mig_page_index(mem, first[i]);
		int64_t b = first[i] + count[i] - 1 < first[i]
				? -1
				: mig_page_index(mem, first[i] + count[i] - 1);
		if (a < 0 || b < 0 || (uint64_t)(b - a) != count[i] - 1u)
			return vmm_error_set(err, -EFAULT,
					     "ram-pages: %s pages 0x%llx+%u are not guest RAM",
					     what, (unsigned long long)first[i], count[i]);
		/* every copy of a page travels on one connection (ordering) */
		for (uint64_t c = first[i] >> MIG_CHUNK_SHIFT;
		     c <= (first[i] + count[i] - 1) >> MIG_CHUNK_SHIFT; c++)
			if (mig_page_conn(c << MIG_CHUNK_SHIFT, nconns) != rx->index)
				return vmm_error_set(err, -EPROTO,
						     "ram-pages: page 0x%llx arrived on connection "
						     "%u, it belongs to connection %u",
						     (unsigned long long)(c << MIG_CHUNK_SHIFT),
						     rx->index,
						     mig_page_conn(c << MIG_CHUNK_SHIFT, nconns));
		idx_out[i] = (uint64_t)a;
		count_out[i] = count[i];
		*total += count[i];
	}
	return 0;
}

/* Where data comes from: the connection (pull reader) or a buffer. */
struct data_src {
	struct mig_in *in;
	unsigned timeout_ms;
	const uint8_t *buf;
	size_t left;
};

static int src_readv(struct data_src *s, struct iovec *iov, int n, struct vmm_error *err)
{
	if (s->in)
		return mig_in_readv(s->in, iov, n, s->timeout_ms, err);
	for (int i = 0; i < n; i++) {
		if (iov[i].iov_len > s->left)
			return vmm_error_set(err, -EBADMSG,
					     "ram-pages: data shorter than announced");
		memcpy(iov[i].iov_base, s->buf, iov[i].iov_len);
		s->buf += iov[i].iov_len;
		s->left -= iov[i].iov_len;
	}
	return 0;
}

static void decompress_job(struct mig_zjob *z, void *cctx, void *dctx)
{
	(void)cctx;
	struct mig_rx_job *j = (struct mig_rx_job *)z;
	struct mig_ram_in *in = j->rx->in;
	size_t expect = (size_t)j->npages * MIG_PAGE_SIZE;
	/* RFC 8878: magic 0xFD2FB528, then the frame header descriptor, whose
	 * bit 2 says the frame ends with a content checksum (zstd checks it). */
	bool checksum = j->in_len > 5 && j->in[0] == 0x28 && j->in[1] == 0xb5 && j->in[2] == 0x2f &&
			j->in[3] == 0xfd && (j->in[4] & 0x04);
	if (!checksum || ZSTD_getFrameContentSize(j->in, j->in_len) != expect) {
		j->error = -EBADMSG;
		snprintf(j->msg, sizeof(j->msg),
			 "ram-pages: zstd frame is not %zu bytes with a checksum", expect);
		return;
	}
	size_t n = ZSTD_decompressDCtx(dctx, j->out, expect, j->in, j->in_len);
	if (ZSTD_isError(n) || n != expect) {
		j->error = -EBADMSG;
		snprintf(j->msg, sizeof(j->msg), "ram-pages: zstd: %s",
			 ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short output");
		return;
	}
	const uint8_t *p = j->out;
	for (unsigned i = 0; i < j->nruns; i++) {
		size_t len = (size_t)j->run_count[i] * MIG_PAGE_SIZE;
		memcpy(page_at(in, j->run_idx[i]), p, len);
		p += len;
		for (uint32_t k = 0; k < j->run_count[i]; k++)
			mark_good(in, j->run_idx[i] + k);
		note_written(in, (j->run_idx[i] + j->run_count[i]) << MIG_PAGE_SHIFT);
	}
	for (unsigned i = 0; i < j->nzruns; i++)
		for (uint32_t k = 0; k < j->zero_count[i]; k++)
			apply_zero(in, j->zero_idx[i] + k);
}

static int pop_job(struct mig_ram_rx *rx, struct vmm_error *err)
{
	struct mig_rx_job *j = &rx->jobs[rx->job_head];
	mig_zpool_wait(rx->in->zpool, &j->z);
	rx->job_head = (rx->job_head + 1) % MIG_RX_JOBS;
	rx->job_count--;
	atomic_store(&j->z.state, 0);
	if (j->error)
		return vmm_error_set(err, j->error, "%s", j->msg);
	rx->applied_end = j->stream_end;
	return 0;
}

int mig_ram_rx_drain(struct mig_ram_rx *rx, struct vmm_error *err)
{
	int rc = 0;
	while (rx->job_count) {
		int r = pop_job(rx, err);
		if (r < 0 && rc == 0)
			rc = r;
	}
	return rc;
}

int mig_ram_rx_end(struct mig_ram_rx *rx, const struct mig_record *rec, uint64_t checksum,
		   uint64_t records, uint64_t pages, struct vmm_error *err)
{
	if (checksum != rec->hash_before || records != rec->index)
		return vmm_error_set(err, -EBADMSG, "stream checksum or record count mismatch: the "
				     "stream was corrupted");
	int r = mig_ram_rx_drain(rx, err);
	if (r < 0)
		return r;
	if (pages != rx->pages)
		return vmm_error_set(err, -EBADMSG, "stream announced %llu RAM pages, %llu arrived",
				     (unsigned long long)pages, (unsigned long long)rx->pages);
	return 0;
}

uint64_t mig_ram_rx_applied(struct mig_ram_rx *rx, uint64_t stream_bytes)
{
	/* finished jobs at the head count; the rest is still being applied */
	while (rx->job_count && mig_zjob_done(&rx->jobs[rx->job_head].z) &&
	       !rx->jobs[rx->job_head].error) {
		struct vmm_error ignored;
		pop_job(rx, &ignored);
	}
	return rx->job_count ? rx->applied_end : stream_bytes;
}

static int start_workers(struct mig_ram_in *in, struct vmm_error *err)
{
	int r = 0;
	pthread_mutex_lock(&in->lock);
	if (!in->zpool) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		unsigned n = cpus > 2 ? (unsigned)(cpus - 1) : 1;
		r = mig_zpool_start(&in->zpool, n > 4 ? 4 : n, err);
	}
	pthread_mutex_unlock(&in->lock);
	return r;
}

static int rx_pages(struct mig_ram_rx *rx, const struct mig_record *rec, struct data_src *src,
		    uint64_t stream_end, struct vmm_error *err)
{
	struct mig_ram_in *in = rx->in;
	Vmm__Migration__RamPages *e;
	int rc =
	    mig_unpack(rec, &vmm__migration__ram_pages__descriptor, (ProtobufCMessage **)&e, err);
	if (rc < 0)
		return rc;
	struct rx_scratch *sc = rx->scratch;
	uint64_t *run_idx = sc->run_idx, *zero_idx = sc->zero_idx;
	uint32_t *run_count = sc->run_count, *zero_count = sc->zero_count;
	struct iovec *iov = sc->iov;
	unsigned npages, nzeros;
	bool zstd = e->compression == VMM__MIGRATION__COMPRESSION__COMPRESSION_ZSTD;
	if (e->n_run_first != e->n_run_count || e->n_zero_first != e->n_zero_count) {
		rc = vmm_error_set(err, -EBADMSG, "ram-pages: run lists of different lengths");
		goto out;
	}
	if ((rc = check_runs(rx, "data", e->n_run_first, e->run_first, e->run_count, run_idx,
			     run_count, &npages, err)) < 0 ||
	    (rc = check_runs(rx, "zero", e->n_zero_first, e->zero_first, e->zero_count, zero_idx,
			     zero_count, &nzeros, err)) < 0)
		goto out;
	if (e->data_len != rec->data_len && src->in) {
		rc = vmm_error_set(err, -EBADMSG,
				   "ram-pages: envelope says %u data bytes, the "
				   "record holds %zu",
				   e->data_len, rec->data_len);
		goto out;
	}
	if (zstd) {
		size_t bound = ZSTD_compressBound((size_t)npages * MIG_PAGE_SIZE);
		if (!npages || e->data_len > bound) {
			rc = vmm_error_set(err, -EBADMSG, "ram-pages: %u zstd bytes for %u pages",
					   e->data_len, npages);
			goto out;
		}
	} else if (e->compression != VMM__MIGRATION__COMPRESSION__COMPRESSION_NONE) {
		rc = vmm_error_set(err, -EPROTONOSUPPORT, "ram-pages: unknown compression %d",
				   e->compression);
		goto out;
	} else if (e->data_len != (size_t)npages * MIG_PAGE_SIZE ||
		   (e->n_page_hash != npages && e->n_page_hash != 0)) {
		rc = vmm_error_set(err, -EBADMSG,
				   "ram-pages: %u data bytes and %zu hashes for %u pages",
				   e->data_len, e->n_page_hash, npages);
		goto out;
	}

	if (!zstd) {
		/* In order: batches still with the workers go first. */
		if ((rc = mig_ram_rx_drain(rx, err)) < 0)
			goto out;
		for (unsigned i = 0; i < e->n_run_first; i++)
			iov[i] = (struct iovec){page_at(in, run_idx[i]),
						(size_t)run_count[i] * MIG_PAGE_SIZE};
		/* straight into guest memory */
		if ((rc = src_readv(src, iov, (int)e->n_run_first, err)) < 0)
			goto out;
		/* Without hashes (a socket stream, by default) the transport's own
		 * checks are what there is; a page torn on its way is dirty and
		 * comes again either way. */
		bool check = e->n_page_hash == npages;
		unsigned k = 0;
		for (unsigned i = 0; i < e->n_run_first; i++) {
			for (uint32_t p = 0; p < run_count[i]; p++, k++) {
				uint64_t idx = run_idx[i] + p;
				if (!check ||
				    XXH3_64bits(page_at(in, idx), MIG_PAGE_SIZE) == e->page_hash[k])
					mark_good(in, idx);
				else
					mark_torn(in, idx);
			}
			note_written(in, (run_idx[i] + run_count[i]) << MIG_PAGE_SHIFT);
		}
		for (unsigned i = 0; i < e->n_zero_first; i++)
			for (uint32_t p = 0; p < zero_count[i]; p++)
				apply_zero(in, zero_idx[i] + p);
		rx->applied_end = stream_end;
	} else {
		if ((rc = start_workers(in, err)) < 0)
			goto out;
		/* another pass may hold other copies of these pages: wait for it */
		if (rx->job_count && rx->jobs_iteration != e->iteration &&
		    (rc = mig_ram_rx_drain(rx, err)) < 0)
			goto out;
		if (rx->job_count == MIG_RX_JOBS && (rc = pop_job(rx, err)) < 0)
			goto out;
		struct mig_rx_job *j = &rx->jobs[(rx->job_head + rx->job_count) % MIG_RX_JOBS];
		if (j->in_cap < e->data_len) {
			free(j->in);
			j->in_cap = 0;
			if (!(j->in = malloc(e->data_len))) {
				rc = vmm_error_set(err, -ENOMEM,
						   "migration: out of memory for a batch");
				goto out;
			}
			j->in_cap = e->data_len;
		}
		if (!j->out && !(j->out = malloc(BATCH_BYTES))) {
			rc = vmm_error_set(err, -ENOMEM, "migration: out of memory for a batch");
			goto out;
		}
		struct iovec one = {j->in, e->data_len};
		if ((rc = src_readv(src, &one, 1, err)) < 0)
			goto out;
		j->rx = rx;
		j->in_len = e->data_len;
		j->npages = npages;
		j->nruns = (unsigned)e->n_run_first;
		j->nzruns = (unsigned)e->n_zero_first;
		memcpy(j->run_idx, run_idx, j->nruns * sizeof(uint64_t));
		memcpy(j->run_count, run_count, j->nruns * sizeof(uint32_t));
		memcpy(j->zero_idx, zero_idx, j->nzruns * sizeof(uint64_t));
		memcpy(j->zero_count, zero_count, j->nzruns * sizeof(uint32_t));
		j->stream_end = stream_end;
		j->iteration = e->iteration;
		j->error = 0;
		j->z.fn = decompress_job;
		rx->job_count++;
		rx->jobs_iteration = e->iteration;
		mig_zpool_submit(in->zpool, &j->z);
	}
	rx->pages += npages + nzeros;
	atomic_fetch_add(&in->pages, npages + nzeros);
	if (e->iteration > atomic_load(&in->last_iteration))
		atomic_store(&in->last_iteration, e->iteration);
out:
	protobuf_c_message_free_unpacked(&e->base, NULL);
	return rc;
}

int mig_ram_rx_pages(struct mig_ram_rx *rx, const struct mig_record *rec, struct mig_in *src,
		     unsigned timeout_ms, struct vmm_error *err)
{
	struct data_src s = {.in = src, .timeout_ms = timeout_ms};
	return rx_pages(rx, rec, &s, src->bytes + src->data_left, err);
}

int mig_ram_rx_pages_buf(struct mig_ram_rx *rx, const struct mig_record *rec, struct vmm_error *err)
{
	struct mig_record env;
	const uint8_t *data;
	size_t len;
	int r = mig_record_split(rec, &env, &data, &len, err);
	if (r < 0)
		return r;
	struct data_src s = {.buf = data, .left = len};
	Vmm__Migration__RamPages *e;
	if ((r = mig_unpack(&env, &vmm__migration__ram_pages__descriptor, (ProtobufCMessage **)&e,
			    err)) < 0)
		return r;
	bool ok = e->data_len == len;
	protobuf_c_message_free_unpacked(&e->base, NULL);
	if (!ok)
		return vmm_error_set(err, -EBADMSG,
				     "ram-pages: envelope and record disagree on the "
				     "data length");
	r = rx_pages(rx, &env, &s, 0, err);
	if (r == 0)
		r = mig_ram_rx_drain(rx, err);
	return r;
}

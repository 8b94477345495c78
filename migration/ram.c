/*
 * migration/ram.c: guest RAM in the stream. The source sends pages in
 * batches: all-zero pages as numbers only, the rest zstd-compressed
 * (or raw when that is smaller). The first pass walks only the memfd's
 * populated ranges (SEEK_DATA/SEEK_HOLE): never-touched pages are neither
 * read nor sent. Later passes follow KVM's dirty log. The destination
 * checks every page number and size before writing guest memory.
 */
#include "migration/migration.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <zstd.h>

#define PAGE_SIZE 4096u
#define PAGE_SHIFT 12
#define BITS_PER_WORD (8 * sizeof(unsigned long))

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	for (unsigned i = 0; i < PAGE_SIZE / 8; i += 8) {
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
			return false;
	}
	return true;
}

/* ---- sender ---- */

int mig_ram_sender_init(struct mig_ram_sender *s, struct vm *vm, struct mig_writer *w,
			int compress_level, struct vmm_error *err)
{
	memset(s, 0, sizeof(*s));
	s->vm = vm;
	s->w = w;
	s->compress_level = compress_level;
	s->raw = malloc((size_t)MIG_RAM_BATCH_PAGES * PAGE_SIZE);
	s->packed_cap = ZSTD_compressBound((size_t)MIG_RAM_BATCH_PAGES * PAGE_SIZE);
	s->packed = malloc(s->packed_cap);
	if (compress_level)
		s->zctx = ZSTD_createCCtx();
	if (!s->raw || !s->packed || (compress_level && !s->zctx)) {
		mig_ram_sender_free(s);
		return vmm_error_set(err, -ENOMEM, "migration: out of memory for RAM batches");
	}
	return 0;
}

void mig_ram_sender_free(struct mig_ram_sender *s)
{
	free(s->raw);
	free(s->packed);
	if (s->zctx)
		ZSTD_freeCCtx(s->zctx);
	s->raw = s->packed = NULL;
	s->zctx = NULL;
}

int mig_ram_flush(struct mig_ram_sender *s, struct vmm_error *err)
{
	if (!s->npages && !s->nzeros)
		return 0;
	Vmm__Migration__RamBatch b = VMM__MIGRATION__RAM_BATCH__INIT;
	size_t raw_len = (size_t)s->npages * PAGE_SIZE;
	b.n_pages = s->npages;
	b.pages = s->pages;
	b.n_zero_pages = s->nzeros;
	b.zero_pages = s->zeros;
	b.iteration = s->iteration;
	b.compression = VMM__MIGRATION__COMPRESSION__COMPRESSION_NONE;
	b.data.data = s->raw;
	b.data.len = raw_len;
	if (raw_len && s->zctx && s->skip_compress) {
		s->skip_compress--; /* recent batches did not compress: do not try */
	} else if (raw_len && s->zctx) {
		size_t n = ZSTD_compressCCtx(s->zctx, s->packed, s->packed_cap, s->raw, raw_len,
					     s->compress_level);
		if (ZSTD_isError(n))
			return vmm_error_set(err, -EIO, "migration: zstd: %s", ZSTD_getErrorName(n));
		if (n < raw_len - raw_len / 16) {
			b.compression = VMM__MIGRATION__COMPRESSION__COMPRESSION_ZSTD;
			b.data.data = s->packed;
			b.data.len = n;
		} else {
			/* Incompressible (random-looking) pages go raw, and the next
			 * batches skip the attempt: zstd would only cost CPU. */
			s->skip_compress = MIG_SKIP_COMPRESS_BATCHES;
		}
	}
	uint64_t before = s->w->bytes;
	int r = mig_write_record(s->w, MIG_REC_RAM, &b.base, err);
	s->stats.normal_pages += s->npages;
	s->stats.zero_pages += s->nzeros;
	s->stats.data_bytes += raw_len;
	s->stats.wire_bytes += s->w->bytes - before;
	s->npages = s->nzeros = 0;
	return r;
}

int mig_ram_send_page(struct mig_ram_sender *s, uint64_t pfn, struct vmm_error *err)
{
	const uint8_t *src = guest_ptr(&s->vm->mem, pfn << PAGE_SHIFT, PAGE_SIZE);
	if (!src)
		return vmm_error_set(err, -EFAULT, "migration: page 0x%llx outside guest RAM",
				     (unsigned long long)pfn);
	if (page_is_zero(src)) {
		s->zeros[s->nzeros++] = pfn;
	} else {
		memcpy(s->raw + (size_t)s->npages * PAGE_SIZE, src, PAGE_SIZE);
		s->pages[s->npages++] = pfn;
	}
	if (s->npages == MIG_RAM_BATCH_PAGES || s->nzeros == MIG_RAM_BATCH_PAGES)
		return mig_ram_flush(s, err);
	return 0;
}

int mig_ram_send_populated(struct mig_ram_sender *s, volatile bool *cancel, struct vmm_error *err)
{
	const struct guest_memory *mem = &s->vm->mem;
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct mem_region *rg = &mem->regions[i];
		off_t off = (off_t)rg->offset, end = (off_t)(rg->offset + rg->size);
		while (off < end) {
			if (*cancel)
				return vmm_error_set(err, -ECANCELED, "migration cancelled");
			off_t data = lseek(mem->fd, off, SEEK_DATA);
			if (data < 0 && errno != ENXIO)
				return vmm_error_set(err, -errno, "migration: SEEK_DATA: %s",
						     strerror(errno));
			if (data < 0 || data >= end) {
				s->stats.untouched_pages += (uint64_t)(end - off) / PAGE_SIZE;
				break;
			}
			off_t hole = lseek(mem->fd, data, SEEK_HOLE);
			if (hole < 0 || hole > end)
				hole = end;
			s->stats.untouched_pages += (uint64_t)(data - off) / PAGE_SIZE;
			for (off_t p = data; p < hole; p += PAGE_SIZE) {
				uint64_t gpa = rg->gpa + (uint64_t)(p - (off_t)rg->offset);
				int r = mig_ram_send_page(s, gpa >> PAGE_SHIFT, err);
				if (r < 0)
					return r;
			}
			off = hole;
		}
	}
	return mig_ram_flush(s, err);
}

/* ---- dirty log ---- */

int mig_dirty_log_start(struct mig_dirty_log *d, struct vm *vm, struct vmm_error *err)
{
	memset(d, 0, sizeof(*d));
	d->vm = vm;
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		uint64_t pages = vm->mem.regions[i].size / PAGE_SIZE;
		d->words[i] = (pages + BITS_PER_WORD - 1) / BITS_PER_WORD;
		d->bitmaps[i] = calloc(d->words[i], sizeof(unsigned long));
		if (!d->bitmaps[i]) {
			mig_dirty_log_stop(d);
			return vmm_error_set(err, -ENOMEM, "migration: out of memory for dirty bitmaps");
		}
	}
	int r = guest_memory_register(&vm->mem, vm->vm_fd, KVM_MEM_LOG_DIRTY_PAGES, err);
	if (r < 0) {
		mig_dirty_log_stop(d);
		return vmm_error_prefix(err, "enabling dirty logging");
	}
	d->enabled = true;
	/* virtio: forget device writes from before; the first pass reads after this */
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		guest_memory_take_dirty(&vm->mem, i, d->bitmaps[i], d->words[i]);
		memset(d->bitmaps[i], 0, d->words[i] * sizeof(unsigned long));
	}
	return 0;
}

int64_t mig_dirty_log_sync(struct mig_dirty_log *d, struct vmm_error *err)
{
	int64_t dirty = 0;
	for (unsigned i = 0; i < d->vm->mem.nregions; i++) {
		struct kvm_dirty_log log = {.slot = d->vm->mem.regions[i].slot,
					    .dirty_bitmap = d->bitmaps[i]};
		if (ioctl(d->vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
			return vmm_error_set(err, -errno, "KVM_GET_DIRTY_LOG slot %u: %s", log.slot,
					     strerror(errno));
		/* virtio: pages the VMM wrote, which KVM's log cannot see */
		guest_memory_take_dirty(&d->vm->mem, i, d->bitmaps[i], d->words[i]);
		for (size_t w = 0; w < d->words[i]; w++)
			dirty += __builtin_popcountl(d->bitmaps[i][w]);
	}
	return dirty;
}

int mig_dirty_log_send(struct mig_dirty_log *d, struct mig_ram_sender *s, volatile bool *cancel,
		       struct vmm_error *err)
{
	for (unsigned i = 0; i < d->vm->mem.nregions; i++) {
		uint64_t base_pfn = d->vm->mem.regions[i].gpa >> PAGE_SHIFT;
		for (size_t w = 0; w < d->words[i]; w++) {
			unsigned long bits = d->bitmaps[i][w];
			if (bits && *cancel)
				return vmm_error_set(err, -ECANCELED, "migration cancelled");
			while (bits) {
				unsigned b = (unsigned)__builtin_ctzl(bits);
				bits &= bits - 1;
				int r = mig_ram_send_page(s, base_pfn + w * BITS_PER_WORD + b, err);
				if (r < 0)
					return r;
			}
		}
	}
	return mig_ram_flush(s, err);
}

void mig_dirty_log_stop(struct mig_dirty_log *d)
{
	if (d->enabled) {
		struct vmm_error ignored;
		/* Back to plain slots: the guest runs on without write tracking. */
		guest_memory_register(&d->vm->mem, d->vm->vm_fd, 0, &ignored);
		d->enabled = false;
	}
	for (unsigned i = 0; i < GUEST_MEM_MAX_REGIONS; i++) {
		free(d->bitmaps[i]);
		d->bitmaps[i] = NULL;
	}
}

/* ---- receiver ---- */

int mig_ram_receiver_init(struct mig_ram_receiver *r, struct vm *vm, struct vmm_error *err)
{
	memset(r, 0, sizeof(*r));
	r->vm = vm;
	r->npages_total = vm->mem.size / PAGE_SIZE;
	r->dctx = ZSTD_createDCtx();
	r->raw = malloc((size_t)MIG_RAM_BATCH_MAX_PAGES * PAGE_SIZE);
	r->received = calloc((r->npages_total + BITS_PER_WORD - 1) / BITS_PER_WORD,
			     sizeof(unsigned long));
	if (!r->dctx || !r->raw || !r->received) {
		mig_ram_receiver_free(r);
		return vmm_error_set(err, -ENOMEM, "migration: out of memory for receiving RAM");
	}
	return 0;
}

void mig_ram_receiver_free(struct mig_ram_receiver *r)
{
	if (r->dctx)
		ZSTD_freeDCtx(r->dctx);
	free(r->raw);
	free(r->received);
	r->dctx = NULL;
	r->raw = NULL;
	r->received = NULL;
}

/* The page's index in the memfd, or -1 if pfn is not guest RAM. */
static int64_t page_index(const struct guest_memory *mem, uint64_t pfn)
{
	if (pfn >= (1ull << (64 - PAGE_SHIFT)))
		return -1;
	uint64_t gpa = pfn << PAGE_SHIFT;
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct mem_region *rg = &mem->regions[i];
		if (gpa >= rg->gpa && gpa - rg->gpa < rg->size)
			return (int64_t)((rg->offset + gpa - rg->gpa) >> PAGE_SHIFT);
	}
	return -1;
}

int mig_ram_apply(struct mig_ram_receiver *r, const struct mig_record *rec, struct vmm_error *err)
{
	Vmm__Migration__RamBatch *b;
	int rc = mig_unpack(rec, &vmm__migration__ram_batch__descriptor, (ProtobufCMessage **)&b,
			    err);
	if (rc < 0)
		return rc;
	const uint8_t *data = b->data.data;
	size_t expect = b->n_pages * PAGE_SIZE;
	if (b->n_pages > MIG_RAM_BATCH_MAX_PAGES || b->n_zero_pages > MIG_RAM_BATCH_MAX_PAGES) {
		rc = vmm_error_set(err, -EMSGSIZE, "RAM batch of %zu + %zu pages exceeds %d",
				   b->n_pages, b->n_zero_pages, MIG_RAM_BATCH_MAX_PAGES);
		goto out;
	}
	if (b->compression == VMM__MIGRATION__COMPRESSION__COMPRESSION_ZSTD) {
		unsigned long long size = ZSTD_getFrameContentSize(b->data.data, b->data.len);
		if (size != expect) {
			rc = vmm_error_set(err, -EBADMSG,
					   "RAM batch: compressed data holds %llu bytes, %zu pages need %zu",
					   size, b->n_pages, expect);
			goto out;
		}
		size_t n = ZSTD_decompressDCtx(r->dctx, r->raw, expect, b->data.data, b->data.len);
		if (ZSTD_isError(n) || n != expect) {
			rc = vmm_error_set(err, -EBADMSG, "RAM batch: zstd: %s",
					   ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short output");
			goto out;
		}
		data = r->raw;
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
		int64_t idx = page_index(&r->vm->mem, b->pages[i]);
		if (idx < 0) {
			rc = vmm_error_set(err, -EFAULT, "RAM batch: page 0x%llx is not guest RAM",
					   (unsigned long long)b->pages[i]);
			goto out;
		}
		memcpy(r->vm->mem.base + ((uint64_t)idx << PAGE_SHIFT), data + i * PAGE_SIZE, PAGE_SIZE);
		r->received[idx / BITS_PER_WORD] |= 1ul << (idx % BITS_PER_WORD);
	}
	for (size_t i = 0; i < b->n_zero_pages; i++) {
		int64_t idx = page_index(&r->vm->mem, b->zero_pages[i]);
		if (idx < 0) {
			rc = vmm_error_set(err, -EFAULT, "RAM batch: zero page 0x%llx is not guest RAM",
					   (unsigned long long)b->zero_pages[i]);
			goto out;
		}
		unsigned long bit = 1ul << (idx % BITS_PER_WORD);
		/* Fresh memory is zero: only a page we wrote before needs clearing. */
		if (r->received[idx / BITS_PER_WORD] & bit)
			memset(r->vm->mem.base + ((uint64_t)idx << PAGE_SHIFT), 0, PAGE_SIZE);
		r->received[idx / BITS_PER_WORD] |= bit;
	}
	r->pages += b->n_pages + b->n_zero_pages;
out:
	protobuf_c_message_free_unpacked(&b->base, NULL);
	return rc;
}

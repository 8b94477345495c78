/*
 * tests/fuzz/make_corpus_instream.c: writes the seeds of the instream
 * target with the product's own writer and RAM sender (no KVM: the source
 * is a guest memory filled here), each a whole valid stream: raw ram-pages
 * with and without page hashes, zstd batches over two passes, RamBatch v1
 * raw and zstd, a torn page sent again (and one never sent again), two
 * connections' share; plus, from a real 1.2 stream, its beginning (header,
 * RAM map, first ram-pages record) and its state records. Seeds stay under
 * 128 KiB (the -max_len of README "Fuzzing").
 *
 *   ninja -C build tests/fuzz/make_corpus_instream
 *   build/tests/fuzz/make_corpus_instream tests/fuzz/corpus/instream \
 *       tests/data/streams/format1.2-microvm1.1-2cpu.vmmstream
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vm.h"
#include "machine-types/machine.h"
#include "migration/migration.h"
#include "migration/ram.h"

#define GUEST_RAM (48u << 20) /* as in instream.c */
#define MAX_SEED  (128u << 10)

struct buf {
	uint8_t *data;
	size_t len;
};

static int buf_sink(void *ctx, const void *data, size_t len, struct vmm_error *err)
{
	(void)err;
	struct buf *b = ctx;
	b->data = realloc(b->data, b->len + len);
	if (!b->data)
		abort();
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

static const char *outdir;

static void put(const char *name, const uint8_t *data, size_t len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", outdir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	if (len > MAX_SEED)
		fprintf(stderr, "warning: %s is %zu bytes\n", name, len);
}

static void check(int r, const struct vmm_error *err)
{
	if (r < 0) {
		fprintf(stderr, "make_corpus_instream: %s\n", err->msg);
		exit(1);
	}
}

static struct vm src;
static struct vmm_error err;

static void start(struct mig_writer *w, struct buf *b, unsigned conns)
{
	memset(b, 0, sizeof(*b));
	check(mig_writer_init(w, buf_sink, b, &err), &err);
	check(mig_write_preamble(w, &err), &err);
	Vmm__Migration__Header h = VMM__MIGRATION__HEADER__INIT;
	h.connections = conns;
	check(mig_write_record(w, MIG_REC_HEADER, &h.base, &err), &err);
}

static void finish(const char *name, struct mig_writer *w, struct buf *b, uint64_t pages)
{
	check(mig_write_end(w, pages, &err), &err);
	Vmm__Migration__Go go = VMM__MIGRATION__GO__INIT;
	check(mig_write_record(w, MIG_REC_GO, &go.base, &err), &err);
	put(name, b->data, b->len);
	mig_writer_free(w);
	free(b->data);
}

static uint64_t sent(const struct mig_ram_tx *tx)
{
	return tx->stats.normal_pages + tx->stats.zero_pages;
}

/* Pass 0 (every populated page) in the given encoding. */
static void pass0(const char *name, enum mig_ram_encoding enc, int v1_level, bool hashes,
		  struct mig_flow *flow)
{
	struct mig_writer w;
	struct buf b;
	struct mig_ram_tx tx;
	atomic_bool cancel = false;
	start(&w, &b, 1);
	check(mig_ram_send_map(&src, &w, &cancel, NULL, &err), &err);
	check(mig_ram_tx_init(&tx, &src, &w, enc, 0, 1, &err), &err);
	tx.v1_level = v1_level;
	tx.hash_pages = hashes;
	tx.flow = flow;
	tx.iteration = 1;
	check(mig_ram_tx_populated(&tx, &cancel, &err), &err);
	/* a second pass: some pages changed, one now zero */
	tx.iteration = 2;
	memset(src.mem.base + 101 * 4096, 0, 4096);
	for (uint64_t p = 100; p < 104; p++)
		check(mig_ram_tx_page(&tx, p, &err), &err);
	check(mig_ram_tx_flush(&tx, &err), &err);
	src.mem.base[101 * 4096] = 0x5a;
	finish(name, &w, &b, sent(&tx));
	mig_ram_tx_free(&tx);
}

/* A page changed between its hash and its copy: torn, then maybe sent again. */
static void torn(const char *name, bool again)
{
	struct mig_writer w;
	struct buf b;
	struct mig_ram_tx tx;
	start(&w, &b, 1);
	check(mig_ram_tx_init(&tx, &src, &w, MIG_RAM_ENC_PAGES, 0, 1, &err), &err);
	check(mig_ram_tx_page(&tx, 100, &err), &err);
	check(mig_ram_tx_page(&tx, 102, &err), &err);
	src.mem.base[102 * 4096 + 7] ^= 1;
	check(mig_ram_tx_flush(&tx, &err), &err);
	if (again) {
		check(mig_ram_tx_page(&tx, 102, &err), &err);
		check(mig_ram_tx_flush(&tx, &err), &err);
	}
	src.mem.base[102 * 4096 + 7] ^= 1;
	finish(name, &w, &b, sent(&tx));
	mig_ram_tx_free(&tx);
}

/* Connection 0's share of two: chunks 0, 2, ... */
static void two_conns(void)
{
	struct mig_writer w;
	struct buf b;
	struct mig_ram_tx tx;
	start(&w, &b, 2);
	check(mig_ram_tx_init(&tx, &src, &w, MIG_RAM_ENC_PAGES, 0, 2, &err), &err);
	for (uint64_t p = 100; p < 104; p++)
		check(mig_ram_tx_page(&tx, p, &err), &err);
	check(mig_ram_tx_page(&tx, 1024, &err), &err); /* chunk 2 */
	check(mig_ram_tx_flush(&tx, &err), &err);
	finish("two-connections", &w, &b, sent(&tx));
	mig_ram_tx_free(&tx);
}

/* From a real stream: its records as they are. */
static void real(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		exit(1);
	}
	static uint8_t s[8u << 20];
	size_t n = fread(s, 1, sizeof(s), f);
	fclose(f);
	/* the beginning: up to the end of the last record that fits */
	size_t off = MIG_PREAMBLE_SIZE, head = off, hdr_end = 0;
	while (off + 8 <= n) {
		size_t len = (size_t)s[off] | (size_t)s[off + 1] << 8 | (size_t)s[off + 2] << 16 |
			     (size_t)s[off + 3] << 24;
		if (!hdr_end)
			hdr_end = off + 8 + len;
		if (off + 8 + len > MAX_SEED)
			break;
		off += 8 + len;
		head = off;
	}
	put("real-beginning", s, head);
	put("real-beginning-cut", s, 64u << 10);
	/* the preamble and header, then every record after the last ram-pages */
	size_t last = 0;
	for (off = MIG_PREAMBLE_SIZE; off + 8 <= n;) {
		size_t len = (size_t)s[off] | (size_t)s[off + 1] << 8 | (size_t)s[off + 2] << 16 |
			     (size_t)s[off + 3] << 24;
		if (s[off + 4] == MIG_REC_RAM_PAGES)
			last = off + 8 + len;
		off += 8 + len;
	}
	static uint8_t t[MAX_SEED];
	if (hdr_end + (n - last) <= sizeof(t) && last) {
		memcpy(t, s, hdr_end);
		memcpy(t + hdr_end, s + last, n - last);
		put("real-state", t, hdr_end + (n - last));
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s OUTDIR [REAL-1.2-STREAM]\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	vm_init(&src);
	check(machine_resolve("microvm", &src.spec.machine, &err), &err);
	check(guest_memory_create(&src.mem, GUEST_RAM, false, &src.spec.machine, &err), &err);
	for (uint64_t p = 100; p < 108; p++)
		for (unsigned i = 0; i < 4096 / 8; i++)
			((uint64_t *)(src.mem.base + p * 4096))[i] = p * 0x9e3779b97f4a7c15ull ^ i;
	src.mem.base[200 * 4096] = 1; /* populated, reads as zero */
	src.mem.base[200 * 4096] = 0;
	memset(src.mem.base + 9000 * 4096, 0x33, 2 * 4096);
	memset(src.mem.base + 1024 * 4096, 0x44, 4096);

	pass0("raw-hashes", MIG_RAM_ENC_PAGES, 0, true, NULL);
	pass0("raw-no-hashes", MIG_RAM_ENC_PAGES, 0, false, NULL);
	struct mig_flow flow;
	mig_flow_init(&flow, MIG_COMPRESS_ON, 1, 1, 0);
	pass0("zstd-two-passes", MIG_RAM_ENC_PAGES, 0, false, &flow);
	mig_flow_free(&flow);
	pass0("v1-raw", MIG_RAM_ENC_V1, 0, false, NULL);
	pass0("v1-zstd", MIG_RAM_ENC_V1, 3, false, NULL);
	torn("torn-sent-again", true);
	torn("torn-never-again", false);
	two_conns();
	if (argc > 2)
		real(argv[2]);
	guest_memory_destroy(&src.mem);
	return 0;
}

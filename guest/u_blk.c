/*
 * u_blk.c: blk=SIZE writes and re-verifies the first SIZE bytes of disk 0
 * (the first virtio-blk device on the command line) for as long as the
 * guest runs; blkbench=MODE measures throughput instead. All at CPL3,
 * polling, LANES requests in flight, each through an indirect table.
 *
 * Block b (4 KiB) with generation g >= 1 holds: word 0 = b, word 1 = g,
 * word w (2..511) = mix64(seed + w * GOLD), seed = mix64(b * GOLD ^
 * mix64(g + SALT)) (little-endian u64 words). The disk is cut into chunks
 * of 16 blocks with one generation each (kept in guest RAM, so a migrated
 * guest just goes on). A lane takes a chunk, reads and verifies it (once
 * written before), writes it with the next generation, reads it back and
 * verifies again; every 64 chunks it also flushes. Lanes never share a
 * chunk, so every read has one right answer.
 */
#include "user.h"
#include "x86.h"

#define BLOCK	      4096u
#define CHUNK_BLOCKS  16u
#define LANES	      8u
#define SECTOR	      512u
#define FLUSH_EVERY   64u
#define MAX_FAILS     4u
#define BENCH_SEQ_BS  (1u << 20)
#define BENCH_RAND_BS 4096u

#define VIRTIO_ID_BLOCK 2
#define F_INDIRECT	28
#define F_EVENT_IDX	29
#define DESC_F_NEXT	1
#define DESC_F_WRITE	2
#define DESC_F_INDIRECT 4
#define T_IN		0
#define T_OUT		1
#define T_FLUSH		4
#define T_GET_ID	8
#define GOLD		0x9e3779b97f4a7c15ull
#define SALT		0x632be59bd9b4e019ull

enum { L_IDLE, L_READ1, L_WRITE, L_READ2, L_FLUSH };

struct lane {
	uint64_t page; /* header at 0, status at 64, indirect table at 128 */
	uint64_t buf;  /* data */
	uint64_t chunk;
	uint32_t state;
};

static struct vdev d UBSS;
static struct lane lanes[LANES] UBSS;
static uint64_t *gen UBSS;	 /* per chunk */
static uint8_t *chunk_busy UBSS; /* a lane holds it */
static uint64_t nblocks UBSS, nchunks UBSS, next_chunk UBSS;
static uint64_t writes UBSS, reads UBSS, cycles UBSS, laps UBSS, fails UBSS;

static void fill_block(uint64_t *w, uint64_t b, uint64_t g)
{
	uint64_t seed = mix64(b * GOLD ^ mix64(g + SALT)), i;

	w[0] = b;
	w[1] = g;
	for (i = 2; i < BLOCK / 8; i++)
		w[i] = mix64(seed + i * GOLD);
}

static uint64_t check_block(const uint64_t *w, uint64_t b, uint64_t g)
{
	uint64_t seed = mix64(b * GOLD ^ mix64(g + SALT)), i, bad = 0;

	if (w[0] != b || w[1] != g) {
		bad = 1;
	} else {
		for (i = 2; i < BLOCK / 8; i++)
			bad += w[i] != mix64(seed + i * GOLD);
	}
	if (bad && fails++ < MAX_FAILS)
		u_printf("BLK-VERIFY-FAIL block=%lu expected-gen=%lu got-block=%lu got-gen=%lu "
			 "bad-words=%lu\n",
			 b, g, w[0], w[1], bad);
	return bad;
}

static uint64_t chunk_blocks(uint64_t c)
{
	uint64_t first = c * CHUNK_BLOCKS;
	return nblocks - first < CHUNK_BLOCKS ? nblocks - first : CHUNK_BLOCKS;
}

/* One request through lane l's indirect table: header, data, status. */
static void submit(uint32_t l, uint32_t type, uint64_t sector, uint64_t data, uint32_t len)
{
	struct lane *ln = &lanes[l];
	volatile uint32_t *hdr = (volatile uint32_t *)(uintptr_t)ln->page;
	struct vq table = {.desc = (volatile uint8_t *)(uintptr_t)(ln->page + 128)};
	uint16_t n = 0;

	hdr[0] = type;
	hdr[1] = 0;
	*(volatile uint64_t *)(hdr + 2) = sector;
	*(volatile uint8_t *)(uintptr_t)(ln->page + 64) = 0xff;
	vq_set_desc(&table, n, ln->page, 16, DESC_F_NEXT, (uint16_t)(n + 1));
	n++;
	if (len) {
		vq_set_desc(&table, n, data, len,
			    (uint16_t)(DESC_F_NEXT | (type == T_OUT ? 0 : DESC_F_WRITE)),
			    (uint16_t)(n + 1));
		n++;
	}
	vq_set_desc(&table, n, ln->page + 64, 1, DESC_F_WRITE, 0);
	n++;
	vq_set_desc(&d.q, (uint16_t)l, ln->page + 128, 16u * n, DESC_F_INDIRECT, 0);
	vq_publish(&d, (uint16_t)l);
}

/* Waits for one completion; returns its lane. */
static uint32_t complete_one(void)
{
	uint32_t id, len;
	uint8_t status;

	while (!vq_take_used(&d.q, &id, &len))
		cpu_relax();
	if (id >= LANES) {
		u_printf("testguest: blk: device returned unknown chain %u\n", id);
		u_exit(EXIT_INTERNAL);
	}
	status = *(volatile uint8_t *)(uintptr_t)(lanes[id].page + 64);
	if (status != 0) {
		u_printf(
		    "testguest: blk: request failed with status %u (lane %u chunk %lu state %u)\n",
		    status, id, lanes[id].chunk, lanes[id].state);
		u_exit(EXIT_VERIFY);
	}
	return id;
}

static bool blk_open(void)
{
	static char serial[24] UBSS;
	uint64_t capacity, page;
	uint32_t l;

	if (!vdev_open(&d, VIRTIO_ID_BLOCK, (1ull << F_INDIRECT) | (1ull << F_EVENT_IDX), 256))
		return false;
	if (!((d.features >> F_INDIRECT) & 1) || d.q.num < LANES) {
		u_printf("testguest: blk: the device lacks INDIRECT_DESC or a queue of %u\n",
			 LANES);
		return false;
	}
	capacity = vdev_config32(&d, 0) | (uint64_t)vdev_config32(&d, 4) << 32;
	for (l = 0; l < LANES; l++) {
		lanes[l].page = mem_alloc(BLOCK);
		if (!lanes[l].page)
			return false;
	}
	/* GET_ID: the serial, at most 20 bytes */
	page = mem_alloc(BLOCK);
	if (!page)
		return false;
	submit(0, T_GET_ID, 0, page, 20);
	complete_one();
	memcpy(serial, (const void *)(uintptr_t)page, 20);
	u_printf("blk disk0 capacity=%lu serial=\"%s\" base=0x%lx irq=%u\n", capacity * SECTOR,
		 serial, d.base, d.irq);
	if (u_cfg.blk > capacity * SECTOR) {
		u_printf("testguest: blk=%lu: the disk has only %lu bytes\n", u_cfg.blk,
			 capacity * SECTOR);
		u_exit(EXIT_USAGE);
	}
	return true;
}

static void start_lane(uint32_t l)
{
	struct lane *ln = &lanes[l];
	uint64_t c = next_chunk, i, n;

	while (chunk_busy[c]) /* at most LANES-1 others are busy */
		c = (c + 1) % nchunks;
	next_chunk = (c + 1) % nchunks;
	chunk_busy[c] = 1;
	ln->chunk = c;
	n = chunk_blocks(c);
	if (gen[c]) {
		ln->state = L_READ1;
		submit(l, T_IN, c * CHUNK_BLOCKS * (BLOCK / SECTOR), ln->buf,
		       (uint32_t)(n * BLOCK));
		return;
	}
	for (i = 0; i < n; i++)
		fill_block((uint64_t *)(uintptr_t)(ln->buf + i * BLOCK), c * CHUNK_BLOCKS + i, 1);
	ln->state = L_WRITE;
	submit(l, T_OUT, c * CHUNK_BLOCKS * (BLOCK / SECTOR), ln->buf, (uint32_t)(n * BLOCK));
}

static uint64_t verify_chunk(const struct lane *ln, uint64_t g)
{
	uint64_t i, n = chunk_blocks(ln->chunk), bad = 0;

	for (i = 0; i < n; i++)
		bad += check_block((const uint64_t *)(uintptr_t)(ln->buf + i * BLOCK),
				   ln->chunk * CHUNK_BLOCKS + i, g) != 0;
	return bad;
}

/* The lane's request finished: verify, and issue its next step. */
static void advance(uint32_t l)
{
	struct lane *ln = &lanes[l];
	uint64_t c = ln->chunk, n = chunk_blocks(c), i;
	uint64_t sector = c * CHUNK_BLOCKS * (BLOCK / SECTOR);

	switch (ln->state) {
	case L_READ1:
		if (verify_chunk(ln, gen[c]))
			u_exit(EXIT_VERIFY);
		reads += n;
		for (i = 0; i < n; i++)
			fill_block((uint64_t *)(uintptr_t)(ln->buf + i * BLOCK),
				   c * CHUNK_BLOCKS + i, gen[c] + 1);
		ln->state = L_WRITE;
		submit(l, T_OUT, sector, ln->buf, (uint32_t)(n * BLOCK));
		return;
	case L_WRITE:
		gen[c]++;
		writes += n;
		ln->state = L_READ2;
		submit(l, T_IN, sector, ln->buf, (uint32_t)(n * BLOCK));
		return;
	case L_READ2:
		if (verify_chunk(ln, gen[c]))
			u_exit(EXIT_VERIFY);
		reads += n;
		cycles++;
		if (cycles % nchunks == 0)
			laps++;
		chunk_busy[c] = 0;
		if (cycles % FLUSH_EVERY == 0) {
			ln->state = L_FLUSH;
			submit(l, T_FLUSH, 0, 0, 0);
			return;
		}
		ln->state = L_IDLE;
		return;
	default:
		ln->state = L_IDLE;
		return;
	}
}

static void progress(void)
{
	u_printf("blk t=%lu writes=%lu reads=%lu laps=%lu errors=0\n", u_ms(), writes, reads, laps);
}

uint64_t blk_run(void)
{
	uint64_t start, end, next_prog, prog_ticks = u_cfg.progress * HZ / 1000, c, errors = 0;
	uint32_t l, busy;

	if (!blk_open())
		u_exit(EXIT_USAGE);
	nblocks = u_cfg.blk / BLOCK;
	nchunks = (nblocks + CHUNK_BLOCKS - 1) / CHUNK_BLOCKS;
	gen = (uint64_t *)(uintptr_t)mem_alloc(nchunks * 8);
	chunk_busy = (uint8_t *)(uintptr_t)mem_alloc(nchunks);
	for (l = 0; l < LANES; l++)
		lanes[l].buf = mem_alloc(CHUNK_BLOCKS * BLOCK);
	if (!gen || !chunk_busy || !lanes[LANES - 1].buf) {
		u_printf("testguest: blk=%lu: not enough free memory\n", u_cfg.blk);
		u_exit(EXIT_USAGE);
	}
	if (u_cfg.progress && !prog_ticks)
		prog_ticks = 1;
	start = u_ticks();
	end = start + u_cfg.runtime * HZ;
	next_prog = start + prog_ticks;
	u_printf("blk start blocks=%lu chunks=%lu lanes=%u t=%lu\n", nblocks, nchunks, LANES,
		 u_ms());
	for (l = 0; l < LANES && l < nchunks; l++)
		start_lane(l);
	for (;;) {
		uint64_t now = u_ticks();
		bool stopping = u_cfg.has_runtime && now >= end;

		if (prog_ticks && now >= next_prog) {
			progress();
			next_prog = now + prog_ticks;
		}
		for (busy = 0, l = 0; l < LANES; l++)
			busy += lanes[l].state != L_IDLE;
		if (stopping && !busy)
			break;
		l = complete_one();
		advance(l);
		if (!stopping && lanes[l].state == L_IDLE)
			start_lane(l);
	}
	/* final: flush, then read everything back once */
	submit(0, T_FLUSH, 0, 0, 0);
	complete_one();
	for (c = 0; c < nchunks; c++) {
		if (!gen[c])
			continue;
		lanes[0].chunk = c;
		submit(0, T_IN, c * CHUNK_BLOCKS * (BLOCK / SECTOR), lanes[0].buf,
		       (uint32_t)(chunk_blocks(c) * BLOCK));
		complete_one();
		errors += verify_chunk(&lanes[0], gen[c]);
	}
	u_printf("blk-final writes=%lu reads=%lu laps=%lu errors=%lu\n", writes, reads, laps,
		 errors);
	return errors;
}

/* ---- blkbench=MODE: throughput over blk=SIZE for runtime seconds ---- */

/* The next unit to transfer: in order, or xorshift64-random. */
static uint64_t next_unit(bool seq, uint64_t units, uint64_t *next, uint64_t *rnd)
{
	uint64_t u;
	if (seq) {
		u = *next;
		*next = (*next + 1) % units;
	} else {
		*rnd ^= *rnd << 13, *rnd ^= *rnd >> 7, *rnd ^= *rnd << 17;
		u = *rnd % units;
	}
	return u;
}

void blkbench_run(void)
{
	static const char *const names[] = {"", "seqwrite", "seqread", "randwrite", "randread"};
	bool seq = u_cfg.blkbench == BLKBENCH_SEQWRITE || u_cfg.blkbench == BLKBENCH_SEQREAD;
	bool wr = u_cfg.blkbench == BLKBENCH_SEQWRITE || u_cfg.blkbench == BLKBENCH_RANDWRITE;
	uint32_t bs = seq ? BENCH_SEQ_BS : BENCH_RAND_BS, l, busy;
	uint64_t units, next = 0, rnd = 0x2545f4914f6cdd1dull, ops = 0, t0, t1, end, i;

	if (!u_cfg.blk || !u_cfg.has_runtime) {
		u_printf("testguest: blkbench needs blk=SIZE and runtime=SECONDS\n");
		u_exit(EXIT_USAGE);
	}
	if (!blk_open())
		u_exit(EXIT_USAGE);
	units = u_cfg.blk / bs;
	for (l = 0; l < LANES; l++) {
		lanes[l].buf = mem_alloc(bs);
		if (!lanes[l].buf || !units) {
			u_printf("testguest: blkbench: blk=%lu too small or no memory\n",
				 u_cfg.blk);
			u_exit(EXIT_USAGE);
		}
		for (i = 0; i < bs / 8; i++) /* real data: a sparse image must allocate */
			((uint64_t *)(uintptr_t)lanes[l].buf)[i] = mix64(i + l * bs);
	}
	t0 = u_ticks();
	end = t0 + u_cfg.runtime * HZ;
	for (l = 0; l < LANES; l++) {
		lanes[l].state = L_READ1;
		submit(l, wr ? T_OUT : T_IN, next_unit(seq, units, &next, &rnd) * (bs / SECTOR),
		       lanes[l].buf, bs);
	}
	for (;;) {
		for (busy = 0, l = 0; l < LANES; l++)
			busy += lanes[l].state != L_IDLE;
		if (!busy)
			break;
		l = complete_one();
		ops++;
		if (u_ticks() >= end) {
			lanes[l].state = L_IDLE;
			continue;
		}
		submit(l, wr ? T_OUT : T_IN, next_unit(seq, units, &next, &rnd) * (bs / SECTOR),
		       lanes[l].buf, bs);
	}
	t1 = u_ticks();
	u_printf("blkbench mode=%s qd=%u bs=%u ops=%lu bytes=%lu ms=%lu\n", names[u_cfg.blkbench],
		 LANES, bs, ops, ops * bs, (t1 - t0) * (1000 / HZ));
}

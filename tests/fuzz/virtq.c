/*
 * tests/fuzz/virtq.c: the descriptor-chain walker (core/virtio/virtq.c)
 * on guest memory made of fuzzer input. The first 8 input bytes choose the
 * queue: size (log2), whether INDIRECT_DESC and EVENT_IDX were negotiated,
 * and where the rings sit; the rest is copied to the start of a 64 KiB
 * guest RAM (descriptor table, rings, indirect tables, buffers). The target
 * then takes chains until there are none or the queue is broken, checks that
 * every segment lies inside guest RAM and within the totals, and returns
 * each chain. Built with libFuzzer (-Dfuzz=true, clang) or replayed over
 * tests/fuzz/corpus/virtq/ by replay_main.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/virtio/virtio.h"
#include "tests/fuzz/fuzz.h"

#define RAM_SIZE (64u << 10)

static void check(int cond)
{
	if (!cond)
		abort(); /* the walker returned something outside its contract */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	static struct virtq_chain chain;
	if (!ram && !(ram = aligned_alloc(4096, RAM_SIZE)))
		return 0;
	if (size < 8)
		return 0;
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + 8, size - 8 < RAM_SIZE ? size - 8 : RAM_SIZE);

	struct guest_memory mem = {.fd = -1, .size = RAM_SIZE, .base = ram, .nregions = 1};
	mem.regions[0] = (struct mem_region){.gpa = 0, .size = RAM_SIZE, .hva = ram};
	struct virtq_state s = {
	    .num = (uint16_t)(1u << (data[0] % 10)), /* 1..512, some above num_max */
	    .desc = (uint64_t)data[2] << 8,
	    .avail = (uint64_t)data[3] << 8 | (data[5] & 1),
	    .used = (uint64_t)data[4] << 8,
	    .last_avail_idx = (uint16_t)(data[6] | data[7] << 8),
	    .used_idx = (uint16_t)(data[6] | data[7] << 8),
	};
	struct virtq vq = {
	    .s = &s,
	    .mem = &mem,
	    .num_max = 256,
	    .indirect = data[1] & 1,
	    .event_idx = data[1] & 2,
	};
	if (virtq_setup(&vq, NULL) < 0)
		return 0;
	for (unsigned n = 0; n < 1024; n++) {
		int r = virtq_pop(&vq, &chain, NULL);
		if (r <= 0) {
			check(r == 0 || vq.broken);
			break;
		}
		uint64_t out = 0, in = 0;
		check(chain.nseg <= VIRTQ_MAX_SEGS && chain.n_out <= chain.nseg);
		check(chain.head < s.num);
		for (unsigned i = 0; i < chain.nseg; i++) {
			const uint8_t *p = chain.iov[i].iov_base;
			check(p >= ram && chain.iov[i].iov_len <= RAM_SIZE &&
			      (size_t)(p - ram) <= RAM_SIZE - chain.iov[i].iov_len);
			check(chain.gpa[i] == (uint64_t)(p - ram));
			*(i < chain.n_out ? &out : &in) += chain.iov[i].iov_len;
		}
		check(out == chain.out_len && in == chain.in_len);
		virtq_push(&vq, chain.head, (uint32_t)chain.in_len);
		virtq_need_interrupt(&vq);
		virtq_set_notify(&vq, true);
	}
	return 0;
}

/*
 * Unit tests for RAM in the stream (migration/ram.c): batches between two
 * guest memories (memfds, no KVM), untouched pages skipped, and refusal of
 * batches that point outside RAM or lie about their sizes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "migration/migration.h"
#include "migration/ram.h"
#include "tests/unit/stream_helpers.h"

static void make_vm(struct vm *vm, uint64_t size)
{
	struct vmm_error err = {0};
	vm_init(vm);
	assert_int_equal(machine_resolve("microvm", &vm->spec.machine, &err), 0);
	assert_int_equal(guest_memory_create(&vm->mem, size, false, &vm->spec.machine, &err), 0);
}

static void test_ram_round_trip_skips_untouched(void **state)
{
	(void)state;
	static struct vm src, dst;
	make_vm(&src, 64 << 20);
	make_vm(&dst, 64 << 20);
	/* Data pages, a touched-but-zero page, and everything else untouched. */
	for (uint64_t p = 100; p < 700; p++)
		memset(src.mem.base + p * 4096, (int)(p & 0xff) | 1, 4096);
	src.mem.base[5000 * 4096] = 1;
	src.mem.base[5000 * 4096] = 0; /* populated, reads as zero */

	struct buf b = {0};
	struct vmm_error err = {0};
	struct mig_writer w;
	struct mig_ram_tx s;
	assert_int_equal(mig_writer_init(&w, buf_sink, &b, &err), 0);
	assert_int_equal(mig_write_preamble(&w, &err), 0);
	assert_int_equal(mig_ram_tx_init(&s, &src, &w, MIG_RAM_ENC_PAGES, 0, 1, &err), 0);
	atomic_bool cancel = false;
	assert_int_equal(mig_ram_tx_populated(&s, &cancel, &err), 0);
	assert_int_equal(s.stats.normal_pages, 600);
	assert_int_equal(s.stats.zero_pages, 1);
	assert_int_equal(s.stats.untouched_pages, (64 << 20) / 4096 - 601);

	struct seen sn = {0};
	assert_int_equal(read_all(&b, 100000, &sn, &err), 0);
	struct mig_ram_in in;
	struct mig_ram_rx r;
	assert_int_equal(mig_ram_in_init(&in, &dst, 1, &err), 0);
	assert_int_equal(mig_ram_rx_init(&r, &in, 0, &err), 0);
	for (unsigned i = 0; i < sn.n; i++) {
		struct mig_record rec = {.type = sn.types[i], .payload = sn.payloads[i], .len = sn.lens[i]};
		assert_int_equal(rec.type, MIG_REC_RAM_PAGES);
		assert_int_equal(mig_ram_rx_pages_buf(&r, &rec, &err), 0);
	}
	assert_int_equal(r.pages, 601);
	assert_int_equal(mig_ram_in_check(&in, &err), 0);
	assert_memory_equal(src.mem.base, dst.mem.base, 64 << 20);
	mig_ram_rx_free(&r);
	mig_ram_in_free(&in);
	mig_ram_tx_free(&s);
	mig_writer_free(&w);
	seen_free(&sn);
	free(b.data);
	guest_memory_destroy(&src.mem);
	guest_memory_destroy(&dst.mem);
}

static int apply_batch(struct vm *dst, Vmm__Migration__RamBatch *batch, struct vmm_error *err)
{
	size_t len = vmm__migration__ram_batch__get_packed_size(batch);
	uint8_t *p = malloc(len);
	vmm__migration__ram_batch__pack(batch, p);
	struct mig_ram_in in;
	struct mig_ram_rx r;
	assert_int_equal(mig_ram_in_init(&in, dst, 1, err), 0);
	assert_int_equal(mig_ram_rx_init(&r, &in, 0, err), 0);
	struct mig_record rec = {.type = MIG_REC_RAM, .payload = p, .len = len};
	int rc = mig_ram_rx_batch(&r, &rec, err);
	mig_ram_rx_free(&r);
	mig_ram_in_free(&in);
	free(p);
	return rc;
}

static void test_ram_rejects_bad_batches(void **state)
{
	(void)state;
	static struct vm dst;
	make_vm(&dst, 32 << 20);
	struct vmm_error err = {0};
	uint8_t page[4096] = {1};
	uint64_t pfn;
	Vmm__Migration__RamBatch b = VMM__MIGRATION__RAM_BATCH__INIT;
	b.n_pages = 1, b.pages = &pfn, b.data.data = page, b.data.len = sizeof(page);

	pfn = (32 << 20) / 4096; /* one past the end of RAM */
	assert_int_equal(apply_batch(&dst, &b, &err), -EFAULT);
	pfn = UINT64_MAX; /* would overflow as an address */
	assert_int_equal(apply_batch(&dst, &b, &err), -EFAULT);
	pfn = 0xc0000; /* the 32-bit hole: not RAM in this machine type */
	assert_int_equal(apply_batch(&dst, &b, &err), -EFAULT);

	pfn = 10;
	b.data.len = 100; /* short data */
	assert_int_equal(apply_batch(&dst, &b, &err), -EBADMSG);
	b.data.len = sizeof(page);
	b.compression = VMM__MIGRATION__COMPRESSION__COMPRESSION_ZSTD; /* not a zstd frame */
	assert_int_equal(apply_batch(&dst, &b, &err), -EBADMSG);
	b.compression = 7;
	assert_int_equal(apply_batch(&dst, &b, &err), -EPROTONOSUPPORT);
	b.compression = 0;

	uint64_t *many = calloc(MIG_RAM_BATCH_MAX_PAGES + 1, sizeof(uint64_t));
	b.n_zero_pages = MIG_RAM_BATCH_MAX_PAGES + 1, b.zero_pages = many;
	assert_int_equal(apply_batch(&dst, &b, &err), -EMSGSIZE);
	free(many);
	b.n_zero_pages = 0;
	assert_int_equal(apply_batch(&dst, &b, &err), 0);
	assert_int_equal(dst.mem.base[10 * 4096], 1);
	guest_memory_destroy(&dst.mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ram_round_trip_skips_untouched),
		cmocka_unit_test(test_ram_rejects_bad_batches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

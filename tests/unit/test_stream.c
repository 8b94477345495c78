/*
 * Unit tests for the stream's framing (migration/stream.c): every record
 * type through the writer and the incremental reader, and refusal of
 * truncated, oversized, unknown and garbled input. No KVM.
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
#include "tests/unit/stream_helpers.h"

static void write_sample_stream(struct buf *b)
{
	struct mig_writer w;
	struct vmm_error err;
	assert_int_equal(mig_writer_init(&w, buf_sink, b, &err), 0);
	assert_int_equal(mig_write_preamble(&w, &err), 0);

	Vmm__Migration__Header h = VMM__MIGRATION__HEADER__INIT;
	h.format_major = MIG_FORMAT_MAJOR;
	h.machine_type = "microvm-1.0";
	h.cpu_model = "x86-64-v1-v1";
	h.cpu_model_spec = "x86-64-v1-v1";
	h.ram_size = 1 << 30;
	h.vcpu_count = 2;
	assert_int_equal(mig_write_record(&w, MIG_REC_HEADER, &h.base, &err), 0);

	Vmm__Migration__Regs regs = VMM__MIGRATION__REGS__INIT;
	regs.rip = 0xffffffff81000000ull;
	regs.rflags = 0x202;
	regs.r15 = 0x1234;
	Vmm__Migration__Msr m1 = VMM__MIGRATION__MSR__INIT, m2 = VMM__MIGRATION__MSR__INIT;
	m1.index = 0x10, m1.value = 123456789;
	m2.index = 0xc0000080, m2.value = 0xd01;
	Vmm__Migration__Msr *msrs[] = {&m1, &m2};
	uint8_t lapic[1024];
	memset(lapic, 0xab, sizeof(lapic));
	Vmm__Migration__VcpuState v = VMM__MIGRATION__VCPU_STATE__INIT;
	v.index = 1, v.apic_id = 1, v.mp_state = 3;
	v.regs = &regs;
	v.n_msrs = 2, v.msrs = msrs;
	v.lapic.data = lapic, v.lapic.len = sizeof(lapic);
	assert_int_equal(mig_write_record(&w, MIG_REC_VCPU, &v.base, &err), 0);

	Vmm__Migration__ClockState clk = VMM__MIGRATION__CLOCK_STATE__INIT;
	clk.clock_ns = 987654321;
	assert_int_equal(mig_write_record(&w, MIG_REC_CLOCK, &clk.base, &err), 0);

	Vmm__Migration__PitChannel ch = VMM__MIGRATION__PIT_CHANNEL__INIT;
	ch.count = 11932, ch.mode = 2, ch.count_load_age_ns = -5000;
	Vmm__Migration__PitChannel *chs[] = {&ch, &ch, &ch};
	Vmm__Migration__PitState pit = VMM__MIGRATION__PIT_STATE__INIT;
	pit.n_channels = 3, pit.channels = chs;
	assert_int_equal(mig_write_record(&w, MIG_REC_PIT, &pit.base, &err), 0);

	Vmm__Migration__PicState pic = VMM__MIGRATION__PIC_STATE__INIT;
	pic.imr = 0xfb;
	uint64_t redir[24] = {[2] = 0x30};
	Vmm__Migration__IoapicState io = VMM__MIGRATION__IOAPIC_STATE__INIT;
	io.n_redirtbl = 24, io.redirtbl = redir, io.base_address = 0xfec00000;
	Vmm__Migration__IrqchipState irq = VMM__MIGRATION__IRQCHIP_STATE__INIT;
	irq.pic_master = &pic, irq.pic_slave = &pic, irq.ioapic = &io;
	assert_int_equal(mig_write_record(&w, MIG_REC_IRQCHIP, &irq.base, &err), 0);

	Vmm__Migration__DeviceField f = VMM__MIGRATION__DEVICE_FIELD__INIT;
	f.name = "ier", f.value_case = VMM__MIGRATION__DEVICE_FIELD__VALUE_U, f.u = 3;
	Vmm__Migration__DeviceField *fs[] = {&f};
	Vmm__Migration__DeviceState dev = VMM__MIGRATION__DEVICE_STATE__INIT;
	dev.name = "serial0", dev.type = "uart-16550a", dev.version = 1;
	dev.n_fields = 1, dev.fields = fs;
	assert_int_equal(mig_write_record(&w, MIG_REC_DEVICE, &dev.base, &err), 0);

	uint64_t pages[] = {5, 6};
	uint8_t data[8192];
	memset(data, 0x5a, sizeof(data));
	Vmm__Migration__RamBatch ram = VMM__MIGRATION__RAM_BATCH__INIT;
	ram.n_pages = 2, ram.pages = pages;
	ram.data.data = data, ram.data.len = sizeof(data);
	assert_int_equal(mig_write_record(&w, MIG_REC_RAM, &ram.base, &err), 0);
	assert_int_equal(mig_write_end(&w, 2, &err), 0);
	mig_writer_free(&w);
}

static void test_every_record_round_trips(void **state)
{
	(void)state;
	struct buf b = {0};
	write_sample_stream(&b);
	static const size_t chunks[] = {1, 3, 7, 8, 16, 4096, 1 << 20};
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct seen s = {0};
		struct vmm_error err = {0};
		assert_int_equal(read_all(&b, chunks[c], &s, &err), 0);
		assert_int_equal(s.n, 8);
		unsigned expect[] = {MIG_REC_HEADER, MIG_REC_VCPU,   MIG_REC_CLOCK, MIG_REC_PIT,
				     MIG_REC_IRQCHIP, MIG_REC_DEVICE, MIG_REC_RAM,   MIG_REC_END};
		for (unsigned i = 0; i < 8; i++)
			assert_int_equal(s.types[i], expect[i]);

		Vmm__Migration__Header *h = vmm__migration__header__unpack(NULL, s.lens[0], s.payloads[0]);
		assert_non_null(h);
		assert_string_equal(h->machine_type, "microvm-1.0");
		assert_int_equal(h->vcpu_count, 2);
		vmm__migration__header__free_unpacked(h, NULL);

		Vmm__Migration__VcpuState *v =
			vmm__migration__vcpu_state__unpack(NULL, s.lens[1], s.payloads[1]);
		assert_non_null(v);
		assert_int_equal(v->regs->rip, 0xffffffff81000000ull);
		assert_int_equal(v->regs->r15, 0x1234);
		assert_int_equal(v->n_msrs, 2);
		assert_int_equal(v->msrs[1]->index, 0xc0000080);
		assert_int_equal(v->lapic.len, 1024);
		assert_int_equal(v->lapic.data[1023], 0xab);
		vmm__migration__vcpu_state__free_unpacked(v, NULL);

		Vmm__Migration__PitState *p = vmm__migration__pit_state__unpack(NULL, s.lens[3], s.payloads[3]);
		assert_non_null(p);
		assert_int_equal(p->n_channels, 3);
		assert_int_equal(p->channels[2]->count_load_age_ns, -5000);
		vmm__migration__pit_state__free_unpacked(p, NULL);

		Vmm__Migration__IrqchipState *ir =
			vmm__migration__irqchip_state__unpack(NULL, s.lens[4], s.payloads[4]);
		assert_non_null(ir);
		assert_int_equal(ir->ioapic->redirtbl[2], 0x30);
		assert_int_equal(ir->pic_slave->imr, 0xfb);
		vmm__migration__irqchip_state__free_unpacked(ir, NULL);

		/* End carries the hash of everything before its own header. */
		Vmm__Migration__End *e = vmm__migration__end__unpack(NULL, s.lens[7], s.payloads[7]);
		assert_non_null(e);
		assert_true(e->checksum == s.hash_before[7]);
		assert_int_equal(e->records, 7);
		assert_int_equal(s.index[7], 7);
		vmm__migration__end__free_unpacked(e, NULL);
		seen_free(&s);
	}
	free(b.data);
}

static void test_truncated_stream_never_reaches_end(void **state)
{
	(void)state;
	struct buf b = {0};
	write_sample_stream(&b);
	/* Every prefix: the reader must not fail wrongly, and must not deliver End. */
	for (size_t cut = 0; cut < b.len; cut += 97) {
		struct buf t = {b.data, cut, cut};
		struct seen s = {0};
		struct vmm_error err = {0};
		assert_int_equal(read_all(&t, 4096, &s, &err), 0);
		for (unsigned i = 0; i < s.n; i++)
			assert_int_not_equal(s.types[i], MIG_REC_END);
		seen_free(&s);
	}
	free(b.data);
}

static void test_bad_magic_and_versions(void **state)
{
	(void)state;
	struct buf b = {0};
	write_sample_stream(&b);
	struct seen s = {0};
	struct vmm_error err = {0};

	b.data[0] ^= 0xff; /* magic */
	assert_int_equal(read_all(&b, 64, &s, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "not a vmm migration stream"));
	b.data[0] ^= 0xff;
	seen_free(&s);

	b.data[8] = MIG_FORMAT_MAJOR + 1; /* newer major */
	assert_int_equal(read_all(&b, 64, &s, &err), -EPROTONOSUPPORT);
	assert_non_null(strstr(err.msg, "newer than this vmm reads"));
	b.data[8] = MIG_FORMAT_MAJOR;
	seen_free(&s);

	/* First record (header): version byte newer than we know. */
	uint8_t *rec = b.data + MIG_PREAMBLE_SIZE;
	rec[6] = 9;
	assert_int_equal(read_all(&b, 64, &s, &err), -EPROTONOSUPPORT);
	assert_non_null(strstr(err.msg, "record header version 9 is newer"));
	rec[6] = 1;
	seen_free(&s);
	free(b.data);
}

static void test_oversized_record_refused_before_allocating(void **state)
{
	(void)state;
	struct buf b = {0};
	write_sample_stream(&b);
	uint8_t *rec = b.data + MIG_PREAMBLE_SIZE;
	uint32_t huge = MIG_MAX_PAYLOAD + 1;
	memcpy(rec, &huge, 4);
	struct seen s = {0};
	struct vmm_error err = {0};
	assert_int_equal(read_all(&b, 64, &s, &err), -EMSGSIZE);
	assert_non_null(strstr(err.msg, "exceed"));
	huge = 0xffffffffu;
	memcpy(rec, &huge, 4);
	assert_int_equal(read_all(&b, 64, &s, &err), -EMSGSIZE);
	seen_free(&s);
	free(b.data);
}

static void test_unknown_types(void **state)
{
	(void)state;
	struct buf b = {0};
	write_sample_stream(&b);
	uint8_t *rec = b.data + MIG_PREAMBLE_SIZE;
	struct seen s = {0};
	struct vmm_error err = {0};
	/* An unknown type marked required is refused... */
	rec[4] = 200, rec[5] = 0, rec[7] = MIG_FLAG_REQUIRED;
	assert_int_equal(read_all(&b, 64, &s, &err), -EPROTONOSUPPORT);
	assert_non_null(strstr(err.msg, "unknown required section type 200"));
	seen_free(&s);
	/* ...an optional one is skipped, and the rest still reads. */
	rec[7] = 0;
	assert_int_equal(read_all(&b, 64, &s, &err), 0);
	assert_int_equal(s.n, 7);
	assert_int_equal(s.types[0], MIG_REC_VCPU);
	seen_free(&s);
	free(b.data);
}

static void test_garbled_payloads_fail_cleanly(void **state)
{
	(void)state;
	struct buf b = {0};
	write_sample_stream(&b);
	/* Flip bytes all over the payloads: unpack may fail or succeed with
	 * other values, but never crash, and End's checksum always catches it. */
	srand(42);
	for (int round = 0; round < 300; round++) {
		struct buf g = {malloc(b.len), b.len, b.len};
		memcpy(g.data, b.data, b.len);
		size_t pos = MIG_PREAMBLE_SIZE + 8 + (size_t)rand() % (b.len - MIG_PREAMBLE_SIZE - 8);
		g.data[pos] ^= (uint8_t)(1 + rand() % 255);
		struct seen s = {0};
		struct vmm_error err = {0};
		if (read_all(&g, 61, &s, &err) == 0) {
			static const ProtobufCMessageDescriptor *descs[] = {
				[MIG_REC_HEADER] = &vmm__migration__header__descriptor,
				[MIG_REC_RAM] = &vmm__migration__ram_batch__descriptor,
				[MIG_REC_VCPU] = &vmm__migration__vcpu_state__descriptor,
				[MIG_REC_IRQCHIP] = &vmm__migration__irqchip_state__descriptor,
				[MIG_REC_PIT] = &vmm__migration__pit_state__descriptor,
				[MIG_REC_CLOCK] = &vmm__migration__clock_state__descriptor,
				[MIG_REC_DEVICE] = &vmm__migration__device_state__descriptor,
				[MIG_REC_END] = &vmm__migration__end__descriptor,
			};
			bool end_ok = false;
			for (unsigned i = 0; i < s.n; i++) {
				struct mig_record rec = {.type = s.types[i], .payload = s.payloads[i],
							 .len = s.lens[i], .index = s.index[i]};
				ProtobufCMessage *m = NULL;
				if (s.types[i] < sizeof(descs) / sizeof(descs[0]) && descs[s.types[i]] &&
				    mig_unpack(&rec, descs[s.types[i]], &m, &err) == 0) {
					if (s.types[i] == MIG_REC_END) {
						Vmm__Migration__End *e = (Vmm__Migration__End *)m;
						end_ok = e->checksum == s.hash_before[i] &&
							 e->records == s.index[i];
					}
					protobuf_c_message_free_unpacked(m, NULL);
				}
			}
			assert_false(end_ok);
		}
		seen_free(&s);
		free(g.data);
	}
	free(b.data);
}

static void test_unpack_rejects_truncated_payload(void **state)
{
	(void)state;
	uint8_t lapic[1024] = {0};
	Vmm__Migration__VcpuState v = VMM__MIGRATION__VCPU_STATE__INIT;
	v.lapic.data = lapic, v.lapic.len = sizeof(lapic);
	size_t len = vmm__migration__vcpu_state__get_packed_size(&v);
	uint8_t *p = malloc(len);
	vmm__migration__vcpu_state__pack(&v, p);
	struct mig_record rec = {.type = MIG_REC_VCPU, .payload = p, .len = len - 10};
	ProtobufCMessage *m = NULL;
	struct vmm_error err = {0};
	assert_int_equal(mig_unpack(&rec, &vmm__migration__vcpu_state__descriptor, &m, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "malformed payload"));
	free(p);
}

/* Records built to make protobuf-c allocate far more than they weigh
 * (issue 11: a 32 MiB header of empty cpuid tables once cost 1.4 GB) stop
 * at their budget; a real record of the same type costs well under it. */
static void test_unpack_budget_stops_amplification(void **state)
{
	(void)state;
	size_t len = 4u << 20;
	uint8_t *p = malloc(len + 16);
	assert_non_null(p);
	struct vmm_error err = {0};
	ProtobufCMessage *m = NULL;
	size_t cost = 0;

	/* Header.cpuid (field 7): empty sub-messages, 2 bytes each. */
	for (size_t i = 0; i < len; i += 2)
		p[i] = 0x3a, p[i + 1] = 0x00;
	assert_int_equal(mig_unpack_bytes(MIG_REC_HEADER, &vmm__migration__header__descriptor, p,
					  len, &m, &cost, &err),
			 -EMSGSIZE);
	assert_null(m);
	assert_true(cost <= mig_unpack_budget(MIG_REC_HEADER, len));
	assert_non_null(strstr(err.msg, "header record: unpacking it would take more than"));

	/* RamBatch.pages (field 1, packed): one-byte varints, 8 bytes each unpacked. */
	size_t body = len - 5;
	p[0] = 0x0a;
	p[1] = (uint8_t)(body | 0x80), p[2] = (uint8_t)((body >> 7) | 0x80);
	p[3] = (uint8_t)((body >> 14) | 0x80), p[4] = (uint8_t)(body >> 21);
	memset(p + 5, 0x01, body);
	assert_int_equal(mig_unpack_bytes(MIG_REC_RAM, &vmm__migration__ram_batch__descriptor, p,
					  len, &m, &cost, &err),
			 -EMSGSIZE);
	assert_true(cost <= mig_unpack_budget(MIG_REC_RAM, len));

	/* A real RAM batch (256 pages of data) unpacks, at about its size. */
	Vmm__Migration__RamBatch b = VMM__MIGRATION__RAM_BATCH__INIT;
	uint64_t pages[256];
	for (unsigned i = 0; i < 256; i++)
		pages[i] = 0x100000 + i;
	b.pages = pages, b.n_pages = 256;
	b.data.data = p, b.data.len = 256 * 4096;
	size_t plen = vmm__migration__ram_batch__get_packed_size(&b);
	uint8_t *packed = malloc(plen);
	vmm__migration__ram_batch__pack(&b, packed);
	assert_int_equal(mig_unpack_bytes(MIG_REC_RAM, &vmm__migration__ram_batch__descriptor,
					  packed, plen, &m, &cost, &err),
			 0);
	assert_true(cost < plen + plen / 4);
	protobuf_c_message_free_unpacked(m, NULL);
	free(packed);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_record_round_trips),
		cmocka_unit_test(test_truncated_stream_never_reaches_end),
		cmocka_unit_test(test_bad_magic_and_versions),
		cmocka_unit_test(test_oversized_record_refused_before_allocating),
		cmocka_unit_test(test_unknown_types),
		cmocka_unit_test(test_garbled_payloads_fail_cleanly),
		cmocka_unit_test(test_unpack_rejects_truncated_payload),
		cmocka_unit_test(test_unpack_budget_stops_amplification),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

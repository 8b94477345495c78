/*
 * Unit tests for the migration stream: framing, every record type's
 * encode/decode, RAM batches between two memories, device state, header
 * checks, and refusal of truncated, oversized and garbled input. No KVM.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "migration/channel.h"
#include "migration/migration.h"
#include "vmm/devices/devices.h"

/* ---- a growable byte buffer as the writer's sink ---- */

struct buf {
	uint8_t *data;
	size_t len, cap;
};

static int buf_sink(void *ctx, const void *data, size_t len, struct vmm_error *err)
{
	(void)err;
	struct buf *b = ctx;
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2;
		b->data = realloc(b->data, b->cap);
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

/* ---- a reader that collects records ---- */

#define MAX_SEEN 64
struct seen {
	unsigned n;
	unsigned types[MAX_SEEN];
	uint8_t *payloads[MAX_SEEN];
	size_t lens[MAX_SEEN];
	uint64_t hash_before[MAX_SEEN];
	uint64_t index[MAX_SEEN];
};

static int collect(void *ctx, const struct mig_record *rec, struct vmm_error *err)
{
	(void)err;
	struct seen *s = ctx;
	assert_true(s->n < MAX_SEEN);
	s->types[s->n] = rec->type;
	s->payloads[s->n] = malloc(rec->len + 1);
	memcpy(s->payloads[s->n], rec->payload, rec->len);
	s->lens[s->n] = rec->len;
	s->hash_before[s->n] = rec->hash_before;
	s->index[s->n] = rec->index;
	s->n++;
	return 0;
}

static void seen_free(struct seen *s)
{
	for (unsigned i = 0; i < s->n; i++)
		free(s->payloads[i]);
	memset(s, 0, sizeof(*s));
}

/* Feeds `b` to a fresh reader in chunks of `chunk` bytes. */
static int read_all(const struct buf *b, size_t chunk, struct seen *s, struct vmm_error *err)
{
	struct mig_reader r;
	assert_int_equal(mig_reader_init(&r, true, collect, s, err), 0);
	int rc = 0;
	for (size_t off = 0; off < b->len && rc == 0; off += chunk) {
		size_t n = b->len - off < chunk ? b->len - off : chunk;
		rc = mig_reader_feed(&r, b->data + off, n, err);
	}
	mig_reader_free(&r);
	return rc;
}

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

/* ---- RAM between two memories (no KVM: memfd + mapping only) ---- */

static void make_vm(struct vm *vm, uint64_t size)
{
	struct vmm_error err = {0};
	vm_init(vm);
	assert_int_equal(machine_resolve("microvm", &vm->machine, &err), 0);
	assert_int_equal(guest_memory_create(&vm->mem, size, &vm->machine, &err), 0);
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
	struct mig_ram_sender s;
	assert_int_equal(mig_writer_init(&w, buf_sink, &b, &err), 0);
	assert_int_equal(mig_write_preamble(&w, &err), 0);
	assert_int_equal(mig_ram_sender_init(&s, &src, &w, 1, &err), 0);
	volatile bool cancel = false;
	assert_int_equal(mig_ram_send_populated(&s, &cancel, &err), 0);
	assert_int_equal(s.stats.normal_pages, 600);
	assert_int_equal(s.stats.zero_pages, 1);
	assert_int_equal(s.stats.untouched_pages, (64 << 20) / 4096 - 601);
	assert_true(s.stats.wire_bytes < s.stats.data_bytes / 10); /* the patterns compress */

	struct seen sn = {0};
	assert_int_equal(read_all(&b, 100000, &sn, &err), 0);
	struct mig_ram_receiver r;
	assert_int_equal(mig_ram_receiver_init(&r, &dst, &err), 0);
	for (unsigned i = 0; i < sn.n; i++) {
		struct mig_record rec = {.type = sn.types[i], .payload = sn.payloads[i], .len = sn.lens[i]};
		assert_int_equal(mig_ram_apply(&r, &rec, &err), 0);
	}
	assert_int_equal(r.pages, 601);
	assert_memory_equal(src.mem.base, dst.mem.base, 64 << 20);
	mig_ram_receiver_free(&r);
	mig_ram_sender_free(&s);
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
	struct mig_ram_receiver r;
	assert_int_equal(mig_ram_receiver_init(&r, dst, err), 0);
	struct mig_record rec = {.type = MIG_REC_RAM, .payload = p, .len = len};
	int rc = mig_ram_apply(&r, &rec, err);
	mig_ram_receiver_free(&r);
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

/* ---- device state ---- */

static void make_uart(struct vm *vm, struct device *dev, struct vmm_config *cfg)
{
	struct vmm_error err = {0};
	vm_init(vm);
	memset(cfg, 0, sizeof(*cfg));
	cfg->serial = SERIAL_NONE;
	vm->cfg = cfg;
	assert_int_equal(machine_resolve("microvm", &vm->machine, &err), 0);
	memset(dev, 0, sizeof(*dev));
	dev->type = device_type_find("uart-16550a");
	dev->name = "serial0";
	dev->vm = vm;
	pthread_mutex_init(&dev->lock, NULL);
	assert_int_equal(dev->type->create(vm, dev, &err), 0);
}

static Vmm__Migration__DeviceState *pack_unpack(struct device *dev, uint8_t **bufp)
{
	struct vmm_error err = {0};
	Vmm__Migration__DeviceState *st;
	assert_int_equal(device_state_save(dev, &st, &err), 0);
	size_t len = vmm__migration__device_state__get_packed_size(st);
	*bufp = malloc(len);
	vmm__migration__device_state__pack(st, *bufp);
	device_state_free(st);
	return vmm__migration__device_state__unpack(NULL, len, *bufp);
}

static void test_device_state_round_trip_and_refusals(void **state)
{
	(void)state;
	static struct vm vm1, vm2;
	static struct device a, b;
	struct vmm_config c1, c2;
	make_uart(&vm1, &a, &c1);
	make_uart(&vm2, &b, &c2);
	/* Program the source UART through its ports: LCR, scratch, IER. */
	uint8_t v;
	v = 0x03, io_bus_access(&vm1.pio, 0x3fb, &v, 1, true);
	v = 0x5a, io_bus_access(&vm1.pio, 0x3ff, &v, 1, true);
	v = 0x01, io_bus_access(&vm1.pio, 0x3f9, &v, 1, true);

	struct vmm_error err = {0};
	uint8_t *raw;
	Vmm__Migration__DeviceState *st = pack_unpack(&a, &raw);
	assert_non_null(st);
	assert_int_equal(device_state_load(&b, st, &err), 0);
	io_bus_access(&vm2.pio, 0x3ff, &v, 1, false);
	assert_int_equal(v, 0x5a);
	io_bus_access(&vm2.pio, 0x3fb, &v, 1, false);
	assert_int_equal(v, 0x03);

	/* Newer state version: refused. */
	st->version = 2;
	assert_int_equal(device_state_load(&b, st, &err), -EPROTONOSUPPORT);
	st->version = 1;
	/* Out-of-range value for a byte field. */
	for (size_t i = 0; i < st->n_fields; i++)
		if (strcmp(st->fields[i]->name, "lcr") == 0)
			st->fields[i]->u = 0x1ff;
	assert_int_equal(device_state_load(&b, st, &err), -ERANGE);
	for (size_t i = 0; i < st->n_fields; i++)
		if (strcmp(st->fields[i]->name, "lcr") == 0)
			st->fields[i]->u = 3;
	/* post_load validates: a FIFO head beyond the buffer. */
	for (size_t i = 0; i < st->n_fields; i++)
		if (strcmp(st->fields[i]->name, "rx_head") == 0)
			st->fields[i]->u = 1000;
	assert_int_equal(device_state_load(&b, st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "receive FIFO"));
	for (size_t i = 0; i < st->n_fields; i++)
		if (strcmp(st->fields[i]->name, "rx_head") == 0)
			st->fields[i]->u = 0;
	/* Unknown field name and a missing field are both refused. */
	char *saved = st->fields[0]->name;
	st->fields[0]->name = "no-such-field";
	assert_int_equal(device_state_load(&b, st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown state field no-such-field"));
	st->fields[0]->name = saved;
	st->n_fields--;
	assert_int_equal(device_state_load(&b, st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "missing"));
	st->n_fields++;
	/* The wrong device type. */
	char *type = st->type;
	st->type = "cmos-rtc";
	assert_int_equal(device_state_load(&b, st, &err), -EINVAL);
	st->type = type;

	vmm__migration__device_state__free_unpacked(st, NULL);
	free(raw);
	a.type->destroy(&a);
	b.type->destroy(&b);
}

/* Every device type's declaration matches its struct. */
static void test_state_declarations_are_consistent(void **state)
{
	(void)state;
	const char *types[] = {"uart-16550a", "cmos-rtc", "i8042", "reset-cf9"};
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		const struct device_type *dt = device_type_find(types[t]);
		assert_non_null(dt);
		assert_non_null(dt->state);
		assert_non_null(dt->state_ptr);
		assert_true(dt->state->min_version <= dt->state->version);
		for (unsigned i = 0; i < dt->state->nfields; i++) {
			const struct state_field *f = &dt->state->fields[i];
			size_t want = f->kind == STATE_U8 || f->kind == STATE_BOOL ? 1
				      : f->kind == STATE_U16			    ? 2
				      : f->kind == STATE_U32			    ? 4
				      : f->kind == STATE_BYTES			    ? f->size
										    : 8;
			assert_int_equal(f->size, want);
			assert_true(f->since >= 1 && f->since <= dt->state->version);
		}
	}
}

/* ---- header: what a destination builds for a stream ---- */

static void test_header_adapt_config(void **state)
{
	(void)state;
	Vmm__Migration__Header h = VMM__MIGRATION__HEADER__INIT;
	h.format_major = MIG_FORMAT_MAJOR;
	h.machine_type = "microvm-1.0";
	h.cpu_model = "Skylake-Server-v4";
	h.cpu_model_spec = "Skylake-Server-v4,-hle";
	h.ram_size = 512 << 20;
	h.vcpu_count = 2;
	struct vmm_config cmd = {.ncpus = 2, .mem_size = 512 << 20, .cpu_model = "Skylake-Server,-hle"};
	struct vmm_config out;
	char spec[256];
	struct vmm_error err = {0};

	/* Aliases on the command line take the stream's versions. */
	assert_int_equal(mig_header_adapt_config(&h, &cmd, &out, spec, sizeof(spec), &err), 0);
	assert_string_equal(out.cpu_model, "Skylake-Server-v4,-hle");
	assert_string_equal(out.machine, "microvm-1.0");
	cmd.machine = "microvm";
	assert_int_equal(mig_header_adapt_config(&h, &cmd, &out, spec, sizeof(spec), &err), 0);
	assert_string_equal(out.machine, "microvm-1.0");

	/* An explicit, different version is refused. */
	cmd.cpu_model = "Skylake-Server-v5";
	assert_int_equal(mig_header_adapt_config(&h, &cmd, &out, spec, sizeof(spec), &err), -EINVAL);
	assert_non_null(strstr(err.msg, "cpu model mismatch"));
	cmd.cpu_model = "Cascadelake-Server";
	assert_int_equal(mig_header_adapt_config(&h, &cmd, &out, spec, sizeof(spec), &err), -EINVAL);
	cmd.cpu_model = "Skylake-Server-v4";
	assert_int_equal(mig_header_adapt_config(&h, &cmd, &out, spec, sizeof(spec), &err), 0);
	cmd.cpu_model = "Skylake";
	assert_int_equal(mig_header_adapt_config(&h, &cmd, &out, spec, sizeof(spec), &err), -EINVAL);

	/* A model whose name ends in -vN is still an alias of its versions. */
	h.cpu_model = "x86-64-v2-v1";
	cmd.cpu_model = "x86-64-v2,+pdpe1gb";
	assert_int_equal(mig_header_adapt_config(&h, &cmd, &out, spec, sizeof(spec), &err), 0);
	assert_string_equal(out.cpu_model, "x86-64-v2-v1,+pdpe1gb");
	cmd.cpu_model = "x86-64-v3";
	assert_int_equal(mig_header_adapt_config(&h, &cmd, &out, spec, sizeof(spec), &err), -EINVAL);
	h.cpu_model = "Skylake-Server-v4";
	cmd.cpu_model = "Skylake-Server-v4";

	/* RAM size and vCPU count must match. */
	cmd.mem_size = 1 << 30;
	assert_int_equal(mig_header_adapt_config(&h, &cmd, &out, spec, sizeof(spec), &err), -EINVAL);
	assert_non_null(strstr(err.msg, "RAM size mismatch: stream 512 MiB, this side 1024 MiB"));
	cmd.mem_size = 512 << 20;
	cmd.ncpus = 1;
	assert_int_equal(mig_header_adapt_config(&h, &cmd, &out, spec, sizeof(spec), &err), -EINVAL);
	assert_non_null(strstr(err.msg, "vCPU count mismatch"));
	cmd.ncpus = 2;

	/* A machine type this build does not know. */
	h.machine_type = "microvm-9.9";
	assert_int_equal(mig_header_adapt_config(&h, &cmd, &out, spec, sizeof(spec), &err), -ENOENT);
	assert_non_null(strstr(err.msg, "microvm-9.9 is unknown to this vmm"));
}

static void test_header_basic_checks(void **state)
{
	(void)state;
	Vmm__Migration__Header h = VMM__MIGRATION__HEADER__INIT;
	struct vmm_error err = {0};
	Vmm__Migration__CpuidTable t = VMM__MIGRATION__CPUID_TABLE__INIT;
	Vmm__Migration__CpuidTable *tabs[] = {&t};
	Vmm__Migration__RamRegion rg = VMM__MIGRATION__RAM_REGION__INIT;
	Vmm__Migration__RamRegion *rgs[] = {&rg};
	h.format_major = MIG_FORMAT_MAJOR;
	h.machine_type = "microvm-1.0", h.cpu_model = "x-v1", h.cpu_model_spec = "x-v1";
	h.vcpu_count = 1, h.n_cpuid = 1, h.cpuid = tabs, h.page_size = 4096;
	h.n_ram = 1, h.ram = rgs, h.ram_size = 1 << 20;
	assert_int_equal(mig_header_check_basic(&h, &err), 0);
	h.vcpu_count = 2; /* tables for 1 */
	assert_int_equal(mig_header_check_basic(&h, &err), -EBADMSG);
	h.vcpu_count = 1;
	t.n_entries = CPUID_TABLE_MAX + 1;
	assert_int_equal(mig_header_check_basic(&h, &err), -EBADMSG);
	t.n_entries = 0;
	h.page_size = 65536;
	assert_int_equal(mig_header_check_basic(&h, &err), -EBADMSG);
	h.page_size = 4096;
	h.machine_type = "";
	assert_int_equal(mig_header_check_basic(&h, &err), -EBADMSG);
	h.machine_type = "microvm-1.0";
	h.format_major = 2;
	assert_int_equal(mig_header_check_basic(&h, &err), -EPROTONOSUPPORT);
}

static void test_uri_parse(void **state)
{
	(void)state;
	struct mig_uri u;
	struct vmm_error err = {0};
	assert_int_equal(mig_uri_parse("tcp:127.0.0.1:4444", &u, &err), 0);
	assert_int_equal(u.kind, MIG_TCP);
	assert_string_equal(u.host, "127.0.0.1");
	assert_string_equal(u.port, "4444");
	assert_int_equal(mig_uri_parse("tcp:[::]:4444", &u, &err), 0);
	assert_string_equal(u.host, "::");
	assert_int_equal(mig_uri_parse("tcp:0:4444", &u, &err), 0);
	assert_string_equal(u.host, "0");
	assert_int_equal(mig_uri_parse("unix:/tmp/x.sock", &u, &err), 0);
	assert_int_equal(u.kind, MIG_UNIX);
	assert_int_equal(mig_uri_parse("file:/tmp/snap", &u, &err), 0);
	assert_int_equal(u.kind, MIG_FILE);
	assert_int_equal(mig_uri_parse("tcp:host:99999", &u, &err), -EINVAL);
	assert_int_equal(mig_uri_parse("tcp:host", &u, &err), -EINVAL);
	assert_int_equal(mig_uri_parse("tcp:[::1:4444", &u, &err), -EINVAL);
	assert_int_equal(mig_uri_parse("http://x", &u, &err), -EINVAL);
	assert_int_equal(mig_uri_parse("file:", &u, &err), -EINVAL);
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
		cmocka_unit_test(test_ram_round_trip_skips_untouched),
		cmocka_unit_test(test_ram_rejects_bad_batches),
		cmocka_unit_test(test_device_state_round_trip_and_refusals),
		cmocka_unit_test(test_state_declarations_are_consistent),
		cmocka_unit_test(test_header_adapt_config),
		cmocka_unit_test(test_header_basic_checks),
		cmocka_unit_test(test_uri_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

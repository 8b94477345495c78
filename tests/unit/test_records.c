/*
 * Unit tests for the state records (migration/vcpu_record.c, vm_records.c,
 * device_record.c, pbmap.c): every KVM state struct of the core through its
 * record and back unchanged,
 * values that do not fit their field refused with the field's name, counts
 * bounded; devices' declared state by field name with its refusals. No KVM.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/devices/devices.h"
#include "migration/records.h"

/* Fills n bytes with a pattern that differs per byte and per call. */
static void fill(void *p, size_t n, unsigned seed)
{
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed * 131 + i * 7 + 1);
}

/* Packs and unpacks a message, as the wire would. */
static ProtobufCMessage *through_wire(const ProtobufCMessage *m, uint8_t **bufp)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	*bufp = malloc(len ? len : 1);
	protobuf_c_message_pack(m, *bufp);
	return protobuf_c_message_unpack(m->descriptor, NULL, len, *bufp);
}

/* A vCPU state with every field set to something distinctive (values that
 * fit their KVM widths). */
static void sample_vcpu(struct vcpu_state *s, bool with_xsave)
{
	memset(s, 0, sizeof(*s));
	s->index = 1, s->apic_id = 1, s->mp_state = 3;
	fill(&s->regs, sizeof(s->regs), 1);
	struct vcpu_segment *segs[] = {&s->sregs.cs, &s->sregs.ds, &s->sregs.es, &s->sregs.fs,
				       &s->sregs.gs, &s->sregs.ss, &s->sregs.tr, &s->sregs.ldt};
	for (unsigned i = 0; i < 8; i++)
		*segs[i] = (struct vcpu_segment){0x1000u * i, 0xfffff, (uint16_t)(8 * i), 0xb, 1, 3,
						 1, 1, 1, 1, 0, (uint8_t)(i & 1)};
	s->sregs.gdt = (struct vcpu_dtable){0x5000, 39};
	s->sregs.idt = (struct vcpu_dtable){0x6000, 4095};
	s->sregs.cr0 = 0x80050033, s->sregs.cr3 = 0x1000, s->sregs.cr4 = 0x6f0;
	s->sregs.efer = 0xd01, s->sregs.apic_base = 0xfee00900;
	s->sregs.interrupt_bitmap[2] = 1ull << 40;
	if (with_xsave) {
		s->xsave_len = 4096;
		s->xsave = malloc(s->xsave_len);
		fill(s->xsave, s->xsave_len, 3);
		s->nxcrs = 1;
		s->xcrs[0] = (struct vcpu_xcr){0, 7};
	} else {
		fill(s->fpu.fpr, sizeof(s->fpu.fpr), 4);
		fill(s->fpu.xmm, sizeof(s->fpu.xmm), 5);
		s->fpu.fcw = 0x37f, s->fpu.ftwx = 0xff, s->fpu.mxcsr = 0x1f80, s->fpu.last_ip = 77;
	}
	s->debugregs = (struct vcpu_debugregs){{1, 2, 3, 4}, 0xffff0ff0, 0x400, 0};
	fill(s->lapic, sizeof(s->lapic), 6);
	s->nmsrs = 3;
	s->msrs[0] = (struct vcpu_msr){0x10, 123456789};
	s->msrs[1] = (struct vcpu_msr){0xc0000080, 0xd01};
	s->msrs[2] = (struct vcpu_msr){0x4b564d01, 0x1234501};
	s->events.exception_nr = 14, s->events.exception_error_code = 0xdead;
	s->events.nmi_pending = 1, s->events.sipi_vector = 0x9a, s->events.flags = 0x1f;
	s->events.exception_payload = 0xffffffffdeadbeefull, s->events.triple_fault_pending = 1;
}

static void assert_vcpu_equal(const struct vcpu_state *a, const struct vcpu_state *b)
{
	assert_int_equal(a->index, b->index);
	assert_int_equal(a->apic_id, b->apic_id);
	assert_int_equal(a->mp_state, b->mp_state);
	assert_memory_equal(&a->regs, &b->regs, sizeof(a->regs));
	assert_memory_equal(&a->sregs.cs, &b->sregs.cs, sizeof(a->sregs.cs));
	assert_memory_equal(&a->sregs.ldt, &b->sregs.ldt, sizeof(a->sregs.ldt));
	assert_int_equal(a->sregs.gdt.base, b->sregs.gdt.base);
	assert_int_equal(a->sregs.idt.limit, b->sregs.idt.limit);
	assert_int_equal(a->sregs.cr0, b->sregs.cr0);
	assert_int_equal(a->sregs.efer, b->sregs.efer);
	assert_int_equal(a->sregs.apic_base, b->sregs.apic_base);
	assert_memory_equal(a->sregs.interrupt_bitmap, b->sregs.interrupt_bitmap,
			    sizeof(a->sregs.interrupt_bitmap));
	assert_int_equal(a->xsave_len, b->xsave_len);
	if (a->xsave)
		assert_memory_equal(a->xsave, b->xsave, a->xsave_len);
	else
		assert_memory_equal(&a->fpu, &b->fpu, sizeof(a->fpu));
	assert_int_equal(a->nxcrs, b->nxcrs);
	assert_memory_equal(&a->debugregs, &b->debugregs, sizeof(a->debugregs));
	assert_memory_equal(a->lapic, b->lapic, sizeof(a->lapic));
	assert_int_equal(a->nmsrs, b->nmsrs);
	assert_memory_equal(a->msrs, b->msrs, a->nmsrs * sizeof(a->msrs[0]));
	assert_memory_equal(&a->events, &b->events, sizeof(a->events));
}

static void test_vcpu_record_round_trip(void **state)
{
	(void)state;
	for (int with_xsave = 0; with_xsave < 2; with_xsave++) {
		struct vcpu_state *in = calloc(1, sizeof(*in)), *out = calloc(1, sizeof(*out));
		sample_vcpu(in, with_xsave);
		struct vmm_error err = {0};
		Vmm__Migration__VcpuState *m;
		assert_int_equal(vcpu_record_save(in, &m, &err), 0);
		uint8_t *raw;
		Vmm__Migration__VcpuState *back =
			(Vmm__Migration__VcpuState *)through_wire(&m->base, &raw);
		assert_non_null(back);
		assert_int_equal(vcpu_record_load(back, out, &err), 0);
		assert_vcpu_equal(in, out);
		vcpu_record_free(m);
		protobuf_c_message_free_unpacked(&back->base, NULL);
		free(raw);
		vcpu_state_release(in);
		vcpu_state_release(out);
		free(in);
		free(out);
	}
}

static void test_vcpu_record_refusals(void **state)
{
	(void)state;
	struct vcpu_state *in = calloc(1, sizeof(*in)), *out = calloc(1, sizeof(*out));
	sample_vcpu(in, true);
	struct vmm_error err = {0};
	Vmm__Migration__VcpuState *m;
	assert_int_equal(vcpu_record_save(in, &m, &err), 0);

	m->events->exception_nr = 256; /* a u8 in KVM */
	assert_int_equal(vcpu_record_load(m, out, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "exception_nr"));
	vcpu_state_release(out);
	m->events->exception_nr = 14;
	m->sregs->cs->selector = 0x10000; /* a u16 */
	assert_int_equal(vcpu_record_load(m, out, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "selector"));
	vcpu_state_release(out);
	m->sregs->cs->selector = 8;
	Vmm__Migration__Segment *tr = m->sregs->tr;
	m->sregs->tr = NULL;
	assert_int_equal(vcpu_record_load(m, out, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "segment tr missing"));
	m->sregs->tr = tr;
	size_t nmsrs = m->n_msrs;
	m->n_msrs = VCPU_STATE_MAX_MSRS + 1;
	assert_int_equal(vcpu_record_load(m, out, &err), -EBADMSG);
	m->n_msrs = nmsrs;
	m->lapic.len = 100;
	assert_int_equal(vcpu_record_load(m, out, &err), -EBADMSG);
	m->lapic.len = VCPU_STATE_LAPIC_SIZE;
	size_t xl = m->xsave.len;
	m->xsave.len = 0; /* and no FPU either */
	assert_int_equal(vcpu_record_load(m, out, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "neither xsave nor FPU"));
	m->xsave.len = xl;
	assert_int_equal(vcpu_record_load(m, out, &err), 0);
	vcpu_state_release(out);
	vcpu_record_free(m);
	vcpu_state_release(in);
	free(in);
	free(out);
}

static void test_vm_records_round_trip(void **state)
{
	(void)state;
	struct vmm_error err = {0};
	uint8_t *raw;

	struct vm_irqchip_state irq, irq2;
	fill(&irq, sizeof(irq), 7);
	irq.ioapic.ioregsel = 0x10, irq.ioapic.id = 0, irq.ioapic.irr = 0x4;
	Vmm__Migration__IrqchipState *im;
	assert_int_equal(irqchip_record_save(&irq, &im, &err), 0);
	Vmm__Migration__IrqchipState *ib = (void *)through_wire(&im->base, &raw);
	assert_int_equal(irqchip_record_load(ib, &irq2, &err), 0);
	assert_memory_equal(&irq.pic, &irq2.pic, sizeof(irq.pic));
	assert_memory_equal(irq.ioapic.redirtbl, irq2.ioapic.redirtbl, sizeof(irq.ioapic.redirtbl));
	assert_int_equal(irq.ioapic.base_address, irq2.ioapic.base_address);
	ib->ioapic->n_redirtbl = 23;
	assert_int_equal(irqchip_record_load(ib, &irq2, &err), -EBADMSG);
	ib->ioapic->n_redirtbl = 24;
	ib->pic_slave->imr = 0x100;
	assert_int_equal(irqchip_record_load(ib, &irq2, &err), -EBADMSG);
	protobuf_c_message_free_unpacked(&ib->base, NULL);
	free(raw);
	vm_record_free(&im->base);

	struct vm_pit_state pit = {0}, pit2;
	for (unsigned i = 0; i < VM_STATE_PIT_CHANNELS; i++)
		pit.channels[i] = (struct vm_pit_channel){.count = 11932 + i, .latched_count = 7,
							  .mode = 2, .gate = 1,
							  .count_load_age_ns = -5000 * (int64_t)i};
	pit.flags = 1;
	Vmm__Migration__PitState *pm;
	assert_int_equal(pit_record_save(&pit, &pm, &err), 0);
	Vmm__Migration__PitState *pb = (void *)through_wire(&pm->base, &raw);
	assert_int_equal(pit_record_load(pb, &pit2, &err), 0);
	assert_memory_equal(&pit, &pit2, sizeof(pit));
	size_t nch = pb->n_channels;
	pb->n_channels = 2;
	assert_int_equal(pit_record_load(pb, &pit2, &err), -EBADMSG);
	pb->n_channels = nch; /* so that all of them are freed (ASan build) */
	protobuf_c_message_free_unpacked(&pb->base, NULL);
	free(raw);
	vm_record_free(&pm->base);

	struct vm_clock_state clk = {.clock_ns = 987654321, .has_realtime = true,
				     .realtime_ns = 1700000000000000000ull}, clk2;
	Vmm__Migration__ClockState *cm;
	assert_int_equal(clock_record_save(&clk, &cm, &err), 0);
	assert_int_equal(cm->flags, 4); /* the wire's realtime bit, as format 1.0 wrote it */
	Vmm__Migration__ClockState *cb = (void *)through_wire(&cm->base, &raw);
	assert_int_equal(clock_record_load(cb, &clk2, &err), 0);
	assert_int_equal(clk.clock_ns, clk2.clock_ns);
	assert_true(clk2.has_realtime);
	assert_int_equal(clk.realtime_ns, clk2.realtime_ns);
	protobuf_c_message_free_unpacked(&cb->base, NULL);
	free(raw);
	vm_record_free(&cm->base);
}

/* ---- devices ---- */

static void make_uart(struct vm *vm, struct device *dev)
{
	struct vmm_error err = {0};
	vm_init(vm);
	vm->spec.serial = SERIAL_NONE;
	assert_int_equal(machine_resolve("microvm", &vm->spec.machine, &err), 0);
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
	assert_int_equal(device_record_save(dev, &st, &err), 0);
	size_t len = vmm__migration__device_state__get_packed_size(st);
	*bufp = malloc(len);
	vmm__migration__device_state__pack(st, *bufp);
	device_record_free(st);
	return vmm__migration__device_state__unpack(NULL, len, *bufp);
}

static void test_device_state_round_trip_and_refusals(void **state)
{
	(void)state;
	static struct vm vm1, vm2;
	static struct device a, b;
	make_uart(&vm1, &a);
	make_uart(&vm2, &b);
	/* Program the source UART through its ports: LCR, scratch, IER. */
	uint8_t v;
	v = 0x03, io_bus_access(&vm1.pio, 0x3fb, &v, 1, true);
	v = 0x5a, io_bus_access(&vm1.pio, 0x3ff, &v, 1, true);
	v = 0x01, io_bus_access(&vm1.pio, 0x3f9, &v, 1, true);

	struct vmm_error err = {0};
	uint8_t *raw;
	Vmm__Migration__DeviceState *st = pack_unpack(&a, &raw);
	assert_non_null(st);
	assert_int_equal(device_record_load(&b, st, &err), 0);
	io_bus_access(&vm2.pio, 0x3ff, &v, 1, false);
	assert_int_equal(v, 0x5a);
	io_bus_access(&vm2.pio, 0x3fb, &v, 1, false);
	assert_int_equal(v, 0x03);

	/* Newer state version: refused. */
	st->version = 2;
	assert_int_equal(device_record_load(&b, st, &err), -EPROTONOSUPPORT);
	st->version = 1;
	/* Out-of-range value for a byte field. */
	for (size_t i = 0; i < st->n_fields; i++)
		if (strcmp(st->fields[i]->name, "lcr") == 0)
			st->fields[i]->u = 0x1ff;
	assert_int_equal(device_record_load(&b, st, &err), -ERANGE);
	for (size_t i = 0; i < st->n_fields; i++)
		if (strcmp(st->fields[i]->name, "lcr") == 0)
			st->fields[i]->u = 3;
	/* post_load validates: a FIFO head beyond the buffer. */
	for (size_t i = 0; i < st->n_fields; i++)
		if (strcmp(st->fields[i]->name, "rx_head") == 0)
			st->fields[i]->u = 1000;
	assert_int_equal(device_record_load(&b, st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "receive FIFO"));
	for (size_t i = 0; i < st->n_fields; i++)
		if (strcmp(st->fields[i]->name, "rx_head") == 0)
			st->fields[i]->u = 0;
	/* Unknown field name and a missing field are both refused. */
	char *saved = st->fields[0]->name;
	st->fields[0]->name = "no-such-field";
	assert_int_equal(device_record_load(&b, st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown state field no-such-field"));
	st->fields[0]->name = saved;
	st->n_fields--;
	assert_int_equal(device_record_load(&b, st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "missing"));
	st->n_fields++;
	/* The wrong device type. */
	char *type = st->type;
	st->type = "cmos-rtc";
	assert_int_equal(device_record_load(&b, st, &err), -EINVAL);
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


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vcpu_record_round_trip),
		cmocka_unit_test(test_vcpu_record_refusals),
		cmocka_unit_test(test_vm_records_round_trip),
		cmocka_unit_test(test_device_state_round_trip_and_refusals),
		cmocka_unit_test(test_state_declarations_are_consistent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

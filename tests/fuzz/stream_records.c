/*
 * tests/fuzz/stream_records.c: the stream reader (mig_reader) over
 * arbitrary bytes, and every record it delivers unpacked (bounded
 * mig_unpack_bytes) and, where no KVM is needed, checked and loaded into
 * its plain struct the way the destination does.
 */
#include <stdlib.h>
#include <string.h>

#include "migration/migration.h"
#include "migration/records.h"
#include "tests/fuzz/fuzz.h"

static int load_vcpu(const ProtobufCMessage *m)
{
	struct vcpu_state s;
	memset(&s, 0, sizeof(s));
	struct vmm_error err;
	int r = vcpu_record_load((const Vmm__Migration__VcpuState *)m, &s, &err);
	vcpu_state_release(&s);
	return r;
}

static int load_irqchip(const ProtobufCMessage *m)
{
	struct vm_irqchip_state s;
	struct vmm_error err;
	return irqchip_record_load((const Vmm__Migration__IrqchipState *)m, &s, &err);
}

static int load_pit(const ProtobufCMessage *m)
{
	struct vm_pit_state s;
	struct vmm_error err;
	return pit_record_load((const Vmm__Migration__PitState *)m, &s, &err);
}

static int load_clock(const ProtobufCMessage *m)
{
	struct vm_clock_state s;
	struct vmm_error err;
	return clock_record_load((const Vmm__Migration__ClockState *)m, &s, &err);
}

static int check_header(const ProtobufCMessage *m)
{
	const Vmm__Migration__Header *h = (const Vmm__Migration__Header *)m;
	struct mig_peer peer;
	struct vm_spec spec;
	struct vmm_error err;
	if (mig_peer_from_header(h, &peer, &err) < 0 || mig_header_check_basic(h, &err) < 0)
		return -1;
	return mig_header_to_spec(h, &spec, &err);
}

static int check_accepted(const ProtobufCMessage *m)
{
	struct mig_peer peer;
	mig_peer_from_accepted((const Vmm__Migration__Accepted *)m, &peer);
	return 0;
}

/* Every record type: how the destination (or, for the return path, the
 * source) reads it. */
static const struct {
	unsigned type;
	const ProtobufCMessageDescriptor *desc;
	int (*check)(const ProtobufCMessage *m);
} kinds[] = {
    {MIG_REC_HEADER, &vmm__migration__header__descriptor, check_header},
    {MIG_REC_RAM, &vmm__migration__ram_batch__descriptor, NULL},
    {MIG_REC_VCPU, &vmm__migration__vcpu_state__descriptor, load_vcpu},
    {MIG_REC_IRQCHIP, &vmm__migration__irqchip_state__descriptor, load_irqchip},
    {MIG_REC_PIT, &vmm__migration__pit_state__descriptor, load_pit},
    {MIG_REC_CLOCK, &vmm__migration__clock_state__descriptor, load_clock},
    {MIG_REC_DEVICE, &vmm__migration__device_state__descriptor, NULL},
    {MIG_REC_END, &vmm__migration__end__descriptor, NULL},
    {MIG_REC_READY, &vmm__migration__ready__descriptor, NULL},
    {MIG_REC_REFUSED, &vmm__migration__refused__descriptor, NULL},
    {MIG_REC_GO, &vmm__migration__go__descriptor, NULL},
    {MIG_REC_RESUMED, &vmm__migration__resumed__descriptor, NULL},
    {MIG_REC_ACCEPTED, &vmm__migration__accepted__descriptor, check_accepted},
};

static int on_record(void *ctx, const struct mig_record *rec, struct vmm_error *err)
{
	(void)ctx;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (kinds[i].type != rec->type)
			continue;
		ProtobufCMessage *m;
		int r = mig_unpack(rec, kinds[i].desc, &m, err);
		if (r < 0)
			return 0; /* refused: the next record may still be read */
		if (kinds[i].check)
			kinds[i].check(m);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_reader r;
	struct vmm_error err;
	/* First byte: with or without the preamble (the return path has none);
	 * the rest fed in pieces of varying size, as a socket delivers. */
	if (size < 1 || mig_reader_init(&r, data[0] & 1, on_record, NULL, &err) < 0)
		return 0;
	size_t off = 1, piece = 1 + (data[0] >> 1);
	while (off < size) {
		size_t n = size - off < piece ? size - off : piece;
		if (mig_reader_feed(&r, data + off, n, &err) < 0)
			break;
		off += n;
		piece = piece * 3 + 1;
	}
	mig_reader_free(&r);
	return 0;
}

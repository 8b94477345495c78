/*
 * tests/fuzz/stream_header.c: one Header payload, as the destination checks
 * it before it builds anything: bounded unpack, the capability check, the
 * record-level sanity checks and the spec it would build.
 */
#include "migration/migration.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Vmm__Migration__Header *h;
	struct vmm_error err;
	if (size > MIG_MAX_PAYLOAD ||
	    mig_unpack_bytes(MIG_REC_HEADER, &vmm__migration__header__descriptor, data, size,
			     (ProtobufCMessage **)&h, NULL, &err) < 0)
		return 0;
	struct mig_peer peer;
	struct vm_spec spec;
	if (mig_peer_from_header(h, &peer, &err) == 0 && mig_header_check_basic(h, &err) == 0)
		mig_header_to_spec(h, &spec, &err);
	protobuf_c_message_free_unpacked(&h->base, NULL);
	return 0;
}

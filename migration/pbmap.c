/* migration/pbmap.c: see pbmap.h. */
#include "migration/pbmap.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

static const ProtobufCFieldDescriptor *field_of(const ProtobufCMessage *msg, const char *name)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, name);
	/* The tables are ours and compiled in: a wrong name is a bug, caught by
	 * the round-trip tests. */
	assert(f && f->label != PROTOBUF_C_LABEL_REPEATED);
	return f;
}

static void put(void *p, unsigned size, uint64_t v)
{
	switch (size) {
	case 1: *(uint8_t *)p = (uint8_t)v; break;
	case 2: *(uint16_t *)p = (uint16_t)v; break;
	case 4: *(uint32_t *)p = (uint32_t)v; break;
	default: *(uint64_t *)p = v; break;
	}
}

static uint64_t get(const void *p, unsigned size, bool is_signed)
{
	switch (size) {
	case 1: return is_signed ? (uint64_t)(int64_t) * (const int8_t *)p : *(const uint8_t *)p;
	case 2: return is_signed ? (uint64_t)(int64_t) * (const int16_t *)p : *(const uint16_t *)p;
	case 4: return is_signed ? (uint64_t)(int64_t) * (const int32_t *)p : *(const uint32_t *)p;
	default: return *(const uint64_t *)p;
	}
}

void pbmap_to_msg(ProtobufCMessage *msg, const void *plain, const struct pb_field_map *map,
		  size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const ProtobufCFieldDescriptor *f = field_of(msg, map[i].name);
		uint64_t v = get((const uint8_t *)plain + map[i].offset, map[i].size, map[i].is_signed);
		void *dst = (uint8_t *)msg + f->offset;
		switch (f->type) {
		case PROTOBUF_C_TYPE_UINT32: *(uint32_t *)dst = (uint32_t)v; break;
		case PROTOBUF_C_TYPE_BOOL: *(protobuf_c_boolean *)dst = v != 0; break;
		case PROTOBUF_C_TYPE_INT64:
		case PROTOBUF_C_TYPE_UINT64: *(uint64_t *)dst = v; break;
		default: assert(!"pbmap: unsupported protobuf field type");
		}
	}
}

static bool fits(uint64_t v, unsigned size, bool is_signed)
{
	if (size >= 8)
		return true;
	if (!is_signed)
		return v >> (8 * size) == 0;
	int64_t s = (int64_t)v, lim = (int64_t)1 << (8 * size - 1);
	return s >= -lim && s < lim;
}

int pbmap_from_msg(const ProtobufCMessage *msg, void *plain, const struct pb_field_map *map,
		   size_t n, const char *what, struct vmm_error *err)
{
	for (size_t i = 0; i < n; i++) {
		const ProtobufCFieldDescriptor *f = field_of(msg, map[i].name);
		const void *src = (const uint8_t *)msg + f->offset;
		uint64_t v;
		switch (f->type) {
		case PROTOBUF_C_TYPE_UINT32: v = *(const uint32_t *)src; break;
		case PROTOBUF_C_TYPE_BOOL: v = *(const protobuf_c_boolean *)src != 0; break;
		case PROTOBUF_C_TYPE_INT64:
		case PROTOBUF_C_TYPE_UINT64: v = *(const uint64_t *)src; break;
		default: assert(!"pbmap: unsupported protobuf field type"); return -EINVAL;
		}
		if (!fits(v, map[i].size, map[i].is_signed))
			return vmm_error_set(err, -EBADMSG, "%s: field %s value %llu does not fit", what,
					     map[i].name, (unsigned long long)v);
		put((uint8_t *)plain + map[i].offset, map[i].size, v);
	}
	return 0;
}

/*
 * migration/pbmap.h: plain C structs <-> protobuf messages by a table of
 * fields, so a record's save and load are one declaration, not two
 * hand-written copies that can drift apart.
 *
 * A row names a protobuf scalar field (uint32, uint64, int64, bool) and the
 * plain struct member it maps to (1, 2, 4 or 8 bytes). Loading refuses a
 * value that does not fit the member's width, naming the field.
 */
#ifndef VMM_MIGRATION_PBMAP_H
#define VMM_MIGRATION_PBMAP_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

struct pb_field_map {
	const char *name; /* protobuf field name */
	size_t offset;	  /* of the member in the plain struct */
	unsigned size;	  /* of the member: 1, 2, 4 or 8 */
	bool is_signed;
};

#define PBMAP_NAMED(type, member, pbname)                                                      \
	{                                                                                      \
		pbname, offsetof(type, member), sizeof(((type *)0)->member), false             \
	}
#define PBMAP(type, member) PBMAP_NAMED(type, member, #member)
#define PBMAP_SIGNED(type, member)                                                             \
	{                                                                                      \
		#member, offsetof(type, member), sizeof(((type *)0)->member), true             \
	}
#define PBMAP_COUNT(table) (sizeof(table) / sizeof((table)[0]))

/* Copies every mapped member of `plain` into `msg` (already initialised). */
void pbmap_to_msg(ProtobufCMessage *msg, const void *plain, const struct pb_field_map *map,
		  size_t n);
/* Copies every mapped field of `msg` into `plain`; -EBADMSG "<what>: field
 * <name> value <v> does not fit" when a value is wider than its member. */
int pbmap_from_msg(const ProtobufCMessage *msg, void *plain, const struct pb_field_map *map,
		   size_t n, const char *what, struct vmm_error *err);

#endif

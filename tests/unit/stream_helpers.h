/*
 * tests/unit/stream_helpers.h: a growable buffer as a stream writer's sink,
 * and a reader that collects every record, shared by the migration tests.
 */
#ifndef VMM_TESTS_STREAM_HELPERS_H
#define VMM_TESTS_STREAM_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "migration/migration.h"

struct buf {
	uint8_t *data;
	size_t len, cap;
};
int buf_sink(void *ctx, const void *data, size_t len, struct vmm_error *err);

#define MAX_SEEN 64
struct seen {
	unsigned n;
	unsigned types[MAX_SEEN];
	uint8_t *payloads[MAX_SEEN];
	size_t lens[MAX_SEEN];
	uint64_t hash_before[MAX_SEEN];
	uint64_t index[MAX_SEEN];
};
int collect(void *ctx, const struct mig_record *rec, struct vmm_error *err);
void seen_free(struct seen *s);
/* Feeds `b` to a fresh reader in chunks of `chunk` bytes. */
int read_all(const struct buf *b, size_t chunk, struct seen *s, struct vmm_error *err);

#endif

/* tests/unit/stream_helpers.c: see stream_helpers.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tests/unit/stream_helpers.h"

int buf_sink(void *ctx, const void *data, size_t len, struct vmm_error *err)
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

int collect(void *ctx, const struct mig_record *rec, struct vmm_error *err)
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

void seen_free(struct seen *s)
{
	for (unsigned i = 0; i < s->n; i++)
		free(s->payloads[i]);
	memset(s, 0, sizeof(*s));
}

int read_all(const struct buf *b, size_t chunk, struct seen *s, struct vmm_error *err)
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

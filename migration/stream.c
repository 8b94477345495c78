/*
 * migration/stream.c: the stream's framing. The writer packs records into a
 * scratch buffer, hashes them and hands them to a sink; the reader is an
 * incremental state machine fed with whatever bytes arrive, and enforces
 * the envelope rules (magic, major version, size caps, unknown types).
 */
#include "migration/migration.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The last column bounds what unpacking one record may allocate: that many
 * times its payload size, plus MIG_UNPACK_SLACK (see mig_unpack). The
 * factors are above what real records of each type cost (measured on real
 * streams: header 6.5x, vcpu 2.1x, ram 1.1x, the small ones fit in the
 * slack; STREAM.md "Bounded unpacking"); a record built to make
 * protobuf-c allocate far more than it weighs fails at the first
 * allocation past its budget, before any of our checks could run. */
static const struct mig_record_desc record_table[] = {
	{MIG_REC_HEADER, "header", 1, 1, true, 8},
	{MIG_REC_RAM, "ram", 1, 1, true, 2},
	{MIG_REC_VCPU, "vcpu", 1, 1, true, 4},
	{MIG_REC_IRQCHIP, "irqchip", 1, 1, true, 4},
	{MIG_REC_PIT, "pit", 1, 1, true, 4},
	{MIG_REC_CLOCK, "clock", 1, 1, true, 4},
	{MIG_REC_DEVICE, "device", 1, 1, true, 4},
	{MIG_REC_END, "end", 1, 1, true, 4},
	{MIG_REC_READY, "ready", 1, 1, true, 4},
	{MIG_REC_REFUSED, "refused", 1, 1, true, 4},
	{MIG_REC_GO, "go", 1, 1, true, 4},
	{MIG_REC_RESUMED, "resumed", 1, 1, true, 4},
	{MIG_REC_ACCEPTED, "accepted", 1, 1, true, 4},
	/* format 1.2; the packed repeated fields of ram-map and the ram-pages
	 * envelope grow up to 8x (a one-byte varint into a uint64) */
	{MIG_REC_RAM_MAP, "ram-map", 1, 1, false, 8}, /* a hint: an older reader skips it */
	{MIG_REC_RAM_PAGES, "ram-pages", 1, 1, true, 8},
	{MIG_REC_HELLO, "hello", 1, 1, true, 4},
	{MIG_REC_ACK, "ack", 1, 1, false, 4},
	{MIG_REC_DATA_END, "data-end", 1, 1, true, 4},
	{MIG_REC_MEM_FD, "mem-fd", 1, 1, true, 4},
};

const struct mig_record_desc *mig_record_desc(unsigned type)
{
	for (size_t i = 0; i < sizeof(record_table) / sizeof(record_table[0]); i++)
		if (record_table[i].type == type)
			return &record_table[i];
	return NULL;
}

const char *mig_record_name(unsigned type)
{
	const struct mig_record_desc *d = mig_record_desc(type);
	return d ? d->name : "unknown";
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

/* ---- writer ---- */

int mig_writer_init(struct mig_writer *w, mig_sink_fn sink, void *ctx, struct vmm_error *err)
{
	memset(w, 0, sizeof(*w));
	w->sink = sink;
	w->sink_ctx = ctx;
	w->hash = XXH3_createState();
	if (!w->hash || XXH3_64bits_reset(w->hash) != XXH_OK)
		return vmm_error_set(err, -ENOMEM, "migration: cannot create stream hash");
	return 0;
}

void mig_writer_free(struct mig_writer *w)
{
	if (w->hash)
		XXH3_freeState(w->hash);
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

static int emit(struct mig_writer *w, const uint8_t *data, size_t len, struct vmm_error *err)
{
	XXH3_64bits_update(w->hash, data, len);
	w->bytes += len;
	return w->sink(w->sink_ctx, data, len, err);
}

int mig_write_preamble(struct mig_writer *w, struct vmm_error *err)
{
	uint8_t p[MIG_PREAMBLE_SIZE] = {0};
	memcpy(p, MIG_MAGIC, 8);
	put_le16(p + 8, MIG_FORMAT_MAJOR);
	put_le16(p + 10, MIG_FORMAT_MINOR);
	return emit(w, p, sizeof(p), err);
}

/* Packs header + payload prefix into w->buf: `prefix` extra bytes (the
 * u32 envelope length of a ram-pages record) before the message. */
static int pack(struct mig_writer *w, enum mig_record_type type, const ProtobufCMessage *msg,
		size_t prefix, size_t extra, size_t *out_len, struct vmm_error *err)
{
	const struct mig_record_desc *d = mig_record_desc(type);
	if (!d)
		return vmm_error_set(err, -EINVAL, "migration: record type %u unknown", type);
	size_t len = protobuf_c_message_get_packed_size(msg);
	if (len + prefix + extra > MIG_MAX_PAYLOAD)
		return vmm_error_set(err, -E2BIG, "migration: %s record of %zu bytes exceeds %u",
				     d->name, len + prefix + extra, MIG_MAX_PAYLOAD);
	size_t need = MIG_RECORD_HEADER_SIZE + prefix + len;
	if (need > w->buf_size) {
		size_t cap = need < 64 * 1024 ? 64 * 1024 : need;
		uint8_t *nb = realloc(w->buf, cap);
		if (!nb)
			return vmm_error_set(err, -ENOMEM, "migration: out of memory packing %s",
					     d->name);
		w->buf = nb;
		w->buf_size = cap;
	}
	put_le32(w->buf, (uint32_t)(prefix + len + extra));
	put_le16(w->buf + 4, (uint16_t)type);
	w->buf[6] = d->version;
	w->buf[7] = d->required ? MIG_FLAG_REQUIRED : 0;
	if (prefix)
		put_le32(w->buf + MIG_RECORD_HEADER_SIZE, (uint32_t)len);
	protobuf_c_message_pack(msg, w->buf + MIG_RECORD_HEADER_SIZE + prefix);
	*out_len = need;
	return 0;
}

int mig_write_record(struct mig_writer *w, enum mig_record_type type, const ProtobufCMessage *msg,
		     struct vmm_error *err)
{
	size_t need;
	int r = pack(w, type, msg, 0, 0, &need, err);
	if (r < 0)
		return r;
	w->records++;
	return emit(w, w->buf, need, err);
}

int mig_write_record_data(struct mig_writer *w, enum mig_record_type type,
			  const ProtobufCMessage *msg, const struct iovec *data, int ndata,
			  size_t data_len, struct vmm_error *err)
{
	size_t head;
	int r = pack(w, type, msg, 4, data_len, &head, err);
	if (r < 0)
		return r;
	if (head - MIG_RECORD_HEADER_SIZE - 4 > MIG_MAX_ENVELOPE)
		return vmm_error_set(err, -E2BIG, "migration: %zu-byte envelope exceeds %u",
				     head - MIG_RECORD_HEADER_SIZE - 4, MIG_MAX_ENVELOPE);
	w->records++;
	XXH3_64bits_update(w->hash, w->buf, head);
	w->bytes += head + data_len;
	if (w->sink_iov) {
		struct iovec iov[1 + 1024];
		if (ndata > 1024)
			return vmm_error_set(err, -E2BIG, "migration: %d data buffers", ndata);
		iov[0] = (struct iovec){w->buf, head};
		memcpy(iov + 1, data, (size_t)ndata * sizeof(*data));
		return w->sink_iov(w->sink_ctx, iov, 1 + ndata, err);
	}
	if ((r = w->sink(w->sink_ctx, w->buf, head, err)) < 0)
		return r;
	for (int i = 0; i < ndata; i++)
		if ((r = w->sink(w->sink_ctx, data[i].iov_base, data[i].iov_len, err)) < 0)
			return r;
	return 0;
}

int mig_write_data_end(struct mig_writer *w, uint64_t ram_pages, struct vmm_error *err)
{
	Vmm__Migration__DataEnd end = VMM__MIGRATION__DATA_END__INIT;
	end.checksum = XXH3_64bits_digest(w->hash);
	end.records = w->records;
	end.ram_pages = ram_pages;
	return mig_write_record(w, MIG_REC_DATA_END, &end.base, err);
}

int mig_write_end(struct mig_writer *w, uint64_t ram_pages, struct vmm_error *err)
{
	Vmm__Migration__End end = VMM__MIGRATION__END__INIT;
	end.checksum = XXH3_64bits_digest(w->hash);
	end.records = w->records;
	end.ram_pages = ram_pages;
	return mig_write_record(w, MIG_REC_END, &end.base, err);
}

/* ---- reader ---- */

int mig_reader_init(struct mig_reader *r, bool expect_preamble, mig_record_fn fn, void *ctx,
		    struct vmm_error *err)
{
	memset(r, 0, sizeof(*r));
	r->expect_preamble = expect_preamble;
	r->state = expect_preamble ? MIG_READ_PREAMBLE : MIG_READ_HEADER;
	r->on_record = fn;
	r->ctx = ctx;
	r->hash = XXH3_createState();
	if (!r->hash || XXH3_64bits_reset(r->hash) != XXH_OK)
		return vmm_error_set(err, -ENOMEM, "migration: cannot create stream hash");
	return 0;
}

void mig_reader_free(struct mig_reader *r)
{
	if (r->hash)
		XXH3_freeState(r->hash);
	free(r->payload);
	memset(r, 0, sizeof(*r));
}

void mig_reader_finish(struct mig_reader *r)
{
	r->state = MIG_READ_DONE;
}

int mig_check_preamble(const uint8_t *p, unsigned *major, unsigned *minor, struct vmm_error *err)
{
	if (memcmp(p, MIG_MAGIC, 8) != 0)
		return vmm_error_set(err, -EPROTO, "not a vmm migration stream (bad magic)");
	*major = get_le16(p + 8);
	*minor = get_le16(p + 10);
	if (*major > MIG_FORMAT_MAJOR)
		return vmm_error_set(err, -EPROTONOSUPPORT,
				     "stream format %u.%u is newer than this vmm reads (%u.x): the "
				     "source is newer; migrate to a vmm at least as new as the source",
				     *major, *minor, MIG_FORMAT_MAJOR);
	if (*major < MIG_FORMAT_MAJOR)
		return vmm_error_set(err, -EPROTONOSUPPORT,
				     "stream format %u.%u is older than this vmm reads (%u.x)", *major,
				     *minor, MIG_FORMAT_MAJOR);
	return 0;
}

int mig_check_record_header(const uint8_t *h, uint64_t index, struct mig_record_hdr *out,
			    struct vmm_error *err)
{
	out->len = get_le32(h);
	out->type = get_le16(h + 4);
	out->version = h[6];
	out->flags = h[7];
	if (out->len > MIG_MAX_PAYLOAD)
		return vmm_error_set(err, -EMSGSIZE,
				     "record %llu (type %u): %u bytes exceed the %u-byte limit",
				     (unsigned long long)index, out->type, out->len, MIG_MAX_PAYLOAD);
	const struct mig_record_desc *d = mig_record_desc(out->type);
	if (!d) {
		if (out->flags & MIG_FLAG_REQUIRED)
			return vmm_error_set(err, -EPROTONOSUPPORT,
					     "record %llu: unknown required section type %u (the "
					     "source is newer)",
					     (unsigned long long)index, out->type);
		return 0; /* optional and unknown: skipped */
	}
	if (out->version > d->version)
		return vmm_error_set(err, -EPROTONOSUPPORT,
				     "record %s version %u is newer than this vmm reads (%u)", d->name,
				     out->version, d->version);
	if (out->version < d->min_version)
		return vmm_error_set(err, -EPROTONOSUPPORT,
				     "record %s version %u is older than this vmm reads (%u..%u)",
				     d->name, out->version, d->min_version, d->version);
	return 0;
}

static int check_preamble(struct mig_reader *r, struct vmm_error *err)
{
	int rc = mig_check_preamble(r->hdr, &r->major, &r->minor, err);
	if (rc < 0)
		return rc;
	XXH3_64bits_update(r->hash, r->hdr, MIG_PREAMBLE_SIZE);
	r->bytes += MIG_PREAMBLE_SIZE;
	return 0;
}

static int check_record_header(struct mig_reader *r, struct vmm_error *err)
{
	struct mig_record_hdr h;
	int rc = mig_check_record_header(r->hdr, r->records, &h, err);
	r->len = h.len;
	r->type = h.type;
	r->version = h.version;
	r->flags = h.flags;
	return rc;
}

size_t mig_hashed_len(unsigned type, const uint8_t *payload, size_t len)
{
	/* ram-pages: the length prefix and the envelope, not the page data */
	if (type != MIG_REC_RAM_PAGES || len < 4)
		return len;
	size_t env = get_le32(payload);
	return env <= len - 4 ? 4 + env : len;
}

int mig_record_split(const struct mig_record *rec, struct mig_record *envelope,
		     const uint8_t **data, size_t *data_len, struct vmm_error *err)
{
	if (rec->len < 4)
		return vmm_error_set(err, -EBADMSG, "record %llu (ram-pages): %zu bytes, no envelope",
				     (unsigned long long)rec->index, rec->len);
	size_t env = get_le32(rec->payload);
	if (env > rec->len - 4 || env > MIG_MAX_ENVELOPE)
		return vmm_error_set(err, -EBADMSG,
				     "record %llu (ram-pages): envelope of %zu bytes in a %zu-byte "
				     "record",
				     (unsigned long long)rec->index, env, rec->len);
	*envelope = *rec;
	envelope->payload = rec->payload + 4;
	envelope->len = env;
	envelope->data_len = rec->len - 4 - env;
	*data = rec->payload + 4 + env;
	*data_len = rec->len - 4 - env;
	return 0;
}

static int deliver(struct mig_reader *r, struct vmm_error *err)
{
	struct mig_record rec = {
		.type = r->type,
		.version = r->version,
		.flags = r->flags,
		.payload = r->payload,
		.len = r->len,
		.hash_before = XXH3_64bits_digest(r->hash),
		.index = r->records,
	};
	XXH3_64bits_update(r->hash, r->hdr, MIG_RECORD_HEADER_SIZE);
	XXH3_64bits_update(r->hash, r->payload, mig_hashed_len(r->type, r->payload, r->len));
	r->bytes += MIG_RECORD_HEADER_SIZE + r->len;
	r->records++;
	if (!mig_record_desc(rec.type))
		return 0;
	return r->on_record(r->ctx, &rec, err);
}

int mig_reader_feed(struct mig_reader *r, const uint8_t *data, size_t len, struct vmm_error *err)
{
	while (len) {
		switch (r->state) {
		case MIG_READ_DONE:
			return vmm_error_set(err, -EPROTO, "%zu bytes after the end record", len);
		case MIG_READ_PREAMBLE:
		case MIG_READ_HEADER: {
			size_t want = r->state == MIG_READ_PREAMBLE ? MIG_PREAMBLE_SIZE
								    : MIG_RECORD_HEADER_SIZE;
			size_t n = want - r->have < len ? want - r->have : len;
			memcpy(r->hdr + r->have, data, n);
			r->have += n;
			data += n;
			len -= n;
			if (r->have < want)
				break;
			r->have = 0;
			int rc;
			if (r->state == MIG_READ_PREAMBLE) {
				if ((rc = check_preamble(r, err)) < 0)
					return rc;
				r->state = MIG_READ_HEADER;
				break;
			}
			if ((rc = check_record_header(r, err)) < 0)
				return rc;
			if (r->len > r->payload_cap) {
				uint8_t *nb = realloc(r->payload, r->len);
				if (!nb)
					return vmm_error_set(err, -ENOMEM,
							     "out of memory for a %u-byte record", r->len);
				r->payload = nb;
				r->payload_cap = r->len;
			}
			r->state = MIG_READ_PAYLOAD;
			if (r->len == 0) {
				r->state = MIG_READ_HEADER;
				if ((rc = deliver(r, err)) < 0)
					return rc;
			}
			break;
		}
		case MIG_READ_PAYLOAD: {
			size_t n = r->len - r->have < len ? r->len - r->have : len;
			memcpy(r->payload + r->have, data, n);
			r->have += n;
			data += n;
			len -= n;
			if (r->have < r->len)
				break;
			r->have = 0;
			r->state = MIG_READ_HEADER;
			int rc = deliver(r, err);
			if (rc < 0)
				return rc;
			break;
		}
		}
	}
	return 0;
}

/* ---- bounded unpacking ---- */

/* protobuf-c allocates every sub-message, repeated-field array and field
 * index slab as it goes; this allocator stops it once a record has cost
 * its budget. Blocks are plain malloc()s, so the caller frees the result
 * with protobuf_c_message_free_unpacked(msg, NULL) as before. */
struct unpack_budget {
	size_t left;
	size_t used;
	bool exceeded;
};

static void *budget_alloc(void *ctx, size_t size)
{
	struct unpack_budget *b = ctx;
	if (size > b->left) {
		b->exceeded = true;
		return NULL;
	}
	void *p = malloc(size ? size : 1);
	if (p) {
		b->left -= size;
		b->used += size;
	}
	return p;
}

static void budget_free(void *ctx, void *p)
{
	(void)ctx; /* the budget counts what was allocated, not what is live */
	free(p);
}

size_t mig_unpack_budget(unsigned type, size_t len)
{
	const struct mig_record_desc *d = mig_record_desc(type);
	unsigned factor = d ? d->unpack_factor : 1;
	return (size_t)factor * len + MIG_UNPACK_SLACK;
}

int mig_unpack_bytes(unsigned type, const ProtobufCMessageDescriptor *desc, const uint8_t *data,
		     size_t len, ProtobufCMessage **out, size_t *cost, struct vmm_error *err)
{
	struct unpack_budget b = {.left = mig_unpack_budget(type, len)};
	ProtobufCAllocator alloc = {.alloc = budget_alloc, .free = budget_free, .allocator_data = &b};
	*out = protobuf_c_message_unpack(desc, &alloc, len, data);
	if (cost)
		*cost = b.used;
	if (!*out && b.exceeded)
		return vmm_error_set(err, -EMSGSIZE,
				     "%s record: unpacking it would take more than %zu bytes for %zu "
				     "bytes of payload (refused)",
				     mig_record_name(type), mig_unpack_budget(type, len), len);
	if (!*out)
		return vmm_error_set(err, -EBADMSG, "%s record: malformed payload (%zu bytes)",
				     mig_record_name(type), len);
	return 0;
}

int mig_unpack(const struct mig_record *rec, const ProtobufCMessageDescriptor *desc,
	       ProtobufCMessage **out, struct vmm_error *err)
{
	int r = mig_unpack_bytes(rec->type, desc, rec->payload, rec->len, out, NULL, err);
	if (r < 0)
		return vmm_error_prefix(err, "record %llu", (unsigned long long)rec->index);
	return 0;
}

/*
 * migration/instream.c: the destination's reader (struct mig_in): one
 * connection (or file) read record by record with exact reads, so that the
 * data of a ram-pages record is never buffered here: the caller reads it
 * straight into guest memory (mig_in_readv). The checks (magic, major
 * version, size caps, unknown required types, record versions) and the
 * running hash are the push reader's (stream.c), so both see the same
 * stream the same way.
 */
#include "migration/conn.h"
#include "migration/migration.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int mig_in_init(struct mig_in *in, struct mig_conn *conn, struct vmm_error *err)
{
	memset(in, 0, sizeof(*in));
	in->conn = conn;
	in->hash = XXH3_createState();
	if (!in->hash || XXH3_64bits_reset(in->hash) != XXH_OK)
		return vmm_error_set(err, -ENOMEM, "migration: cannot create stream hash");
	return 0;
}

void mig_in_free(struct mig_in *in)
{
	if (in->hash)
		XXH3_freeState(in->hash);
	free(in->payload);
	memset(in, 0, sizeof(*in));
}

/* Exactly `len` bytes (a read may return fewer: loop). End of stream in the
 * middle of a record is an error that says so. */
static int read_exact(struct mig_in *in, void *buf, size_t len, unsigned timeout_ms,
		      struct vmm_error *err)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = mig_conn_read(in->conn, p, len, timeout_ms, err);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return vmm_error_set(err, -ECONNRESET,
					     "the stream ends before the end record, "
					     "in the middle of a record (%s): truncated?",
					     in->conn->peer);
		p += n;
		len -= (size_t)n;
		in->bytes += (uint64_t)n;
	}
	return 0;
}

int mig_in_preamble(struct mig_in *in, unsigned timeout_ms, struct vmm_error *err)
{
	uint8_t p[MIG_PREAMBLE_SIZE];
	ssize_t n = mig_conn_read(in->conn, p, sizeof(p), timeout_ms, err);
	if (n < 0)
		return (int)n;
	if (n == 0)
		return vmm_error_set(err, -ECONNRESET, "%s closed before sending anything",
				     in->conn->peer);
	in->bytes += (uint64_t)n;
	int r = read_exact(in, p + n, sizeof(p) - (size_t)n, timeout_ms, err);
	if (r < 0)
		return r;
	if ((r = mig_check_preamble(p, &in->major, &in->minor, err)) < 0)
		return r;
	XXH3_64bits_update(in->hash, p, sizeof(p));
	return 0;
}

static int ensure_payload(struct mig_in *in, size_t len, struct vmm_error *err)
{
	if (len <= in->payload_cap)
		return 0;
	uint8_t *nb = realloc(in->payload, len);
	if (!nb)
		return vmm_error_set(err, -ENOMEM, "out of memory for a %zu-byte record", len);
	in->payload = nb;
	in->payload_cap = len;
	return 0;
}

int mig_in_next(struct mig_in *in, struct mig_record *rec, unsigned timeout_ms,
		struct vmm_error *err)
{
	if (in->data_left)
		return vmm_error_set(err, -EPROTO, "migration: ram-pages data not consumed");
	for (;;) {
		uint8_t h[MIG_RECORD_HEADER_SIZE];
		/* The first byte may be long in coming (pre-copy pauses between
		 * passes); then the rest of a record follows at once. */
		ssize_t n = mig_conn_read(in->conn, h, sizeof(h), timeout_ms, err);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -ECONNRESET; /* a clean end between records: the caller decides */
		in->bytes += (uint64_t)n;
		int r = read_exact(in, h + n, sizeof(h) - (size_t)n, timeout_ms, err);
		if (r < 0)
			return r;
		struct mig_record_hdr hd;
		if ((r = mig_check_record_header(h, in->records, &hd, err)) < 0)
			return r;
		*rec = (struct mig_record){.type = hd.type,
					   .version = hd.version,
					   .flags = hd.flags,
					   .hash_before = XXH3_64bits_digest(in->hash),
					   .index = in->records};
		XXH3_64bits_update(in->hash, h, sizeof(h));
		in->records++;
		size_t len = hd.len;
		if (hd.type == MIG_REC_RAM_PAGES) {
			uint8_t lb[4];
			if (len < 4)
				return vmm_error_set(err, -EBADMSG,
						     "record %llu (ram-pages): %zu "
						     "bytes, no envelope",
						     (unsigned long long)rec->index, len);
			if ((r = read_exact(in, lb, 4, timeout_ms, err)) < 0)
				return r;
			size_t env = (size_t)lb[0] | (size_t)lb[1] << 8 | (size_t)lb[2] << 16 |
				     (size_t)lb[3] << 24;
			if (env > len - 4 || env > MIG_MAX_ENVELOPE)
				return vmm_error_set(
				    err, -EBADMSG,
				    "record %llu (ram-pages): envelope of %zu bytes "
				    "in a %zu-byte record",
				    (unsigned long long)rec->index, env, len);
			if ((r = ensure_payload(in, env, err)) < 0 ||
			    (r = read_exact(in, in->payload, env, timeout_ms, err)) < 0)
				return r;
			XXH3_64bits_update(in->hash, lb, 4);
			XXH3_64bits_update(in->hash, in->payload, env);
			rec->payload = in->payload;
			rec->len = env;
			rec->data_len = in->data_left = len - 4 - env;
			in->current_type = hd.type;
			return 0;
		}
		/* A connection that carries only small records (a data
		 * connection) never buffers a large one. */
		if (in->max_payload && len > in->max_payload)
			return vmm_error_set(
			    err, -EMSGSIZE,
			    "record %llu (%s): %zu bytes, more than %u on this connection",
			    (unsigned long long)rec->index, mig_record_name(hd.type), len,
			    in->max_payload);
		if ((r = ensure_payload(in, len, err)) < 0 ||
		    (r = read_exact(in, in->payload, len, timeout_ms, err)) < 0)
			return r;
		XXH3_64bits_update(in->hash, in->payload, len);
		if (!mig_record_desc(hd.type))
			continue; /* optional and unknown: skipped (checked above) */
		rec->payload = in->payload;
		rec->len = len;
		in->current_type = hd.type;
		return 0;
	}
}

int mig_in_readv(struct mig_in *in, struct iovec *iov, int n, unsigned timeout_ms,
		 struct vmm_error *err)
{
	size_t want = 0;
	for (int i = 0; i < n; i++)
		want += iov[i].iov_len;
	if (want > in->data_left)
		return vmm_error_set(err, -EBADMSG, "ram-pages: %zu data bytes wanted, %zu left",
				     want, in->data_left);
	while (n > 0) {
		if (iov->iov_len == 0) {
			iov++, n--;
			continue;
		}
		ssize_t got = mig_conn_readv(in->conn, iov, n, timeout_ms, err);
		if (got < 0)
			return (int)got;
		if (got == 0)
			return vmm_error_set(err, -ECONNRESET,
					     "the stream ends before the end record, "
					     "in the middle of page data (%s): truncated?",
					     in->conn->peer);
		in->bytes += (uint64_t)got;
		in->data_left -= (size_t)got;
		size_t done = (size_t)got;
		while (n > 0 && done >= iov->iov_len) {
			done -= iov->iov_len;
			iov++, n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + done;
			iov->iov_len -= done;
		}
	}
	return 0;
}

int mig_in_skip_data(struct mig_in *in, unsigned timeout_ms, struct vmm_error *err)
{
	uint8_t buf[16384];
	while (in->data_left) {
		size_t n = in->data_left < sizeof(buf) ? in->data_left : sizeof(buf);
		struct iovec iov = {buf, n};
		int r = mig_in_readv(in, &iov, 1, timeout_ms, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * tests/fuzz/instream.c: the destination's receive path over arbitrary
 * bytes on a socket, the way dest.c's receive() applies a stream: the pull
 * reader (mig_in: preamble, records, ram-pages data read straight into
 * guest memory), the RAM receiver (raw ram-pages with and without page
 * hashes, zstd batches on the worker threads, RamBatch v1), the RAM map
 * (populate thread), the state sections and the End checks. No KVM: the
 * guest is a real guest memory (memfd) of a VM that is never run. Seeds:
 * make_corpus_instream.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/vm.h"
#include "machine-types/machine.h"
#include "migration/conn.h"
#include "migration/migration.h"
#include "migration/multiconn.h"
#include "migration/ram.h"
#include "tests/fuzz/fuzz.h"

#define GUEST_RAM  (48u << 20) /* the golden 1.2 stream's guest */
#define GUEST_CPUS 2
#define INPUT_MAX  (1u << 20)
#define TIMEOUT_MS 100 /* every read: an input can never hang */

static struct vm vm;

/* The guest memory lives across inputs (creating 48 MiB per input would
 * dominate): what an input leaves in it never steers the next one, since
 * each input has its own received/torn bitmaps. */
static void setup(void)
{
	static bool ready;
	if (ready)
		return;
	struct vmm_error err = {0};
	vm_init(&vm);
	vm.ncpus = GUEST_CPUS; /* vcpu records are kept per vCPU index */
	if (machine_resolve("microvm", &vm.spec.machine, &err) < 0 ||
	    guest_memory_create(&vm.mem, GUEST_RAM, false, &vm.spec.machine, &err) < 0) {
		/* not the input's fault: a replay must not pass having run nothing */
		fprintf(stderr, "fuzz_instream: %s\n", err.msg);
		abort();
	}
	/* one populate thread is enough here, and cheaper per input */
	setenv("VMM_POPULATE_THREADS", "1", 0);
	ready = true;
}

/* ---- the source end: the input written into a socket ---- */

struct feeder {
	int fd;
	const uint8_t *data;
	size_t left;
	pthread_t thread;
	bool started;
};

static void *feed_rest(void *arg)
{
	struct feeder *f = arg;
	while (f->left) {
		ssize_t n = send(f->fd, f->data, f->left, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* the reader stopped early and closed its end */
		f->data += n;
		f->left -= (size_t)n;
	}
	shutdown(f->fd, SHUT_WR);
	return NULL;
}

/* Writes what the socket buffer takes at once (everything, usually: the
 * buffer is made as large as the input); a thread writes the rest, only
 * where net.core.wmem_max keeps the buffer small. */
static int feed_start(struct feeder *f, int fd, const uint8_t *data, size_t len)
{
	*f = (struct feeder){.fd = fd, .data = data, .left = len};
	int sz = (int)(2 * INPUT_MAX);
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	while (f->left) {
		ssize_t n = send(fd, f->data, f->left, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		f->data += n;
		f->left -= (size_t)n;
	}
	if (!f->left) {
		shutdown(fd, SHUT_WR);
		return 0;
	}
	if (pthread_create(&f->thread, NULL, feed_rest, f) != 0)
		return -1;
	f->started = true;
	return 0;
}

static void feed_stop(struct feeder *f)
{
	if (f->started)
		pthread_join(f->thread, NULL);
}

/* ---- the destination: dest.c's records, without KVM ---- */

struct dest {
	struct mig_conn conn;
	struct mig_in in;
	struct mig_writer reply; /* Acks: written, then dropped */
	struct mig_ram_in ram;
	struct mig_ram_rx rx;
	struct mig_populate *populate;
	struct mig_state_in saved;
	bool have_header, ram_ready, rx_ready, state_ready, seen_end, local;
};

static int drop_sink(void *ctx, const void *data, size_t len, struct vmm_error *err)
{
	(void)ctx, (void)data, (void)len, (void)err;
	return 0;
}

static int on_header(struct dest *d, const struct mig_record *rec, struct vmm_error *err)
{
	if (d->have_header)
		return vmm_error_set(err, -EPROTO, "a second header record");
	Vmm__Migration__Header *h;
	int r = mig_unpack(rec, &vmm__migration__header__descriptor, (ProtobufCMessage **)&h, err);
	if (r < 0)
		return r;
	/* Only what the RAM path needs: the header's own checks have their
	 * target (stream_header), and building the VM needs KVM. */
	unsigned nconns = h->connections > 1 ? h->connections : 1;
	d->local = h->local;
	protobuf_c_message_free_unpacked(&h->base, NULL);
	d->have_header = true;
	if (d->local && nconns > 1)
		return vmm_error_set(err, -EPROTO, "a local move on %u connections", nconns);
	if (nconns > MIG_MAX_CONNECTIONS)
		return vmm_error_set(err, -EPROTO, "%u connections", nconns);
	if ((r = mig_ram_in_init(&d->ram, &vm, nconns, err)) < 0)
		return r;
	d->ram_ready = true;
	if ((r = mig_ram_rx_init(&d->rx, &d->ram, 0, err)) < 0)
		return r;
	d->rx_ready = true;
	if ((r = mig_state_in_init(&d->saved, &vm, err)) < 0)
		return r;
	d->state_ready = true;
	return 0;
}

static int on_end(struct dest *d, const struct mig_record *rec, struct vmm_error *err)
{
	Vmm__Migration__End *end;
	int r = mig_unpack(rec, &vmm__migration__end__descriptor, (ProtobufCMessage **)&end, err);
	if (r < 0)
		return r;
	r = mig_ram_rx_end(&d->rx, rec, end->checksum, end->records, end->ram_pages, err);
	protobuf_c_message_free_unpacked(&end->base, NULL);
	if (r < 0)
		return r;
	if ((r = mig_ram_in_check(&d->ram, err)) < 0)
		return r;
	if (d->populate)
		mig_populate_request_stop(d->populate);
	d->seen_end = true;
	return 0;
}

static int on_record(struct dest *d, const struct mig_record *rec, struct vmm_error *err)
{
	if (d->seen_end) /* only Go may follow End; then the guest would run */
		return rec->type == MIG_REC_GO ? 1 : vmm_error_set(err, -EPROTO, "after end");
	if (!d->have_header && rec->type != MIG_REC_HEADER)
		return vmm_error_set(err, -EPROTO, "no header first");
	int r;
	switch (rec->type) {
	case MIG_REC_HEADER:
		return on_header(d, rec, err);
	case MIG_REC_RAM:
	case MIG_REC_RAM_PAGES:
		if (d->local)
			return vmm_error_set(err, -EPROTO, "RAM pages in a local move");
		r = rec->type == MIG_REC_RAM
			? mig_ram_rx_batch(&d->rx, rec, err)
			: mig_ram_rx_pages(&d->rx, rec, &d->in, TIMEOUT_MS, err);
		if (r == 0)
			r = mig_rx_ack(&d->rx, &d->reply, &d->in, false, err);
		return r;
	case MIG_REC_RAM_MAP:
		if (d->local)
			return vmm_error_set(err, -EPROTO, "a RAM map in a local move");
		if (!d->populate &&
		    (r = mig_populate_start(&d->populate, &vm.mem, &d->ram, err)) < 0)
			return r;
		return mig_populate_map(d->populate, rec, err);
	case MIG_REC_END:
		return on_end(d, rec, err);
	case MIG_REC_DEVICE: {
		/* this VM has no devices to find by name: unpacked only (the
		 * device_state target loads them) */
		ProtobufCMessage *m;
		if ((r = mig_unpack(rec, &vmm__migration__device_state__descriptor, &m, err)) < 0)
			return r;
		protobuf_c_message_free_unpacked(m, NULL);
		return 0;
	}
	default: {
		/* mem-fd needs a descriptor passed with it and swaps the guest
		 * memory (test_migrate_local): refused here like any stranger */
		const struct mig_section *sec = mig_section_find(rec->type);
		if (!sec)
			return vmm_error_set(err, -EPROTO, "unexpected record");
		return sec->receive(&d->saved, rec, err);
	}
	}
}

static void receive(struct dest *d)
{
	struct vmm_error err = {0};
	if (mig_in_init(&d->in, &d->conn, &err) < 0 ||
	    mig_writer_init(&d->reply, drop_sink, NULL, &err) < 0 ||
	    mig_in_preamble(&d->in, TIMEOUT_MS, &err) < 0)
		return;
	for (;;) {
		if (d->rx_ready && !mig_conn_input_pending(&d->conn) &&
		    mig_rx_ack(&d->rx, &d->reply, &d->in, true, &err) < 0)
			return;
		struct mig_record rec;
		if (mig_in_next(&d->in, &rec, TIMEOUT_MS, &err) < 0)
			return;
		if (on_record(d, &rec, &err) != 0)
			return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > INPUT_MAX)
		return 0;
	setup();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK); /* as accept() leaves it */
	struct feeder f;
	if (feed_start(&f, sv[1], data, size) < 0) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	static struct dest d; /* large (the state sections): off the stack */
	memset(&d, 0, sizeof(d));
	mig_conn_from_fd(&d.conn, sv[0], MIG_UNIX, "fuzz", NULL);
	receive(&d);
	/* session_reset()'s order: the threads first, then what they use */
	mig_populate_stop(d.populate, NULL, NULL);
	if (d.state_ready)
		mig_state_in_free(&d.saved);
	if (d.rx_ready)
		mig_ram_rx_free(&d.rx);
	if (d.ram_ready)
		mig_ram_in_free(&d.ram);
	mig_in_free(&d.in);
	mig_writer_free(&d.reply);
	mig_conn_close(&d.conn); /* a writer still at it gets EPIPE */
	feed_stop(&f);
	close(sv[1]);
	return 0;
}

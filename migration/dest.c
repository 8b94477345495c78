/*
 * migration/dest.c: the incoming side (see dest.h and STREAM.md). One worker
 * thread waits for the connection (or reads the file), parses and applies
 * the stream and answers the source; the main loop only hears the outcome
 * (uv_async) and can cancel. Every wait is bounded: a source that sends
 * nothing for a while is gone, and a FIFO or a slow disk never blocks the
 * control socket.
 */
#include "migration/dest.h"
#include "migration/channel.h"
#include "migration/local.h"
#include "migration/multiconn.h"
#include "migration/ram.h"
#include "migration/screen.h"
#include "migration/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A listening destination screens connections concurrently (screen.c:
 * the first bytes, the TLS handshake) and serves those that pass one at a
 * time. Until a connection's header is accepted it is a candidate: one
 * that fails the screening, stalls, or is refused is dropped (and logged)
 * and the next one is served. HANDSHAKE_TIMEOUT_MS bounds the screening
 * from accept(), and again the header from when it is served. There is no
 * limit on how many are dropped: a limit would let any stranger end the
 * destination. */
/* The header must come this soon after the connection; later records no
 * more than IDLE apart (pre-copy sends continuously); Go within GO of Ready. */
#define HANDSHAKE_TIMEOUT_MS 10000
#define IDLE_TIMEOUT_MS 60000
#define GO_TIMEOUT_MS 60000
#define REPLY_TIMEOUT_MS 10000
#define DATA_CONNS_TIMEOUT_MS 10000 /* the data connections come this soon after Accepted */

enum dest_state { D_WAITING, D_RECEIVING, D_WAIT_GO, D_RUNNING, D_FAILED };

struct mig_dest {
	uv_loop_t *loop;
	uv_async_t done_async; /* the worker's outcome, on the main loop */
	struct vm *vm;
	struct vm_request request; /* this side's command line */
	struct mig_uri uri;
	mig_dest_done_fn done;
	void *done_ctx;
	pthread_t thread;
	bool thread_started;
	struct mig_cancel cancel;
	int listen_fd;
	struct mig_screen *screen; /* connections screened while waiting for the source */
	atomic_uint drops;
	struct mig_conn conn;
	bool conn_open;
	struct mig_tls_config tls_cfg;
	struct mig_tls_creds *tls; /* NULL: plaintext */
	struct mig_tls_info tls_info; /* of the current connection */
	struct vm_spec fresh_spec; /* the VM as the command line built it */
	bool vm_touched;	   /* a candidate rebuilt or wrote into the VM */
	bool committed;		   /* the header was accepted: this is the source */
	bool said_why;		   /* a Refused went to the current connection */
	uint64_t deadline_ms;	   /* the current candidate's header must come by then */
	pthread_mutex_t info_lock; /* guards info: read by the main loop */
	struct mig_dest_info info;
	atomic_bool finished;
	int result;
	char msg[VMM_ERROR_MAX];
	enum dest_state state;
	struct mig_in in; /* the main connection, record by record */
	struct mig_writer reply;
	bool in_ready, reply_ready;
	struct mig_ram_in ram; /* what all connections' receivers share */
	struct mig_ram_rx rx;  /* the main connection's receiver */
	bool ram_ready, rx_ready, state_ready, seen_end;
	struct mig_populate *populate;
	struct mig_dest_multi *multi; /* the data connections */
	unsigned nconns;
	bool acks;  /* the source reads Acks */
	bool local; /* a same-host move: the memfd comes, no pages */
	bool adopted;
	uint64_t populated_bytes, populate_ns;
	Vmm__Migration__Header *header;
	struct mig_peer source;	 /* what the source said it can do */
	struct mig_state_in saved; /* kept until End proves the stream whole */
	uint64_t load_ns;
	bool guest_paused; /* Go said the operator had paused the guest */
};

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the return path ---- */

static int reply_sink(void *ctx, const void *data, size_t len, struct vmm_error *err)
{
	struct mig_dest *d = ctx;
	if (!d->conn_open || d->uri.kind == MIG_FILE)
		return vmm_error_set(err, -ENOTCONN, "no connection to the source");
	return mig_conn_write_all(&d->conn, data, len, REPLY_TIMEOUT_MS, err);
}

/* One stream per incoming vmm: once its connections are in, nobody else
 * gets one. */
static void stop_listening(struct mig_dest *d)
{
	if (d->listen_fd < 0)
		return;
	close(d->listen_fd);
	d->listen_fd = -1;
	if (d->uri.kind == MIG_UNIX)
		unlink(d->uri.path);
}

/* ---- records ---- */

/* The spec to build for the stream's guest. The VM built at start-up was
 * resolved from this very command line: when it is the stream's guest
 * (machine type version, CPU model version, RAM, vCPUs), the command line
 * stands for the stream's versions, and vm_spec_adopt's checks (which load
 * the CPU model database: ~100 ms here, every migration) would only say so
 * again. Otherwise ask it. */
static int adopt_spec(struct mig_dest *d, const struct vm_spec *theirs, struct vm_spec *want,
		      struct vmm_error *err)
{
	const struct vm_spec *built = &d->vm->spec;
	if (strcmp(built->machine.name, theirs->machine.name) == 0 &&
	    strcmp(built->cpu_model, theirs->cpu_model) == 0 &&
	    built->mem_size == theirs->mem_size && built->ncpus == theirs->ncpus) {
		*want = *built;
		want->machine_origin = want->cpu_origin = want->mem_origin = want->ncpus_origin =
			SPEC_FROM_STREAM;
		return 0;
	}
	return vm_spec_adopt(&d->request, theirs, want, err);
}

static int on_header(struct mig_dest *d, const struct mig_record *rec, struct vmm_error *err)
{
	int r;
	if (d->header)
		return vmm_error_set(err, -EPROTO, "a second header record");
	if ((r = mig_unpack(rec, &vmm__migration__header__descriptor,
			    (ProtobufCMessage **)&d->header, err)) < 0)
		return r;
	const Vmm__Migration__Header *h = d->header;
	struct vm_spec theirs, want;
	if ((r = mig_peer_from_header(h, &d->source, err)) < 0 ||
	    (r = mig_header_check_basic(h, err)) < 0 || (r = mig_header_to_spec(h, &theirs, err)) < 0)
		return r;
	if ((r = adopt_spec(d, &theirs, &want, err)) < 0)
		return r;
	fprintf(stderr, "vmm: incoming guest: machine %s, cpu model %s, %llu MiB, %u vCPU%s, from %s "
		"(vmm %s, format %u.%u)\n", h->machine_type, h->cpu_model_spec,
		(unsigned long long)(h->ram_size >> 20), h->vcpu_count, h->vcpu_count == 1 ? "" : "s",
		h->source_host ? h->source_host : "?", d->source.vmm_version, d->source.major,
		d->source.minor);
	/* The VM built at start-up from the command line serves when the
	 * stream describes the same guest; otherwise build the stream's. */
	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	d->vm_touched = true; /* from here on a failure leaves a VM to rebuild */
	if (!vm_spec_same_guest(&d->vm->spec, &want) &&
	    (r = vm_recreate(d->vm, &want, err)) < 0)
		return vmm_error_prefix(err, "cannot build the guest here");
	if ((r = mig_header_check_vm(h, d->vm, err)) < 0 ||
	    (r = vm_set_tsc_khz(d->vm, h->tsc_khz, err)) < 0)
		return r;
	d->local = h->local;
	d->nconns = h->connections > 1 ? h->connections : 1;
	if (d->local && d->uri.kind != MIG_UNIX)
		return vmm_error_set(err, -EPROTO, "a local move (the guest's memory by descriptor) "
				     "needs a unix: socket");
	if (d->local && d->nconns > 1)
		return vmm_error_set(err, -EPROTO, "a local move on %u connections", d->nconns);
	if (d->nconns > MIG_MAX_CONNECTIONS)
		return vmm_error_set(err, -EPROTO, "the source wants %u connections, at most %u",
				     d->nconns, MIG_MAX_CONNECTIONS);
	if ((r = mig_ram_in_init(&d->ram, d->vm, d->nconns, err)) < 0)
		return r;
	d->ram_ready = true;
	if ((r = mig_ram_rx_init(&d->rx, &d->ram, 0, err)) < 0)
		return r;
	d->rx_ready = true;
	if ((r = mig_state_in_init(&d->saved, d->vm, err)) < 0)
		return r;
	d->state_ready = true;
	d->acks = d->uri.kind != MIG_FILE && (d->source.caps & MIG_CAP_ACK);
	d->committed = true; /* this connection is the source: its failures end us */
	if (d->nconns == 1) { /* the session has all its connections */
		mig_screen_stop(d->screen, "the source's stream was accepted on another connection");
		d->screen = NULL;
	}
	if (d->uri.kind == MIG_FILE || !(d->source.caps & MIG_CAP_ACCEPTED))
		return 0;
	Vmm__Migration__Accepted acc = VMM__MIGRATION__ACCEPTED__INIT;
	const char *caps[16];
	acc.build_ns = now_ns(CLOCK_MONOTONIC) - t0;
	mig_caps_to_accepted(&acc, caps, sizeof(caps) / sizeof(caps[0]));
	if ((r = mig_write_record(&d->reply, MIG_REC_ACCEPTED, &acc.base, err)) < 0)
		return r;
	if (d->nconns == 1) {
		stop_listening(d);
		return 0;
	}
	/* The source opens its data connections once it has read Accepted. */
	struct mig_dest_multi_cfg mc = {
		.screen = d->screen,
		.session = h->session_id.data,
		.session_len = h->session_id.len,
		.connections = d->nconns,
		.ram = &d->ram,
		.acks = d->acks,
		.cancel = &d->cancel,
		.timeout_ms = DATA_CONNS_TIMEOUT_MS,
		.idle_ms = IDLE_TIMEOUT_MS,
	};
	r = mig_dest_multi_accept(&d->multi, &mc, err);
	mig_screen_stop(d->screen, "the source's connections were all in");
	d->screen = NULL;
	stop_listening(d); /* one migration per incoming vmm: all its connections are in */
	return r;
}

static int on_map(struct mig_dest *d, const struct mig_record *rec, struct vmm_error *err)
{
	int r;
	if (d->local)
		return vmm_error_set(err, -EPROTO, "a RAM map in a local move");
	if (!d->populate && (r = mig_populate_start(&d->populate, &d->vm->mem, &d->ram, err)) < 0)
		return r;
	return mig_populate_map(d->populate, rec, err);
}

static int on_mem_fd(struct mig_dest *d, const struct mig_record *rec, struct vmm_error *err)
{
	if (!d->local || d->adopted)
		return vmm_error_set(err, -EPROTO, "a mem-fd record %s",
				     d->adopted ? "twice" : "in a stream that is not a local move");
	int r = mig_local_adopt(&d->conn, d->vm, rec, err);
	if (r < 0)
		return r;
	d->adopted = true;
	Vmm__Migration__Ack a = VMM__MIGRATION__ACK__INIT;
	a.memory_adopted = true;
	return mig_write_record(&d->reply, MIG_REC_ACK, &a.base, err);
}

static int on_ram(struct mig_dest *d, const struct mig_record *rec, struct vmm_error *err)
{
	if (d->local)
		return vmm_error_set(err, -EPROTO, "RAM pages in a local move (the memory is shared)");
	int r = rec->type == MIG_REC_RAM
			? mig_ram_rx_batch(&d->rx, rec, err)
			: mig_ram_rx_pages(&d->rx, rec, &d->in, IDLE_TIMEOUT_MS, err);
	if (r == 0 && d->acks)
		r = mig_rx_ack(&d->rx, &d->reply, &d->in, false, err);
	return r;
}

static int start_guest(struct mig_dest *d, struct vmm_error *err)
{
	/* devices: the guest is ours now (e.g. take the image write locks) */
	int r = vm_devices_activate(d->vm, err);
	if (r < 0 || (r = vm_start(d->vm, err)) < 0)
		return r;
	d->state = D_RUNNING;
	return 0;
}

static int on_end(struct mig_dest *d, const struct mig_record *rec, struct vmm_error *err)
{
	Vmm__Migration__End *end;
	int r = mig_unpack(rec, &vmm__migration__end__descriptor, (ProtobufCMessage **)&end, err);
	if (r < 0)
		return r;
	r = mig_ram_rx_end(&d->rx, rec, end->checksum, end->records, end->ram_pages, err);
	protobuf_c_message_free_unpacked(&end->base, NULL);
	if (r < 0)
		return r;
	if (d->local && !d->adopted)
		return vmm_error_set(err, -EPROTO, "a local move whose memory never came");
	/* Never a guest with a connection's data still missing: every data
	 * connection must have delivered its DataEnd, checked. */
	if (d->multi && (r = mig_dest_multi_finish(d->multi, err)) < 0)
		return r;
	if ((r = mig_ram_in_check(&d->ram, err)) < 0)
		return r;
	/* Every page is in: the populate threads have nothing left to do. Tell
	 * them, but do not wait here: one may be in the middle of a step of
	 * faults, and this is downtime. They are joined once the guest runs. */
	if (d->populate)
		mig_populate_request_stop(d->populate);
	d->seen_end = true;
	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	if ((r = mig_sections_load(&d->saved, err)) < 0)
		return r;
	d->load_ns = now_ns(CLOCK_MONOTONIC) - t0;
	if (d->uri.kind == MIG_FILE) { /* no source to ask: the snapshot is ours */
		if ((r = start_guest(d, err)) < 0)
			return r;
		snprintf(d->msg, sizeof(d->msg), "restored from snapshot");
		return 0;
	}
	Vmm__Migration__Ready ready = VMM__MIGRATION__READY__INIT;
	ready.load_ns = d->load_ns;
	d->state = D_WAIT_GO;
	return mig_write_record(&d->reply, MIG_REC_READY, &ready.base, err);
}

static int on_go(struct mig_dest *d, const struct mig_record *rec, struct vmm_error *err)
{
	Vmm__Migration__Go *go;
	int r = mig_unpack(rec, &vmm__migration__go__descriptor, (ProtobufCMessage **)&go, err);
	if (r < 0)
		return r;
	d->guest_paused = go->paused && (d->source.caps & MIG_CAP_GO_PAUSED);
	protobuf_c_message_free_unpacked(&go->base, NULL);
	if (d->guest_paused)
		vm_pause(d->vm); /* the vCPU threads start parked; `cont` releases them */
	r = start_guest(d, err);
	if (r < 0)
		return r;
	Vmm__Migration__Resumed res = VMM__MIGRATION__RESUMED__INIT;
	res.resume_unix_ns = now_ns(CLOCK_REALTIME);
	struct vmm_error ignored; /* the guest runs here now, whatever the source hears */
	mig_write_record(&d->reply, MIG_REC_RESUMED, &res.base, &ignored);
	snprintf(d->msg, sizeof(d->msg), "migration completed");
	return 0;
}

static int on_record(struct mig_dest *d, const struct mig_record *rec, struct vmm_error *err)
{
	if (d->state == D_WAIT_GO) {
		if (rec->type != MIG_REC_GO)
			return vmm_error_set(err, -EPROTO, "%s record after the end record",
					     mig_record_name(rec->type));
		return on_go(d, rec, err);
	}
	if (!d->header && rec->type != MIG_REC_HEADER)
		return vmm_error_set(err, -EPROTO, "stream starts with a %s record, not the header",
				     mig_record_name(rec->type));
	switch (rec->type) {
	case MIG_REC_HEADER:
		return on_header(d, rec, err);
	case MIG_REC_RAM:
	case MIG_REC_RAM_PAGES:
		return on_ram(d, rec, err);
	case MIG_REC_RAM_MAP:
		return on_map(d, rec, err);
	case MIG_REC_MEM_FD:
		return on_mem_fd(d, rec, err);
	case MIG_REC_END:
		return on_end(d, rec, err);
	case MIG_REC_GO:
		return vmm_error_set(err, -EPROTO, "go before the end of the stream");
	default: {
		const struct mig_section *sec = mig_section_find(rec->type);
		if (!sec)
			return vmm_error_set(err, -EPROTO, "unexpected %s record",
					     mig_record_name(rec->type));
		return sec->receive(&d->saved, rec, err);
	}
	}
}

/* ---- the worker ---- */

static uint64_t mono_ms(void)
{
	return now_ns(CLOCK_MONOTONIC) / 1000000;
}

/* How long the next read may wait, by where the stream is: a candidate
 * has until its deadline to deliver an acceptable header. */
static unsigned read_timeout(const struct mig_dest *d)
{
	if (!d->committed) {
		uint64_t now = mono_ms();
		return d->deadline_ms > now ? (unsigned)(d->deadline_ms - now) : 1;
	}
	return d->state == D_WAIT_GO ? GO_TIMEOUT_MS : IDLE_TIMEOUT_MS;
}

/* Whether a read failed in the transport (not in what it carried). */
static bool link_error(int r)
{
	return r == -ECONNRESET || r == -EPIPE || r == -EIO || r == -ENOTCONN ||
	       r == -ECONNABORTED || r == -EHOSTUNREACH || r == -ENETUNREACH;
}

/* Reads and applies the stream until the guest runs here or it fails. */
static int receive(struct mig_dest *d, struct vmm_error *err)
{
	d->state = D_RECEIVING;
	int r;
	if ((r = mig_in_init(&d->in, &d->conn, err)) < 0)
		return r;
	d->in_ready = true;
	if ((r = mig_writer_init(&d->reply, reply_sink, d, err)) < 0)
		return r;
	d->reply_ready = true;
	if ((r = mig_in_preamble(&d->in, read_timeout(d), err)) < 0)
		return r == -ETIMEDOUT ? r : vmm_error_prefix(err, "incoming migration refused");
	while (d->state != D_RUNNING) {
		/* About to wait for the source: tell it what is applied, so its
		 * backlog and rate are the truth. */
		if (d->acks && d->rx_ready && !mig_conn_input_pending(&d->conn) &&
		    (r = mig_rx_ack(&d->rx, &d->reply, &d->in, true, err)) < 0)
			return r;
		struct mig_record rec;
		r = mig_in_next(&d->in, &rec, read_timeout(d), err);
		if (r == -ECANCELED && d->multi && mig_dest_multi_failed(d->multi, err))
			return vmm_error_prefix(err, "incoming migration refused");
		if (r == -ECONNRESET && !err->msg[0]) {
			if (d->uri.kind == MIG_FILE)
				return vmm_error_set(err, -EBADMSG, "the file ends before the end "
						     "record (truncated?)");
			return vmm_error_set(err, -ECONNRESET,
					     "the source closed the connection before %s",
					     d->seen_end ? "handing the guest over"
							 : "the end of the stream");
		}
		if (r == -ETIMEDOUT || r == -ECANCELED)
			return r;
		if (link_error(r) && d->committed)
			return vmm_error_prefix(err, "the connection to the source broke before %s",
						d->seen_end ? "it handed the guest over"
							    : "the end of the stream");
		if (r < 0)
			return vmm_error_prefix(err, "incoming migration refused");
		if ((r = on_record(d, &rec, err)) < 0) {
			/* cancelled because a data connection failed: say that one's why */
			if (r == -ECANCELED && d->multi)
				mig_dest_multi_failed(d->multi, err);
			return vmm_error_prefix(err, "incoming migration refused");
		}
	}
	/* The guest runs: anything after Go is not read (the source closes). */
	return 0;
}

/* Tells the source why (if it can still hear), and never starts the guest. */
static void refuse(struct mig_dest *d, const struct vmm_error *why)
{
	if (!d->conn_open || d->uri.kind == MIG_FILE || !d->reply_ready || d->said_why)
		return;
	d->said_why = true;
	Vmm__Migration__Refused ref = VMM__MIGRATION__REFUSED__INIT;
	ref.reason = (char *)why->msg;
	struct vmm_error ignored;
	mig_write_record(&d->reply, MIG_REC_REFUSED, &ref.base, &ignored);
	mig_conn_shutdown_write(&d->conn); /* flushes: the source reads the reason, then EOF */
}

/* Forgets everything one connection left, so the next starts clean. */
static void session_reset(struct mig_dest *d)
{
	mig_dest_multi_close(d->multi);
	d->multi = NULL;
	mig_populate_stop(d->populate, NULL, NULL);
	d->populate = NULL;
	if (d->header)
		protobuf_c_message_free_unpacked(&d->header->base, NULL);
	d->header = NULL;
	if (d->state_ready)
		mig_state_in_free(&d->saved);
	if (d->rx_ready)
		mig_ram_rx_free(&d->rx);
	if (d->ram_ready)
		mig_ram_in_free(&d->ram);
	if (d->in_ready)
		mig_in_free(&d->in);
	if (d->reply_ready)
		mig_writer_free(&d->reply);
	d->state_ready = d->rx_ready = d->ram_ready = d->in_ready = d->reply_ready = false;
	d->seen_end = d->said_why = false;
	d->nconns = 0;
	d->acks = d->local = d->adopted = false;
	memset(&d->source, 0, sizeof(d->source));
	memset(&d->tls_info, 0, sizeof(d->tls_info));
	if (d->conn_open)
		mig_conn_close(&d->conn);
	d->conn_open = false;
}

/* The connection being served, for query-migrate. */
static void publish(struct mig_dest *d)
{
	pthread_mutex_lock(&d->info_lock);
	snprintf(d->info.peer, sizeof(d->info.peer), "%s", d->conn.peer);
	d->info.tls = d->tls_info;
	d->info.tls_required = d->tls != NULL;
	pthread_mutex_unlock(&d->info_lock);
}

/* A candidate dropped: logged and counted (also from screening threads). */
static void dropped(void *ctx, const char *peer, const char *why)
{
	struct mig_dest *d = ctx;
	unsigned n = atomic_fetch_add(&d->drops, 1) + 1;
	fprintf(stderr, "vmm: incoming connection dropped (%s; %u so far): %s\n", peer, n, why);
	pthread_mutex_lock(&d->info_lock);
	d->info.dropped++;
	if (strstr(why, peer))
		snprintf(d->info.last_dropped, sizeof(d->info.last_dropped), "%.800s", why);
	else
		snprintf(d->info.last_dropped, sizeof(d->info.last_dropped), "%.300s: %.500s", peer,
			 why);
	pthread_mutex_unlock(&d->info_lock);
}

/*
 * The listening destination's session loop: serves the connections that
 * passed screening, one at a time, until one of them has delivered the
 * guest (0) or failed after its header was accepted (< 0: it was the
 * source, so its failure ends us). A candidate that fails before that is
 * dropped; if it got as far as rebuilding or writing into the VM, the VM
 * is rebuilt from the command line before the next one may load, so none
 * of a stranger's bytes survive into the real guest. Only one stream is
 * ever loaded.
 */
static int dest_accept_session(struct mig_dest *d, struct vmm_error *err)
{
	struct mig_screen_cfg sc = {
		.listen_fd = d->listen_fd,
		.uri = &d->uri,
		.tls = d->tls,
		.timeout_ms = HANDSHAKE_TIMEOUT_MS,
		.dropped = dropped,
		.ctx = d,
	};
	int r = mig_screen_start(&d->screen, &sc, err);
	if (r < 0)
		return r;
	for (;;) {
		if (d->vm_touched) {
			if ((r = vm_recreate(d->vm, &d->fresh_spec, err)) < 0)
				return vmm_error_prefix(err, "rebuilding the VM after a dropped "
							     "connection");
			d->vm_touched = false;
			fprintf(stderr, "vmm: the VM was rebuilt from the command line: nothing of "
				"the dropped connection's is left in it\n");
		}
		if ((r = mig_screen_next(d->screen, &d->conn, &d->tls_info, &d->cancel, 0, err)) < 0)
			return r;
		d->conn_open = true;
		d->deadline_ms = mono_ms() + HANDSHAKE_TIMEOUT_MS;
		if (d->tls_info.encrypted) {
			char desc[400];
			mig_tls_describe(&d->tls_info, desc, sizeof(desc));
			fprintf(stderr, "vmm: %s: %s\n", d->conn.peer, desc);
		}
		publish(d);
		r = receive(d, err);
		if (r == 0 || r == -ECANCELED || d->committed)
			return r;
		refuse(d, err); /* a peer that can still hear learns why */
		dropped(d, d->conn.peer, err->msg);
		session_reset(d);
		d->state = D_WAITING;
	}
}

static void *dest_main(void *arg)
{
	pthread_setname_np(pthread_self(), "mig-dest");
	struct mig_dest *d = arg;
	struct vmm_error err = {0};
	int r;
	if (d->uri.kind == MIG_FILE) {
		r = mig_conn_open_file(&d->conn, &d->uri, false, &d->cancel, &err);
		d->conn_open = r == 0;
		d->committed = true; /* a file is what the operator chose */
		if (r == 0)
			r = receive(d, &err);
	} else {
		r = dest_accept_session(d, &err);
		mig_screen_stop(d->screen, "the destination stopped listening");
		d->screen = NULL;
	}
	stop_listening(d);
	if (d->populate) { /* after the guest started: never part of the downtime */
		mig_populate_stop(d->populate, &d->populated_bytes, &d->populate_ns);
		d->populate = NULL;
	}
	if (r == 0 && d->uri.kind != MIG_FILE)
		snprintf(d->msg, sizeof(d->msg),
			 "migration completed (%llu pages over %u connection%s%s; %llu MiB mapped "
			 "ahead, %llu ms of populate threads)",
			 (unsigned long long)atomic_load(&d->ram.pages), d->nconns,
			 d->nconns == 1 ? "" : "s", d->local ? ", local: memory shared" : "",
			 (unsigned long long)(d->populated_bytes >> 20),
			 (unsigned long long)(d->populate_ns / 1000000));
	if (r < 0 && r != -ECANCELED && d->committed) {
		if (d->uri.kind == MIG_FILE && !strstr(err.msg, "snapshot"))
			vmm_error_prefix(&err, "snapshot %s", d->uri.path);
		refuse(d, &err);
	}
	if (r < 0) {
		d->state = D_FAILED;
		d->result = err.code ? err.code : -EPROTO;
		snprintf(d->msg, sizeof(d->msg), "%.900s%s", err.msg,
			 r == -ECANCELED ? "" : "; the guest was not started here");
	} else {
		d->result = 0;
	}
	if (d->conn_open && d->uri.kind != MIG_FILE)
		mig_conn_shutdown_write(&d->conn);
	atomic_store(&d->finished, true);
	uv_async_send(&d->done_async);
	return NULL;
}

static void on_done(uv_async_t *a)
{
	struct mig_dest *d = a->data;
	if (!atomic_load(&d->finished) || !d->done)
		return;
	mig_dest_done_fn done = d->done;
	d->done = NULL; /* once */
	done(d, d->result, d->msg, d->done_ctx);
}

/* Whether a tcp: listening address is reachable from other hosts. */
static bool non_loopback(const struct mig_uri *u)
{
	return u->kind == MIG_TCP && strcmp(u->host, "localhost") != 0 &&
	       strncmp(u->host, "127.", 4) != 0 && strcmp(u->host, "::1") != 0;
}

int mig_dest_start(uv_loop_t *loop, const char *uri, struct vm *vm,
		   const struct vm_request *request, const struct mig_tls_config *tls,
		   mig_dest_done_fn done, void *ctx, struct mig_dest **out, struct vmm_error *err)
{
	*out = NULL;
	struct mig_dest *d = calloc(1, sizeof(*d));
	if (!d)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	d->loop = loop;
	d->vm = vm;
	d->request = *request;
	d->done = done;
	d->done_ctx = ctx;
	d->listen_fd = -1;
	d->conn.fd = -1;
	d->cancel.fd = -1;
	int r;
	pthread_mutex_init(&d->info_lock, NULL);
	if ((r = mig_uri_parse(uri, &d->uri, err)) < 0 || (r = mig_cancel_init(&d->cancel, err)) < 0)
		goto fail;
	if (tls && mig_tls_configured(tls)) {
		if (d->uri.kind != MIG_TCP) {
			r = vmm_error_set(err, -EINVAL, "--incoming %s: TLS is for tcp: (a unix: "
					  "socket is guarded by its file mode, a file by its owner)",
					  uri);
			goto fail;
		}
		d->tls_cfg = *tls;
		if ((r = mig_tls_creds_load(tls, true, &d->tls, err)) < 0)
			goto fail;
	} else if (non_loopback(&d->uri)) {
		fprintf(stderr, "vmm: warning: --incoming %s listens beyond this host without TLS: "
			"anyone who can reach the port can send a guest that then runs here, and "
			"read nothing less than the whole guest memory of a real source on the "
			"way; use --tls-creds (or --tls-psk), or a loopback address\n", uri);
	}
	/* Listen now, so a bad address is a start-up error, not a late one. */
	if (d->uri.kind != MIG_FILE) {
		if ((r = mig_conn_listen(&d->uri, &d->listen_fd, err)) < 0)
			goto fail;
		fprintf(stderr, "vmm: waiting for an incoming migration on %s\n", uri);
	}
	uv_async_init(loop, &d->done_async, on_done);
	d->done_async.data = d;
	*out = d;
	return 0;
fail:
	mig_tls_creds_free(d->tls);
	pthread_mutex_destroy(&d->info_lock);
	mig_cancel_free(&d->cancel);
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	free(d);
	return r;
}

int mig_dest_run(struct mig_dest *d, struct vmm_error *err)
{
	d->fresh_spec = d->vm->spec; /* what a dropped candidate's VM is rebuilt to */
	int r = pthread_create(&d->thread, NULL, dest_main, d);
	if (r != 0)
		return vmm_error_set(err, -r, "incoming migration: cannot start its thread: %s",
				     strerror(r));
	d->thread_started = true;
	return 0;
}

bool mig_dest_guest_paused(const struct mig_dest *d)
{
	return d->guest_paused;
}

void mig_dest_info(struct mig_dest *d, struct mig_dest_info *out)
{
	pthread_mutex_lock(&d->info_lock);
	*out = d->info;
	pthread_mutex_unlock(&d->info_lock);
}

static void on_async_closed(uv_handle_t *h)
{
	struct mig_dest *d = h->data;
	pthread_mutex_destroy(&d->info_lock);
	free(d);
}

void mig_dest_close(struct mig_dest *d)
{
	if (!d)
		return;
	mig_cancel_raise(&d->cancel);
	if (d->thread_started)
		pthread_join(d->thread, NULL);
	if (d->listen_fd >= 0) {
		close(d->listen_fd);
		if (d->uri.kind == MIG_UNIX)
			unlink(d->uri.path);
	}
	session_reset(d);
	mig_tls_creds_free(d->tls);
	mig_cancel_free(&d->cancel);
	uv_close((uv_handle_t *)&d->done_async, on_async_closed);
}

/* migration/dest.c: the incoming side (see dest.h and STREAM.md). */
#include "migration/dest.h"
#include "migration/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILE_CHUNK (4u << 20)
#define MAX_DEVICES 16

enum dest_state { D_WAITING, D_RECEIVING, D_WAIT_GO, D_RUNNING, D_FAILED };

struct mig_dest {
	uv_loop_t *loop;
	struct vm *vm;
	const struct vmm_config *cmdline;
	struct vmm_config cfg; /* what the VM is built from: cmdline adapted to the stream */
	char cpu_spec[256];
	struct mig_uri uri;
	mig_dest_done_fn done;
	void *done_ctx;
	bool done_called;
	enum dest_state state;
	unsigned open_handles; /* freed when this drops to 0 after close */
	bool closing;

	union {
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} listener, conn;
	bool listener_open, conn_open;
	int file_fd;
	uv_idle_t file_idle;
	bool idle_open;
	uint8_t *file_buf;

	struct mig_reader reader;
	struct mig_writer reply;
	struct mig_ram_receiver ram;
	bool ram_ready, vm_created, seen_end;
	Vmm__Migration__Header *header;
	Vmm__Migration__VcpuState *vcpus[VMM_MAX_CPUS];
	Vmm__Migration__IrqchipState *irqchip;
	Vmm__Migration__PitState *pit;
	Vmm__Migration__ClockState *clock;
	Vmm__Migration__DeviceState *devs[MAX_DEVICES];
	unsigned ndevs;
	uint64_t load_ns;
	bool guest_paused; /* Go said the operator had paused the guest */
};

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void free_records(struct mig_dest *d)
{
	if (d->header)
		protobuf_c_message_free_unpacked(&d->header->base, NULL);
	for (unsigned i = 0; i < VMM_MAX_CPUS; i++)
		if (d->vcpus[i])
			protobuf_c_message_free_unpacked(&d->vcpus[i]->base, NULL);
	if (d->irqchip)
		protobuf_c_message_free_unpacked(&d->irqchip->base, NULL);
	if (d->pit)
		protobuf_c_message_free_unpacked(&d->pit->base, NULL);
	if (d->clock)
		protobuf_c_message_free_unpacked(&d->clock->base, NULL);
	for (unsigned i = 0; i < d->ndevs; i++)
		protobuf_c_message_free_unpacked(&d->devs[i]->base, NULL);
	d->header = NULL;
	memset(d->vcpus, 0, sizeof(d->vcpus));
	d->irqchip = NULL;
	d->pit = NULL;
	d->clock = NULL;
	d->ndevs = 0;
}

static void maybe_free(struct mig_dest *d)
{
	if (!d->closing || d->open_handles)
		return;
	free_records(d);
	if (d->ram_ready)
		mig_ram_receiver_free(&d->ram);
	mig_reader_free(&d->reader);
	mig_writer_free(&d->reply);
	free(d->file_buf);
	free(d);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct mig_dest *d = h->data;
	d->open_handles--;
	maybe_free(d);
}

static void close_handle(struct mig_dest *d, uv_handle_t *h, bool *open)
{
	if (!*open)
		return;
	*open = false;
	h->data = d;
	uv_close(h, on_handle_closed);
}

static void finish(struct mig_dest *d, int result, const char *msg)
{
	if (d->done_called)
		return;
	d->done_called = true;
	if (result < 0)
		d->state = D_FAILED;
	d->done(d, result, msg, d->done_ctx);
}

/* ---- the return path ---- */

struct reply_req {
	uv_write_t req;
	uint8_t data[];
};

static void on_reply_written(uv_write_t *req, int status)
{
	(void)status; /* a failure shows up as a read error or EOF */
	free(req);
}

static int reply_sink(void *ctx, const void *data, size_t len, struct vmm_error *err)
{
	struct mig_dest *d = ctx;
	if (!d->conn_open)
		return vmm_error_set(err, -ENOTCONN, "no connection to the source");
	struct reply_req *w = malloc(sizeof(*w) + len);
	if (!w)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	memcpy(w->data, data, len);
	uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)len);
	int r = uv_write(&w->req, &d->conn.stream, &buf, 1, on_reply_written);
	if (r < 0) {
		free(w);
		return vmm_error_set(err, r, "replying to the source: %s", uv_strerror(r));
	}
	return 0;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	(void)status;
	struct mig_dest *d = req->data;
	free(req);
	close_handle(d, (uv_handle_t *)&d->conn, &d->conn_open);
}

/* Closes the connection once everything queued has been written. */
static void close_conn_gracefully(struct mig_dest *d)
{
	if (!d->conn_open)
		return;
	uv_read_stop(&d->conn.stream);
	uv_shutdown_t *req = malloc(sizeof(*req));
	if (req) {
		req->data = d;
		if (uv_shutdown(req, &d->conn.stream, on_shutdown) == 0)
			return;
		free(req);
	}
	close_handle(d, (uv_handle_t *)&d->conn, &d->conn_open);
}

/* Refuses the stream: the source hears why, the guest never starts here. */
static void refuse(struct mig_dest *d, const struct vmm_error *why)
{
	if (d->state == D_FAILED || d->state == D_RUNNING)
		return;
	if (d->conn_open) {
		Vmm__Migration__Refused ref = VMM__MIGRATION__REFUSED__INIT;
		ref.reason = (char *)why->msg;
		struct vmm_error ignored;
		mig_write_record(&d->reply, MIG_REC_REFUSED, &ref.base, &ignored);
		close_conn_gracefully(d);
	}
	if (d->idle_open)
		uv_idle_stop(&d->file_idle);
	d->state = D_FAILED;
	finish(d, why->code ? why->code : -EPROTO, why->msg);
}

/* ---- records ---- */

static int on_header(struct mig_dest *d, const struct mig_record *rec, struct vmm_error *err)
{
	int r;
	if (d->header)
		return vmm_error_set(err, -EPROTO, "a second header record");
	if ((r = mig_unpack(rec, &vmm__migration__header__descriptor,
			    (ProtobufCMessage **)&d->header, err)) < 0)
		return r;
	const Vmm__Migration__Header *h = d->header;
	if ((r = mig_header_check_basic(h, err)) < 0)
		return r;
	struct vmm_config want;
	char spec[sizeof(d->cpu_spec)];
	if ((r = mig_header_adapt_config(h, d->cmdline, &want, spec, sizeof(spec), err)) < 0)
		return r;
	fprintf(stderr, "vmm: incoming guest: machine %s, cpu model %s, %llu MiB, %u vCPU%s, from %s "
		"(vmm %s)\n", h->machine_type, h->cpu_model_spec,
		(unsigned long long)(h->ram_size >> 20), h->vcpu_count, h->vcpu_count == 1 ? "" : "s",
		h->source_host ? h->source_host : "?", h->vmm_version ? h->vmm_version : "?");
	/* The VM built at start-up from the command line serves when the
	 * stream names the same versions; otherwise build the stream's. */
	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	if (strcmp(d->vm->machine.name, h->machine_type) != 0 ||
	    strcmp(guest_cpu_name(d->vm->cpu), h->cpu_model) != 0) {
		void (*notify)(struct vm *) = d->vm->exit_notify;
		void *loop_data = d->vm->loop_data;
		vm_destroy(d->vm);
		vm_init(d->vm);
		d->vm->exit_notify = notify;
		d->vm->loop_data = loop_data;
		memcpy(d->cpu_spec, spec, sizeof(spec));
		d->cfg = want;
		d->cfg.cpu_model = d->cpu_spec;
		if ((r = vm_create(d->vm, &d->cfg, err)) < 0)
			return vmm_error_prefix(err, "cannot build the guest here");
	}
	if ((r = mig_header_check_vm(h, d->vm, err)) < 0)
		return r;
	if ((r = mig_ram_receiver_init(&d->ram, d->vm, err)) < 0)
		return r;
	d->ram_ready = true;
	if (d->uri.kind == MIG_FILE)
		return 0;
	Vmm__Migration__Accepted acc = VMM__MIGRATION__ACCEPTED__INIT;
	acc.build_ns = now_ns(CLOCK_MONOTONIC) - t0;
	return mig_write_record(&d->reply, MIG_REC_ACCEPTED, &acc.base, err);
}

static int keep(const struct mig_record *rec, const ProtobufCMessageDescriptor *desc,
		ProtobufCMessage **slot, const char *what, struct vmm_error *err)
{
	if (*slot)
		return vmm_error_set(err, -EPROTO, "a second %s record", what);
	return mig_unpack(rec, desc, slot, err);
}

static int on_state_record(struct mig_dest *d, const struct mig_record *rec, struct vmm_error *err)
{
	ProtobufCMessage *m;
	int r;
	switch (rec->type) {
	case MIG_REC_VCPU: {
		if ((r = mig_unpack(rec, &vmm__migration__vcpu_state__descriptor, &m, err)) < 0)
			return r;
		Vmm__Migration__VcpuState *st = (Vmm__Migration__VcpuState *)m;
		if (st->index >= d->vm->ncpus || d->vcpus[st->index]) {
			unsigned idx = st->index;
			protobuf_c_message_free_unpacked(m, NULL);
			return vmm_error_set(err, -EPROTO, "vcpu record %u out of range or repeated", idx);
		}
		d->vcpus[st->index] = st;
		return 0;
	}
	case MIG_REC_IRQCHIP:
		return keep(rec, &vmm__migration__irqchip_state__descriptor,
			    (ProtobufCMessage **)&d->irqchip, "irqchip", err);
	case MIG_REC_PIT:
		return keep(rec, &vmm__migration__pit_state__descriptor, (ProtobufCMessage **)&d->pit,
			    "pit", err);
	case MIG_REC_CLOCK:
		return keep(rec, &vmm__migration__clock_state__descriptor,
			    (ProtobufCMessage **)&d->clock, "clock", err);
	case MIG_REC_DEVICE: {
		if ((r = mig_unpack(rec, &vmm__migration__device_state__descriptor, &m, err)) < 0)
			return r;
		Vmm__Migration__DeviceState *ds = (Vmm__Migration__DeviceState *)m;
		struct device *dev = ds->name ? vm_find_device(d->vm, ds->name) : NULL;
		bool dup = false;
		for (unsigned i = 0; i < d->ndevs && dev; i++)
			dup |= strcmp(d->devs[i]->name, ds->name) == 0;
		if (!dev || dup || d->ndevs == MAX_DEVICES) {
			r = vmm_error_set(err, -EPROTO, "device record %s: %s",
					  ds->name ? ds->name : "(unnamed)",
					  !dev ? "no such device in this machine" : "repeated");
			protobuf_c_message_free_unpacked(m, NULL);
			return r;
		}
		d->devs[d->ndevs++] = ds;
		return 0;
	}
	default:
		return vmm_error_set(err, -EPROTO, "unexpected %s record", mig_record_name(rec->type));
	}
}

/* Loads the final state in the order KVM needs. */
static int load_state(struct mig_dest *d, struct vmm_error *err)
{
	struct vm *vm = d->vm;
	int r;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (!d->vcpus[i])
			return vmm_error_set(err, -EPROTO, "stream incomplete: no state for vCPU %u", i);
	if (!d->irqchip || !d->pit || !d->clock)
		return vmm_error_set(err, -EPROTO, "stream incomplete: no %s state",
				     !d->irqchip ? "irqchip" : !d->pit ? "PIT" : "clock");
	for (unsigned i = 0; i < vm->ndevices; i++) {
		struct device *dev = &vm->devices[i];
		bool found = !dev->type->state;
		for (unsigned j = 0; j < d->ndevs && !found; j++)
			found = strcmp(d->devs[j]->name, dev->name) == 0;
		if (!found)
			return vmm_error_set(err, -EPROTO, "stream incomplete: no state for device %s",
					     dev->name);
	}
	for (unsigned i = 0; i < vm->ncpus; i++)
		if ((r = vcpu_state_load(vm->vcpus[i], d->vcpus[i], err)) < 0)
			return r;
	if ((r = pit_state_load(vm, d->pit, err)) < 0)
		return r;
	if ((r = irqchip_state_load(vm, d->irqchip, err)) < 0)
		return r;
	for (unsigned j = 0; j < d->ndevs; j++)
		if ((r = device_state_load(vm_find_device(vm, d->devs[j]->name), d->devs[j], err)) < 0)
			return r;
	return clock_state_load(vm, d->clock, err); /* last: right before the vCPUs run */
}

static int start_guest(struct mig_dest *d, struct vmm_error *err)
{
	if (d->cmdline->dump_cpuid) {
		int r = vm_dump_cpuid(d->vm, d->cmdline->dump_cpuid, err);
		if (r < 0)
			return r;
	}
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
	bool ok = end->checksum == rec->hash_before && end->records == rec->index;
	uint64_t pages = end->ram_pages;
	protobuf_c_message_free_unpacked(&end->base, NULL);
	if (!ok)
		return vmm_error_set(err, -EBADMSG, "stream checksum or record count mismatch: the "
				     "stream was corrupted");
	if (pages != d->ram.pages)
		return vmm_error_set(err, -EBADMSG, "stream announced %llu RAM pages, %llu arrived",
				     (unsigned long long)pages, (unsigned long long)d->ram.pages);
	d->seen_end = true;
	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	if ((r = load_state(d, err)) < 0)
		return r;
	d->load_ns = now_ns(CLOCK_MONOTONIC) - t0;
	if (d->uri.kind == MIG_FILE) { /* no source to ask: the snapshot is ours */
		mig_reader_finish(&d->reader);
		if ((r = start_guest(d, err)) < 0)
			return r;
		finish(d, 0, "restored from snapshot");
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
	d->guest_paused = go->paused;
	protobuf_c_message_free_unpacked(&go->base, NULL);
	if (d->guest_paused)
		vm_pause(d->vm); /* the vCPU threads start parked; `cont` releases them */
	r = start_guest(d, err);
	if (r < 0)
		return r;
	Vmm__Migration__Resumed res = VMM__MIGRATION__RESUMED__INIT;
	res.resume_unix_ns = now_ns(CLOCK_REALTIME);
	mig_write_record(&d->reply, MIG_REC_RESUMED, &res.base, err);
	mig_reader_finish(&d->reader);
	close_conn_gracefully(d);
	finish(d, 0, "migration completed");
	return 0;
}

static int on_record(void *ctx, const struct mig_record *rec, struct vmm_error *err)
{
	struct mig_dest *d = ctx;
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
		return mig_ram_apply(&d->ram, rec, err);
	case MIG_REC_END:
		return on_end(d, rec, err);
	case MIG_REC_GO:
		return vmm_error_set(err, -EPROTO, "go before the end of the stream");
	default:
		return on_state_record(d, rec, err);
	}
}

static void feed(struct mig_dest *d, const uint8_t *data, size_t len)
{
	struct vmm_error err = {0};
	if (mig_reader_feed(&d->reader, data, len, &err) < 0) {
		vmm_error_prefix(&err, "incoming migration refused");
		refuse(d, &err);
	}
}

static void lost_source(struct mig_dest *d, const char *why)
{
	if (d->state == D_RUNNING || d->state == D_FAILED)
		return;
	struct vmm_error err;
	vmm_error_set(&err, -ECONNRESET, "incoming migration failed: %s before %s; the guest was "
		      "not started here", why,
		      d->seen_end ? "handing the guest over" : "the end of the stream");
	d->state = D_FAILED;
	finish(d, err.code, err.msg);
}

/* ---- sockets ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct mig_dest *d = h->data;
	buf->base = (char *)d->file_buf;
	buf->len = FILE_CHUNK;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct mig_dest *d = s->data;
	if (n < 0) {
		lost_source(d, n == UV_EOF ? "the source closed the connection"
					   : uv_strerror((int)n));
		close_handle(d, (uv_handle_t *)&d->conn, &d->conn_open);
		return;
	}
	if (n > 0 && d->state != D_FAILED && d->state != D_RUNNING)
		feed(d, (const uint8_t *)buf->base, (size_t)n);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct mig_dest *d = server->data;
	if (status < 0 || d->conn_open)
		return;
	int r;
	if (d->uri.kind == MIG_TCP)
		r = uv_tcp_init(d->loop, &d->conn.tcp);
	else
		r = uv_pipe_init(d->loop, &d->conn.pipe, 0);
	if (r < 0)
		return;
	d->open_handles++;
	d->conn_open = true;
	d->conn.stream.data = d;
	if (uv_accept(server, &d->conn.stream) < 0) {
		close_handle(d, (uv_handle_t *)&d->conn, &d->conn_open);
		return;
	}
	if (d->uri.kind == MIG_TCP)
		uv_tcp_nodelay(&d->conn.tcp, 1);
	/* One stream per incoming vmm: stop listening. */
	close_handle(d, (uv_handle_t *)&d->listener, &d->listener_open);
	if (d->uri.kind == MIG_UNIX)
		unlink(d->uri.path);
	d->state = D_RECEIVING;
	uv_read_start(&d->conn.stream, on_alloc, on_read);
}

static int listen_socket(struct mig_dest *d, const char *uri, struct vmm_error *err)
{
	int r;
	if (d->uri.kind == MIG_TCP) {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
		const char *host = d->uri.host[0] ? d->uri.host : NULL;
		int g = getaddrinfo(host, d->uri.port, &hints, &ai);
		if (g != 0)
			return vmm_error_set(err, -EINVAL, "--incoming %s: %s", uri, gai_strerror(g));
		uv_tcp_init(d->loop, &d->listener.tcp);
		r = uv_tcp_bind(&d->listener.tcp, ai->ai_addr, 0);
		freeaddrinfo(ai);
	} else {
		struct stat st;
		if (lstat(d->uri.path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(d->uri.path); /* a stale socket from an earlier run */
		uv_pipe_init(d->loop, &d->listener.pipe, 0);
		r = uv_pipe_bind(&d->listener.pipe, d->uri.path);
		if (r == 0)
			chmod(d->uri.path, 0600);
	}
	d->open_handles++;
	d->listener_open = true;
	d->listener.stream.data = d;
	if (r == 0)
		r = uv_listen(&d->listener.stream, 1, on_connection);
	if (r < 0)
		return vmm_error_set(err, r, "--incoming %s: %s", uri, uv_strerror(r));
	fprintf(stderr, "vmm: waiting for an incoming migration on %s\n", uri);
	return 0;
}

/* ---- file ---- */

static void on_file_idle(uv_idle_t *h)
{
	struct mig_dest *d = h->data;
	ssize_t n = read(d->file_fd, d->file_buf, FILE_CHUNK);
	if (n < 0 && errno == EINTR)
		return;
	if (n <= 0) {
		uv_idle_stop(h);
		if (d->state != D_RUNNING && d->state != D_FAILED) {
			struct vmm_error err;
			vmm_error_set(&err, n < 0 ? -errno : -EBADMSG,
				      "snapshot %s: %s before the end record (truncated?)", d->uri.path,
				      n < 0 ? strerror(errno) : "file ends");
			refuse(d, &err);
		}
		return;
	}
	if (d->state == D_RUNNING) { /* bytes after the end record */
		uv_idle_stop(h);
		return;
	}
	feed(d, d->file_buf, (size_t)n);
	if (d->state == D_RUNNING || d->state == D_FAILED)
		uv_idle_stop(h);
}

int mig_dest_start(uv_loop_t *loop, const char *uri, struct vm *vm,
		   const struct vmm_config *cmdline, mig_dest_done_fn done, void *ctx,
		   struct mig_dest **out, struct vmm_error *err)
{
	struct mig_dest *d = calloc(1, sizeof(*d));
	if (!d)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	d->loop = loop;
	d->vm = vm;
	d->cmdline = cmdline;
	d->done = done;
	d->done_ctx = ctx;
	d->file_fd = -1;
	d->file_buf = malloc(FILE_CHUNK);
	int r;
	if (!d->file_buf)
		r = vmm_error_set(err, -ENOMEM, "out of memory");
	else if ((r = mig_uri_parse(uri, &d->uri, err)) < 0 ||
		 (r = mig_reader_init(&d->reader, true, on_record, d, err)) < 0 ||
		 (r = mig_writer_init(&d->reply, reply_sink, d, err)) < 0)
		;
	else if (d->uri.kind == MIG_FILE) {
		d->file_fd = open(d->uri.path, O_RDONLY | O_CLOEXEC);
		if (d->file_fd < 0) {
			r = vmm_error_set(err, -errno, "--incoming %s: %s", uri, strerror(errno));
		} else {
			uv_idle_init(loop, &d->file_idle);
			d->file_idle.data = d;
			d->open_handles++;
			d->idle_open = true;
			d->state = D_RECEIVING;
			uv_idle_start(&d->file_idle, on_file_idle);
		}
	} else {
		r = listen_socket(d, uri, err);
	}
	*out = d;
	if (r < 0)
		return r;
	/* Build the VM now, from the command line, while nothing waits on us:
	 * a migration then never waits for memory slots and vCPUs (a stream
	 * naming other versions gets its own VM in on_header). */
	d->cfg = *cmdline;
	d->vm_created = true; /* vm_create leaves a state vm_destroy can clean */
	return vm_create(vm, &d->cfg, err);
}

bool mig_dest_vm_created(const struct mig_dest *d)
{
	return d->vm_created;
}

bool mig_dest_guest_paused(const struct mig_dest *d)
{
	return d->guest_paused;
}

uint64_t mig_dest_bytes(const struct mig_dest *d)
{
	return d->reader.bytes;
}

void mig_dest_close(struct mig_dest *d)
{
	if (!d)
		return;
	d->closing = true;
	if (d->file_fd >= 0)
		close(d->file_fd);
	d->file_fd = -1;
	if (d->idle_open)
		uv_idle_stop(&d->file_idle);
	close_handle(d, (uv_handle_t *)&d->file_idle, &d->idle_open);
	close_handle(d, (uv_handle_t *)&d->listener, &d->listener_open);
	if (d->uri.kind == MIG_UNIX && d->state == D_WAITING)
		unlink(d->uri.path);
	close_handle(d, (uv_handle_t *)&d->conn, &d->conn_open);
	maybe_free(d);
}

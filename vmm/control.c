/* vmm/control.c: the control API's commands (see control.h, api.h). */
#include "vmm/control.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "core/devices/devices.h"
#include "migration/multiconn.h"

const char *vmm_control_status(struct vmm_control *c)
{
	if (!c->vm_running)
		return c->cfg->incoming ? "inmigrate" : "prelaunch";
	if (c->mig) {
		struct mig_info i;
		mig_source_info(c->mig, &i);
		if (i.status == MIG_STATUS_DEVICE)
			return "finish-migrate";
		if (mig_source_holds_pause(c->mig))
			return "postmigrate";
	}
	return c->user_paused ? "paused" : "running";
}

static int cmd_query_status(void *ctx, struct json_object *args, struct json_object **ret,
			    const char **cls, struct vmm_error *err)
{
	(void)args, (void)cls, (void)err;
	struct vmm_control *c = ctx;
	const char *st = vmm_control_status(c);
	*ret = json_object_new_object();
	json_object_object_add(*ret, "status", json_object_new_string(st));
	json_object_object_add(*ret, "running", json_object_new_boolean(strcmp(st, "running") == 0));
	return 0;
}

static int need_running_vm(struct vmm_control *c, const char **cls, struct vmm_error *err)
{
	if (c->vm_running)
		return 0;
	*cls = API_ERR_DEVICE_NOT_ACTIVE;
	return vmm_error_set(err, -EAGAIN, "the guest is not running yet (%s)",
			     vmm_control_status(c));
}

static int cmd_stop(void *ctx, struct json_object *args, struct json_object **ret,
		    const char **cls, struct vmm_error *err)
{
	(void)args, (void)ret;
	struct vmm_control *c = ctx;
	int r = need_running_vm(c, cls, err);
	if (r < 0)
		return r;
	if (!c->user_paused) {
		vm_pause(c->vm);
		c->user_paused = true;
	}
	return 0;
}

static int cmd_cont(void *ctx, struct json_object *args, struct json_object **ret,
		    const char **cls, struct vmm_error *err)
{
	(void)args, (void)ret;
	struct vmm_control *c = ctx;
	int r = need_running_vm(c, cls, err);
	if (r < 0)
		return r;
	if (c->mig && !mig_source_finished(c->mig))
		return vmm_error_set(err, -EBUSY, "a migration is running: cancel it first");
	if (c->mig && mig_source_memory_given(c->mig))
		return vmm_error_set(err, -EPERM,
				     "the guest's memory was handed to the destination (local move): "
				     "it must never run here again; check the destination");
	err->code = 0;
	if (c->mig && !mig_source_release_pause(c->mig, err) && err->code < 0)
		return err->code; /* a device cannot take the guest back (e.g. its image lock) */
	if (c->user_paused) {
		vm_resume(c->vm);
		c->user_paused = false;
	}
	return 0;
}

static int cmd_quit(void *ctx, struct json_object *args, struct json_object **ret,
		    const char **cls, struct vmm_error *err)
{
	(void)args, (void)ret, (void)cls, (void)err;
	struct vmm_control *c = ctx;
	vm_request_exit(c->vm, VM_EXIT_QUIT, 0, "quit requested on the control API");
	return 0;
}

static int cmd_migrate(void *ctx, struct json_object *args, struct json_object **ret,
		       const char **cls, struct vmm_error *err)
{
	(void)ret;
	struct vmm_control *c = ctx;
	int r = need_running_vm(c, cls, err);
	if (r < 0)
		return r;
	struct json_object *juri;
	if (!json_object_object_get_ex(args, "uri", &juri) || !json_object_is_type(juri, json_type_string))
		return vmm_error_set(err, -EINVAL, "migrate: argument \"uri\" (string) is required");
	bool local = false;
	struct json_object *jlocal;
	if (json_object_object_get_ex(args, "local", &jlocal)) {
		if (!json_object_is_type(jlocal, json_type_boolean))
			return vmm_error_set(err, -EINVAL, "migrate: \"local\" must be true or false");
		local = json_object_get_boolean(jlocal);
	}
	if (c->mig && !mig_source_finished(c->mig))
		return vmm_error_set(err, -EBUSY, "a migration is already running");
	if (c->mig && mig_source_memory_given(c->mig))
		return vmm_error_set(err, -EPERM, "the guest's memory was handed over (local move)");
	if (c->mig) {
		if (mig_source_holds_pause(c->mig))
			return vmm_error_set(err, -EBUSY,
					     "the guest is paused by the previous migration: cont or quit");
		mig_source_free(c->mig);
		c->mig = NULL;
	}
	return mig_source_start(c->vm, json_object_get_string(juri), &c->params, c->user_paused,
				local, &c->mig_done, &c->mig, err);
}

static int cmd_migrate_cancel(void *ctx, struct json_object *args, struct json_object **ret,
			      const char **cls, struct vmm_error *err)
{
	(void)args, (void)ret, (void)cls, (void)err;
	struct vmm_control *c = ctx;
	if (c->mig && !mig_source_finished(c->mig))
		mig_source_cancel(c->mig);
	return 0;
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

/* How each network card announced the guest since it arrived (rounds,
 * RARP frames or the guest's own announcements). */
static struct json_object *announce_info(struct vmm_control *c)
{
	struct json_object *cards = json_object_new_array();
	unsigned rounds = 0, rarp = 0, guest = 0;
	for (unsigned i = 0; i < c->vm->ndevices; i++) {
		struct virtio_net_announce a;
		if (!virtio_net_announce_info(&c->vm->devices[i], &a))
			continue;
		struct json_object *d = json_object_new_object();
		json_object_object_add(d, "device", json_object_new_string(c->vm->devices[i].name));
		json_object_object_add(d, "mode", json_object_new_string(!a.rounds ? "none"
									  : a.guest ? "guest"
										    : "rarp"));
		add_u64(d, "rounds", a.rounds);
		add_u64(d, "rounds-max", a.rounds_max);
		add_u64(d, "rarp-frames", a.rarp_frames);
		add_u64(d, "guest-requests", a.guest_requests);
		add_u64(d, "guest-acks", a.guest_acks);
		add_u64(d, "first-to-last-ms", a.rounds ? (a.last_ns - a.first_ns) / 1000000 : 0);
		json_object_array_add(cards, d);
		rounds += a.rounds;
		rarp += a.rarp_frames;
		guest += a.guest_requests;
	}
	struct json_object *ann = json_object_new_object();
	add_u64(ann, "rounds", rounds);
	add_u64(ann, "rarp-frames", rarp);
	add_u64(ann, "guest-requests", guest);
	json_object_object_add(ann, "cards", cards);
	return ann;
}

static struct json_object *tls_object(const struct mig_tls_info *t)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "encrypted", json_object_new_boolean(t->encrypted));
	if (t->encrypted) {
		json_object_object_add(o, "protocol", json_object_new_string(t->protocol));
		json_object_object_add(o, "cipher", json_object_new_string(t->cipher));
		json_object_object_add(o, "auth", json_object_new_string(t->auth));
		json_object_object_add(o, "peer", json_object_new_string(t->peer));
	}
	return o;
}

/* The destination's view: who is (or was last) connected, how protected,
 * and how many strangers were dropped. */
static struct json_object *incoming_info(struct vmm_control *c)
{
	struct mig_dest_info i;
	mig_dest_info(c->dest, &i);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string(c->vm_running ? "completed"
										   : "inmigrate"));
	json_object_object_add(o, "tls-required", json_object_new_boolean(i.tls_required));
	if (i.peer[0])
		json_object_object_add(o, "peer", json_object_new_string(i.peer));
	json_object_object_add(o, "tls", tls_object(&i.tls));
	json_object_object_add(o, "dropped-connections", json_object_new_int((int)i.dropped));
	if (i.last_dropped[0])
		json_object_object_add(o, "last-dropped", json_object_new_string(i.last_dropped));
	return o;
}

struct json_object *vmm_control_migrate_info(struct vmm_control *c)
{
	struct json_object *o = json_object_new_object();
	if (c->dest) { /* the destination's view: the connection, the announce */
		json_object_object_add(o, "incoming", incoming_info(c));
		if (!c->mig) {
			json_object_object_add(o, "status",
					       json_object_new_string(c->vm_running ? "completed"
										: "active"));
			json_object_object_add(o, "announce", announce_info(c));
		}
	}
	if (!c->mig)
		return o; /* like QEMU: {} when no migration ran */
	struct mig_info i;
	mig_source_info(c->mig, &i);
	json_object_object_add(o, "status", json_object_new_string(mig_status_name(i.status)));
	add_u64(o, "total-time", i.total_time_ms);
	add_u64(o, "setup-time", i.setup_time_ms);
	if (i.status == MIG_STATUS_COMPLETED) {
		add_u64(o, "downtime", i.downtime_ms);
		add_u64(o, "downtime-source", i.downtime_source_ms);
		add_u64(o, "downtime-us", i.downtime_us);
	} else {
		add_u64(o, "expected-downtime", i.expected_downtime_ms);
	}
	json_object_object_add(o, "compression-ratio", json_object_new_double(i.compression_ratio));
	/* format 1.2: how pages travel, and why */
	json_object_object_add(o, "compression", json_object_new_string(i.compression));
	json_object_object_add(o, "compression-reason",
			       json_object_new_string(i.compression_reason));
	json_object_object_add(o, "connections", json_object_new_int((int)i.connections));
	json_object_object_add(o, "local", json_object_new_boolean(i.local));
	if (i.acks) { /* the destination reports what it applied */
		add_u64(o, "backlog", i.backlog);
		json_object_object_add(o, "applied-mbps", json_object_new_double(i.applied_mbps));
		add_u64(o, "drain-time", i.drain_ms);
	}
	json_object_object_add(o, "throttle-percentage", json_object_new_int((int)i.throttle_pct));
	json_object_object_add(o, "uri", json_object_new_string(i.uri));
	json_object_object_add(o, "tls", tls_object(&i.tls));
	if (i.error[0])
		json_object_object_add(o, "error-desc", json_object_new_string(i.error));
	if (i.peer_known) { /* what the destination's Accepted said */
		char caps[128], fmt[16];
		mig_caps_format(i.peer.caps, caps, sizeof(caps));
		snprintf(fmt, sizeof(fmt), "%u.%u", i.peer.major, i.peer.minor);
		struct json_object *d = json_object_new_object();
		json_object_object_add(d, "vmm-version", json_object_new_string(i.peer.vmm_version));
		json_object_object_add(d, "format", json_object_new_string(fmt));
		json_object_object_add(d, "capabilities", json_object_new_string(caps));
		json_object_object_add(o, "destination", d);
	}
	struct json_object *ram = json_object_new_object();
	add_u64(ram, "transferred", i.transferred);
	add_u64(ram, "total", i.total);
	add_u64(ram, "remaining", i.remaining);
	add_u64(ram, "duplicate", i.duplicate);
	add_u64(ram, "normal", i.normal);
	add_u64(ram, "normal-bytes", i.normal_bytes);
	add_u64(ram, "untouched", i.untouched);
	add_u64(ram, "compressed", i.zstd_pages);
	add_u64(ram, "dirty-pages-rate", i.dirty_pages_rate);
	add_u64(ram, "dirty-sync-count", i.dirty_sync_count);
	add_u64(ram, "page-size", 4096);
	json_object_object_add(ram, "mbps", json_object_new_double(i.mbps));
	json_object_object_add(o, "ram", ram);
	return o;
}

static int cmd_query_migrate(void *ctx, struct json_object *args, struct json_object **ret,
			     const char **cls, struct vmm_error *err)
{
	(void)args, (void)cls, (void)err;
	*ret = vmm_control_migrate_info(ctx);
	return 0;
}

static int get_int_arg(struct json_object *args, const char *key, int64_t min, int64_t max,
		       int64_t *out, bool *present, struct vmm_error *err)
{
	struct json_object *v;
	*present = json_object_object_get_ex(args, key, &v);
	if (!*present)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return vmm_error_set(err, -EINVAL, "migrate-set-parameters: %s must be an integer", key);
	int64_t x = json_object_get_int64(v);
	if (x < min || x > max)
		return vmm_error_set(err, -ERANGE, "migrate-set-parameters: %s %lld out of range "
				     "%lld..%lld", key, (long long)x, (long long)min, (long long)max);
	*out = x;
	return 0;
}

/* The TLS parameters: strings, "" clears one. */
static const struct {
	const char *key;
	size_t off, len;
} tls_params[] = {
	{"tls-creds", offsetof(struct mig_tls_config, creds_dir),
	 sizeof(((struct mig_tls_config *)0)->creds_dir)},
	{"tls-psk", offsetof(struct mig_tls_config, psk_file),
	 sizeof(((struct mig_tls_config *)0)->psk_file)},
	{"tls-hostname", offsetof(struct mig_tls_config, hostname),
	 sizeof(((struct mig_tls_config *)0)->hostname)},
	{"tls-priority", offsetof(struct mig_tls_config, priority),
	 sizeof(((struct mig_tls_config *)0)->priority)},
};
#define NTLS_PARAMS (sizeof(tls_params) / sizeof(tls_params[0]))

static int set_tls_params(struct json_object *args, struct mig_tls_config *t,
			  struct vmm_error *err)
{
	for (size_t i = 0; i < NTLS_PARAMS; i++) {
		struct json_object *v;
		if (!json_object_object_get_ex(args, tls_params[i].key, &v))
			continue;
		if (!json_object_is_type(v, json_type_string))
			return vmm_error_set(err, -EINVAL, "migrate-set-parameters: %s must be a string",
					     tls_params[i].key);
		const char *s = json_object_get_string(v);
		if (strlen(s) >= tls_params[i].len)
			return vmm_error_set(err, -ENAMETOOLONG,
					     "migrate-set-parameters: %s longer than %zu bytes",
					     tls_params[i].key, tls_params[i].len - 1);
		memcpy((char *)t + tls_params[i].off, s, strlen(s) + 1);
	}
	return 0;
}

static int cmd_migrate_set_parameters(void *ctx, struct json_object *args, struct json_object **ret,
				      const char **cls, struct vmm_error *err)
{
	(void)ret, (void)cls;
	struct vmm_control *c = ctx;
	static const char *const known[] = {"downtime-limit",	  "max-bandwidth",
					    "compress-level",	  "auto-converge",
					    "throttle-initial",	  "throttle-increment",
					    "switchover-timeout", "connections",
					    "compression",	  "verify-pages"};
	json_object_object_foreach(args, key, val)
	{
		(void)val;
		bool ok = false;
		for (size_t i = 0; i < NTLS_PARAMS; i++)
			ok |= strcmp(key, tls_params[i].key) == 0;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok |= strcmp(key, known[i]) == 0;
		if (!ok)
			return vmm_error_set(err, -EINVAL, "migrate-set-parameters: unknown parameter %s",
					     key);
	}
	struct mig_params p = c->params;
	int64_t v;
	bool have;
	int r;
	if ((r = get_int_arg(args, "downtime-limit", 1, 2000000, &v, &have, err)) < 0)
		return r;
	if (have)
		p.downtime_limit_ms = (uint64_t)v;
	if ((r = get_int_arg(args, "max-bandwidth", 0, INT64_MAX, &v, &have, err)) < 0)
		return r;
	if (have)
		p.max_bandwidth = (uint64_t)v;
	if ((r = get_int_arg(args, "compress-level", -7, 19, &v, &have, err)) < 0)
		return r;
	if (have)
		p.compress_level = (int)v;
	if ((r = get_int_arg(args, "throttle-initial", 1, 99, &v, &have, err)) < 0)
		return r;
	if (have)
		p.throttle_initial = (unsigned)v;
	if ((r = get_int_arg(args, "throttle-increment", 1, 99, &v, &have, err)) < 0)
		return r;
	if (have)
		p.throttle_increment = (unsigned)v;
	if ((r = get_int_arg(args, "switchover-timeout", 100, 600000, &v, &have, err)) < 0)
		return r;
	if (have)
		p.switchover_timeout_ms = (uint64_t)v;
	if ((r = get_int_arg(args, "connections", 1, MIG_MAX_CONNECTIONS, &v, &have, err)) < 0)
		return r;
	if (have)
		p.connections = (unsigned)v;
	if ((r = set_tls_params(args, &p.tls, err)) < 0)
		return r;
	struct json_object *b;
	if (json_object_object_get_ex(args, "compression", &b)) {
		if (!json_object_is_type(b, json_type_string) ||
		    mig_compress_mode_parse(json_object_get_string(b), &p.compression) < 0)
			return vmm_error_set(err, -EINVAL,
					     "migrate-set-parameters: compression must be auto, zstd "
					     "or none");
	}
	if (json_object_object_get_ex(args, "verify-pages", &b)) {
		if (!json_object_is_type(b, json_type_string) ||
		    mig_verify_pages_parse(json_object_get_string(b), &p.verify_pages) < 0)
			return vmm_error_set(err, -EINVAL,
					     "migrate-set-parameters: verify-pages must be auto, on or "
					     "off");
	}
	if (json_object_object_get_ex(args, "auto-converge", &b)) {
		if (!json_object_is_type(b, json_type_boolean))
			return vmm_error_set(err, -EINVAL, "auto-converge must be true or false");
		p.auto_converge = json_object_get_boolean(b);
	}
	c->params = p;
	if (c->mig && !mig_source_finished(c->mig))
		mig_source_set_params(c->mig, &p); /* downtime and bandwidth apply at once */
	return 0;
}

static int cmd_query_migrate_parameters(void *ctx, struct json_object *args,
					struct json_object **ret, const char **cls,
					struct vmm_error *err)
{
	(void)args, (void)cls, (void)err;
	struct vmm_control *c = ctx;
	*ret = json_object_new_object();
	add_u64(*ret, "downtime-limit", c->params.downtime_limit_ms);
	add_u64(*ret, "max-bandwidth", c->params.max_bandwidth);
	json_object_object_add(*ret, "compress-level", json_object_new_int(c->params.compress_level));
	json_object_object_add(*ret, "auto-converge", json_object_new_boolean(c->params.auto_converge));
	add_u64(*ret, "throttle-initial", c->params.throttle_initial);
	add_u64(*ret, "throttle-increment", c->params.throttle_increment);
	add_u64(*ret, "switchover-timeout", c->params.switchover_timeout_ms);
	add_u64(*ret, "connections", c->params.connections);
	json_object_object_add(*ret, "compression",
			       json_object_new_string(mig_compress_mode_name(c->params.compression)));
	json_object_object_add(*ret, "verify-pages",
			       json_object_new_string(mig_verify_pages_name(c->params.verify_pages)));
	for (size_t i = 0; i < NTLS_PARAMS; i++)
		json_object_object_add(*ret, tls_params[i].key,
				       json_object_new_string((const char *)&c->params.tls +
							      tls_params[i].off));
	return 0;
}

static int add_table(struct json_object *o, const char *key, const struct cpuid_table *t,
		     struct vmm_error *err)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	cpuid_table_write(t, f);
	fclose(f);
	json_object_object_add(o, key, json_object_new_string(text ? text : ""));
	free(text);
	return 0;
}

static int cmd_query_cpuid(void *ctx, struct json_object *args, struct json_object **ret,
			   const char **cls, struct vmm_error *err)
{
	(void)args;
	struct vmm_control *c = ctx;
	int r = need_running_vm(c, cls, err);
	if (r < 0)
		return r;
	struct json_object *list = json_object_new_array();
	for (unsigned i = 0; i < c->vm->ncpus; i++) {
		const struct vcpu *v = c->vm->vcpus[i];
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "index", json_object_new_int((int)i));
		json_object_object_add(o, "apic-id", json_object_new_int((int)v->apic_id));
		/* "table": KVM_GET_CPUID2 (read back at creation); "model-table":
		 * what the CPU model built and KVM_SET_CPUID2 was given. */
		if ((r = add_table(o, "table", &v->kvm_cpuid, err)) < 0 ||
		    (r = add_table(o, "model-table", &v->cpuid, err)) < 0) {
			json_object_put(o);
			json_object_put(list);
			return r;
		}
		json_object_array_add(list, o);
	}
	*ret = json_object_new_object();
	json_object_object_add(*ret, "cpu-model", json_object_new_string(guest_cpu_spec(c->vm->cpu)));
	json_object_object_add(*ret, "vcpus", list);
	return 0;
}

static int cmd_query_machine(void *ctx, struct json_object *args, struct json_object **ret,
			     const char **cls, struct vmm_error *err)
{
	(void)args;
	struct vmm_control *c = ctx;
	int r = need_running_vm(c, cls, err);
	if (r < 0)
		return r;
	*ret = json_object_new_object();
	json_object_object_add(*ret, "machine", json_object_new_string(c->vm->spec.machine.name));
	json_object_object_add(*ret, "cpu-model", json_object_new_string(guest_cpu_spec(c->vm->cpu)));
	add_u64(*ret, "memory", c->vm->mem.size);
	json_object_object_add(*ret, "cpus", json_object_new_int((int)c->vm->ncpus));
	json_object_object_add(*ret, "vmm-version", json_object_new_string(VMM_VERSION));
	struct json_object *props = json_object_new_object();
	for (unsigned i = 0; i < c->vm->spec.machine.nprops; i++) {
		char key[128];
		snprintf(key, sizeof(key), "%s.%s", c->vm->spec.machine.props[i].device,
			 c->vm->spec.machine.props[i].prop);
		json_object_object_add(props, key,
				       json_object_new_string(c->vm->spec.machine.props[i].value));
	}
	json_object_object_add(*ret, "properties", props);
	return 0;
}

const struct api_command vmm_control_commands[] = {
	{"query-status", cmd_query_status, "run state of the guest"},
	{"stop", cmd_stop, "pause the guest"},
	{"cont", cmd_cont, "resume the guest"},
	{"quit", cmd_quit, "stop the guest and exit"},
	{"migrate", cmd_migrate,
	 "migrate to uri (tcp:HOST:PORT, unix:PATH, file:PATH); local=true over unix: passes the "
	 "guest's memory instead of copying it"},
	{"migrate-cancel", cmd_migrate_cancel, "cancel the running migration"},
	{"query-migrate", cmd_query_migrate, "migration status and statistics"},
	{"migrate-set-parameters", cmd_migrate_set_parameters,
	 "downtime-limit (ms), max-bandwidth (bytes/s), compress-level, compression "
	 "(auto|zstd|none), connections (1-8), verify-pages (auto|on|off), auto-converge, "
	 "switchover-timeout (ms), tls-creds (dir), tls-psk (file), tls-hostname, tls-priority, ..."},
	{"query-migrate-parameters", cmd_query_migrate_parameters, "current migration parameters"},
	{"query-cpuid", cmd_query_cpuid, "the CPUID table KVM holds for each vCPU"},
	{"query-machine", cmd_query_machine, "the resolved machine type, CPU model and properties"},
};
const unsigned vmm_control_ncommands = sizeof(vmm_control_commands) / sizeof(vmm_control_commands[0]);

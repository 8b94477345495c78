/*
 * core/spec.c: resolving what was asked (a command line, or an incoming
 * stream's header) into the one VM description every part builds from.
 *
 * The machine type decides every default, and also what an unversioned CPU
 * model name means: "cpu-models.<Model>" pins it to a version. A released
 * machine type's pins never change, so `--machine microvm-1.0 --cpu-model
 * Skylake-Server` gives the same CPU on every later vmm, whatever versions
 * later builds add; a model the machine type does not pin (one added after
 * it) resolves to that model's first version, which never changes either.
 */
#include "core/vm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *vm_spec_origin_name(enum vm_spec_origin o)
{
	static const char *const names[] = {
		[SPEC_FROM_REQUEST] = "given",
		[SPEC_FROM_MACHINE] = "the machine type's default",
		[SPEC_FROM_MACHINE_PIN] = "pinned by the machine type",
		[SPEC_FROM_STREAM] = "from the incoming stream",
	};
	return (unsigned)o < sizeof(names) / sizeof(names[0]) ? names[o] : "?";
}

static int copy_str(char *dst, size_t len, const char *src, const char *what,
		    struct vmm_error *err)
{
	if ((size_t)snprintf(dst, len, "%s", src) >= len)
		return vmm_error_set(err, -E2BIG, "%s \"%.40s...\": longer than %zu bytes", what, src,
				     len - 1);
	return 0;
}

/* "NAME,+feat,-feat" -> the version NAME means under machine `m`, with the
 * adjustments kept. Unknown names pass through unchanged: vm_create() (or
 * print-config) reports them with the engine's full message. */
static int resolve_cpu(const struct machine *m, const char *asked, struct vm_spec *out,
		       struct vmm_error *err)
{
	size_t name_len = strcspn(asked, ",");
	char name[VM_SPEC_STR_MAX];
	if (name_len >= sizeof(name))
		return vmm_error_set(err, -E2BIG, "cpu model name too long");
	memcpy(name, asked, name_len);
	name[name_len] = '\0';
	const char *adjust = asked + name_len;

	struct cpumodel_db *db;
	int r = cpumodel_db_load(cpumodel_default_dir(), &db, err);
	if (r < 0)
		return r;
	struct cpumodel_name info;
	struct vmm_error ignored;
	const char *version = name;
	if (cpumodel_name_info(db, name, &info, &ignored) == 0) {
		version = info.version;
		if (!info.versioned) {
			const char *pin;
			if (machine_get_str(m, "cpu-models", info.model, &pin, &ignored) == 0) {
				version = pin;
				out->cpu_origin = out->cpu_origin == SPEC_FROM_MACHINE
							  ? SPEC_FROM_MACHINE
							  : SPEC_FROM_MACHINE_PIN;
			} else {
				version = info.first;
			}
		}
	}
	r = copy_str(out->cpu_model, sizeof(out->cpu_model), version, "cpu model", err);
	if (r == 0 && (size_t)snprintf(out->cpu_spec, sizeof(out->cpu_spec), "%s%s", version,
				       adjust) >= sizeof(out->cpu_spec))
		r = vmm_error_set(err, -E2BIG, "cpu model spec too long");
	cpumodel_db_free(db);
	return r;
}

/* The devices the command line adds, and the host-side incoming flag. */
static void copy_devices(const struct vm_request *req, struct vm_spec *out)
{
	memcpy(out->disks, req->disks, sizeof(out->disks));
	out->ndisks = req->ndisks;
	out->rng = req->rng;
	memcpy(out->nets, req->nets, sizeof(out->nets));
	out->nnets = req->nnets;
	out->incoming = req->incoming;
}

int vm_spec_resolve(const struct vm_request *req, struct vm_spec *out, struct vmm_error *err)
{
	memset(out, 0, sizeof(*out));
	const char *name = req->machine ? req->machine : machine_default_name();
	out->machine_origin = req->machine ? SPEC_FROM_REQUEST : SPEC_FROM_MACHINE;
	int r = machine_resolve(name, &out->machine, err);
	if (r < 0)
		return r;
	snprintf(out->machine_asked, sizeof(out->machine_asked), "%s", name);

	const char *cpu = req->cpu_model;
	out->cpu_origin = SPEC_FROM_REQUEST;
	if (!cpu) {
		if ((r = machine_get_str(&out->machine, "cpu", "default-model", &cpu, err)) < 0)
			return r;
		out->cpu_origin = SPEC_FROM_MACHINE;
	}
	if ((r = copy_str(out->cpu_asked, sizeof(out->cpu_asked), cpu, "--cpu-model", err)) < 0 ||
	    (r = resolve_cpu(&out->machine, cpu, out, err)) < 0)
		return r;

	out->mem_size = req->mem_size;
	out->mem_hugepages = req->mem_hugepages;
	out->mem_origin = SPEC_FROM_REQUEST;
	if (!out->mem_size) {
		if ((r = machine_get_u64(&out->machine, "memory", "default-size", &out->mem_size,
					 err)) < 0)
			return r;
		out->mem_origin = SPEC_FROM_MACHINE;
	}
	out->ncpus = req->ncpus;
	out->ncpus_origin = SPEC_FROM_REQUEST;
	if (!out->ncpus) {
		uint64_t n;
		if ((r = machine_get_u64(&out->machine, "cpu", "default-count", &n, err)) < 0)
			return r;
		out->ncpus = (unsigned)n;
		out->ncpus_origin = SPEC_FROM_MACHINE;
	}
	if (req->host_cpu_profile &&
	    (r = copy_str(out->host_cpu_profile, sizeof(out->host_cpu_profile),
			  req->host_cpu_profile, "--host-cpu-profile", err)) < 0)
		return r;
	out->serial = req->serial;
	if (req->serial_path && (r = copy_str(out->serial_path, sizeof(out->serial_path),
					      req->serial_path, "--serial file:", err)) < 0)
		return r;
	copy_devices(req, out);
	return 0;
}

/* Does the request's CPU model name stand for the stream's resolved
 * version? Either it names that very version, or it is an unversioned name
 * of the same model (the stream's source resolved it). */
static bool cpu_name_matches(const char *asked, const char *theirs)
{
	size_t len = strcspn(asked, ",");
	char name[VM_SPEC_STR_MAX];
	if (len >= sizeof(name))
		return false;
	memcpy(name, asked, len);
	name[len] = '\0';
	if (strcmp(name, theirs) == 0)
		return true;
	struct cpumodel_db *db;
	struct vmm_error ignored;
	if (cpumodel_db_load(cpumodel_default_dir(), &db, &ignored) < 0)
		return false;
	struct cpumodel_name mine, stream;
	bool same = cpumodel_name_info(db, name, &mine, &ignored) == 0 &&
		    cpumodel_name_info(db, theirs, &stream, &ignored) == 0 &&
		    (mine.versioned ? strcmp(mine.version, stream.version) == 0
				    : strcmp(mine.model, stream.model) == 0);
	cpumodel_db_free(db);
	return same;
}

int vm_spec_adopt(const struct vm_request *req, const struct vm_spec *theirs, struct vm_spec *out,
		  struct vmm_error *err)
{
	int r;
	*out = *theirs;
	out->machine_origin = out->cpu_origin = out->mem_origin = out->ncpus_origin =
		SPEC_FROM_STREAM;
	if (req->machine) {
		struct machine own;
		if ((r = machine_resolve(req->machine, &own, err)) < 0)
			return r;
		bool alias = strcmp(req->machine, own.name) != 0;
		if (!alias && strcmp(own.name, theirs->machine.name) != 0)
			return vmm_error_set(err, -EINVAL,
					     "machine type mismatch: stream %s, command line %s",
					     theirs->machine.name, own.name);
	}
	snprintf(out->machine_asked, sizeof(out->machine_asked), "%s",
		 req->machine ? req->machine : theirs->machine.name);

	/* The CPU model as the stream's machine type resolves our request. */
	const char *cpu = req->cpu_model;
	if (!cpu && (r = machine_get_str(&theirs->machine, "cpu", "default-model", &cpu, err)) < 0)
		return r;
	if (!cpu_name_matches(cpu, theirs->cpu_model))
		return vmm_error_set(err, -EINVAL, "cpu model mismatch: stream %s, command line %.*s",
				     theirs->cpu_model, (int)strcspn(cpu, ","), cpu);
	/* Build the stream's version with this side's adjustments; the CPUID
	 * comparison then catches any difference they make. */
	const char *adjust = cpu + strcspn(cpu, ",");
	if ((size_t)snprintf(out->cpu_spec, sizeof(out->cpu_spec), "%s%s", theirs->cpu_model,
			     adjust) >= sizeof(out->cpu_spec))
		return vmm_error_set(err, -E2BIG, "cpu model spec too long");
	snprintf(out->cpu_asked, sizeof(out->cpu_asked), "%s", cpu);

	uint64_t mem = req->mem_size;
	if (!mem && (r = machine_get_u64(&theirs->machine, "memory", "default-size", &mem, err)) < 0)
		return r;
	if (mem != theirs->mem_size)
		return vmm_error_set(err, -EINVAL, "RAM size mismatch: stream %llu MiB, this side %llu MiB",
				     (unsigned long long)(theirs->mem_size >> 20),
				     (unsigned long long)(mem >> 20));
	unsigned ncpus = req->ncpus;
	uint64_t n;
	if (!ncpus && machine_get_u64(&theirs->machine, "cpu", "default-count", &n, err) == 0)
		ncpus = (unsigned)n;
	if (ncpus != theirs->ncpus)
		return vmm_error_set(err, -EINVAL, "vCPU count mismatch: stream %u, this side %u",
				     theirs->ncpus, ncpus);
	/* Host-side settings are ours: RAM backing, CPU profile, console. */
	out->mem_hugepages = req->mem_hugepages;
	snprintf(out->host_cpu_profile, sizeof(out->host_cpu_profile), "%s",
		 req->host_cpu_profile ? req->host_cpu_profile : "");
	out->serial = req->serial;
	snprintf(out->serial_path, sizeof(out->serial_path), "%s",
		 req->serial_path ? req->serial_path : "");
	/* The devices are this side's command line's: the stream's header
	 * carries the disks' identities, checked once the VM is built. */
	copy_devices(req, out);
	return 0;
}

bool vm_spec_same_guest(const struct vm_spec *a, const struct vm_spec *b)
{
	if (a->ndisks != b->ndisks || a->rng != b->rng || a->nnets != b->nnets)
		return false;
	for (unsigned i = 0; i < a->nnets; i++)
		if (strcmp(a->nets[i].tap, b->nets[i].tap) != 0 ||
		    memcmp(a->nets[i].mac, b->nets[i].mac, 6) != 0 ||
		    a->nets[i].use_fd != b->nets[i].use_fd || a->nets[i].fd != b->nets[i].fd)
			return false;
	for (unsigned i = 0; i < a->ndisks; i++)
		if (strcmp(a->disks[i].path, b->disks[i].path) != 0 ||
		    strcmp(a->disks[i].serial, b->disks[i].serial) != 0 ||
		    a->disks[i].readonly != b->disks[i].readonly)
			return false;
	return strcmp(a->machine.name, b->machine.name) == 0 &&
	       strcmp(a->cpu_spec, b->cpu_spec) == 0 && a->mem_size == b->mem_size &&
	       a->ncpus == b->ncpus;
}

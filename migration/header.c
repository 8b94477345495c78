/*
 * migration/header.c: the Header record. The source describes the guest:
 * machine type and CPU model versions, the CPUID table of every vCPU,
 * RAM layout, vCPU count, TSC frequency. The destination refuses, with the
 * reason, anything it would not build the same way itself.
 */
#include "config.h"
#include "migration/migration.h"
#include "vmm/devices/devices.h"

#include <ctype.h>
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define NAME_MAX_LEN 128

/* A built header and everything it points to, freed in one place. */
struct mig_header_buf {
	Vmm__Migration__Header h; /* first: callers use &buf->h */
	Vmm__Migration__CpuidTable *tables;
	Vmm__Migration__CpuidTable **tablep;
	Vmm__Migration__CpuidEntry *entries;
	Vmm__Migration__CpuidEntry **entryp;
	Vmm__Migration__RamRegion ram[GUEST_MEM_MAX_REGIONS];
	Vmm__Migration__RamRegion *ramp[GUEST_MEM_MAX_REGIONS];
	char host[256];
	Vmm__Migration__DiskInfo disk[VMM_MAX_DISKS];
	Vmm__Migration__DiskInfo *diskp[VMM_MAX_DISKS];
};

void mig_header_buf_free(struct mig_header_buf *b)
{
	if (!b)
		return;
	free(b->tables);
	free(b->tablep);
	free(b->entries);
	free(b->entryp);
	free(b);
}

/* Each virtio-blk disk's identity, so the destination refuses another
 * image before the source stops the guest. */
static void add_disks(struct vm *vm, struct mig_header_buf *b)
{
	Vmm__Migration__Header *h = &b->h;
	for (unsigned i = 0; i < vm->ndevices && h->n_disks < VMM_MAX_DISKS; i++) {
		uint64_t size;
		const char *serial;
		bool ro;
		if (!virtio_blk_identity(&vm->devices[i], &size, &serial, &ro))
			continue;
		Vmm__Migration__DiskInfo *di = &b->disk[h->n_disks];
		vmm__migration__disk_info__init(di);
		di->name = (char *)vm->devices[i].name;
		di->size = size;
		di->serial = (char *)serial;
		di->readonly = ro;
		b->diskp[h->n_disks++] = di;
	}
	h->disks = b->diskp;
}

/* The stream's disks against this VM's: same names, sizes, serials, modes. */
static int check_disks(const Vmm__Migration__Header *h, struct vm *vm, struct vmm_error *err)
{
	unsigned mine = 0;
	for (unsigned i = 0; i < vm->ndevices; i++) {
		uint64_t size;
		const char *serial;
		bool ro;
		if (!virtio_blk_identity(&vm->devices[i], &size, &serial, &ro))
			continue;
		mine++;
		const Vmm__Migration__DiskInfo *di = NULL;
		for (size_t j = 0; j < h->n_disks && !di; j++)
			if (h->disks[j]->name && strcmp(h->disks[j]->name, vm->devices[i].name) == 0)
				di = h->disks[j];
		const char *name = vm->devices[i].name;
		if (!di)
			return vmm_error_set(err, -EINVAL, "disk mismatch: %s is not in the stream", name);
		if (di->size != size)
			return vmm_error_set(err, -EINVAL,
					     "disk mismatch: %s has %llu bytes at the source, %llu here",
					     name, (unsigned long long)di->size, (unsigned long long)size);
		if (strcmp(di->serial ? di->serial : "", serial) != 0)
			return vmm_error_set(err, -EINVAL,
					     "disk mismatch: %s has serial \"%.20s\" at the source, "
					     "\"%s\" here", name, di->serial ? di->serial : "", serial);
		if (di->readonly != ro)
			return vmm_error_set(err, -EINVAL, "disk mismatch: %s is %s at the source", name,
					     di->readonly ? "read-only" : "writable");
	}
	if (h->n_disks != mine)
		return vmm_error_set(err, -EINVAL, "disk mismatch: the stream has %zu disks, this VM %u",
				     h->n_disks, mine);
	return 0;
}

int mig_header_build(struct vm *vm, struct mig_header_buf **out, struct vmm_error *err)
{
	struct mig_header_buf *b = calloc(1, sizeof(*b));
	size_t max_entries = (size_t)vm->ncpus * CPUID_TABLE_MAX;
	if (b) {
		b->tables = calloc(vm->ncpus, sizeof(*b->tables));
		b->tablep = calloc(vm->ncpus, sizeof(*b->tablep));
		b->entries = calloc(max_entries, sizeof(*b->entries));
		b->entryp = calloc(max_entries, sizeof(*b->entryp));
	}
	if (!b || !b->tables || !b->tablep || !b->entries || !b->entryp) {
		mig_header_buf_free(b);
		return vmm_error_set(err, -ENOMEM, "migration: out of memory for the header");
	}
	Vmm__Migration__Header *h = &b->h;
	vmm__migration__header__init(h);
	h->format_major = MIG_FORMAT_MAJOR;
	h->format_minor = MIG_FORMAT_MINOR;
	h->vmm_version = (char *)VMM_VERSION;
	h->machine_type = vm->machine.name;
	h->cpu_model = (char *)guest_cpu_name(vm->cpu);
	h->cpu_model_spec = (char *)guest_cpu_spec(vm->cpu);
	h->ram_size = vm->mem.size;
	h->vcpu_count = vm->ncpus;
	h->page_size = 4096;
	h->tsc_khz = vm->vcpus[0]->tsc_khz;
	gethostname(b->host, sizeof(b->host) - 1);
	h->source_host = b->host;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	h->created_unix_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;

	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		vmm__migration__ram_region__init(&b->ram[i]);
		b->ram[i].gpa = vm->mem.regions[i].gpa;
		b->ram[i].size = vm->mem.regions[i].size;
		b->ramp[i] = &b->ram[i];
	}
	h->n_ram = vm->mem.nregions;
	h->ram = b->ramp;

	/* The CPU model's table for each vCPU: what the guest sees on KVM with
	 * CPUID interception, and what a destination must build identically. */
	size_t e = 0;
	for (unsigned i = 0; i < vm->ncpus; i++) {
		const struct cpuid_table *t = &vm->vcpus[i]->cpuid;
		Vmm__Migration__CpuidTable *tab = &b->tables[i];
		vmm__migration__cpuid_table__init(tab);
		tab->entries = &b->entryp[e];
		tab->n_entries = t->n;
		for (unsigned j = 0; j < t->n; j++, e++) {
			Vmm__Migration__CpuidEntry *ce = &b->entries[e];
			vmm__migration__cpuid_entry__init(ce);
			ce->leaf = t->leaves[j].leaf;
			ce->subleaf = t->leaves[j].subleaf;
			ce->eax = t->leaves[j].eax;
			ce->ebx = t->leaves[j].ebx;
			ce->ecx = t->leaves[j].ecx;
			ce->edx = t->leaves[j].edx;
			ce->subleaf_significant = t->leaves[j].subleaf_significant;
			b->entryp[e] = ce;
		}
		b->tablep[i] = tab;
	}
	h->n_cpuid = vm->ncpus;
	h->cpuid = b->tablep;
	add_disks(vm, b);
	*out = b;
	return 0;
}

static bool sane_name(const char *s)
{
	if (!s || !*s || strlen(s) > NAME_MAX_LEN)
		return false;
	for (; *s; s++)
		if (!isprint((unsigned char)*s))
			return false;
	return true;
}

int mig_header_check_basic(const Vmm__Migration__Header *h, struct vmm_error *err)
{
	if (h->format_major != MIG_FORMAT_MAJOR)
		return vmm_error_set(err, -EPROTONOSUPPORT,
				     "header: stream format %u.%u, this vmm reads %u.x", h->format_major,
				     h->format_minor, MIG_FORMAT_MAJOR);
	if (!sane_name(h->machine_type) || !sane_name(h->cpu_model) || !sane_name(h->cpu_model_spec))
		return vmm_error_set(err, -EBADMSG, "header: machine type or CPU model name missing "
				     "or malformed");
	if (h->vcpu_count == 0 || h->vcpu_count > VMM_MAX_CPUS || h->n_cpuid != h->vcpu_count)
		return vmm_error_set(err, -EBADMSG, "header: %u vCPUs with %zu CPUID tables",
				     h->vcpu_count, h->n_cpuid);
	for (size_t i = 0; i < h->n_cpuid; i++)
		if (h->cpuid[i]->n_entries > CPUID_TABLE_MAX)
			return vmm_error_set(err, -EBADMSG, "header: vCPU %zu has %zu CPUID entries",
					     i, h->cpuid[i]->n_entries);
	if (h->n_disks > VMM_MAX_DISKS)
		return vmm_error_set(err, -EBADMSG, "header: %zu disks (at most %d)", h->n_disks,
				     VMM_MAX_DISKS);
	if (h->page_size != 4096)
		return vmm_error_set(err, -EBADMSG, "header: page size %u", h->page_size);
	if (h->n_ram == 0 || h->n_ram > GUEST_MEM_MAX_REGIONS || h->ram_size == 0 ||
	    h->ram_size % 4096)
		return vmm_error_set(err, -EBADMSG, "header: RAM layout malformed");
	return 0;
}

/* Does the command line's model name `name` (len bytes) stand for the
 * stream's resolved model? Either it is that very version, or it is the
 * alias the stream's "NAME-vN" was resolved from. No guessing from the
 * name's shape: "x86-64-v2" is a model, not version 2 of "x86-64". */
static bool model_matches(const char *name, size_t len, const char *resolved)
{
	if (strlen(resolved) == len && strncmp(name, resolved, len) == 0)
		return true;
	if (strncmp(name, resolved, len) != 0 || strncmp(resolved + len, "-v", 2) != 0)
		return false;
	const char *p = resolved + len + 2;
	if (!*p)
		return false;
	for (; *p; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	return true;
}

int mig_header_adapt_config(const Vmm__Migration__Header *h, const struct vmm_config *cmdline,
			    struct vmm_config *out, char *cpu_spec_buf, size_t bufsize,
			    struct vmm_error *err)
{
	*out = *cmdline;
	struct machine stream_machine, own;
	int r = machine_resolve(h->machine_type, &stream_machine, err);
	if (r < 0)
		return vmm_error_set(err, -ENOENT,
				     "stream machine type %s is unknown to this vmm (%s): migrate to a "
				     "vmm that has it",
				     h->machine_type, VMM_VERSION);
	if (cmdline->machine) {
		if ((r = machine_resolve(cmdline->machine, &own, err)) < 0)
			return r;
		bool alias = strcmp(cmdline->machine, own.name) != 0;
		if (!alias && strcmp(own.name, h->machine_type) != 0)
			return vmm_error_set(err, -EINVAL,
					     "machine type mismatch: stream %s, command line %s",
					     h->machine_type, own.name);
	}
	out->machine = h->machine_type; /* an alias builds the stream's version */

	const char *spec = cmdline->cpu_model;
	if (!spec && (r = machine_get_str(&stream_machine, "cpu", "default-model", &spec, err)) < 0)
		return r;
	size_t name_len = strcspn(spec, ",");
	if (!model_matches(spec, name_len, h->cpu_model))
		return vmm_error_set(err, -EINVAL, "cpu model mismatch: stream %s, command line %.*s",
				     h->cpu_model, (int)name_len, spec);
	/* Build the stream's version with the command line's adjustments; the
	 * CPUID comparison then catches any difference they make. */
	if ((size_t)snprintf(cpu_spec_buf, bufsize, "%s%s", h->cpu_model, spec + name_len) >= bufsize)
		return vmm_error_set(err, -E2BIG, "cpu model spec too long");
	out->cpu_model = cpu_spec_buf;

	uint64_t mem = cmdline->mem_size;
	if (!mem && (r = machine_get_u64(&stream_machine, "memory", "default-size", &mem, err)) < 0)
		return r;
	if (mem != h->ram_size)
		return vmm_error_set(err, -EINVAL, "RAM size mismatch: stream %llu MiB, this side %llu MiB",
				     (unsigned long long)(h->ram_size >> 20),
				     (unsigned long long)(mem >> 20));
	out->mem_size = mem;
	if (cmdline->ncpus != h->vcpu_count)
		return vmm_error_set(err, -EINVAL, "vCPU count mismatch: stream %u, this side %u",
				     h->vcpu_count, cmdline->ncpus);
	return 0;
}

static void table_from_stream(const Vmm__Migration__CpuidTable *src, struct cpuid_table *t)
{
	memset(t, 0, sizeof(*t));
	t->n = (unsigned)src->n_entries;
	for (size_t i = 0; i < src->n_entries; i++) {
		const Vmm__Migration__CpuidEntry *e = src->entries[i];
		t->leaves[i] = (struct cpuid_leaf){e->leaf, e->subleaf, e->eax, e->ebx,
						   e->ecx,  e->edx,	e->subleaf_significant};
	}
}

int mig_header_check_vm(const Vmm__Migration__Header *h, struct vm *vm, struct vmm_error *err)
{
	if (h->n_ram != vm->mem.nregions)
		return vmm_error_set(err, -EINVAL, "RAM layout mismatch: stream %zu regions, this VM %u",
				     h->n_ram, vm->mem.nregions);
	for (size_t i = 0; i < h->n_ram; i++)
		if (h->ram[i]->gpa != vm->mem.regions[i].gpa ||
		    h->ram[i]->size != vm->mem.regions[i].size)
			return vmm_error_set(err, -EINVAL, "RAM layout mismatch in region %zu", i);

	int r = check_disks(h, vm, err);
	if (r < 0)
		return r;
	static struct cpuid_table theirs; /* 6 KiB: keep it off the stack */
	for (unsigned i = 0; i < vm->ncpus; i++) {
		table_from_stream(h->cpuid[i], &theirs);
		char diff[768];
		int n = cpuid_table_diff(&theirs, &vm->vcpus[i]->cpuid, diff, sizeof(diff));
		if (n != 0)
			return vmm_error_set(err, -EINVAL,
					     "CPUID mismatch on vCPU %u (cpu model %s): %d difference%s: "
					     "%s (stream vs this host)",
					     i, h->cpu_model_spec, n, n == 1 ? "" : "s", diff);
	}
	int khz = ioctl(vm->vcpus[0]->fd, KVM_GET_TSC_KHZ, 0);
	if (!h->tsc_khz || khz <= 0 || (uint32_t)khz == h->tsc_khz)
		return 0;
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL) > 0) {
		for (unsigned i = 0; i < vm->ncpus; i++)
			if (ioctl(vm->vcpus[i]->fd, KVM_SET_TSC_KHZ, (unsigned long)h->tsc_khz) < 0)
				return vmm_error_set(err, -errno,
						     "vCPU %u: cannot give the guest its %u kHz TSC: "
						     "KVM_SET_TSC_KHZ: %s",
						     i, h->tsc_khz, strerror(errno));
		return 0;
	}
	fprintf(stderr,
		"vmm: warning: the guest's TSC ran at %u kHz on the source, this host gives "
		"%d kHz and this KVM cannot scale it: guest TSC-based timing will be off\n",
		h->tsc_khz, khz);
	return 0;
}

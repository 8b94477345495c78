/*
 * migration/header.c: the Header record. The source describes the guest:
 * machine type and CPU model versions, the CPUID table of every vCPU,
 * RAM layout, vCPU count, TSC frequency. The destination refuses, with the
 * reason, anything it would not build the same way itself.
 */
#include "config.h"
#include "migration/migration.h"
#include "core/devices/devices.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
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
	const char *caps[16];
	Vmm__Migration__DiskInfo disk[VM_MAX_DISKS];
	Vmm__Migration__DiskInfo *diskp[VM_MAX_DISKS];
	Vmm__Migration__NetInfo net[VM_MAX_NETS];
	Vmm__Migration__NetInfo *netp[VM_MAX_NETS];
	uint8_t mac[VM_MAX_NETS][6];
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
	for (unsigned i = 0; i < vm->ndevices && h->n_disks < VM_MAX_DISKS; i++) {
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

/* Each virtio-net card's identity: the guest keeps its MAC, and a
 * destination whose tap cannot do an offload the guest was offered refuses
 * before the source stops the guest. */
static void add_nets(struct vm *vm, struct mig_header_buf *b)
{
	Vmm__Migration__Header *h = &b->h;
	for (unsigned i = 0; i < vm->ndevices && h->n_nets < VM_MAX_NETS; i++) {
		uint64_t features;
		if (!virtio_net_identity(&vm->devices[i], b->mac[h->n_nets], &features))
			continue;
		Vmm__Migration__NetInfo *ni = &b->net[h->n_nets];
		vmm__migration__net_info__init(ni);
		ni->name = (char *)vm->devices[i].name;
		ni->mac = (ProtobufCBinaryData){6, b->mac[h->n_nets]};
		ni->features = features;
		b->netp[h->n_nets++] = ni;
	}
	h->nets = b->netp;
}

static void fmt_mac(const uint8_t *m, size_t len, char out[18])
{
	if (len != 6) {
		snprintf(out, 18, "(%zu bytes)", len);
		return;
	}
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* The stream's cards against this VM's: same names, MACs and offers. */
static int check_nets(const Vmm__Migration__Header *h, struct vm *vm, struct vmm_error *err)
{
	unsigned mine = 0;
	for (unsigned i = 0; i < vm->ndevices; i++) {
		uint8_t mac[6];
		uint64_t features;
		if (!virtio_net_identity(&vm->devices[i], mac, &features))
			continue;
		mine++;
		const char *name = vm->devices[i].name;
		const Vmm__Migration__NetInfo *ni = NULL;
		for (size_t j = 0; j < h->n_nets && !ni; j++)
			if (h->nets[j]->name && strcmp(h->nets[j]->name, name) == 0)
				ni = h->nets[j];
		if (!ni)
			return vmm_error_set(err, -EINVAL, "net mismatch: %s is not in the stream",
					     name);
		char theirs[18], ours[18];
		fmt_mac(ni->mac.data, ni->mac.len, theirs);
		fmt_mac(mac, 6, ours);
		if (ni->mac.len != 6 || memcmp(ni->mac.data, mac, 6) != 0)
			return vmm_error_set(err, -EINVAL,
					     "net mismatch: %s has MAC %s at the source, %s here", name,
					     theirs, ours);
		if (ni->features != features)
			return vmm_error_set(err, -EINVAL,
					     "net mismatch: %s offers features 0x%llx at the source, "
					     "0x%llx here (missing 0x%llx: the tap here lacks "
					     "virtio-net headers or offloads)",
					     name, (unsigned long long)ni->features,
					     (unsigned long long)features,
					     (unsigned long long)(ni->features & ~features));
	}
	if (h->n_nets != mine)
		return vmm_error_set(err, -EINVAL,
				     "net mismatch: the stream has %zu network cards, this VM %u",
				     h->n_nets, mine);
	return 0;
}

int mig_header_build(struct vm *vm, unsigned requires, struct mig_header_buf **out,
		     struct vmm_error *err)
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
	h->machine_type = vm->spec.machine.name;
	h->cpu_model = (char *)guest_cpu_name(vm->cpu);
	h->cpu_model_spec = (char *)guest_cpu_spec(vm->cpu);
	mig_caps_to_header(h, requires, b->caps, sizeof(b->caps) / sizeof(b->caps[0]));
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
	add_nets(vm, b);
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
	if (h->n_disks > VM_MAX_DISKS)
		return vmm_error_set(err, -EBADMSG, "header: %zu disks (at most %d)", h->n_disks,
				     VM_MAX_DISKS);
	if (h->n_nets > VM_MAX_NETS)
		return vmm_error_set(err, -EBADMSG, "header: %zu network cards (at most %d)",
				     h->n_nets, VM_MAX_NETS);
	if (h->page_size != 4096)
		return vmm_error_set(err, -EBADMSG, "header: page size %u", h->page_size);
	if (h->n_ram == 0 || h->n_ram > GUEST_MEM_MAX_REGIONS || h->ram_size == 0 ||
	    h->ram_size % 4096)
		return vmm_error_set(err, -EBADMSG, "header: RAM layout malformed");
	return 0;
}

int mig_header_to_spec(const Vmm__Migration__Header *h, struct vm_spec *out,
		       struct vmm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (machine_resolve(h->machine_type, &out->machine, err) < 0)
		return vmm_error_set(err, -ENOENT,
				     "stream machine type %s is unknown to this vmm (%s): the source is "
				     "newer; migrate to a vmm that has %s",
				     h->machine_type, VMM_VERSION, h->machine_type);
	if (strcmp(out->machine.name, h->machine_type) != 0)
		return vmm_error_set(err, -EBADMSG, "header: machine type %s is not a version",
				     h->machine_type);
	snprintf(out->machine_asked, sizeof(out->machine_asked), "%s", h->machine_type);
	snprintf(out->cpu_model, sizeof(out->cpu_model), "%s", h->cpu_model);
	snprintf(out->cpu_spec, sizeof(out->cpu_spec), "%s", h->cpu_model_spec);
	snprintf(out->cpu_asked, sizeof(out->cpu_asked), "%s", h->cpu_model_spec);
	out->mem_size = h->ram_size;
	out->ncpus = h->vcpu_count;
	out->machine_origin = out->cpu_origin = out->mem_origin = out->ncpus_origin =
		SPEC_FROM_STREAM;
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
	if (r < 0 || (r = check_nets(h, vm, err)) < 0)
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
	return 0;
}

/*
 * vmm/print_config.c: `vmm --print-config`: the resolved VM spec, every
 * default spelled out with where it came from (the command line, the
 * machine type's default, the machine type's pin of an unversioned CPU
 * model name), so a person can see what "the default" meant for this guest.
 */
#include "vmm/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* The bracketed word of the host's THP setting for shmem, or "unknown". */
static const char *thp_shmem_mode(void)
{
	static char mode[32] = "unknown";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
	char line[256];
	if (f && fgets(line, sizeof(line), f)) {
		char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
		if (a && b && (size_t)(b - a - 1) < sizeof(mode))
			snprintf(mode, sizeof(mode), "%.*s", (int)(b - a - 1), a + 1);
	}
	if (f)
		fclose(f);
	return mode;
}

/* Whether this host (or the profile) runs the resolved CPU model (needs /dev/kvm). */
static void print_cpu_runnable(const struct vm_spec *spec)
{
	struct vmm_error err = {0};
	struct cpumodel_db *db = NULL;
	struct host_cpu *host = NULL, *profile = NULL;
	struct guest_cpu *cpu = NULL;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		printf("                   (not checked against this host: /dev/kvm: %s)\n",
		       strerror(errno));
		return;
	}
	if (cpumodel_db_load(cpumodel_default_dir(), &db, &err) == 0 &&
	    host_cpu_from_kvm(kvm, &host, &err) == 0 &&
	    (!spec->host_cpu_profile[0] ||
	     host_cpu_from_profile(spec->host_cpu_profile, host, &profile, &err) == 0) &&
	    guest_cpu_resolve(db, spec->cpu_spec, profile ? profile : host, &cpu, &err) == 0)
		printf("                   (runs on this host as %s)\n", guest_cpu_spec(cpu));
	else
		printf("                   (NOT RUNNABLE here: %s)\n", err.msg);
	guest_cpu_free(cpu);
	host_cpu_free(profile);
	host_cpu_free(host);
	cpumodel_db_free(db);
	close(kvm);
}

int vmm_print_config(const struct vmm_config *cfg, struct vmm_error *err)
{
	struct vm_spec spec;
	int r = vm_spec_resolve(&cfg->vm, &spec, err);
	if (r < 0)
		return r;
	static const char *const serial[] = {"stdio", "file", "none"};
	bool alias = strcmp(spec.machine_asked, spec.machine.name) != 0;

	printf("vmm-version      = %s\n", VMM_VERSION);
	printf("machine          = %s (%s%s%s)\n", spec.machine.name,
	       vm_spec_origin_name(spec.machine_origin), alias ? ", alias " : "",
	       alias ? spec.machine_asked : "");
	printf("cpu-model        = %s (", spec.cpu_spec);
	if (spec.cpu_origin == SPEC_FROM_MACHINE)
		printf("the default of machine type %s, \"%s\"", spec.machine.name, spec.cpu_asked);
	else if (spec.cpu_origin == SPEC_FROM_MACHINE_PIN)
		printf("\"%s\" pinned by the machine type %s", spec.cpu_asked, spec.machine.name);
	else if (strcmp(spec.cpu_asked, spec.cpu_spec) != 0)
		printf("given as \"%s\"", spec.cpu_asked);
	else
		printf("given");
	printf("; recorded as %s)\n", spec.cpu_model);
	print_cpu_runnable(&spec);
	printf("memory           = %llu MiB (%s)\n", (unsigned long long)(spec.mem_size >> 20),
	       vm_spec_origin_name(spec.mem_origin));
	if (spec.mem_hugepages)
		printf("memory-backing   = 2 MiB hugetlb pages (memfd)\n");
	else
		printf("memory-backing   = shmem memfd, transparent hugepages asked for "
		       "(this host's shmem_enabled: %s)\n", thp_shmem_mode());
	printf("cpus             = %u (%s)\n", spec.ncpus, vm_spec_origin_name(spec.ncpus_origin));
	printf("serial           = %s%s%s\n", serial[spec.serial],
	       spec.serial == SERIAL_FILE ? ":" : "", spec.serial == SERIAL_FILE ? spec.serial_path : "");
	printf("kernel           = %s\n", cfg->kernel ? cfg->kernel : "(none)");
	printf("initrd           = %s\n", cfg->initrd ? cfg->initrd : "(none)");
	printf("cmdline          = \"%s\"\n", cfg->cmdline);
	for (unsigned i = 0; i < spec.ndisks; i++) /* virtio: slots in this order */
		printf("disk%u            = %s (virtio-blk%s%s%s)\n", i, spec.disks[i].path,
		       spec.disks[i].readonly ? ", read-only" : "",
		       spec.disks[i].serial[0] ? ", serial " : "", spec.disks[i].serial);
	if (spec.rng)
		printf("rng0             = virtio-rng (getrandom)\n");
	for (unsigned i = 0; i < spec.nnets; i++) {
		const uint8_t *m = spec.nets[i].mac;
		printf("net%u             = tap %s, MAC %02x:%02x:%02x:%02x:%02x:%02x (virtio-net)\n", i,
		       spec.nets[i].tap, m[0], m[1], m[2], m[3], m[4], m[5]);
	}
	if (cfg->incoming)
		printf("incoming         = %s\n", cfg->incoming);
	if (spec.host_cpu_profile[0])
		printf("host-cpu-profile = %s (CPU models checked as on that host, intersected with "
		       "this KVM)\n",
		       spec.host_cpu_profile);
	printf("# machine type properties (guest ABI of %s)\n", spec.machine.name);
	machine_dump(&spec.machine, stdout);
	return 0;
}

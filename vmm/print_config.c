/*
 * vmm/print_config.c: `vmm --print-config`: the fully resolved
 * configuration, every default spelled out with where it came from, so a
 * person can see what "the default" meant for this guest.
 */
#include "vmm/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* The CPU model as this host would resolve it (needs /dev/kvm). */
static void print_cpu_model(const char *spec, const struct vmm_config *cfg)
{
	struct vmm_error err = {0};
	struct cpumodel_db *db = NULL;
	struct host_cpu *host = NULL, *profile = NULL;
	struct guest_cpu *cpu = NULL;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		printf("cpu-model        = %s (not resolved: /dev/kvm: %s)\n", spec, strerror(errno));
		return;
	}
	if (cpumodel_db_load(cpumodel_default_dir(), &db, &err) == 0 &&
	    host_cpu_from_kvm(kvm, &host, &err) == 0 &&
	    (!cfg->host_cpu_profile ||
	     host_cpu_from_profile(cfg->host_cpu_profile, host, &profile, &err) == 0) &&
	    guest_cpu_resolve(db, spec, profile ? profile : host, &cpu, &err) == 0)
		printf("cpu-model        = %s (resolved from %s; recorded as %s)\n",
		       guest_cpu_spec(cpu), spec, guest_cpu_name(cpu));
	else
		printf("cpu-model        = %s (NOT RUNNABLE here: %s)\n", spec, err.msg);
	guest_cpu_free(cpu);
	host_cpu_free(profile);
	host_cpu_free(host);
	cpumodel_db_free(db);
	close(kvm);
}

int vmm_print_config(const struct vmm_config *cfg, struct vmm_error *err)
{
	const char *name = cfg->machine ? cfg->machine : machine_default_name();
	struct machine m;
	int r = machine_resolve(name, &m, err);
	if (r < 0)
		return r;
	const char *spec = cfg->cpu_model;
	uint64_t mem = cfg->mem_size;
	if (!spec && (r = machine_get_str(&m, "cpu", "default-model", &spec, err)) < 0)
		return r;
	if (!mem && (r = machine_get_u64(&m, "memory", "default-size", &mem, err)) < 0)
		return r;
	static const char *const serial[] = {"stdio", "file", "none"};

	printf("vmm-version      = %s\n", VMM_VERSION);
	printf("machine          = %s%s%s%s\n", m.name, strcmp(name, m.name) ? " (alias " : "",
	       strcmp(name, m.name) ? name : "", strcmp(name, m.name) ? ")" : "");
	print_cpu_model(spec, cfg);
	if (!cfg->cpu_model)
		printf("                   (the default CPU model of %s)\n", m.name);
	printf("memory           = %llu MiB%s\n", (unsigned long long)(mem >> 20),
	       cfg->mem_size ? "" : " (default of the machine type)");
	printf("cpus             = %u%s\n", cfg->ncpus, cfg->ncpus == 1 ? " (default)" : "");
	printf("serial           = %s%s%s\n", serial[cfg->serial],
	       cfg->serial == SERIAL_FILE ? ":" : "", cfg->serial == SERIAL_FILE ? cfg->serial_path : "");
	printf("kernel           = %s\n", cfg->kernel ? cfg->kernel : "(none)");
	printf("initrd           = %s\n", cfg->initrd ? cfg->initrd : "(none)");
	printf("cmdline          = \"%s\"\n", cfg->cmdline);
	for (unsigned i = 0; i < cfg->ndisks; i++) /* virtio: slots in this order */
		printf("disk%u            = %s (virtio-blk%s%s%s)\n", i, cfg->disks[i].path,
		       cfg->disks[i].readonly ? ", read-only" : "",
		       cfg->disks[i].serial[0] ? ", serial " : "", cfg->disks[i].serial);
	if (cfg->rng)
		printf("rng0             = virtio-rng (getrandom)\n");
	if (cfg->incoming)
		printf("incoming         = %s\n", cfg->incoming);
	if (cfg->host_cpu_profile)
		printf("host-cpu-profile = %s (TEST ONLY)\n", cfg->host_cpu_profile);
	printf("# machine type properties (guest ABI of %s)\n", m.name);
	machine_dump(&m, stdout);
	return 0;
}

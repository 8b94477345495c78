/* vmm/options.c: the `vmm run` command line -> struct vmm_config. */
#include "vmm/vmm.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

void vmm_usage(FILE *out)
{
	fprintf(out,
		"usage: vmm [run] --kernel ELF [options]     boot a guest (PVH ELF, e.g. vmlinux)\n"
		"       vmm [run] --incoming URI [options]   receive a migrating guest\n"
		"       vmm cpu-model list|check|expand|compare|baseline|matrix ...\n"
		"       vmm machine list|show NAME\n"
		"       vmm ctl SOCKET COMMAND ...            talk to a running vmm\n"
		"\n"
		"options:\n"
		"  --kernel PATH          PVH ELF to boot (uncompressed vmlinux or the test guest)\n"
		"  --initrd PATH          initial ramdisk, passed as PVH module 0\n"
		"  --cmdline STRING       kernel command line\n"
		"  --memory SIZE[,hugepages=on|off]\n"
		"                         guest RAM, e.g. 512M, 4G (plain number = MiB; default from\n"
		"                         machine); hugepages=on backs it with 2 MiB hugetlb pages from\n"
		"                         /proc/sys/vm/nr_hugepages (host-side: migrates to and from 4 KiB)\n"
		"  --cpus N               vCPUs (default from the machine type: 1)\n"
		"  --cpu-model SPEC       NAME[-vN][,+feat][,-feat]... (default from the machine type)\n"
		"  --machine NAME         machine type or alias (default microvm = newest)\n"
		"  --serial BACKEND       stdio (default) | file:PATH | none\n"
		"  --api-socket PATH      control socket (JSON, one object per line)\n"
		"  --incoming URI         tcp:HOST:PORT | unix:PATH | file:PATH: wait for a migration\n"
		"  --disk path=FILE[,readonly=on][,serial=ID]\n"
		"                         virtio-blk on a raw image (repeatable; machine microvm-1.2+)\n"
		"  --rng                  virtio-rng fed by the host's getrandom() (microvm-1.2+)\n"
		"  --tls-creds DIR        incoming tcp: needs TLS 1.3: DIR/ca-cert.pem, server-cert.pem,\n"
		"                         server-key.pem; the source must show a certificate of that CA\n"
		"  --tls-authz FILE       allowed source certificate DNs, one per line (RFC 4514)\n"
		"  --tls-psk FILE         TLS with a pre-shared key instead (\"user:hexkey\" lines)\n"
		"  --tls-priority STR     GnuTLS priority string (default: TLS 1.3, AES-GCM only)\n"
		"  --net tap=IFNAME[,mac=MAC]\n"
		"                         virtio-net on a host tap, attached or created (removed on\n"
		"                         exit); default MAC 52:54:00:12:34:56 + index (repeatable;\n"
		"                         microvm-1.2+)\n"
		"  --print-config         print the resolved configuration and exit\n"
		"  --dump-cpuid PATH      write the CPUID table KVM holds for each vCPU (KVM_GET_CPUID2)\n"
		"  --host-cpu-profile F   check CPU models as the host F describes would: a host profile\n"
		"                         (vmm cpu-model host-profile) or a CPUID dump, intersected with\n"
		"                         this machine's KVM\n"
		"  --help, --version\n");
}

int parse_size(const char *s, uint64_t *out, struct vmm_error *err)
{
	if (!s || !*s)
		return vmm_error_set(err, -EINVAL, "empty size");
	if (*s == '-' || *s == '+')
		return vmm_error_set(err, -EINVAL, "size \"%s\": not a positive number", s);
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return vmm_error_set(err, -ERANGE, "size \"%s\": too large", s);
	if (errno || end == s)
		return vmm_error_set(err, -EINVAL, "size \"%s\": not a number", s);
	unsigned shift;
	/* A plain number means MiB, as with QEMU's -m. */
	switch (*end) {
	case '\0':
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	case 'T':
	case 't':
		shift = 40;
		break;
	case 'B':
	case 'b':
		shift = 0;
		break;
	default:
		return vmm_error_set(err, -EINVAL, "size \"%s\": unknown unit (use K, M, G or T)", s);
	}
	if (*end) {
		end++;
		if (shift && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
			end += strlen(end);
		if (*end)
			return vmm_error_set(err, -EINVAL, "size \"%s\": trailing characters", s);
	}
	if (v > (UINT64_MAX >> shift))
		return vmm_error_set(err, -ERANGE, "size \"%s\": too large", s);
	*out = (uint64_t)v << shift;
	return 0;
}

/* "SIZE[,hugepages=on|off]" */
static int parse_memory(const char *arg, struct vm_request *vm, struct vmm_error *err)
{
	char size[64];
	const char *comma = strchr(arg, ',');
	size_t n = comma ? (size_t)(comma - arg) : strlen(arg);
	if (n >= sizeof(size))
		return vmm_error_set(err, -EINVAL, "--memory \"%s\": size too long", arg);
	memcpy(size, arg, n);
	size[n] = '\0';
	int r = parse_size(size, &vm->mem_size, err);
	if (r == 0 && vm->mem_size == 0)
		r = vmm_error_set(err, -EINVAL, "size must not be zero");
	if (r < 0)
		return vmm_error_prefix(err, "--memory");
	vm->mem_hugepages = false;
	while (comma) {
		const char *opt = comma + 1;
		comma = strchr(opt, ',');
		size_t len = comma ? (size_t)(comma - opt) : strlen(opt);
		if (len == 12 && strncmp(opt, "hugepages=on", 12) == 0)
			vm->mem_hugepages = true;
		else if (len == 13 && strncmp(opt, "hugepages=off", 13) == 0)
			vm->mem_hugepages = false;
		else
			return vmm_error_set(err, -EINVAL,
					     "--memory \"%s\": unknown option \"%.*s\" (expected "
					     "hugepages=on or hugepages=off)",
					     arg, (int)len, opt);
	}
	return 0;
}

static int parse_uint(const char *opt, const char *s, unsigned max, unsigned *out,
		      struct vmm_error *err)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *s == '+')
		return vmm_error_set(err, -EINVAL, "%s \"%s\": not a number", opt, s);
	if (v == 0 || v > max)
		return vmm_error_set(err, -ERANGE, "%s %s: must be between 1 and %u", opt, s, max);
	*out = (unsigned)v;
	return 0;
}

static int parse_serial(const char *s, struct vm_request *vm, struct vmm_error *err)
{
	if (strcmp(s, "stdio") == 0) {
		vm->serial = SERIAL_STDIO;
	} else if (strcmp(s, "none") == 0) {
		vm->serial = SERIAL_NONE;
	} else if (strncmp(s, "file:", 5) == 0 && s[5]) {
		vm->serial = SERIAL_FILE;
		vm->serial_path = s + 5;
	} else {
		return vmm_error_set(err, -EINVAL,
				     "--serial \"%s\": expected stdio, file:PATH or none", s);
	}
	return 0;
}

static int copy_opt(const char *opt, const char *val, char *dst, size_t len,
		    struct vmm_error *err)
{
	if (!*val || strlen(val) >= len)
		return vmm_error_set(err, -EINVAL, "%s: empty or longer than %zu bytes", opt, len - 1);
	memcpy(dst, val, strlen(val) + 1);
	return 0;
}

enum {
	OPT_KERNEL = 256,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_MEMORY,
	OPT_CPUS,
	OPT_CPU_MODEL,
	OPT_HOST_PROFILE,
	OPT_MACHINE,
	OPT_SERIAL,
	OPT_DUMP_CPUID,
	OPT_API_SOCKET,
	OPT_INCOMING,
	OPT_PRINT_CONFIG,
	OPT_DISK,
	OPT_RNG,
	OPT_TLS_CREDS,
	OPT_TLS_AUTHZ,
	OPT_TLS_PSK,
	OPT_TLS_PRIORITY,
	OPT_NET,
	OPT_HELP,
};

static const struct option long_options[] = {
	{"kernel", required_argument, NULL, OPT_KERNEL},
	{"initrd", required_argument, NULL, OPT_INITRD},
	{"cmdline", required_argument, NULL, OPT_CMDLINE},
	{"memory", required_argument, NULL, OPT_MEMORY},
	{"cpus", required_argument, NULL, OPT_CPUS},
	{"cpu-model", required_argument, NULL, OPT_CPU_MODEL},
	{"host-cpu-profile", required_argument, NULL, OPT_HOST_PROFILE},
	{"machine", required_argument, NULL, OPT_MACHINE},
	{"serial", required_argument, NULL, OPT_SERIAL},
	{"dump-cpuid", required_argument, NULL, OPT_DUMP_CPUID},
	{"api-socket", required_argument, NULL, OPT_API_SOCKET},
	{"incoming", required_argument, NULL, OPT_INCOMING},
	{"print-config", no_argument, NULL, OPT_PRINT_CONFIG},
	{"disk", required_argument, NULL, OPT_DISK},
	{"rng", no_argument, NULL, OPT_RNG},
	{"tls-creds", required_argument, NULL, OPT_TLS_CREDS},
	{"tls-authz", required_argument, NULL, OPT_TLS_AUTHZ},
	{"tls-psk", required_argument, NULL, OPT_TLS_PSK},
	{"tls-priority", required_argument, NULL, OPT_TLS_PRIORITY},
	{"net", required_argument, NULL, OPT_NET},
	{"help", no_argument, NULL, OPT_HELP},
	{NULL, 0, NULL, 0},
};

int vmm_options_parse(int argc, char **argv, struct vmm_config *cfg, struct vmm_error *err)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->vm.serial = SERIAL_STDIO;
	cfg->cmdline = "";

	optind = 0; /* argv[0] is the subcommand or program name */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":", long_options, NULL)) != -1) {
		int r = 0;
		switch (c) {
		case OPT_KERNEL:
			cfg->kernel = optarg;
			break;
		case OPT_INITRD:
			cfg->initrd = optarg;
			break;
		case OPT_CMDLINE:
			cfg->cmdline = optarg;
			break;
		case OPT_MEMORY:
			r = parse_memory(optarg, &cfg->vm, err);
			break;
		case OPT_CPUS:
			r = parse_uint("--cpus", optarg, VMM_CPUS_PARSE_MAX, &cfg->vm.ncpus, err);
			break;
		case OPT_CPU_MODEL:
			cfg->vm.cpu_model = optarg;
			break;
		case OPT_HOST_PROFILE:
			cfg->vm.host_cpu_profile = optarg;
			break;
		case OPT_MACHINE:
			cfg->vm.machine = optarg;
			break;
		case OPT_SERIAL:
			r = parse_serial(optarg, &cfg->vm, err);
			break;
		case OPT_DUMP_CPUID:
			cfg->dump_cpuid = optarg;
			break;
		case OPT_API_SOCKET:
			cfg->api_socket = optarg;
			break;
		case OPT_INCOMING:
			cfg->incoming = optarg;
			cfg->vm.incoming = true;
			break;
		case OPT_PRINT_CONFIG:
			cfg->print_config = true;
			break;
		case OPT_DISK:
			r = vm_request_add_disk(&cfg->vm, optarg, err);
			break;
		case OPT_RNG:
			cfg->vm.rng = true;
			break;
		case OPT_TLS_CREDS:
			r = copy_opt("--tls-creds", optarg, cfg->tls.creds_dir,
				     sizeof(cfg->tls.creds_dir), err);
			break;
		case OPT_TLS_AUTHZ:
			r = copy_opt("--tls-authz", optarg, cfg->tls.authz_file,
				     sizeof(cfg->tls.authz_file), err);
			break;
		case OPT_TLS_PSK:
			r = copy_opt("--tls-psk", optarg, cfg->tls.psk_file, sizeof(cfg->tls.psk_file),
				     err);
			break;
		case OPT_TLS_PRIORITY:
			r = copy_opt("--tls-priority", optarg, cfg->tls.priority,
				     sizeof(cfg->tls.priority), err);
			break;
		case OPT_NET:
			r = vm_request_add_net(&cfg->vm, optarg, err);
			break;
		case OPT_HELP:
			vmm_usage(stdout);
			return 1;
		case ':':
			return vmm_error_set(err, -EINVAL, "option %s needs a value",
					     argv[optind - 1]);
		default:
			if (optind <= 0 || optind > argc)
				return vmm_error_set(err, -EINVAL, "unknown option (see --help)");
			return vmm_error_set(err, -EINVAL, "unknown option %s (see --help)",
					     argv[optind - 1]);
		}
		if (r < 0)
			return r;
	}
	if (optind < argc)
		return vmm_error_set(err, -EINVAL, "unexpected argument \"%s\" (see --help)",
				     argv[optind]);
	if (mig_tls_configured(&cfg->tls) && !cfg->incoming)
		return vmm_error_set(err, -EINVAL, "--tls-creds/--tls-psk are for --incoming (a "
				     "source sets tls-creds with migrate-set-parameters)");
	if (!cfg->kernel && !cfg->incoming && !cfg->print_config)
		return vmm_error_set(err, -EINVAL, "no --kernel given (or --incoming URI)");
	return 0;
}

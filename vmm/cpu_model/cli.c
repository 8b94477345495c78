/*
 * vmm/cpu_model/cli.c: `vmm cpu-model SUBCOMMAND [options] ...`: options, the
 * subcommand table, loading the database and the host.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/cpu_model/cli.h"

enum host_need { NO_HOST, ONE_HOST, HOST_LIST };

static const struct subcommand {
	const char *name, *args, *help;
	int (*run)(struct cpumodel_cli *c);
	int min_pos, max_pos;
	enum host_need host;
} subcommands[] = {
    {"list", "", "models, versions, aliases; runnable on this host?", cli_list, 0, 0, ONE_HOST},
    {"check", "MODEL", "runnable here? every missing feature", cli_check, 1, 1, ONE_HOST},
    {"expand", "MODEL", "the CPUID table a vCPU sees (canonical text)", cli_expand, 1, 1, ONE_HOST},
    {"show", "MODEL", "a model version's definition and changes", cli_show, 1, 1, NO_HOST},
    {"compare", "A B", "models or host profiles: identical/subset/superset/incompatible",
     cli_compare, 2, 2, NO_HOST},
    {"baseline", "HOST...", "newest model version every host can run", cli_baseline, 1,
     CLI_MAX_HOSTS, HOST_LIST},
    {"matrix", "HOST...", "models x hosts: runnable, missing features", cli_matrix, 0,
     CLI_MAX_HOSTS, HOST_LIST},
    {"features", "", "the named CPUID feature bits", cli_features, 0, 0, NO_HOST},
    {"host-profile", "", "this host as a guest gets it, as a host profile (-o FILE)",
     cli_host_profile, 0, 0, NO_HOST},
    {"labels", "", "Kubernetes node labels: runnable models, usable features", cli_labels, 0, 0,
     ONE_HOST},
};
#define NSUB (sizeof(subcommands) / sizeof(subcommands[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: vmm cpu-model SUBCOMMAND [options]\n\n");
	for (size_t i = 0; i < NSUB; i++)
		fprintf(f, "  %-12s %-8s %s\n", subcommands[i].name, subcommands[i].args,
			subcommands[i].help);
	fprintf(f,
		"\nMODEL is NAME, NAME-vN or an alias, optionally followed by "
		",+feature,-feature...\n"
		"HOST is a host profile (`vmm cpu-model host-profile` run on that host) or a raw\n"
		"CPUID dump standing for a KVM host on that CPU (../shared/cpuid-hosts format);\n"
		"e.g. collect `ssh H vmm cpu-model host-profile > H.profile` from every host,\n"
		"then `vmm cpu-model baseline *.profile` is the model the whole fleet runs.\n"
		"options:\n"
		"  --json                 machine-readable output\n"
		"  --host-cpu-profile F   list/check/expand/labels: act as the host F describes\n"
		"                         (a host profile or a CPUID dump) instead of this one\n"
		"  -o, --output FILE      host-profile: write FILE (atomically), not stdout\n"
		"  --with-kvm             intersect profiles with this machine's KVM\n"
		"  --include-kvm          baseline/matrix: add this machine's KVM as a host\n"
		"  --no-host-check        expand/check without a host (no runnable check)\n"
		"  --cpus N, --vcpu I     expand: vCPU count and index (default 1, 0)\n"
		"  --newest               matrix: newest version of each model only\n"
		"  --html FILE            matrix: also write a self-contained HTML page\n"
		"  --verbose              matrix: list the missing features of every cell\n"
		"  --data-dir DIR         model data (default $VMM_CPU_MODEL_DIR or %s)\n"
		"exit status: 0 ok, 1 not runnable / no baseline, 2 error\n",
		cpumodel_default_dir());
}

int cli_error(const struct vmm_error *err)
{
	fprintf(stderr, "vmm cpu-model: %s\n", err->msg[0] ? err->msg : "failed");
	return 2;
}

static int parse_count(const char *opt, const char *val, unsigned max, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(val, &end, 10);
	if (errno || *end || !val[0] || val[0] == '-' || v > max) {
		fprintf(stderr, "vmm cpu-model: %s %s: expected a number 0..%u\n", opt, val, max);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

enum {
	OPT_JSON = 256,
	OPT_PROFILE,
	OPT_WITH_KVM,
	OPT_INCLUDE_KVM,
	OPT_NO_HOST_CHECK,
	OPT_CPUS,
	OPT_VCPU,
	OPT_NEWEST,
	OPT_HTML,
	OPT_DATA_DIR,
	OPT_VERBOSE,
	OPT_HELP,
	OPT_OUTPUT = 'o',
};

static const struct option options[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"host-cpu-profile", required_argument, NULL, OPT_PROFILE},
    {"with-kvm", no_argument, NULL, OPT_WITH_KVM},
    {"include-kvm", no_argument, NULL, OPT_INCLUDE_KVM},
    {"no-host-check", no_argument, NULL, OPT_NO_HOST_CHECK},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"vcpu", required_argument, NULL, OPT_VCPU},
    {"newest", no_argument, NULL, OPT_NEWEST},
    {"html", required_argument, NULL, OPT_HTML},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {NULL, 0, NULL, 0},
};

static int parse_options(struct cpumodel_cli *c, int argc, char **argv)
{
	int o;
	optind = 0; /* glibc: full re-initialisation (we may be called twice) */
	opterr = 0;
	while ((o = getopt_long(argc, argv, "o:", options, NULL)) != -1) {
		switch (o) {
		case OPT_JSON:
			c->json = true;
			break;
		case OPT_PROFILE:
			c->profile = optarg;
			break;
		case OPT_WITH_KVM:
			c->with_kvm = true;
			break;
		case OPT_INCLUDE_KVM:
			c->include_kvm = true;
			break;
		case OPT_NO_HOST_CHECK:
			c->no_host_check = true;
			break;
		case OPT_CPUS:
			if (parse_count("--cpus", optarg, CPUMODEL_MAX_CPUS, &c->cpus) ||
			    !c->cpus) {
				if (!c->cpus)
					fprintf(stderr, "vmm cpu-model: --cpus must be >= 1\n");
				return -EINVAL;
			}
			break;
		case OPT_VCPU:
			if (parse_count("--vcpu", optarg, CPUMODEL_MAX_CPUS, &c->vcpu))
				return -EINVAL;
			break;
		case OPT_NEWEST:
			c->newest = true;
			break;
		case OPT_HTML:
			c->html = optarg;
			break;
		case OPT_DATA_DIR:
			c->data_dir = optarg;
			break;
		case OPT_VERBOSE:
			c->verbose = true;
			break;
		case OPT_OUTPUT:
			c->output = optarg;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			fprintf(stderr, "vmm cpu-model: unknown or incomplete option '%s'\n",
				argv[optind - 1]);
			return -EINVAL;
		}
	}
	return 0;
}

/* The host for list/check/expand: a profile (maybe intersected with KVM)
 * or this machine's KVM. */
static int load_host(struct cpumodel_cli *c, struct vmm_error *err)
{
	struct host_cpu *kvm = NULL;
	int rc;
	if (c->no_host_check)
		return 0;
	if (c->profile) {
		if (c->with_kvm && (rc = host_cpu_open_kvm(&kvm, err)) < 0)
			return rc;
		rc = host_cpu_from_profile(c->profile, kvm, &c->host, err);
		host_cpu_free(kvm);
		return rc;
	}
	if (c->with_kvm) {
		fprintf(stderr, "vmm cpu-model: --with-kvm needs --host-cpu-profile\n");
		return vmm_error_set(err, -EINVAL, "--with-kvm without --host-cpu-profile");
	}
	return host_cpu_open_kvm(&c->host, err);
}

int cli_load_hosts(struct cpumodel_cli *c, int first_pos, struct host_cpu **hosts, unsigned *n,
		   struct vmm_error *err)
{
	struct host_cpu *kvm = NULL;
	int rc = 0;
	*n = 0;
	if ((c->with_kvm || c->include_kvm) && (rc = host_cpu_open_kvm(&kvm, err)) < 0)
		return rc;
	for (int i = first_pos; i < c->npos && !rc; i++) {
		if (*n >= CLI_MAX_HOSTS) {
			rc = vmm_error_set(err, -E2BIG, "more than %d hosts", CLI_MAX_HOSTS);
			break;
		}
		rc = host_cpu_from_profile(c->pos[i], c->with_kvm ? kvm : NULL, &hosts[*n], err);
		if (!rc)
			(*n)++;
	}
	if (!rc && c->include_kvm) {
		if (*n >= CLI_MAX_HOSTS)
			rc = vmm_error_set(err, -E2BIG, "more than %d hosts", CLI_MAX_HOSTS);
		else
			hosts[(*n)++] = kvm;
		kvm = rc ? kvm : NULL;
	}
	host_cpu_free(kvm);
	if (rc) {
		cli_free_hosts(hosts, *n);
		*n = 0;
	}
	return rc;
}

void cli_free_hosts(struct host_cpu **hosts, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		host_cpu_free(hosts[i]);
}

int cli_print_json(struct cpumodel_cli *c, struct json_object *o)
{
	if (!o) {
		fprintf(stderr, "vmm cpu-model: out of memory\n");
		return 2;
	}
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE);
	int rc = fprintf(c->out, "%s\n", s) < 0 ? 2 : 0;
	json_object_put(o);
	return rc;
}

struct json_object *cli_json_features(const struct cpufeat_set *s, bool describe)
{
	struct json_object *a = json_object_new_array();
	size_t i = 0;
	const struct cpufeat *f;
	while (a && (f = cpufeat_set_next(s, &i))) {
		char d[96];
		if (describe)
			cpufeat_describe(f, d, sizeof(d));
		json_object_array_add(a, json_object_new_string(describe ? d : f->name));
	}
	return a;
}

int cpumodel_cli(int argc, char **argv)
{
	struct cpumodel_cli c = {.cpus = 1, .out = stdout};
	struct vmm_error err = {0};
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const struct subcommand *sub = NULL;
	for (size_t i = 0; i < NSUB; i++)
		if (strcmp(subcommands[i].name, argv[1]) == 0)
			sub = &subcommands[i];
	if (!sub) {
		fprintf(stderr, "vmm cpu-model: unknown subcommand '%s' (try --help)\n", argv[1]);
		return 2;
	}
	/* argv[1..] with the subcommand as "argv[0]" for getopt */
	if (parse_options(&c, argc - 1, argv + 1) < 0)
		return 2;
	c.pos = argv + 1 + optind;
	c.npos = argc - 1 - optind;
	if (c.npos < sub->min_pos || c.npos > sub->max_pos) {
		fprintf(stderr, "vmm cpu-model: usage: vmm cpu-model %s %s [options]\n", sub->name,
			sub->args);
		return 2;
	}
	if (strcmp(sub->name, "matrix") == 0 && !c.npos && !c.include_kvm) {
		fprintf(stderr, "vmm cpu-model: matrix needs host profiles or --include-kvm\n");
		return 2;
	}
	if (c.output && strcmp(sub->name, "host-profile") != 0) {
		fprintf(stderr, "vmm cpu-model: -o/--output is for host-profile\n");
		return 2;
	}
	if (strcmp(sub->name, "host-profile") == 0 && (c.profile || c.with_kvm)) {
		fprintf(stderr, "vmm cpu-model: host-profile describes this host: no "
				"--host-cpu-profile/--with-kvm\n");
		return 2;
	}
	if (sub->host != ONE_HOST && c.profile) {
		fprintf(stderr,
			"vmm cpu-model: %s takes hosts as arguments, not "
			"--host-cpu-profile\n",
			sub->name);
		return 2;
	}
	if (strcmp(sub->name, "features") != 0 && strcmp(sub->name, "host-profile") != 0 &&
	    cpumodel_db_load(c.data_dir ? c.data_dir : cpumodel_default_dir(), &c.db, &err) < 0)
		return cli_error(&err);
	int rc;
	if (sub->host == ONE_HOST && load_host(&c, &err) < 0)
		rc = cli_error(&err);
	else
		rc = sub->run(&c);
	host_cpu_free(c.host);
	cpumodel_db_free(c.db);
	return rc;
}

/*
 * vmm/cpu_model/cli.h: `vmm cpu-model ...`, the CPU-model engine's command
 * line (front end): cli.c parses and dispatches to models.c (list, check,
 * show, features, expand), ops.c (compare, baseline, matrix), html.c (the
 * matrix as a page) and fleet.c (host-profile, labels). It uses the engine's
 * inner interface (cpumodels/engine.h).
 */
#ifndef VMM_CPU_MODEL_CLI_H
#define VMM_CPU_MODEL_CLI_H

#include <stdio.h>

#include "cpumodels/engine.h"

/* `vmm cpu-model ...`: argv[0] is "cpu-model". Returns the process exit code
 * (0 ok, 1 a negative answer: not runnable / no baseline, 2 an error). */
int cpumodel_cli(int argc, char **argv);

#define CLI_MAX_HOSTS 64

struct cpumodel_cli {
	bool json, with_kvm, include_kvm, no_host_check, newest, verbose;
	const char *profile, *html, *data_dir, *output;
	unsigned cpus, vcpu;
	int npos;
	char **pos; /* positional arguments after the subcommand */
	struct cpumodel_db *db;
	struct host_cpu *host; /* list/check/expand/show: the host acted on */
	FILE *out;
};

/* Each returns the process exit code: 0 ok, 1 a negative answer (not
 * runnable, no baseline), 2 an error (message on stderr). */
int cli_list(struct cpumodel_cli *c);
int cli_check(struct cpumodel_cli *c);
int cli_show(struct cpumodel_cli *c);
int cli_features(struct cpumodel_cli *c);
int cli_expand(struct cpumodel_cli *c);
int cli_compare(struct cpumodel_cli *c);
int cli_baseline(struct cpumodel_cli *c);
int cli_matrix(struct cpumodel_cli *c);
int cli_host_profile(struct cpumodel_cli *c); /* cli_fleet.c */
int cli_labels(struct cpumodel_cli *c);
int cli_matrix_html(const struct cpumodel_matrix *m, struct host_cpu *const *hosts,
		    const char *path, struct vmm_error *err);
/* Loads the hosts named by the positional arguments (profiles; with
 * --with-kvm intersected with this machine; --include-kvm adds this machine). */
int cli_load_hosts(struct cpumodel_cli *c, int first_pos, struct host_cpu **hosts, unsigned *n,
		   struct vmm_error *err);
void cli_free_hosts(struct host_cpu **hosts, unsigned n);
/* Prints the JSON object to c->out (pretty) and frees it. */
struct json_object;
int cli_print_json(struct cpumodel_cli *c, struct json_object *o);
struct json_object *cli_json_features(const struct cpufeat_set *s, bool describe);
int cli_error(const struct vmm_error *err);

#endif

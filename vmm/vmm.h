/*
 * vmm/vmm.h: the front end, the `vmm` program: its subcommands, the `run`
 * command line, and the run loop that owns the VM.
 *
 * Layers point one way: front end (vmm/) -> control API (api/) ->
 * migration (migration/) -> VM core (core/) -> cpumodels/, machine-types/
 * -> util/. Nothing below includes anything from here.
 */
#ifndef VMM_FRONTEND_H
#define VMM_FRONTEND_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/vm.h"
#include "migration/tls.h"
#include "util/error.h"

/* ---- `vmm run` options (options.c) ---- */

struct vmm_config {
	struct vm_request vm; /* what the guest should be; resolved by vm_spec_resolve() */
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	const char *dump_cpuid; /* write KVM_GET_CPUID2 of every vCPU here */
	const char *api_socket;
	const char *incoming;
	struct mig_tls_config tls; /* --tls-creds, --tls-psk, --tls-authz, --tls-priority */
	bool print_config;
};

/* Parses argv (after the program name); on error returns -EINVAL with the
 * message naming the option. Returns 1 for --help (usage printed). */
int vmm_options_parse(int argc, char **argv, struct vmm_config *cfg, struct vmm_error *err);
void vmm_usage(FILE *out);
/* "512M", "4G", "1024" (MiB) -> bytes. */
int parse_size(const char *s, uint64_t *out, struct vmm_error *err);

/* ---- subcommands ---- */

/* `vmm [run] ...` (run.c): boot or receive a guest and run it. */
int vmm_run(int argc, char **argv);
/* `--print-config` (print_config.c): the resolved spec, every default with
 * where it came from. */
int vmm_print_config(const struct vmm_config *cfg, struct vmm_error *err);
/* `vmm machine list|show` (machine_cli.c); argv[0] is "machine". */
int machine_cli(int argc, char **argv);

#endif

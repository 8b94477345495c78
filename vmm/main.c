/* vmm/main.c: the entry point: the table of subcommands. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "config.h"
#include "vmm/cpu_model/cli.h"
#include "vmm/vmm.h"

static int print_version(int argc, char **argv)
{
	(void)argc, (void)argv;
	printf("vmm %s\n", VMM_VERSION);
	return 0;
}

/* argv[0] of the handler is the subcommand's name. */
static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{"run", vmm_run},
	{"ctl", api_client_main},
	{"cpu-model", cpumodel_cli},
	{"machine", machine_cli},
	{"--version", print_version},
};

int main(int argc, char **argv)
{
	for (size_t i = 0; argc > 1 && i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	return vmm_run(argc, argv); /* `vmm --kernel ...`: run is the default */
}

/* vmm/main.c: entry point; dispatches subcommands. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "cpumodels/cpumodel.h"
#include "vmm/api.h"
#include "vmm/machine_abi.h"
#include "vmm/vmm.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("vmm %s\n", VMM_VERSION);
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "cpu-model") == 0)
		return cpumodel_cli(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "ctl") == 0)
		return api_client_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "machine") == 0)
		return machine_cli(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "run") == 0)
		return vmm_run(argc - 1, argv + 1);
	return vmm_run(argc, argv);
}

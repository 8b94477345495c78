/* vmm/main.c: entry point; dispatches subcommands. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "cpumodels/cpumodel.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("vmm %s\n", VMM_VERSION);
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "cpu-model") == 0) /* temporary, until the lead's main lands */
		return cpumodel_cli(argc - 1, argv + 1);
	fprintf(stderr, "vmm: nothing implemented yet\n");
	return 2;
}

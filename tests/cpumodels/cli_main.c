/* tests/cpumodels/cli_main.c: `cpumodel-cli ARGS` runs `vmm cpu-model ARGS`
 * without the rest of the VMM, for the script tests. */
#include "vmm/cpu_model/cli.h"

int main(int argc, char **argv)
{
	argv[0] = "cpu-model";
	return cpumodel_cli(argc, argv);
}

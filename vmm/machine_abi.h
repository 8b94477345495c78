/* vmm/machine_abi.h: machine type ABI dumps and `vmm machine` (see machine_abi.c). */
#ifndef VMM_MACHINE_ABI_H
#define VMM_MACHINE_ABI_H

#include <stdio.h>

#include "util/error.h"

int machine_abi_dump(const char *name, FILE *out, struct vmm_error *err);
/* argv[0] is "machine". Returns the process exit code. */
int machine_cli(int argc, char **argv);

#endif

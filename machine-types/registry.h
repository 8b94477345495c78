/* machine-types/registry.h: the families the registry knows (internal). */
#ifndef VMM_MACHINE_REGISTRY_H
#define VMM_MACHINE_REGISTRY_H

#include "machine-types/machine.h"

extern const struct machine_version machine_microvm_versions[];
extern const unsigned machine_microvm_nversions;

#endif

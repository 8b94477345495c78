/*
 * machine-types/machine.h: versioned machine types, the frozen guest-visible
 * hardware of a VM (memory map, devices, their addresses/IRQs and defaults).
 *
 * A machine type version is data: the previous version plus a list of
 * {device, property, value} changes (see microvm.c). Released versions are
 * never edited; a change of default is a new version. Resolving a name gives
 * a flat property table; device code reads its properties from it (never
 * from constants of its own), so an old guest keeps its old hardware even
 * on a newer vmm.
 *
 * Order: machine_resolve() once at start, then machine_get_*() from the
 * device/boot code. Aliases ("microvm") resolve to the newest version.
 */
#ifndef VMM_MACHINE_H
#define VMM_MACHINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/error.h"

/* One property assignment: "<device>.<prop> = <value>". */
struct machine_prop {
	const char *device;
	const char *prop;
	const char *value;
};

/* One released version: its parent plus compat changes. */
struct machine_version {
	const char *name;		    /* "microvm-1.0" */
	const char *parent;		    /* NULL for the first version of a family */
	const char *summary;		    /* what changed and why, one line */
	const struct machine_prop *changes; /* terminated by a {NULL} row */
};

/* An alias ("microvm") and what it resolves to (the newest version). */
struct machine_alias {
	const char *alias;
	const char *target;
};

#define MACHINE_MAX_PROPS 256
#define MACHINE_NAME_MAX 64

/* A resolved machine: the flattened property table of one version. */
struct machine {
	char name[MACHINE_NAME_MAX]; /* resolved "microvm-1.0" */
	unsigned nprops;
	struct machine_prop props[MACHINE_MAX_PROPS]; /* sorted by device, prop */
};

/* Resolves a name or alias into *out. -ENOENT (message lists the known
 * names) when unknown. */
int machine_resolve(const char *name, struct machine *out, struct vmm_error *err);

/* The registry, for listings and tests. */
const struct machine_version *machine_versions(unsigned *count);
const struct machine_alias *machine_aliases(unsigned *count);
const char *machine_default_name(void);

/* Typed property access; -ENOENT when the machine does not define it,
 * -EINVAL when the value does not parse. Messages name machine.device.prop. */
int machine_get_u64(const struct machine *m, const char *device, const char *prop, uint64_t *out,
		    struct vmm_error *err);
int machine_get_str(const struct machine *m, const char *device, const char *prop,
		    const char **out, struct vmm_error *err);
/* true when the device exists in this machine (has a "type" and is not
 * marked present=no). */
bool machine_has_device(const struct machine *m, const char *device);

/* Canonical text dump of the machine's guest ABI ("device.prop = value"
 * lines, sorted), used by `vmm machine` and the ABI tests. */
void machine_dump(const struct machine *m, FILE *out);

#endif

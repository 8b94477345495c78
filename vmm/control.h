/*
 * vmm/control.h: what a running vmm answers on its control API: run state,
 * stop/cont/quit, migration and its statistics, CPUID and machine queries.
 * Owned by run.c; handlers run on the main loop.
 */
#ifndef VMM_CONTROL_H
#define VMM_CONTROL_H

#include <uv.h>

#include "migration/dest.h"
#include "migration/source.h"
#include "api/api.h"
#include "vmm/vmm.h"

struct vmm_control {
	struct vm *vm;
	const struct vmm_config *cfg;
	uv_loop_t *loop;
	struct api_server *api;
	bool vm_running;  /* vCPU threads started */
	bool user_paused; /* holds a pause reference for `stop` */
	struct mig_source *mig;
	struct mig_params params;
	uv_async_t mig_done;
	struct mig_dest *dest;
};

extern const struct api_command vmm_control_commands[];
extern const unsigned vmm_control_ncommands;

/* "running", "paused", "inmigrate", "finish-migrate", "postmigrate". */
const char *vmm_control_status(struct vmm_control *c);
/* query-migrate's object (also printed at the end of a migration). */
struct json_object *vmm_control_migrate_info(struct vmm_control *c);

#endif

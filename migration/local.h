/* migration/local.h: same-host moves, the RAM as a memfd (see local.c). */
#ifndef VMM_MIGRATION_LOCAL_H
#define VMM_MIGRATION_LOCAL_H

#include "migration/channel.h"
#include "migration/migration.h"

/* Source: the MemFd record with the RAM memfd attached; waits (timeout_ms)
 * for the destination's Ack that it mapped it. */
int mig_local_send(struct mig_channel *ch, struct mig_writer *w, struct vm *vm, unsigned timeout_ms,
		   struct vmm_error *err);
/* Destination: takes the descriptor that came with `rec` and makes it the
 * VM's RAM (checked: a memfd of this guest's size that maps here). */
int mig_local_adopt(struct mig_conn *conn, struct vm *vm, const struct mig_record *rec,
		    struct vmm_error *err);

#endif

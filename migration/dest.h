/*
 * migration/dest.h: the incoming side (`vmm --incoming URI`), on the main
 * libuv loop. It waits for one stream, builds the VM from the stream's
 * header (machine type and CPU model versions it names) checked against the
 * command line, loads RAM as it arrives, keeps the final state until the
 * End record proves the stream complete and intact, loads it in KVM's order
 * and starts the guest, over sockets only once the source said Go.
 * On any failure it tells the source why (Refused) and never starts the guest.
 */
#ifndef VMM_MIGRATION_DEST_H
#define VMM_MIGRATION_DEST_H

#include <uv.h>

#include "migration/migration.h"

struct mig_dest;

/* Called once: result 0 = the guest now runs here; < 0 = failed (msg). */
typedef void (*mig_dest_done_fn)(struct mig_dest *d, int result, const char *msg, void *ctx);

int mig_dest_start(uv_loop_t *loop, const char *uri, struct vm *vm,
		   const struct vmm_config *cmdline, mig_dest_done_fn done, void *ctx,
		   struct mig_dest **out, struct vmm_error *err);
/* Whether `vm` has been built (from the stream's header). */
bool mig_dest_vm_created(const struct mig_dest *d);
uint64_t mig_dest_bytes(const struct mig_dest *d);
/* Whether the arrived guest was paused by the operator at the source (its
 * vCPUs then wait for `cont`). */
bool mig_dest_guest_paused(const struct mig_dest *d);
/* Closes handles; frees once the loop has run their close callbacks. */
void mig_dest_close(struct mig_dest *d);

#endif

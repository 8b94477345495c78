/*
 * migration/dest.h: the incoming side (`vmm --incoming URI`), on the main
 * libuv loop. The front end builds the VM from its command line before
 * starting this (so a migration never waits for memory slots and vCPUs);
 * it waits for one stream, and rebuilds the VM (vm_recreate) when the
 * stream's header describes other versions than the ones built, checked
 * against the command line (vm_spec_adopt). It loads RAM as it arrives,
 * keeps the final state until the End record proves the stream complete and
 * intact, loads it in KVM's order (the section table) and starts the guest,
 * over sockets only once the source said Go. All of this runs on a worker
 * thread: the main loop is never blocked by the stream.
 * On any failure it tells the source why (Refused) and never starts the guest.
 */
#ifndef VMM_MIGRATION_DEST_H
#define VMM_MIGRATION_DEST_H

#include <uv.h>

#include "migration/migration.h"
#include "migration/tls.h"

struct mig_dest;

/* Called once: result 0 = the guest now runs here; < 0 = failed (msg). */
typedef void (*mig_dest_done_fn)(struct mig_dest *d, int result, const char *msg, void *ctx);

/* Listens (or checks the URI); `request` is this side's command line
 * (copied; its strings must outlive the migration). `tls` (may be NULL or
 * unconfigured: plaintext) is loaded now, so bad files fail at start-up.
 * Without TLS on a non-loopback tcp: address a warning names the risk.
 * Nothing is read yet. */
int mig_dest_start(uv_loop_t *loop, const char *uri, struct vm *vm,
		   const struct vm_request *request, const struct mig_tls_config *tls,
		   mig_dest_done_fn done, void *ctx, struct mig_dest **out, struct vmm_error *err);

/* For query-migrate on the destination. */
struct mig_dest_info {
	char peer[160];		   /* the connection being served (or last served) */
	struct mig_tls_info tls;   /* its protection */
	bool tls_required;	   /* --tls-creds / --tls-psk */
	unsigned dropped;	   /* connections dropped before a source's header was accepted */
	char last_dropped[840];	   /* "tcp 127.0.0.1:5555: why" */
};
void mig_dest_info(struct mig_dest *d, struct mig_dest_info *out);
/* Starts the worker, once `vm` is built from the command line. `done` runs
 * on the main loop with the outcome. */
int mig_dest_run(struct mig_dest *d, struct vmm_error *err);
/* Whether the arrived guest was paused by the operator at the source (its
 * vCPUs then wait for `cont`). */
bool mig_dest_guest_paused(const struct mig_dest *d);
/* Cancels and joins the worker, closes everything; frees once the loop
 * has run the close callback. */
void mig_dest_close(struct mig_dest *d);

#endif

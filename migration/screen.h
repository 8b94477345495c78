/*
 * migration/screen.h: the listening destination's door.
 *
 * Connections are accepted and screened at the same time, each on a thread
 * of its own: the first bytes must be what this destination speaks (a TLS
 * handshake when it requires TLS, else the stream's magic), and with TLS
 * the handshake must complete (the CA, the authz list). Only a connection
 * that passes is handed to the session, in the order they pass, so a
 * silent or slow stranger holds one screening slot for at most its
 * timeout, never the destination, and a flood of them cannot end it.
 *
 * At most MIG_SCREEN_MAX connections are screened at once; a new one
 * evicts the one screened longest (a real source passes in milliseconds).
 * Every dropped connection is reported through `dropped` (from screening
 * threads: it must be thread-safe).
 */
#ifndef VMM_MIGRATION_SCREEN_H
#define VMM_MIGRATION_SCREEN_H

#include "migration/conn.h"
#include "migration/tls.h"

#define MIG_SCREEN_MAX 8

struct mig_screen_cfg {
	int listen_fd;
	const struct mig_uri *uri;
	const struct mig_tls_creds *tls; /* NULL: plaintext */
	unsigned timeout_ms;		 /* from accept() until passed */
	void (*dropped)(void *ctx, const char *peer, const char *why);
	void *ctx;
};

struct mig_screen;

/* Starts accepting on cfg->listen_fd (which stays the caller's). */
int mig_screen_start(struct mig_screen **out, const struct mig_screen_cfg *cfg,
		     struct vmm_error *err);

/* Waits for the next connection that passed and moves it to *conn (with
 * its TLS session, described in *info): -ECANCELED when `cancel` is
 * raised, -ETIMEDOUT after timeout_ms (0: no limit). The connection's
 * waits watch `cancel` from then on. */
int mig_screen_next(struct mig_screen *s, struct mig_conn *conn, struct mig_tls_info *info,
		    const struct mig_cancel *cancel, unsigned timeout_ms, struct vmm_error *err);

/* Stops accepting (once the session has all its connections), closes what
 * is still being screened or waiting, with `why` reported for each, and
 * frees everything. NULL is a no-op. */
void mig_screen_stop(struct mig_screen *s, const char *why);

#endif

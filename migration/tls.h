/*
 * migration/tls.h: TLS 1.3 with mutual authentication under the migration
 * stream (GnuTLS, user space: these hosts have no kernel TLS).
 *
 * The TLS layer sits below the stream: a wrapped connection moves the same
 * bytes through its `struct mig_conn_ops` (records encrypted, framed and
 * authenticated by TLS), so the framing, the conversation and every
 * timeout above it are unchanged. The handshake runs on the migration's
 * worker thread, non-blocking, bounded by a timeout and the connection's
 * cancel, before any byte of the stream.
 *
 * Credentials, as QEMU lays them out (its tls-creds-x509 directory):
 *   destination (server): DIR/ca-cert.pem, DIR/server-cert.pem, DIR/server-key.pem
 *   source (client):      DIR/ca-cert.pem, DIR/client-cert.pem, DIR/client-key.pem
 * or a pre-shared key file (gnutls-cli's / psktool's "username:hexkey"
 * lines; the source uses the first line, the destination any of them).
 *
 * Checks: the source verifies the destination's certificate against the
 * CA and the expected name (tls-hostname, else the URI's host); the
 * destination requires a client certificate signed by its CA and, with an
 * authz file (one RFC 4514 DN per line, e.g. "CN=src1,O=Example"), a DN on
 * that list. The PSK itself authenticates both sides.
 *
 * Usage, for any number of connections of one migration:
 *   mig_tls_creds_load() once (at `migrate` / start-up: errors come early),
 *   mig_tls_client_wrap() / mig_tls_server_wrap() on each connected
 *   mig_conn (after this the conn's ops are TLS; mig_conn_close() ends it),
 *   mig_tls_creds_free() after the last connection is closed.
 */
#ifndef VMM_MIGRATION_TLS_H
#define VMM_MIGRATION_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "migration/conn.h"

/* TLS 1.3 only, AES-GCM only (hardware AES here and on every x86 host we
 * target), ECDHE key exchange; PSK set-ups add the PSK key exchanges. */
#define MIG_TLS_PRIORITY_DEFAULT                                                                   \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM"
#define MIG_TLS_PRIORITY_PSK_ADD ":+ECDHE-PSK:+DHE-PSK:+PSK"
#define MIG_TLS_HANDSHAKE_MS	 10000

/* What an operator configures (strings empty when unset). */
struct mig_tls_config {
	char creds_dir[512];  /* x509 directory (QEMU's layout) */
	char psk_file[512];   /* "username:hexkey" lines */
	char hostname[256];   /* source: the name the destination's certificate must carry */
	char authz_file[512]; /* destination: allowed client DNs, one per line */
	char priority[256];   /* GnuTLS priority string; empty: MIG_TLS_PRIORITY_DEFAULT */
};

/* Whether cfg asks for TLS at all (creds or psk). */
bool mig_tls_configured(const struct mig_tls_config *cfg);

/* What a finished handshake agreed on, for query-migrate and logs. */
struct mig_tls_info {
	bool encrypted;
	char protocol[16]; /* "TLS1.3" */
	char cipher[32];   /* "AES-256-GCM" */
	char auth[8];	   /* "x509" or "psk" */
	char peer[256];	   /* the peer certificate's DN, or the PSK username */
};

struct mig_tls_creds;

/* Loads and checks the files now (missing, unreadable or malformed files
 * and bad priority strings are errors naming the file). server: the
 * destination's side. */
int mig_tls_creds_load(const struct mig_tls_config *cfg, bool server, struct mig_tls_creds **out,
		       struct vmm_error *err);
void mig_tls_creds_free(struct mig_tls_creds *cr);

/* Client (source) handshake on a connected conn: verifies the server's
 * certificate for `hostname` (NULL: not checked by name; PSK: unused).
 * A destination that answers in plaintext (a vmm without TLS sends its
 * Refused record) is reported as such. */
int mig_tls_client_wrap(struct mig_conn *c, const struct mig_tls_creds *cr, const char *hostname,
			unsigned timeout_ms, struct mig_tls_info *info, struct vmm_error *err);
/* Server (destination) handshake: requires and verifies the client's
 * certificate (and its DN against the authz list) or its PSK. */
int mig_tls_server_wrap(struct mig_conn *c, const struct mig_tls_creds *cr, unsigned timeout_ms,
			struct mig_tls_info *info, struct vmm_error *err);

/* First bytes of a connection, as seen before any TLS: a TLS handshake
 * record (ClientHello) or the stream's magic. */
enum mig_first_bytes { MIG_FIRST_TLS, MIG_FIRST_STREAM, MIG_FIRST_OTHER };
enum mig_first_bytes mig_tls_classify(const unsigned char *p, size_t n);
#define MIG_TLS_SNIFF_BYTES 3 /* enough for mig_tls_classify */

/* "TLS1.3 AES-256-GCM x509 peer CN=..." or "plaintext". */
void mig_tls_describe(const struct mig_tls_info *info, char *buf, size_t len);

#endif

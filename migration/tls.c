/*
 * migration/tls.c: see tls.h. GnuTLS drives the descriptor through our own
 * push/pull functions (send with MSG_NOSIGNAL, recv), so it never blocks
 * and never raises SIGPIPE; every wait is ours (poll with the deadline and
 * the connection's cancel). The first bytes received during a client
 * handshake are kept, so a plaintext answer can be reported as one.
 */
#include "migration/tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "migration/migration.h"

#define AUTHZ_MAX_ENTRIES 256
#define AUTHZ_LINE_MAX	  1024
#define PSK_FILE_MAX	  (64u << 10)
#define SEEN_MAX	  2048 /* raw bytes kept from a client handshake, for the error */

struct mig_tls_creds {
	bool server, psk;
	gnutls_certificate_credentials_t x509;
	gnutls_psk_client_credentials_t psk_client;
	gnutls_psk_server_credentials_t psk_server;
	gnutls_priority_t prio;
	char *authz[AUTHZ_MAX_ENTRIES];
	unsigned nauthz;
	bool have_authz;
	char psk_user[128];
};

struct tls_conn {
	gnutls_session_t s;
	struct mig_conn *c; /* re-pointed by every op: a mig_conn may be copied */
	char detail[128]; /* the last failure in TLS's words */
	uint8_t seen[SEEN_MAX];
	size_t nseen;
	bool keep_seen;
};

bool mig_tls_configured(const struct mig_tls_config *cfg)
{
	return cfg && (cfg->creds_dir[0] || cfg->psk_file[0]);
}

/* ---- credentials ---- */

static int file_readable(const char *path, struct vmm_error *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return vmm_error_set(err, -errno, "TLS: %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return vmm_error_set(err, -EINVAL, "TLS: %s: not a regular file", path);
	return 0;
}

static int load_x509(struct mig_tls_creds *cr, const char *dir, struct vmm_error *err)
{
	char ca[600], cert[600], key[600];
	const char *who = cr->server ? "server" : "client";
	snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir);
	snprintf(cert, sizeof(cert), "%s/%s-cert.pem", dir, who);
	snprintf(key, sizeof(key), "%s/%s-key.pem", dir, who);
	int r;
	if ((r = file_readable(ca, err)) < 0 || (r = file_readable(cert, err)) < 0 ||
	    (r = file_readable(key, err)) < 0)
		return r;
	if ((r = gnutls_certificate_allocate_credentials(&cr->x509)) < 0)
		return vmm_error_set(err, -ENOMEM, "TLS: %s", gnutls_strerror(r));
	r = gnutls_certificate_set_x509_trust_file(cr->x509, ca, GNUTLS_X509_FMT_PEM);
	if (r <= 0)
		return vmm_error_set(err, -EINVAL, "TLS: %s: no CA certificate could be read (%s)",
				     ca, r < 0 ? gnutls_strerror(r) : "empty");
	r = gnutls_certificate_set_x509_key_file(cr->x509, cert, key, GNUTLS_X509_FMT_PEM);
	if (r < 0)
		return vmm_error_set(err, -EINVAL, "TLS: %s with %s: %s", cert, key,
				     gnutls_strerror(r));
	return 0;
}

/* The first "username:hexkey" line of a psk file (client side). */
static int read_psk_line(const char *path, char *user, size_t ulen, char *hex, size_t hlen,
			 struct vmm_error *err)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return vmm_error_set(err, -errno, "TLS: %s: %s", path, strerror(errno));
	char line[1024];
	int r = vmm_error_set(err, -EINVAL, "TLS: %s: no \"username:hexkey\" line", path);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		char *colon = strchr(line, ':');
		size_t n = colon ? (size_t)(colon - line) : 0;
		if (!colon || n == 0 || n >= ulen || strlen(colon + 1) >= hlen ||
		    strlen(colon + 1) < 32 ||
		    strspn(colon + 1, "0123456789abcdefABCDEF") != strlen(colon + 1)) {
			r = vmm_error_set(err, -EINVAL,
					  "TLS: %s: expected \"username:hexkey\" with a key of at "
					  "least 16 bytes (32 hex digits)",
					  path);
			break;
		}
		memcpy(user, line, n);
		user[n] = '\0';
		snprintf(hex, hlen, "%s", colon + 1);
		r = 0;
		break;
	}
	fclose(f);
	return r;
}

static int load_psk(struct mig_tls_creds *cr, const char *path, struct vmm_error *err)
{
	char hex[1024];
	int r;
	if ((r = file_readable(path, err)) < 0)
		return r;
	/* Checked on both sides, so a malformed file is a start-up error. */
	if ((r = read_psk_line(path, cr->psk_user, sizeof(cr->psk_user), hex, sizeof(hex), err)) <
	    0)
		return r;
	if (cr->server) {
		if ((r = gnutls_psk_allocate_server_credentials(&cr->psk_server)) < 0)
			return vmm_error_set(err, -ENOMEM, "TLS: %s", gnutls_strerror(r));
		if ((r = gnutls_psk_set_server_credentials_file(cr->psk_server, path)) < 0)
			return vmm_error_set(err, -EINVAL, "TLS: %s: %s", path, gnutls_strerror(r));
	} else {
		if ((r = gnutls_psk_allocate_client_credentials(&cr->psk_client)) < 0)
			return vmm_error_set(err, -ENOMEM, "TLS: %s", gnutls_strerror(r));
		gnutls_datum_t key = {(unsigned char *)hex, (unsigned)strlen(hex)};
		r = gnutls_psk_set_client_credentials(cr->psk_client, cr->psk_user, &key,
						      GNUTLS_PSK_KEY_HEX);
		if (r < 0)
			return vmm_error_set(err, -EINVAL, "TLS: %s: %s", path, gnutls_strerror(r));
	}
	explicit_bzero(hex, sizeof(hex));
	return 0;
}

static int load_authz(struct mig_tls_creds *cr, const char *path, struct vmm_error *err)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return vmm_error_set(err, -errno, "TLS authz %s: %s", path, strerror(errno));
	char line[AUTHZ_LINE_MAX + 2];
	int r = 0;
	unsigned lineno = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		size_t n = strcspn(line, "\r\n");
		if (n > AUTHZ_LINE_MAX) {
			r = vmm_error_set(err, -EINVAL, "TLS authz %s:%u: longer than %d bytes",
					  path, lineno, AUTHZ_LINE_MAX);
			break;
		}
		line[n] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		if (cr->nauthz == AUTHZ_MAX_ENTRIES) {
			r = vmm_error_set(err, -E2BIG, "TLS authz %s: more than %d names", path,
					  AUTHZ_MAX_ENTRIES);
			break;
		}
		if (!(cr->authz[cr->nauthz++] = strdup(line))) {
			r = vmm_error_set(err, -ENOMEM, "out of memory");
			break;
		}
	}
	fclose(f);
	cr->have_authz = true;
	return r;
}

int mig_tls_creds_load(const struct mig_tls_config *cfg, bool server, struct mig_tls_creds **out,
		       struct vmm_error *err)
{
	*out = NULL;
	if (cfg->creds_dir[0] && cfg->psk_file[0])
		return vmm_error_set(err, -EINVAL, "TLS: give tls-creds or tls-psk, not both");
	if (!mig_tls_configured(cfg))
		return vmm_error_set(err, -EINVAL, "TLS: neither tls-creds nor tls-psk given");
	if (cfg->authz_file[0] && !cfg->creds_dir[0])
		return vmm_error_set(err, -EINVAL,
				     "TLS: tls-authz checks certificate names: it "
				     "needs tls-creds");
	struct mig_tls_creds *cr = calloc(1, sizeof(*cr));
	if (!cr)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	cr->server = server;
	cr->psk = cfg->psk_file[0] != '\0';
	int r = cr->psk ? load_psk(cr, cfg->psk_file, err) : load_x509(cr, cfg->creds_dir, err);
	if (r == 0 && cfg->authz_file[0])
		r = load_authz(cr, cfg->authz_file, err);
	if (r == 0) {
		char prio[512];
		snprintf(prio, sizeof(prio), "%s%s",
			 cfg->priority[0] ? cfg->priority : MIG_TLS_PRIORITY_DEFAULT,
			 cr->psk && !cfg->priority[0] ? MIG_TLS_PRIORITY_PSK_ADD : "");
		const char *where = NULL;
		int g = gnutls_priority_init(&cr->prio, prio, &where);
		if (g < 0)
			r = vmm_error_set(err, -EINVAL, "TLS priority \"%s\": %s at \"%s\"", prio,
					  gnutls_strerror(g), where ? where : "?");
	}
	if (r < 0) {
		mig_tls_creds_free(cr);
		return r;
	}
	*out = cr;
	return 0;
}

void mig_tls_creds_free(struct mig_tls_creds *cr)
{
	if (!cr)
		return;
	if (cr->x509)
		gnutls_certificate_free_credentials(cr->x509);
	if (cr->psk_client)
		gnutls_psk_free_client_credentials(cr->psk_client);
	if (cr->psk_server)
		gnutls_psk_free_server_credentials(cr->psk_server);
	if (cr->prio)
		gnutls_priority_deinit(cr->prio);
	for (unsigned i = 0; i < cr->nauthz; i++)
		free(cr->authz[i]);
	free(cr);
}

/* ---- transport: our descriptor, never blocking ---- */

static ssize_t push_fn(gnutls_transport_ptr_t p, const giovec_t *iov, int n)
{
	struct tls_conn *t = p;
	struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
	ssize_t w = sendmsg(t->c->fd, &m, MSG_NOSIGNAL);
	if (w < 0)
		gnutls_transport_set_errno(t->s, errno);
	return w;
}

static ssize_t pull_fn(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct tls_conn *t = p;
	ssize_t r = recv(t->c->fd, buf, len, 0);
	if (r < 0) {
		gnutls_transport_set_errno(t->s, errno);
		return r;
	}
	if (t->keep_seen && t->nseen < SEEN_MAX) {
		size_t n = (size_t)r < SEEN_MAX - t->nseen ? (size_t)r : SEEN_MAX - t->nseen;
		memcpy(t->seen + t->nseen, buf, n);
		t->nseen += n;
	}
	return r;
}

static int pull_timeout_fn(gnutls_transport_ptr_t p, unsigned ms)
{
	struct tls_conn *t = p;
	struct pollfd pf = {.fd = t->c->fd, .events = POLLIN};
	int r = poll(&pf, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
	return r < 0 ? -1 : r;
}

/* ---- the conn ops over a session ---- */

static ssize_t map_error(struct tls_conn *t, ssize_t r)
{
	if (r == GNUTLS_E_AGAIN)
		return -EAGAIN;
	if (r == GNUTLS_E_INTERRUPTED)
		return -EINTR;
	/* The stream carries its own end (End record, checksum): a peer that
	 * closes without close_notify is an ordinary end of input. */
	if (r == GNUTLS_E_PREMATURE_TERMINATION)
		return 0;
	int e = gnutls_error_is_fatal((int)r) ? EPROTO : EAGAIN;
	if (r == GNUTLS_E_PUSH_ERROR || r == GNUTLS_E_PULL_ERROR)
		e = errno ? errno : ECONNRESET;
	if (r == GNUTLS_E_FATAL_ALERT_RECEIVED)
		snprintf(t->detail, sizeof(t->detail), "the peer ended TLS with the alert \"%s\"",
			 gnutls_alert_get_name(gnutls_alert_get(t->s)));
	else
		snprintf(t->detail, sizeof(t->detail), "TLS: %s", gnutls_strerror((int)r));
	return -e;
}

static ssize_t tls_writev(struct mig_conn *c, const struct iovec *iov, int n)
{
	struct tls_conn *t = c->ops_ctx;
	t->c = c; /* the mig_conn may have moved (copied into its slot) since the wrap */
	/* One buffer per call: on -EAGAIN the caller retries with the same
	 * data, as gnutls_record_send requires. */
	while (n > 0 && iov->iov_len == 0)
		iov++, n--;
	if (n == 0)
		return 0;
	ssize_t w = gnutls_record_send(t->s, iov->iov_base, iov->iov_len);
	return w >= 0 ? w : map_error(t, w);
}

static ssize_t tls_read(struct mig_conn *c, void *buf, size_t len)
{
	struct tls_conn *t = c->ops_ctx;
	t->c = c; /* the mig_conn may have moved (copied into its slot) since the wrap */
	ssize_t r = gnutls_record_recv(t->s, buf, len);
	return r >= 0 ? r : map_error(t, r);
}

static bool tls_pending(struct mig_conn *c)
{
	struct tls_conn *t = c->ops_ctx;
	t->c = c; /* the mig_conn may have moved (copied into its slot) since the wrap */
	return gnutls_record_check_pending(t->s) > 0;
}

static void tls_shutdown_write(struct mig_conn *c)
{
	struct tls_conn *t = c->ops_ctx;
	t->c = c; /* the mig_conn may have moved (copied into its slot) since the wrap */
	gnutls_bye(t->s, GNUTLS_SHUT_WR); /* best effort: non-blocking, one try */
}

static void tls_close(struct mig_conn *c)
{
	struct tls_conn *t = c->ops_ctx;
	if (!t)
		return;
	gnutls_deinit(t->s);
	free(t);
	c->ops_ctx = NULL;
}

static const char *tls_error_detail(struct mig_conn *c)
{
	struct tls_conn *t = c->ops_ctx;
	return t ? t->detail : NULL;
}

static const struct mig_conn_ops tls_ops = {
    .writev = tls_writev,
    .read = tls_read,
    .pending = tls_pending,
    .shutdown_write = tls_shutdown_write,
    .error_detail = tls_error_detail,
    .close = tls_close,
};

/* ---- handshakes ---- */

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs gnutls_handshake to its end: 0, or a GnuTLS error (*sys = 0), or
 * *sys = -ETIMEDOUT, -ECANCELED or -errno of our own wait (returns 1).
 * GnuTLS's codes overlap errno values, hence two channels. */
static int drive_handshake(struct tls_conn *t, unsigned timeout_ms, int *sys)
{
	uint64_t end = mono_ms() + timeout_ms;
	*sys = 0;
	for (;;) {
		int r = gnutls_handshake(t->s);
		if (r == 0)
			return 0;
		if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED && gnutls_error_is_fatal(r))
			return r;
		uint64_t now = mono_ms();
		if (now >= end)
			return *sys = -ETIMEDOUT, 1;
		short ev = gnutls_record_get_direction(t->s) ? POLLOUT : POLLIN;
		struct pollfd p[2] = {
		    {.fd = t->c->fd, .events = ev},
		    {.fd = t->c->cancel ? t->c->cancel->fd : -1, .events = POLLIN}};
		int w = poll(p, t->c->cancel ? 2 : 1, (int)(end - now));
		if (w < 0 && errno != EINTR)
			return *sys = -errno, 1;
		if (t->c->cancel && p[1].revents)
			return *sys = -ECANCELED, 1;
	}
}

static void fill_info(struct tls_conn *t, const struct mig_tls_creds *cr, struct mig_tls_info *info)
{
	memset(info, 0, sizeof(*info));
	info->encrypted = true;
	snprintf(info->protocol, sizeof(info->protocol), "%s",
		 gnutls_protocol_get_name(gnutls_protocol_get_version(t->s)));
	snprintf(info->cipher, sizeof(info->cipher), "%s",
		 gnutls_cipher_get_name(gnutls_cipher_get(t->s)));
	snprintf(info->auth, sizeof(info->auth), "%s", cr->psk ? "psk" : "x509");
	if (cr->psk) {
		const char *u = cr->server ? gnutls_psk_server_get_username(t->s) : cr->psk_user;
		snprintf(info->peer, sizeof(info->peer), "psk:%s", u ? u : "?");
		return;
	}
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(t->s, &n);
	gnutls_x509_crt_t crt;
	if (!certs || n == 0 || gnutls_x509_crt_init(&crt) < 0)
		return;
	gnutls_datum_t dn = {NULL, 0};
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
	    gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0)
		snprintf(info->peer, sizeof(info->peer), "%.*s", (int)dn.size, (char *)dn.data);
	gnutls_free(dn.data);
	gnutls_x509_crt_deinit(crt);
}

static int new_session(struct mig_conn *c, const struct mig_tls_creds *cr, unsigned flags,
		       struct tls_conn **out, struct vmm_error *err)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	if (!t)
		return vmm_error_set(err, -ENOMEM, "out of memory");
	t->c = c;
	int r = gnutls_init(&t->s, flags | GNUTLS_NONBLOCK | GNUTLS_NO_TICKETS);
	if (r < 0) {
		free(t);
		return vmm_error_set(err, -ENOMEM, "TLS: %s", gnutls_strerror(r));
	}
	if ((r = gnutls_priority_set(t->s, cr->prio)) < 0)
		goto fail;
	if (cr->psk)
		r = gnutls_credentials_set(t->s, GNUTLS_CRD_PSK,
					   cr->server ? (void *)cr->psk_server
						      : (void *)cr->psk_client);
	else
		r = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, cr->x509);
	if (r < 0)
		goto fail;
	gnutls_transport_set_ptr(t->s, t);
	gnutls_transport_set_vec_push_function(t->s, push_fn);
	gnutls_transport_set_pull_function(t->s, pull_fn);
	gnutls_transport_set_pull_timeout_function(t->s, pull_timeout_fn);
	*out = t;
	return 0;
fail:
	gnutls_deinit(t->s);
	free(t);
	return vmm_error_set(err, -EINVAL, "TLS: %s", gnutls_strerror(r));
}

static void adopt(struct mig_conn *c, struct tls_conn *t)
{
	c->ops = &tls_ops;
	c->ops_ctx = t;
}

/* GnuTLS stops at the first record header that is not TLS; the rest of a
 * plaintext answer (a vmm's Refused) is read here, for at most 1 s. */
static void read_rest(struct tls_conn *t)
{
	uint64_t end = mono_ms() + 1000;
	while (t->nseen < SEEN_MAX && t->nseen > 0 && t->seen[0] != 0x15 && t->seen[0] != 0x16) {
		ssize_t r = recv(t->c->fd, t->seen + t->nseen, SEEN_MAX - t->nseen, 0);
		if (r > 0) {
			t->nseen += (size_t)r;
			continue;
		}
		uint64_t now = mono_ms();
		if (r == 0 || (errno != EAGAIN && errno != EINTR) || now >= end)
			return;
		struct pollfd p = {.fd = t->c->fd, .events = POLLIN};
		poll(&p, 1, (int)(end - now));
	}
}

/* What came back instead of a ServerHello, in words. */
static void explain_plaintext(struct tls_conn *t, char *buf, size_t len)
{
	buf[0] = '\0';
	read_rest(t);
	if (t->nseen < MIG_RECORD_HEADER_SIZE)
		return;
	const uint8_t *p = t->seen;
	uint32_t rlen =
	    (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	unsigned type = (unsigned)p[4] | (unsigned)p[5] << 8;
	if (type != MIG_REC_REFUSED || rlen > t->nseen - MIG_RECORD_HEADER_SIZE) {
		if (p[0] != 0x16 && p[0] != 0x15)
			snprintf(buf, len,
				 "; the destination answered with bytes that are not TLS");
		return;
	}
	Vmm__Migration__Refused *ref = NULL;
	struct vmm_error ignored;
	if (mig_unpack_bytes(MIG_REC_REFUSED, &vmm__migration__refused__descriptor,
			     p + MIG_RECORD_HEADER_SIZE, rlen, (ProtobufCMessage **)&ref, NULL,
			     &ignored) == 0) {
		snprintf(buf, len,
			 "; the destination answered in plaintext (it does not use TLS): %s",
			 ref->reason ? ref->reason : "(no reason)");
		protobuf_c_message_free_unpacked(&ref->base, NULL);
	}
}

int mig_tls_client_wrap(struct mig_conn *c, const struct mig_tls_creds *cr, const char *hostname,
			unsigned timeout_ms, struct mig_tls_info *info, struct vmm_error *err)
{
	struct tls_conn *t;
	int r = new_session(c, cr, GNUTLS_CLIENT, &t, err);
	if (r < 0)
		return r;
	t->keep_seen = true;
	if (!cr->psk) {
		bool ip = hostname && (strchr(hostname, ':') ||
				       strspn(hostname, "0123456789.") == strlen(hostname));
		if (hostname && *hostname && !ip)
			gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, hostname, strlen(hostname));
		gnutls_session_set_verify_cert(t->s, hostname && *hostname ? hostname : NULL, 0);
	}
	int sys;
	r = drive_handshake(t, timeout_ms, &sys);
	t->keep_seen = false;
	if (r == 0) {
		fill_info(t, cr, info);
		adopt(c, t);
		return 0;
	}
	char why[VMM_ERROR_MAX / 2];
	explain_plaintext(t, why, sizeof(why));
	if (sys == -ETIMEDOUT)
		r = vmm_error_set(err, -ETIMEDOUT, "TLS handshake with %s: no answer within %u s%s",
				  c->peer, timeout_ms / 1000, why);
	else if (sys == -ECANCELED)
		r = vmm_error_set(err, -ECANCELED, "TLS handshake with %s: cancelled", c->peer);
	else if (sys)
		r = vmm_error_set(err, sys, "TLS handshake with %s: %s", c->peer, strerror(-sys));
	else if (r == GNUTLS_E_FATAL_ALERT_RECEIVED)
		r = vmm_error_set(err, -EACCES,
				  "TLS handshake with %s: the destination refused it "
				  "with the alert \"%s\"",
				  c->peer, gnutls_alert_get_name(gnutls_alert_get(t->s)));
	else if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		gnutls_datum_t out = {NULL, 0};
		unsigned status = gnutls_session_get_verify_cert_status(t->s);
		gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0);
		r = vmm_error_set(err, -EACCES,
				  "TLS: the destination %s is not trusted (expected name \"%s\"): "
				  "%.*s",
				  c->peer, hostname ? hostname : "", (int)out.size,
				  out.data ? (char *)out.data : "");
		gnutls_free(out.data);
	} else
		r = vmm_error_set(
		    err, -EPROTO, "TLS handshake with %s failed: %s%s", c->peer, gnutls_strerror(r),
		    why[0] ? why
		    : (r == GNUTLS_E_PREMATURE_TERMINATION || r == GNUTLS_E_PULL_ERROR)
			? " (the destination closed the connection: it "
			  "refused our certificate or does not use TLS)"
			: "");
	gnutls_deinit(t->s);
	free(t);
	return r;
}

static bool authz_allows(const struct mig_tls_creds *cr, const char *dn)
{
	if (!cr->have_authz)
		return true;
	for (unsigned i = 0; i < cr->nauthz; i++)
		if (strcmp(cr->authz[i], dn) == 0)
			return true;
	return false;
}

int mig_tls_server_wrap(struct mig_conn *c, const struct mig_tls_creds *cr, unsigned timeout_ms,
			struct mig_tls_info *info, struct vmm_error *err)
{
	struct tls_conn *t;
	int r = new_session(c, cr, GNUTLS_SERVER, &t, err);
	if (r < 0)
		return r;
	if (!cr->psk) {
		gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
		gnutls_session_set_verify_cert(t->s, NULL, 0);
	}
	int sys;
	r = drive_handshake(t, timeout_ms, &sys);
	if (r < 0) /* a GnuTLS error: tell the client which (best effort) */
		gnutls_alert_send_appropriate(t->s, r);
	if (r == 0) {
		fill_info(t, cr, info);
		if (!cr->psk && !authz_allows(cr, info->peer)) {
			r = vmm_error_set(err, -EACCES,
					  "TLS: client %s (%s) is not on the tls-authz list",
					  c->peer, info->peer);
			gnutls_alert_send(t->s, GNUTLS_AL_FATAL, GNUTLS_A_ACCESS_DENIED);
			goto fail;
		}
		adopt(c, t);
		return 0;
	}
	if (sys == -ETIMEDOUT)
		r = vmm_error_set(err, -ETIMEDOUT,
				  "TLS handshake with %s: not finished within %u s", c->peer,
				  timeout_ms / 1000);
	else if (sys == -ECANCELED)
		r = vmm_error_set(err, -ECANCELED, "TLS handshake with %s: cancelled", c->peer);
	else if (sys)
		r = vmm_error_set(err, sys, "TLS handshake with %s: %s", c->peer, strerror(-sys));
	else if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR ||
		 r == GNUTLS_E_NO_CERTIFICATE_FOUND || r == GNUTLS_E_CERTIFICATE_REQUIRED) {
		gnutls_datum_t out = {NULL, 0};
		unsigned status = gnutls_session_get_verify_cert_status(t->s);
		if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR)
			gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out,
								     0);
		r = vmm_error_set(err, -EACCES, "TLS: client %s refused: %s%s%.*s", c->peer,
				  gnutls_strerror(r), out.data ? ": " : "", (int)out.size,
				  out.data ? (char *)out.data : "");
		gnutls_free(out.data);
	} else
		r = vmm_error_set(err, -EPROTO, "TLS handshake with %s failed: %s", c->peer,
				  gnutls_strerror(r));
fail:
	gnutls_deinit(t->s);
	free(t);
	return r;
}

/* ---- before TLS ---- */

enum mig_first_bytes mig_tls_classify(const unsigned char *p, size_t n)
{
	/* A TLS record: content type 22 (handshake), version major 3. */
	if (n >= 2 && p[0] == 0x16 && p[1] == 0x03)
		return MIG_FIRST_TLS;
	if (n >= 3 && memcmp(p, MIG_MAGIC, 3) == 0)
		return MIG_FIRST_STREAM;
	return MIG_FIRST_OTHER;
}

void mig_tls_describe(const struct mig_tls_info *info, char *buf, size_t len)
{
	if (!info || !info->encrypted)
		snprintf(buf, len, "plaintext");
	else
		snprintf(buf, len, "%s %s, %s peer %s", info->protocol, info->cipher, info->auth,
			 info->peer[0] ? info->peer : "?");
}

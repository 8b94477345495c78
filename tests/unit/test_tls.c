/*
 * Unit tests for migration/tls.c without a network: what a connection's
 * first bytes say it speaks, and credentials that must fail at load time
 * (missing files, a malformed PSK file, both kinds at once, authz without
 * certificates, a bad priority string), each with a message naming it.
 * The handshakes themselves run in tests/integration/test_migrate_tls.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "migration/tls.h"

static void test_classify(void **state)
{
	(void)state;
	const unsigned char hello[] = {0x16, 0x03, 0x01}, stream[] = "VMMSTRM",
			    http[] = "GET / HTTP/1.0";
	assert_int_equal(mig_tls_classify(hello, 3), MIG_FIRST_TLS);
	assert_int_equal(mig_tls_classify(stream, 3), MIG_FIRST_STREAM);
	assert_int_equal(mig_tls_classify(http, 3), MIG_FIRST_OTHER);
	assert_int_equal(mig_tls_classify(hello, 1), MIG_FIRST_OTHER);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_bad_credentials(void **state)
{
	(void)state;
	char dir[] = "/tmp/vmm-tls-unit-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char psk[64], bad[64], authz[64];
	snprintf(psk, sizeof(psk), "%s/psk", dir);
	snprintf(bad, sizeof(bad), "%s/bad", dir);
	snprintf(authz, sizeof(authz), "%s/authz", dir);
	write_file(psk, "vmm:00112233445566778899aabbccddeeff\n");
	write_file(bad, "vmm:not-hex\n");
	write_file(authz, "CN=a\n");
	struct mig_tls_creds *cr = NULL;
	struct vmm_error err = {0};
	struct mig_tls_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.creds_dir, sizeof(cfg.creds_dir), "%s", dir);
	assert_int_equal(mig_tls_creds_load(&cfg, true, &cr, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "ca-cert.pem"));

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.psk_file, sizeof(cfg.psk_file), "%s", bad);
	assert_int_equal(mig_tls_creds_load(&cfg, false, &cr, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "username:hexkey"));

	snprintf(cfg.creds_dir, sizeof(cfg.creds_dir), "%s", dir);
	assert_int_equal(mig_tls_creds_load(&cfg, false, &cr, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not both"));

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.psk_file, sizeof(cfg.psk_file), "%s", psk);
	snprintf(cfg.authz_file, sizeof(cfg.authz_file), "%s", authz);
	assert_int_equal(mig_tls_creds_load(&cfg, true, &cr, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "needs tls-creds"));

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.psk_file, sizeof(cfg.psk_file), "%s", psk);
	snprintf(cfg.priority, sizeof(cfg.priority), "NORMAL:+NO-SUCH-THING");
	assert_int_equal(mig_tls_creds_load(&cfg, false, &cr, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "TLS priority"));

	/* A good PSK, both sides. */
	cfg.priority[0] = '\0';
	assert_int_equal(mig_tls_creds_load(&cfg, false, &cr, &err), 0);
	mig_tls_creds_free(cr);
	assert_int_equal(mig_tls_creds_load(&cfg, true, &cr, &err), 0);
	mig_tls_creds_free(cr);

	unlink(psk);
	unlink(bad);
	unlink(authz);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_bad_credentials),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

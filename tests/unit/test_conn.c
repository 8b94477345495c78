/*
 * Unit tests for migration connections (migration/conn.c): URIs, listening, FIFOs, cancel.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "migration/conn.h"

static char dir[] = "/tmp/vmm-test-conn-XXXXXX";

static void path_in_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static void test_uri_parse(void **state)
{
	(void)state;
	struct mig_uri u;
	struct vmm_error err = {0};
	assert_int_equal(mig_uri_parse("tcp:127.0.0.1:4444", &u, &err), 0);
	assert_int_equal(u.kind, MIG_TCP);
	assert_string_equal(u.host, "127.0.0.1");
	assert_string_equal(u.port, "4444");
	assert_int_equal(mig_uri_parse("tcp:[::]:4444", &u, &err), 0);
	assert_string_equal(u.host, "::");
	assert_int_equal(mig_uri_parse("tcp:0:4444", &u, &err), 0);
	assert_string_equal(u.host, "0");
	assert_int_equal(mig_uri_parse("unix:/tmp/x.sock", &u, &err), 0);
	assert_int_equal(u.kind, MIG_UNIX);
	assert_int_equal(mig_uri_parse("file:/tmp/snap", &u, &err), 0);
	assert_int_equal(u.kind, MIG_FILE);
	assert_int_equal(mig_uri_parse("tcp:host:99999", &u, &err), -EINVAL);
	assert_int_equal(mig_uri_parse("tcp:host", &u, &err), -EINVAL);
	assert_int_equal(mig_uri_parse("tcp:[::1:4444", &u, &err), -EINVAL);
	assert_int_equal(mig_uri_parse("http://x", &u, &err), -EINVAL);
	assert_int_equal(mig_uri_parse("file:", &u, &err), -EINVAL);
}

/* A unix path someone listens on is refused, never taken over; a stale
 * socket file is replaced; the socket is created 0600. */
static void test_listen_unix(void **state)
{
	(void)state;
	char path[128], uri[160];
	path_in_dir(path, sizeof(path), "dest.sock");
	snprintf(uri, sizeof(uri), "unix:%s", path);
	struct mig_uri u;
	struct vmm_error err = {0};
	assert_int_equal(mig_uri_parse(uri, &u, &err), 0);
	int fd1, fd2;
	assert_int_equal(mig_conn_listen(&u, &fd1, &err), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(mig_conn_listen(&u, &fd2, &err), -EADDRINUSE);
	assert_non_null(strstr(err.msg, "another process listens there"));
	assert_int_equal(stat(path, &st), 0); /* still there */
	close(fd1); /* now stale: a new listener replaces it */
	assert_int_equal(mig_conn_listen(&u, &fd2, &err), 0);
	close(fd2);
	unlink(path);
	/* Not a socket: refused. */
	int f = open(path, O_CREAT | O_WRONLY, 0600);
	close(f);
	assert_int_equal(mig_conn_listen(&u, &fd2, &err), -EEXIST);
	unlink(path);
}

static void *raise_later(void *arg)
{
	struct timespec ts = {0, 50 * 1000000L};
	nanosleep(&ts, NULL);
	mig_cancel_raise(arg);
	return NULL;
}

/* A wait for a connection ends on cancel, from another thread. */
static void test_cancel_wakes_accept(void **state)
{
	(void)state;
	struct mig_uri u;
	struct vmm_error err = {0};
	assert_int_equal(mig_uri_parse("tcp:127.0.0.1:0", &u, &err), 0);
	int lfd;
	assert_int_equal(mig_conn_listen(&u, &lfd, &err), 0);
	struct mig_cancel cancel;
	assert_int_equal(mig_cancel_init(&cancel, &err), 0);
	pthread_t t;
	pthread_create(&t, NULL, raise_later, &cancel);
	struct mig_conn c;
	assert_int_equal(mig_conn_accept(lfd, &u, &c, 0, &cancel, &err), -ECANCELED);
	pthread_join(t, NULL);
	assert_true(mig_cancel_raised(&cancel));
	mig_cancel_free(&cancel);
	close(lfd);
}

/* A FIFO without a writer is not "ended": the read waits (bounded). */
static void test_fifo_waits_for_its_writer(void **state)
{
	(void)state;
	char path[128], uri[160];
	path_in_dir(path, sizeof(path), "fifo");
	assert_int_equal(mkfifo(path, 0600), 0);
	snprintf(uri, sizeof(uri), "file:%s", path);
	struct mig_uri u;
	struct vmm_error err = {0};
	assert_int_equal(mig_uri_parse(uri, &u, &err), 0);
	struct mig_conn c;
	assert_int_equal(mig_conn_open_file(&c, &u, false, NULL, &err), 0); /* no blocking open */
	char buf[16];
	assert_int_equal(mig_conn_read(&c, buf, sizeof(buf), 100, &err), -ETIMEDOUT);
	int w = open(path, O_WRONLY | O_NONBLOCK);
	assert_true(w >= 0);
	assert_int_equal(write(w, "abc", 3), 3);
	assert_int_equal(mig_conn_read(&c, buf, sizeof(buf), 1000, &err), 3);
	close(w);
	assert_int_equal(mig_conn_read(&c, buf, sizeof(buf), 1000, &err), 0); /* now it ended */
	mig_conn_close(&c);
	unlink(path);
}

/* A peer that stops reading makes a write fail within its timeout. */
static void test_write_to_a_stalled_peer_times_out(void **state)
{
	(void)state;
	static uint8_t big[8 << 20];
	char p[128], uri[160];
	path_in_dir(p, sizeof(p), "stall.sock");
	snprintf(uri, sizeof(uri), "unix:%s", p);
	struct mig_uri u;
	struct vmm_error err = {0};
	assert_int_equal(mig_uri_parse(uri, &u, &err), 0);
	int lfd;
	assert_int_equal(mig_conn_listen(&u, &lfd, &err), 0);
	struct mig_conn client, server;
	assert_int_equal(mig_conn_connect(&client, &u, 1000, NULL, &err), 0);
	assert_int_equal(mig_conn_accept(lfd, &u, &server, 1000, NULL, &err), 0);
	assert_int_equal(mig_conn_write_all(&client, big, sizeof(big), 200, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "took nothing"));
	mig_conn_close(&client);
	mig_conn_close(&server);
	close(lfd);
	unlink(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_parse),
		cmocka_unit_test(test_listen_unix),
		cmocka_unit_test(test_cancel_wakes_accept),
		cmocka_unit_test(test_fifo_waits_for_its_writer),
		cmocka_unit_test(test_write_to_a_stalled_peer_times_out),
	};
	if (!mkdtemp(dir))
		return 1;
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return r;
}

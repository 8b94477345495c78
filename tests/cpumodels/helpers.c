/* tests/cpumodels/helpers.c: paths, databases and hosts for the tests. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

const char *th_env(const char *name)
{
	const char *v = getenv(name);
	if (!v || !v[0]) {
		fprintf(stderr,
			"test set-up: environment variable %s is not set "
			"(run through meson test)\n",
			name);
		exit(1);
	}
	return v;
}

struct cpumodel_db *th_db(void)
{
	struct cpumodel_db *db = NULL;
	struct vmm_error err = {0};
	if (cpumodel_db_load(th_env("VMM_CPU_MODEL_DIR"), &db, &err) < 0)
		fail_msg("model database: %s", err.msg);
	return db;
}

bool th_skipped;

int th_exit(int failed)
{
	if (failed)
		return failed;
	if (th_skipped) {
		printf("SKIP: some tests of this binary could not run (reason above)\n");
		return SKIP_EXIT;
	}
	return 0;
}

bool th_have_dumps(void)
{
	const char *dir = getenv("CPUID_HOSTS_DIR");
	struct stat st;
	if (!dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		printf("SKIP: host CPU dumps not found at %s (expected ../shared/cpuid-hosts "
		       "beside the checkout)\n",
		       dir ? dir : "(CPUID_HOSTS_DIR unset)");
		return false;
	}
	return true;
}

static struct host_cpu *load_profile(const char *path)
{
	struct host_cpu *h = NULL;
	struct vmm_error err = {0};
	if (host_cpu_from_profile(path, NULL, &h, &err) < 0)
		fail_msg("%s", err.msg);
	return h;
}

struct host_cpu *th_dump(const char *name)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s.txt", th_env("CPUID_HOSTS_DIR"), name);
	return load_profile(path);
}

struct host_cpu *th_reference_host(void)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/reference-host.txt", th_env("CPUMODEL_TEST_DATA"));
	return load_profile(path);
}

int th_write(const char *dir, const char *name, const char *text)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
	return 0;
}

char *th_tempdir(void)
{
	char tmpl[] = "/tmp/cpumodel-test-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

void th_rmdir(char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[1024];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
}

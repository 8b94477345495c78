/*
 * Unit tests: `vmm cpu-model ...` (cpumodel_cli) end to end, with its output
 * captured: expand prints exactly what the API builds, JSON parses, exit
 * codes, and the one-line errors.
 */
#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "vmm/cpu_model/cli.h"

struct run {
	int rc;
	char *out, *err;
};

static char *read_all(int fd)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	ssize_t r;
	lseek(fd, 0, SEEK_SET);
	while ((r = read(fd, buf + n, cap - n - 1)) > 0) {
		n += (size_t)r;
		if (n + 1 >= cap)
			buf = realloc(buf, cap *= 2);
	}
	buf[n] = '\0';
	return buf;
}

/* Runs cpumodel_cli("cpu-model", args..., NULL) capturing stdout/stderr. */
static struct run cli(const char *first, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	argv[argc++] = "cpu-model";
	va_start(ap, first);
	for (const char *a = first; a && argc < 63; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	char o[] = "/tmp/cli-out-XXXXXX", e[] = "/tmp/cli-err-XXXXXX";
	int fo = mkstemp(o), fe = mkstemp(e);
	assert_true(fo >= 0 && fe >= 0);
	unlink(o);
	unlink(e);
	fflush(stdout);
	fflush(stderr);
	int so = dup(1), se = dup(2);
	dup2(fo, 1);
	dup2(fe, 2);
	struct run r = {.rc = cpumodel_cli(argc, argv)};
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	r.out = read_all(fo);
	r.err = read_all(fe);
	close(fo);
	close(fe);
	return r;
}

static void done(struct run *r)
{
	free(r->out);
	free(r->err);
}

static char ref_path[1024];

static int setup(void **state)
{
	(void)state;
	snprintf(ref_path, sizeof(ref_path), "%s/reference-host.txt", th_env("CPUMODEL_TEST_DATA"));
	return 0;
}

/* The contract with the VMM's KVM_GET_CPUID2 test: expand prints exactly
 * cpuid_table_write(guest_cpu_build_cpuid()). */
static void test_expand_prints_the_built_table(void **state)
{
	(void)state;
	struct cpumodel_db *db = th_db();
	struct guest_cpu *g;
	struct cpuid_table t;
	struct vmm_error err = {0};
	assert_int_equal(guest_cpu_resolve_spec(db, "x86-64-v3,-movbe", NULL, &g, &err), 0);
	assert_int_equal(guest_cpu_build_cpuid(g, 4, 3, &t, &err), 0);
	char *want = NULL;
	size_t len;
	FILE *m = open_memstream(&want, &len);
	cpuid_table_write(&t, m);
	fclose(m);
	struct run r = cli("expand", "x86-64-v3,-movbe", "--cpus", "4", "--vcpu", "3",
			   "--no-host-check", NULL);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, want);
	assert_string_equal(r.err, "");
	done(&r);
	/* same with a host that accepts it, options in any order */
	r = cli("expand", "--host-cpu-profile", ref_path, "--vcpu", "3", "x86-64-v3,-movbe",
		"--cpus", "4", NULL);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, want);
	done(&r);
	/* JSON: the same leaves */
	r = cli("expand", "x86-64-v3,-movbe", "--cpus", "4", "--vcpu", "3", "--no-host-check",
		"--json", NULL);
	assert_int_equal(r.rc, 0);
	struct json_object *o = json_tokener_parse(r.out), *leaves, *spec;
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "leaves", &leaves));
	assert_int_equal(json_object_array_length(leaves), t.n);
	assert_true(json_object_object_get_ex(o, "spec", &spec));
	assert_string_equal(json_object_get_string(spec), "x86-64-v3-v1,-movbe");
	json_object_put(o);
	done(&r);
	free(want);
	guest_cpu_free(g);
	cpumodel_db_free(db);
}

static void test_exit_codes_and_errors(void **state)
{
	(void)state;
	struct run r = cli("check", "x86-64-v1", "--host-cpu-profile", ref_path, NULL);
	assert_int_equal(r.rc, 0);
	assert_contains(r.out, "cpu model x86-64-v1-v1: runnable");
	done(&r);
	r = cli("nosuch", NULL);
	assert_int_equal(r.rc, 2);
	assert_contains(r.err, "unknown subcommand 'nosuch'");
	done(&r);
	r = cli("check", NULL);
	assert_int_equal(r.rc, 2);
	assert_contains(r.err, "usage: vmm cpu-model check MODEL");
	done(&r);
	r = cli("expand", "x86-64-v1", "--cpus", "0", "--no-host-check", NULL);
	assert_int_equal(r.rc, 2);
	done(&r);
	r = cli("expand", "x86-64-v1", "--cpus", "2", "--vcpu", "2", "--no-host-check", NULL);
	assert_int_equal(r.rc, 2);
	assert_contains(r.err, "--vcpu 2: must be below --cpus 2");
	done(&r);
	r = cli("expand", "x86-64-v1", "--cpus", "lots", "--no-host-check", NULL);
	assert_int_equal(r.rc, 2);
	assert_contains(r.err, "--cpus lots: expected a number");
	done(&r);
	r = cli("list", "--bogus", NULL);
	assert_int_equal(r.rc, 2);
	assert_contains(r.err, "unknown or incomplete option '--bogus'");
	done(&r);
	r = cli("check", "Pentium5", "--host-cpu-profile", ref_path, NULL);
	assert_int_equal(r.rc, 2);
	assert_contains(r.err, "unknown cpu model Pentium5");
	done(&r);
	r = cli("check", "x86-64-v1", "--host-cpu-profile", "/nonexistent/host.txt", NULL);
	assert_int_equal(r.rc, 2);
	assert_contains(r.err, "/nonexistent/host.txt");
	done(&r);
	r = cli("list", "--data-dir", "/nonexistent/models", "--no-host-check", NULL);
	assert_int_equal(r.rc, 2);
	assert_contains(r.err, "model directory /nonexistent/models");
	done(&r);
	/* every error is one line */
	r = cli("show", "Skylake-Server-v99", NULL);
	assert_int_equal(r.rc, 2);
	assert_int_equal(strchr(r.err, '\n') - r.err, (long)strlen(r.err) - 1);
	done(&r);
}

/* Without /dev/kvm (and no profile): one clear line suggesting a profile. */
static void test_no_kvm_message(void **state)
{
	(void)state;
	setenv("VMM_KVM_DEV", "/nonexistent/kvm", 1);
	struct run r = cli("check", "x86-64-v1", NULL);
	unsetenv("VMM_KVM_DEV");
	assert_int_equal(r.rc, 2);
	assert_contains(r.err, "cannot open /nonexistent/kvm");
	assert_contains(r.err, "--host-cpu-profile");
	assert_int_equal(strchr(r.err, '\n') - r.err, (long)strlen(r.err) - 1);
	done(&r);
}

static struct json_object *json_of(struct run *r)
{
	struct json_object *o = json_tokener_parse(r->out);
	if (!o)
		fail_msg("not JSON: %.200s", r->out);
	return o;
}

static void test_json_outputs(void **state)
{
	(void)state;
	struct json_object *o, *x;
	struct run r = cli("list", "--json", "--host-cpu-profile", ref_path, NULL);
	assert_int_equal(r.rc, 0);
	o = json_of(&r);
	assert_true(json_object_object_get_ex(o, "models", &x));
	assert_true(json_object_array_length(x) > 20);
	json_object_put(o);
	done(&r);
	r = cli("compare", "Skylake-Server-v5", "Cascadelake-Server-v5", "--json", NULL);
	assert_int_equal(r.rc, 0);
	o = json_of(&r);
	assert_true(json_object_object_get_ex(o, "relation", &x));
	assert_string_equal(json_object_get_string(x), "subset");
	json_object_put(o);
	done(&r);
	r = cli("show", "EPYC-Naples", "--json", NULL);
	assert_int_equal(r.rc, 0);
	o = json_of(&r);
	assert_true(json_object_object_get_ex(o, "model", &x));
	assert_string_equal(json_object_get_string(x), "EPYC");
	json_object_put(o);
	done(&r);
	r = cli("features", "--json", NULL);
	assert_int_equal(r.rc, 0);
	o = json_of(&r);
	assert_int_equal(json_object_array_length(o), cpufeat_count());
	json_object_put(o);
	done(&r);
	r = cli("baseline", ref_path, ref_path, "--json", NULL);
	assert_int_equal(r.rc, 0);
	o = json_of(&r);
	assert_true(json_object_object_get_ex(o, "baseline", &x));
	assert_non_null(json_object_get_string(x));
	json_object_put(o);
	done(&r);
	r = cli("matrix", ref_path, "--json", "--newest", NULL);
	assert_int_equal(r.rc, 0);
	o = json_of(&r);
	assert_true(json_object_object_get_ex(o, "models", &x));
	struct json_object *row = json_object_array_get_idx(x, 0), *cells, *ok;
	assert_true(json_object_object_get_ex(row, "cells", &cells));
	assert_true(
	    json_object_object_get_ex(json_object_array_get_idx(cells, 0), "runnable", &ok));
	assert_true(json_object_get_boolean(ok)); /* everything runs on the reference host */
	json_object_put(o);
	done(&r);
}

/* The human outputs, with the real dumps where they are. */
static void test_human_outputs(void **state)
{
	(void)state;
	th_need_dumps();
	char skx[1024], clx[1024], icx[1024], html[] = "/tmp/matrix-XXXXXX";
	const char *dir = th_env("CPUID_HOSTS_DIR");
	snprintf(skx, sizeof(skx), "%s/intel-skylake-sp-xeon-platinum-8180.txt", dir);
	snprintf(clx, sizeof(clx), "%s/intel-cascadelake-sp-xeon-gold-5215.txt", dir);
	snprintf(icx, sizeof(icx), "%s/intel-icelake-sp-xeon-platinum-8351n.txt", dir);
	struct run r = cli("check", "Cascadelake-Server", "--host-cpu-profile", skx, NULL);
	assert_int_equal(r.rc, 1);
	assert_contains(r.out, "NOT runnable");
	assert_contains(r.out, "  CPUID.07H:ECX.avx512_vnni [bit 11]\n");
	done(&r);
	r = cli("baseline", skx, clx, icx, NULL);
	assert_int_equal(r.rc, 0);
	assert_contains(r.out, "baseline: Skylake-Server-v");
	assert_contains(r.out, "spec: Skylake-Server-v");
	done(&r);
	r = cli("compare", skx, "Skylake-Server-v1", NULL);
	assert_int_equal(r.rc, 0);
	assert_contains(r.out, "relation: superset");
	done(&r);
	int fd = mkstemp(html);
	close(fd);
	r = cli("matrix", skx, clx, icx, "--html", html, NULL);
	assert_int_equal(r.rc, 0);
	assert_contains(r.out, "Skylake-Server-v1 ");
	assert_contains(r.out, "[ 3] intel-icelake-sp-xeon-platinum-8351n");
	done(&r);
	fd = open(html, O_RDONLY);
	char *page = read_all(fd);
	close(fd);
	unlink(html);
	assert_true(strncmp(page, "<!DOCTYPE html>", 15) == 0);
	assert_contains(page, "intel-cascadelake-sp-xeon-gold-5215");
	assert_contains(page, "CPUID.07H:ECX.avx512_vnni [bit 11]"); /* a cell's tooltip */
	assert_contains(page, "</html>");
	free(page);
}

/* Node labels in KubeVirt's shape, for the reference host and a real CPU:
 * exactly the runnable versions (and the names resolving to them), exactly
 * the usable features a guest can ask for, every key a valid label key. */
static void check_labels(const char *profile)
{
	struct cpumodel_db *db = th_db();
	struct host_cpu *h = NULL;
	struct vmm_error err = {0};
	assert_int_equal(host_cpu_from_profile(profile, NULL, &h, &err), 0);
	struct run r = cli("labels", "--host-cpu-profile", profile, NULL);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.err, "");
	unsigned models = 0, feats = 0;
	for (char *line = r.out; *line;) {
		char *nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		const char *name = line;
		if (strncmp(line, "cpu-model.node.kubevirt.io/", 27) == 0) {
			name = line + 27;
			models++;
		} else if (strncmp(line, "cpu-feature.node.kubevirt.io/", 29) == 0) {
			name = line + 29;
			feats++;
		} else {
			fail_msg("not a label: %s", line);
		}
		const char *eq = strchr(name, '=');
		assert_non_null(eq);
		assert_string_equal(eq, "=true");
		assert_true(eq - name >= 1 && eq - name <= 63);
		line = nl + 1;
	}
	/* every runnable version is there, no other version (the text above was
	 * cut into lines in place: read it again) */
	done(&r);
	r = cli("labels", "--host-cpu-profile", profile, NULL);
	for (unsigned i = 0; i < db->nmodels; i++)
		for (unsigned v = 0; v < db->models[i].nversions; v++) {
			const struct cpumodel_version *ver = &db->models[i].versions[v];
			struct cpufeat_set need;
			struct cpumodel_check chk;
			char key[160];
			cpumodel_version_required(ver, &need);
			cpumodel_check_host(&ver->props, &need, h, &chk);
			snprintf(key, sizeof(key), "cpu-model.node.kubevirt.io/%s=true\n",
				 ver->name);
			if (chk.runnable != (strstr(r.out, key) != NULL))
				fail_msg("%s: runnable %d, label %s", ver->name, chk.runnable,
					 chk.runnable ? "missing" : "present");
		}
	size_t i = 0;
	const struct cpufeat *f;
	unsigned want = 0;
	while ((f = cpufeat_set_next(&h->usable, &i))) {
		char key[160];
		bool guest = !(f->flags & (CPUFEAT_COMPUTED | CPUFEAT_DYNAMIC | CPUFEAT_NOKVM));
		snprintf(key, sizeof(key), "cpu-feature.node.kubevirt.io/%s=true\n", f->name);
		assert_int_equal(strstr(r.out, key) != NULL, guest);
		want += guest;
	}
	assert_int_equal(feats, want);
	assert_true(models > 0);
	assert_null(strstr(r.out, "/hypervisor=")); /* computed, not asked for */
	done(&r);
	/* JSON: the same labels as an object */
	r = cli("labels", "--json", "--host-cpu-profile", profile, NULL);
	struct json_object *o = json_tokener_parse(r.out);
	assert_non_null(o);
	assert_int_equal(json_object_object_length(o), models + feats);
	json_object_put(o);
	done(&r);
	host_cpu_free(h);
	cpumodel_db_free(db);
}

static void test_labels(void **state)
{
	(void)state;
	check_labels(ref_path);
	th_need_dumps();
	char p[1024];
	snprintf(p, sizeof(p), "%s/amd-zen4-genoa-epyc-9654.txt", th_env("CPUID_HOSTS_DIR"));
	check_labels(p);
	struct run r = cli("labels", "--host-cpu-profile", p, NULL);
	assert_contains(r.out, "cpu-model.node.kubevirt.io/x86-64-v4-amd=true\n");
	assert_contains(r.out, "cpu-model.node.kubevirt.io/EPYC-Genoa-v1=true\n");
	assert_contains(r.out, "cpu-feature.node.kubevirt.io/avx512f=true\n");
	assert_null(strstr(r.out, "cpu-model.node.kubevirt.io/x86-64-v4=true"));
	assert_null(strstr(r.out, "kubevirt.io/monitor=")); /* host-only */
	done(&r);
	r = cli("labels", "--no-host-check", NULL);
	assert_int_equal(r.rc, 2);
	assert_contains(r.err, "labels needs a host");
	done(&r);
	r = cli("labels", "-o", "/tmp/x", NULL);
	assert_int_equal(r.rc, 2);
	assert_contains(r.err, "-o/--output is for host-profile");
	done(&r);
	r = cli("host-profile", "--host-cpu-profile", p, NULL);
	assert_int_equal(r.rc, 2);
	assert_contains(r.err, "host-profile describes this host");
	done(&r);
}

/* Every real CPU through the command line: baseline, list (a check of every
 * version), check, compare and matrix answer (exit 0 or 1), never exit 2. */
static void test_every_dump_through_the_cli(void **state)
{
	(void)state;
	th_need_dumps();
	const char *dir = th_env("CPUID_HOSTS_DIR");
	DIR *d = opendir(dir);
	struct dirent *e;
	char *paths[64];
	unsigned n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) && n < 64) {
		size_t l = strlen(e->d_name);
		if (l > 4 && strcmp(e->d_name + l - 4, ".txt") == 0 &&
		    strcmp(e->d_name, "README.txt") != 0) {
			paths[n] = malloc(strlen(dir) + l + 2);
			sprintf(paths[n++], "%s/%s", dir, e->d_name);
		}
	}
	closedir(d);
	assert_int_equal(n, 18);
	for (unsigned i = 0; i < n; i++) {
		struct run r = cli("baseline", paths[i], NULL);
		if (r.rc != 0)
			fail_msg("baseline %s: exit %d: %s", paths[i], r.rc, r.err);
		const char *spec = strstr(r.out, "spec: ");
		assert_non_null(spec);
		char model[CPUMODEL_SPEC_MAX];
		snprintf(model, sizeof(model), "%.*s", (int)strcspn(spec + 6, "\n"), spec + 6);
		done(&r);
		r = cli("check", model, "--host-cpu-profile", paths[i], NULL);
		if (r.rc != 0)
			fail_msg("check %s on %s: exit %d: %s%s", model, paths[i], r.rc, r.out,
				 r.err);
		done(&r);
		r = cli("check", "x86-64-v4", "--host-cpu-profile", paths[i], NULL);
		assert_true(r.rc == 0 || r.rc == 1);
		done(&r);
		r = cli("list", "--host-cpu-profile", paths[i], NULL);
		assert_int_equal(r.rc, 0);
		done(&r);
		r = cli("compare", paths[i], "x86-64-v1", NULL);
		assert_int_equal(r.rc, 0);
		assert_contains(r.out, "relation: superset");
		done(&r);
	}
	char *argv[70] = {"cpu-model", "matrix"};
	for (unsigned i = 0; i < n; i++)
		argv[2 + i] = paths[i];
	argv[2 + n] = NULL;
	char o[] = "/tmp/cli-out-XXXXXX";
	int fo = mkstemp(o), so = dup(1);
	unlink(o);
	fflush(stdout);
	dup2(fo, 1);
	int rc = cpumodel_cli((int)n + 2, argv);
	fflush(stdout);
	dup2(so, 1);
	close(so);
	close(fo);
	assert_int_equal(rc, 0);
	struct run r = cli("baseline", paths[0], paths[1], paths[2], paths[3], paths[4], paths[5],
			   paths[6], paths[7], paths[8], paths[9], paths[10], paths[11], paths[12],
			   paths[13], paths[14], paths[15], paths[16], paths[17], NULL);
	assert_int_equal(r.rc, 0);
	done(&r);
	for (unsigned i = 0; i < n; i++)
		free(paths[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_expand_prints_the_built_table),
	    cmocka_unit_test(test_exit_codes_and_errors),
	    cmocka_unit_test(test_no_kvm_message),
	    cmocka_unit_test(test_json_outputs),
	    cmocka_unit_test(test_human_outputs),
	    cmocka_unit_test(test_every_dump_through_the_cli),
	    cmocka_unit_test(test_labels),
	};
	return th_exit(cmocka_run_group_tests(tests, setup, NULL));
}

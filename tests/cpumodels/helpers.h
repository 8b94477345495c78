/*
 * tests/cpumodels/helpers.h: shared set-up for the CPU-model engine tests.
 * Paths come from the environment set by tests/cpumodels/meson.build:
 *   VMM_CPU_MODEL_DIR  the model data (cpumodels/data)
 *   CPUMODEL_TEST_DATA tests/data/cpumodels (reference host, expected files)
 *   CPUID_HOSTS_DIR    ../shared/cpuid-hosts (real CPUID dumps; may be absent)
 */
#ifndef VMM_TESTS_CPUMODELS_HELPERS_H
#define VMM_TESTS_CPUMODELS_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cpumodels/engine.h"

#define SKIP_EXIT 77

/* The environment variable, or a failed test run (exit 1) if unset. */
const char *th_env(const char *name);
/* The model database of the tree (fails the test if it does not load). */
struct cpumodel_db *th_db(void);
/* True if ../shared/cpuid-hosts is there; else prints why (for exit 77). */
bool th_have_dumps(void);
/* For a test that needs the dumps inside a binary whose other tests do not:
 * when they are missing, records that something was skipped and calls
 * cmocka's skip() (which does not return). cmocka counts a skipped test as
 * passed and exits 0, so main() must end with th_exit(). */
#define th_need_dumps()                                                                            \
	do {                                                                                       \
		if (!th_have_dumps()) {                                                            \
			th_skipped = true;                                                         \
			skip();                                                                    \
		}                                                                                  \
	} while (0)
extern bool th_skipped;
/* The binary's exit status from cmocka's failure count: failures win; else
 * 77 (meson's "skipped") if any test was skipped, so a run without the
 * dumps never reads as a pass; else 0. */
int th_exit(int failed);
/* A dump by its file name without ".txt", e.g. "intel-skylake-sp-xeon-platinum-8180". */
struct host_cpu *th_dump(const char *name);
/* The synthetic full-featured reference host. */
struct host_cpu *th_reference_host(void);
/* Writes `text` to dir/name (dir made by th_tempdir); returns 0. */
int th_write(const char *dir, const char *name, const char *text);
/* A fresh temporary directory (removed by th_rmdir). */
char *th_tempdir(void);
void th_rmdir(char *dir);
/* assert_true(strstr(hay, needle)) with a useful message. */
#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		const char *h_ = (hay), *n_ = (needle);                                            \
		if (!strstr(h_, n_))                                                               \
			fail_msg("'%s' does not contain '%s'", h_, n_);                            \
	} while (0)

#endif

/*
 * tests/unit/api_test_helpers.h: shared by the control API tests: JSON
 * helpers, and the small command table the dispatch and server tests serve.
 */
#ifndef VMM_TESTS_API_TEST_HELPERS_H
#define VMM_TESTS_API_TEST_HELPERS_H

#include <json-c/json.h>
#include <uv.h>

#include "api/api.h"
#include "api/internal.h"

#define DEADLINE_MS 3000

long now_ms(void);
/* Parses JSON written in a test (fails the test if it is not JSON). */
struct json_object *J(const char *s);
/* Asserts that `got` equals the JSON text `want`; drops `got`. */
void assert_json(struct json_object *got, const char *want);

/* A server on a uv loop in a temporary directory (test_api_server.c). */
struct fx {
	char dir[64];
	char path[128];
	uv_loop_t loop;
	struct api_server *srv; /* NULL once closed */
};

/* Returns its arguments. */
int h_echo(void *ctx, struct json_object *args, struct json_object **ret, const char **err_class,
	   struct vmm_error *err);
/* echo, fail, fail-bare, quit (closes the server: ctx is a struct fx). */
extern const struct api_command test_cmds[];
extern const unsigned ntest_cmds;

#endif

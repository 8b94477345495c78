/*
 * api/dispatch.c: one request line in, one reply object out. Parses the
 * line with json-c, checks the request's shape, runs a built-in command or
 * the caller's handler, and builds {"return": ...} or {"error": ...} with the
 * request's "id" echoed. No sockets here: api_server.c does the I/O.
 */
#include "api/api.h"
#include "config.h"
#include "api/internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct json_object *api_error_reply(const char *cls, const char *fmt, ...)
{
	char desc[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	struct json_object *e = json_object_new_object();
	json_object_object_add(e, "class", json_object_new_string(cls));
	json_object_object_add(e, "desc", json_object_new_string(desc));
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "error", e);
	return o;
}

struct json_object *api_version_object(void)
{
	unsigned major = 0, minor = 0, micro = 0;
	sscanf(VMM_VERSION, "%u.%u.%u", &major, &minor, &micro);
	/* QMP's shape ("qemu" is the key QMP clients read), with our numbers. */
	struct json_object *nums = json_object_new_object();
	json_object_object_add(nums, "major", json_object_new_int((int)major));
	json_object_object_add(nums, "minor", json_object_new_int((int)minor));
	json_object_object_add(nums, "micro", json_object_new_int((int)micro));
	struct json_object *v = json_object_new_object();
	json_object_object_add(v, "qemu", nums);
	json_object_object_add(v, "package", json_object_new_string("vmm " VMM_VERSION));
	return v;
}

static const struct api_command builtin[] = {
	{"qmp_capabilities", NULL, "accepted for QMP compatibility; does nothing"},
	{"query-commands", NULL, "lists the commands this server knows"},
	{"query-version", NULL, "the vmm version, in QMP's shape"},
};
#define NBUILTIN (sizeof(builtin) / sizeof(builtin[0]))

static struct json_object *query_commands(const struct api_command *cmds, unsigned ncmds)
{
	struct json_object *list = json_object_new_array();
	for (unsigned i = 0; i < NBUILTIN + ncmds; i++) {
		const struct api_command *c = i < NBUILTIN ? &builtin[i] : &cmds[i - NBUILTIN];
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(c->name));
		if (c->help)
			json_object_object_add(o, "help", json_object_new_string(c->help));
		json_object_array_add(list, o);
	}
	return list;
}

static const struct api_command *find_command(const struct api_command *cmds, unsigned ncmds,
					      const char *name)
{
	for (unsigned i = 0; i < ncmds; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

/* Parses one whole line as one JSON value; NULL with `desc` set if it isn't. */
static struct json_object *parse_line(const char *line, size_t len, char *desc, size_t desc_len)
{
	struct json_tokener *tok = json_tokener_new();
	if (!tok) {
		snprintf(desc, desc_len, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	/* len + 1 feeds the terminating NUL too, which ends a bare number. */
	struct json_object *obj = json_tokener_parse_ex(tok, line, (int)len + 1);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	/* strict: trailing data after the value is an error too */
	if (!obj || jerr != json_tokener_success) {
		snprintf(desc, desc_len, "invalid JSON: %s", json_tokener_error_desc(jerr));
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

/* The reply to a well-formed request object, without its "id". */
static struct json_object *run_request(const struct api_command *cmds, unsigned ncmds, void *ctx,
				       struct json_object *req)
{
	struct json_object *exec = NULL, *args = NULL, *ret = NULL;
	json_object_object_foreach(req, key, val) {
		(void)val;
		if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id"))
			return api_error_reply(API_ERR_GENERIC, "unexpected member \"%.64s\"", key);
	}
	if (!json_object_object_get_ex(req, "execute", &exec))
		return api_error_reply(API_ERR_GENERIC, "missing member \"execute\"");
	if (!json_object_is_type(exec, json_type_string))
		return api_error_reply(API_ERR_GENERIC, "\"execute\" must be a string");
	if (json_object_object_get_ex(req, "arguments", &args) &&
	    !json_object_is_type(args, json_type_object))
		return api_error_reply(API_ERR_GENERIC, "\"arguments\" must be an object");

	const char *name = json_object_get_string(exec);
	if (strcmp(name, "qmp_capabilities") == 0) {
		ret = json_object_new_object();
	} else if (strcmp(name, "query-commands") == 0) {
		ret = query_commands(cmds, ncmds);
	} else if (strcmp(name, "query-version") == 0) {
		ret = api_version_object();
	} else {
		const struct api_command *cmd = find_command(cmds, ncmds, name);
		if (!cmd)
			return api_error_reply(API_ERR_NOT_FOUND,
					       "The command %.256s has not been found", name);
		struct json_object *empty = args ? NULL : json_object_new_object();
		const char *cls = API_ERR_GENERIC;
		struct vmm_error err = {0};
		int rc = cmd->handler(ctx, args ? args : empty, &ret, &cls, &err);
		json_object_put(empty);
		if (rc < 0) {
			json_object_put(ret);
			return api_error_reply(cls ? cls : API_ERR_GENERIC, "%s",
					       err.msg[0] ? err.msg : strerror(-rc));
		}
		if (!ret)
			ret = json_object_new_object();
	}
	struct json_object *resp = json_object_new_object();
	json_object_object_add(resp, "return", ret);
	return resp;
}

struct json_object *api_dispatch_line(const struct api_command *cmds, unsigned ncmds, void *ctx,
				      const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len)
		return NULL; /* blank lines are ignored */
	if (memchr(line, '\0', len))
		return api_error_reply(API_ERR_GENERIC, "invalid JSON: NUL byte in the line");
	char desc[256];
	struct json_object *req = parse_line(line, len, desc, sizeof(desc));
	if (!req)
		return api_error_reply(API_ERR_GENERIC, "%s", desc);
	if (!json_object_is_type(req, json_type_object)) {
		struct json_object *r = api_error_reply(API_ERR_GENERIC, "expected a JSON object, got %s",
							json_type_to_name(json_object_get_type(req)));
		json_object_put(req);
		return r;
	}
	struct json_object *resp = run_request(cmds, ncmds, ctx, req), *id;
	if (resp && json_object_object_get_ex(req, "id", &id))
		json_object_object_add(resp, "id", json_object_get(id));
	json_object_put(req);
	return resp;
}

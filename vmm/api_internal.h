/*
 * vmm/api_internal.h: the socket-free parts of the control API, shared
 * between its files and exposed for unit tests (the public interface is
 * api.h).
 *   api_dispatch.c  request line -> reply object (server side)
 */
#ifndef VMM_API_INTERNAL_H
#define VMM_API_INTERNAL_H

#include <stddef.h>

#include <json-c/json.h>

#include "vmm/api.h"

/* ---- server (api_dispatch.c) ---- */

/* A new {"error": {"class": cls, "desc": <formatted>}}. */
struct json_object *api_error_reply(const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Runs one request line (without its '\n'; line[len] must be '\0') through
 * the built-in commands and `cmds`; the handler, if any, runs inside. Returns
 * the reply to send ({"return": ...} or {"error": ...}, with the request's
 * "id" when it had one), NULL for a blank line. */
struct json_object *api_dispatch_line(const struct api_command *cmds, unsigned ncmds, void *ctx,
				      const char *line, size_t len);

#endif

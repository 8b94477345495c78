/*
 * api/internal.h: the socket-free parts of the control API, shared
 * between its files and exposed for unit tests (the public interface is
 * api.h).
 *   api_dispatch.c  request line -> reply object (server side)
 *   api_format.c    KEY=VALUE arguments, human output, migration progress
 *                   text (client side)
 */
#ifndef VMM_API_INTERNAL_H_
#define VMM_API_INTERNAL_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <json-c/json.h>

#include "api/api.h"

/* ---- server (api_dispatch.c) ---- */

/* A new {"error": {"class": cls, "desc": <formatted>}}. */
struct json_object *api_error_reply(const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* {"qemu": {"major", "minor", "micro"}, "package": "vmm X.Y.Z"}: the
 * greeting's and query-version's version, in QMP's shape. */
struct json_object *api_version_object(void);

/* Runs one request line (without its '\n'; line[len] must be '\0') through
 * the built-in commands and `cmds`; the handler, if any, runs inside. Returns
 * the reply to send ({"return": ...} or {"error": ...}, with the request's
 * "id" when it had one), NULL for a blank line. */
struct json_object *api_dispatch_line(const struct api_command *cmds, unsigned ncmds, void *ctx,
				      const char *line, size_t len);

/* ---- client (api_format.c) ---- */

/* One KEY=VALUE value: a decimal integer that fits int64 -> JSON integer,
 * "true"/"false" -> boolean, anything else -> string. */
struct json_object *api_client_arg_value(const char *value);

/* KEY=VALUE ... -> a new "arguments" object in *out. -EINVAL (message
 * naming the argument) for a missing '=', an empty key or a repeated key. */
int api_client_parse_args(int argc, char *const *argv, struct json_object **out,
			  struct vmm_error *err);

/* Human form of a "return" value: objects as "key: value" lines (nested
 * containers on the following lines, indented by two spaces), arrays as
 * "- item" lines, scalars bare, strings unquoted; {} prints nothing. */
void api_client_print_human(FILE *out, struct json_object *value);

/* One progress line for a query-migrate return value, no newline, e.g.
 *   "active    [#######-------------]  35.0% of 2.00 GiB | sent 1.21 GiB |
 *    112.4 MiB/s | dirty 12.4 MiB/s | iter 3 | downtime ~35 ms"
 * Absent fields leave their part out. The bar is drawn when `bar` and the
 * RAM total is known; with width > 0 the line fits in width - 1 columns
 * (the bar shrinks, then goes, then the line is cut); width 0: no limit.
 * Returns the length written to buf. */
size_t api_progress_line(struct json_object *info, bool bar, unsigned width, char *buf,
			 size_t len);

/* The statistics printed when a migration completed, several lines. */
void api_progress_summary(FILE *out, struct json_object *info);

/* "512 B", "1.50 KiB", "1.21 GiB", ... */
void api_progress_bytes(unsigned long long bytes, char *buf, size_t len);

#endif

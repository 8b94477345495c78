/*
 * api/api.h: the control API, a unix socket (--api-socket PATH, mode 0600)
 * speaking JSON in the style of QEMU's QMP: one JSON object per line.
 *
 *   server -> client on connect: {"QMP": {"version": {"qemu": {"major": 0, "minor": 2,
 *                                "micro": 0}, "package": "vmm 0.2.0"}, "capabilities": []}}
 *   client -> server:            {"execute": "NAME", "arguments": {...}, "id": ANY}
 *   server -> client:            {"return": {...}, "id": ANY}
 *                            or  {"error": {"class": "GenericError", "desc": "..."}, "id": ANY}
 *   server -> client, unasked:   {"event": "NAME", "data": {...}, "timestamp": {...}}
 *
 * The greeting, `qmp_capabilities`, `query-version`, `query-commands`, the
 * reply shapes and the events' timestamps are QMP's, so QMP client
 * libraries connect unchanged.
 * Access: the socket is created 0600 (umask, then chmod) in a directory
 * that only its owner or root can change, or a sticky one (/tmp): a
 * world-writable directory without the sticky bit, or one another user
 * owns, is refused at start-up. Each client's uid (SO_PEERCRED) must be
 * ours or root's; others get an error line and are closed. At most
 * API_MAX_CLIENTS are served; a newcomer beyond that closes the one idle
 * longest (told why), so idle connections never lock `vmm ctl` out.
 *
 * The server owns parsing, framing, bounds (lines over API_MAX_LINE bytes
 * are refused and the client disconnected), and dispatch by command name;
 * what each command does is the caller's table of handlers.
 *
 * All of it runs on the libuv loop of the main thread.
 */
#ifndef VMM_API_API_H
#define VMM_API_API_H

#include <json-c/json.h>
#include <uv.h>

#include "util/error.h"

#define API_MAX_LINE (64 * 1024)
#define API_MAX_CLIENTS 16

/* Error classes, as QMP names them. */
#define API_ERR_GENERIC "GenericError"
#define API_ERR_NOT_FOUND "CommandNotFound"
#define API_ERR_DEVICE_NOT_ACTIVE "DeviceNotActive"

/* A handler gets the "arguments" object (never NULL: {} when absent) and
 * returns a new json object for "return" (NULL means {}), or fails with a
 * negative errno and a message in err; *err_class may be set to one of the
 * classes above (default GenericError). */
typedef int (*api_handler)(void *ctx, struct json_object *args, struct json_object **ret,
			   const char **err_class, struct vmm_error *err);

struct api_command {
	const char *name;
	api_handler handler;
	const char *help; /* one line, for query-commands */
};

struct api_server;

/* Creates the socket at `path` (refusing to replace a file that is not a
 * socket; replacing a stale socket), mode 0600, and starts accepting. */
int api_server_start(uv_loop_t *loop, const char *path, const struct api_command *cmds,
		     unsigned ncmds, void *ctx, struct api_server **out, struct vmm_error *err);
/* Sends an event to every connected client. */
void api_server_broadcast_event(struct api_server *s, const char *event, struct json_object *data);
/* Closes clients and the listener, removes the socket file; frees on close. */
void api_server_close(struct api_server *s);

/* `vmm ctl ...`: argv[0] is "ctl". Returns the process exit code. */
int api_client_main(int argc, char **argv);

#endif

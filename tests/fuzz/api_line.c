/*
 * tests/fuzz/api_line.c: one control-API line through api_dispatch_line
 * with the real command table of `vmm` (vmm/control.c) on a destination
 * that has no guest yet: every command parses its arguments and refuses or
 * answers; none may crash. `quit` is left out (it ends the process).
 */
#include <string.h>

#include "api/api.h"
#include "api/internal.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/control.h"

static struct api_command cmds[64];
static unsigned ncmds;
static struct vmm_config cfg;
static struct vmm_control ctl;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ncmds) {
		for (unsigned i = 0; i < vmm_control_ncommands && ncmds < 64; i++)
			if (strcmp(vmm_control_commands[i].name, "quit") != 0)
				cmds[ncmds++] = vmm_control_commands[i];
		cfg.incoming = "tcp:127.0.0.1:1";
		ctl.cfg = &cfg;
		mig_params_default(&ctl.params);
	}
	if (size > API_MAX_LINE)
		return 0;
	char *line = malloc(size + 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	struct json_object *reply = api_dispatch_line(cmds, ncmds, &ctl, line, size);
	if (reply)
		json_object_put(reply);
	free(line);
	return 0;
}

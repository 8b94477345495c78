/* vmm/console.h: host console input for serial0 (see console.c). */
#ifndef VMM_CONSOLE_H
#define VMM_CONSOLE_H

#include <uv.h>

#include "vmm/vmm.h"

/* Starts reading stdin into serial0 when --serial stdio; 0 or a libuv error. */
int console_open(uv_loop_t *loop, struct vm *vm);
/* Restores the terminal and closes the handles (before the loop's last run). */
void console_close(void);

#endif

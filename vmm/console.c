/*
 * vmm/console.c: host console input for serial0 (--serial stdio). stdin is
 * read on the libuv loop; bytes wait in a buffer until the UART's receive
 * FIFO has room, so pasted text is not lost. On a terminal, stdin is put in
 * raw mode so keys reach the guest; Ctrl-A x quits (as with QEMU).
 */
#include "vmm/console.h"
#include "core/devices/devices.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONSOLE_BUF 4096
#define ESCAPE_KEY 0x01 /* Ctrl-A */

struct console {
	struct vm *vm;
	struct device *uart;
	union {
		uv_tty_t tty;
		uv_pipe_t pipe;
	} in;
	bool is_tty, reading, open;
	uv_timer_t retry;
	uint8_t buf[CONSOLE_BUF];
	size_t len;
	bool escape;
};

static struct console console;

static void on_retry(uv_timer_t *t);

static void pump(void)
{
	if (console.len) {
		size_t n = uart_receive(console.uart, console.buf, console.len);
		memmove(console.buf, console.buf + n, console.len - n);
		console.len -= n;
	}
	if (console.len)
		uv_timer_start(&console.retry, on_retry, 2, 0);
}

static void on_retry(uv_timer_t *t)
{
	(void)t;
	pump();
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	(void)h;
	(void)suggested;
	static char chunk[256];
	b->base = chunk;
	b->len = sizeof(chunk);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	(void)s;
	if (nread < 0) { /* EOF or error: no more input, the guest keeps running */
		uv_read_stop((uv_stream_t *)&console.in);
		console.reading = false;
		return;
	}
	for (ssize_t i = 0; i < nread; i++) {
		uint8_t c = (uint8_t)b->base[i];
		if (console.is_tty && console.escape) {
			console.escape = false;
			if (c == 'x') {
				vm_request_exit(console.vm, VM_EXIT_SIGNAL, 0, "quit from the console");
				return;
			}
			if (c != ESCAPE_KEY)
				continue;
		} else if (console.is_tty && c == ESCAPE_KEY) {
			console.escape = true;
			continue;
		}
		if (console.len < CONSOLE_BUF)
			console.buf[console.len++] = c;
	}
	pump();
}

int console_open(uv_loop_t *loop, struct vm *vm)
{
	memset(&console, 0, sizeof(console));
	console.vm = vm;
	console.uart = vm_find_device(vm, "serial0");
	if (!console.uart || vm->spec.serial != SERIAL_STDIO)
		return 0;
	uv_handle_type t = uv_guess_handle(STDIN_FILENO);
	int r;
	if (t == UV_TTY) {
		if ((r = uv_tty_init(loop, &console.in.tty, STDIN_FILENO, 1)) < 0)
			return r;
		console.is_tty = true;
		uv_tty_set_mode(&console.in.tty, UV_TTY_MODE_RAW);
	} else if (t == UV_NAMED_PIPE) {
		if ((r = uv_pipe_init(loop, &console.in.pipe, 0)) < 0)
			return r;
		if ((r = uv_pipe_open(&console.in.pipe, STDIN_FILENO)) < 0)
			return r;
	} else {
		return 0; /* a file or /dev/null: no interactive input */
	}
	uv_timer_init(loop, &console.retry);
	console.open = true;
	if ((r = uv_read_start((uv_stream_t *)&console.in, on_alloc, on_read)) < 0)
		return r;
	console.reading = true;
	return 0;
}

void console_close(void)
{
	if (!console.open)
		return;
	if (console.is_tty)
		uv_tty_reset_mode();
	uv_close((uv_handle_t *)&console.in, NULL);
	uv_close((uv_handle_t *)&console.retry, NULL);
	console.open = false;
}

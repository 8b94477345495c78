/*
 * vmm/run.c: `vmm run`: build the VM from the command line, boot it (or
 * receive it), run the libuv loop until the VM ends, and exit with the
 * guest's status.
 *
 * Exit codes: the guest's debug-exit status; 0 after a guest reset or
 * power-off request or a quit; 1 when the VM cannot be built; 2 for a bad
 * command line; 125 when the guest crashed (triple fault, KVM internal
 * error); 128+N after signal N.
 */
#include "vmm/console.h"
#include "vmm/vmm.h"
#include "vmm/x86/x86.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct run_loop {
	uv_loop_t loop;
	uv_async_t exit_async;
	uv_signal_t sigint, sigterm;
	struct vm *vm;
};

static void on_exit_async(uv_async_t *a)
{
	struct run_loop *rl = a->data;
	console_close();
	uv_close((uv_handle_t *)&rl->exit_async, NULL);
	uv_close((uv_handle_t *)&rl->sigint, NULL);
	uv_close((uv_handle_t *)&rl->sigterm, NULL);
}

static void notify_loop(struct vm *vm)
{
	struct run_loop *rl = vm->loop_data;
	uv_async_send(&rl->exit_async);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct run_loop *rl = s->data;
	vm_request_exit(rl->vm, VM_EXIT_SIGNAL, 128 + signum, "stopped by signal %d (%s)", signum,
			strsignal(signum));
}

static int run_loop_init(struct run_loop *rl, struct vm *vm)
{
	int r;
	memset(rl, 0, sizeof(*rl));
	rl->vm = vm;
	if ((r = uv_loop_init(&rl->loop)) < 0)
		return r;
	if ((r = uv_async_init(&rl->loop, &rl->exit_async, on_exit_async)) < 0)
		return r;
	rl->exit_async.data = rl;
	uv_signal_init(&rl->loop, &rl->sigint);
	uv_signal_init(&rl->loop, &rl->sigterm);
	rl->sigint.data = rl->sigterm.data = rl;
	uv_signal_start(&rl->sigint, on_signal, SIGINT);
	uv_signal_start(&rl->sigterm, on_signal, SIGTERM);
	vm->loop_data = rl;
	vm->exit_notify = notify_loop;
	return console_open(&rl->loop, vm);
}

/* vCPU threads must be the only ones that take SIGUSR1 (the kick). */
static void block_kick_signal(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int vmm_run(int argc, char **argv)
{
	struct vmm_config cfg;
	struct vmm_error err = {0};
	int r = vmm_options_parse(argc, argv, &cfg, &err);
	if (r == 1)
		return 0;
	if (r < 0) {
		fprintf(stderr, "vmm: %s\n", err.msg);
		return 2;
	}
	block_kick_signal();

	static struct vm vm;
	if ((r = vm_create(&vm, &cfg, &err)) < 0)
		goto fail;
	if (cfg.kernel && !cfg.incoming && (r = pvh_boot_setup(&vm, &err)) < 0)
		goto fail;
	if (cfg.dump_cpuid && (r = vm_dump_cpuid(&vm, cfg.dump_cpuid, &err)) < 0)
		goto fail;

	struct run_loop rl;
	if ((r = run_loop_init(&rl, &vm)) < 0) {
		vmm_error_set(&err, r, "event loop: %s", uv_strerror(r));
		goto fail;
	}
	if ((r = vm_start(&vm, &err)) < 0) {
		vm_request_exit(&vm, VM_EXIT_CRASH, 1, "%s", err.msg);
	}
	uv_run(&rl.loop, UV_RUN_DEFAULT);
	uv_loop_close(&rl.loop);
	vm_stop(&vm);

	int status = vm.exit_status;
	if (vm.exit_reason != VM_EXIT_GUEST_STATUS || status != 0)
		fprintf(stderr, "vmm: %s\n", vm.exit_message);
	vm_destroy(&vm);
	return status;

fail:
	fprintf(stderr, "vmm: %s\n", err.msg);
	vm_destroy(&vm);
	return 1;
}

/*
 * vmm/run.c: `vmm run`: resolve the command line into a VM spec, build the
 * VM and boot it, or build it and wait for the guest to arrive (--incoming);
 * serve the control API; run the libuv loop until the VM ends; exit with the
 * guest's status. This file owns the VM's life cycle.
 *
 * Exit codes: the guest's debug-exit status; 0 after a guest reset or
 * power-off request, a quit, or a completed migration; 1 when the VM cannot
 * be built or an incoming migration fails; 2 for a bad command line; 125
 * when the guest crashed (triple fault, KVM internal error); 128+N after
 * signal N.
 */
#include "core/x86/x86.h"
#include "vmm/console.h"
#include "vmm/control.h"
#include "vmm/vmm.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* After a completed migration the source lingers this long so API clients
 * can read the final statistics, then exits. */
#define MIGRATED_LINGER_MS 1000

struct run_loop {
	uv_loop_t loop;
	uv_async_t exit_async;
	uv_signal_t sigint, sigterm;
	uv_timer_t linger;
	struct vm *vm;
	struct vmm_control ctl;
};

static void on_exit_async(uv_async_t *a)
{
	struct run_loop *rl = a->data;
	console_close();
	if (rl->ctl.api)
		api_server_close(rl->ctl.api);
	rl->ctl.api = NULL;
	if (rl->ctl.dest)
		mig_dest_close(rl->ctl.dest);
	rl->ctl.dest = NULL;
	if (rl->ctl.mig && !mig_source_finished(rl->ctl.mig))
		mig_source_cancel(rl->ctl.mig); /* joined after the loop */
	uv_close((uv_handle_t *)&rl->exit_async, NULL);
	uv_close((uv_handle_t *)&rl->ctl.mig_done, NULL);
	uv_close((uv_handle_t *)&rl->sigint, NULL);
	uv_close((uv_handle_t *)&rl->sigterm, NULL);
	uv_close((uv_handle_t *)&rl->linger, NULL);
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

static void on_linger_done(uv_timer_t *t)
{
	struct run_loop *rl = t->data;
	struct mig_info i;
	mig_source_info(rl->ctl.mig, &i);
	vm_request_exit(rl->vm, VM_EXIT_MIGRATED, 0, "the guest now runs at %s", i.uri);
}

static void print_migration_summary(const struct mig_info *i)
{
	if (i->status != MIG_STATUS_COMPLETED) {
		fprintf(stderr, "vmm: migration to %s %s: %s (the guest %s here)\n", i->uri,
			mig_status_name(i->status), i->error,
			i->guest_paused ? "stays paused" : "keeps running");
		return;
	}
	char chan[400];
	mig_tls_describe(&i->tls, chan, sizeof(chan));
	fprintf(stderr,
		"vmm: migration to %s completed: total %llu ms (setup %llu ms), downtime %llu ms, "
		"%.1f MiB sent, %llu pages with data, %llu zero, %llu never touched, %llu "
		"iterations, compression %.2fx (%s), %u connection%s%s, channel %s\n",
		i->uri, (unsigned long long)i->total_time_ms, (unsigned long long)i->setup_time_ms,
		(unsigned long long)i->downtime_ms, (double)i->transferred / (1 << 20),
		(unsigned long long)i->normal, (unsigned long long)i->duplicate,
		(unsigned long long)i->untouched, (unsigned long long)i->dirty_sync_count,
		i->compression_ratio, i->compression_reason, i->connections,
		i->connections == 1 ? "" : "s", i->local ? ", local: the memory was passed" : "", chan);
}

static void on_migration_done(uv_async_t *a)
{
	struct run_loop *rl = a->data;
	if (!rl->ctl.mig || !mig_source_finished(rl->ctl.mig))
		return;
	struct mig_info i;
	mig_source_info(rl->ctl.mig, &i);
	print_migration_summary(&i);
	if (rl->ctl.api) {
		struct json_object *data = json_object_new_object();
		json_object_object_add(data, "status", json_object_new_string(mig_status_name(i.status)));
		api_server_broadcast_event(rl->ctl.api, "MIGRATION", data);
	}
	bool to_file = strncmp(i.uri, "file:", 5) == 0;
	if (i.status == MIG_STATUS_COMPLETED && !to_file)
		uv_timer_start(&rl->linger, on_linger_done, MIGRATED_LINGER_MS, 0);
}

static void on_incoming_done(struct mig_dest *d, int result, const char *msg, void *ctx)
{
	struct run_loop *rl = ctx;
	if (result < 0) {
		vm_request_exit(rl->vm, VM_EXIT_FAILED, 1, "%s", msg);
		return;
	}
	rl->ctl.vm_running = true;
	rl->ctl.user_paused = mig_dest_guest_paused(d); /* holds the pause reference */
	fprintf(stderr, "vmm: %s; the guest %s here\n", msg,
		rl->ctl.user_paused ? "is paused (as at the source: `cont` runs it)" : "runs");
	struct vmm_error err = {0};
	if (rl->ctl.cfg->dump_cpuid && vm_dump_cpuid(rl->vm, rl->ctl.cfg->dump_cpuid, &err) < 0)
		fprintf(stderr, "vmm: warning: %s\n", err.msg);
	if (console_open(&rl->loop, rl->vm) < 0)
		fprintf(stderr, "vmm: warning: no console input\n");
}

static int run_loop_init(struct run_loop *rl, struct vm *vm, const struct vmm_config *cfg)
{
	int r;
	memset(rl, 0, sizeof(*rl));
	rl->vm = vm;
	rl->ctl.vm = vm;
	rl->ctl.cfg = cfg;
	rl->ctl.loop = &rl->loop;
	mig_params_default(&rl->ctl.params);
	if ((r = uv_loop_init(&rl->loop)) < 0)
		return r;
	uv_async_init(&rl->loop, &rl->exit_async, on_exit_async);
	rl->exit_async.data = rl;
	uv_async_init(&rl->loop, &rl->ctl.mig_done, on_migration_done);
	rl->ctl.mig_done.data = rl;
	uv_timer_init(&rl->loop, &rl->linger);
	rl->linger.data = rl;
	uv_signal_init(&rl->loop, &rl->sigint);
	uv_signal_init(&rl->loop, &rl->sigterm);
	rl->sigint.data = rl->sigterm.data = rl;
	uv_signal_start(&rl->sigint, on_signal, SIGINT);
	uv_signal_start(&rl->sigterm, on_signal, SIGTERM);
	vm->loop_data = rl;
	vm->exit_notify = notify_loop;
	return 0;
}

/* vCPU threads must be the only ones that take SIGUSR1 (the kick). */
static void block_kick_signal(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static int boot(struct run_loop *rl, const struct vmm_config *cfg, const struct vm_spec *spec,
		struct vmm_error *err)
{
	struct vm *vm = rl->vm;
	const struct vm_boot b = {.kernel = cfg->kernel, .initrd = cfg->initrd,
				  .cmdline = cfg->cmdline};
	int r;
	if ((r = vm_create(vm, spec, err)) < 0 || (r = pvh_boot_setup(vm, &b, err)) < 0)
		return r;
	if (cfg->dump_cpuid && (r = vm_dump_cpuid(vm, cfg->dump_cpuid, err)) < 0)
		return r;
	if ((r = console_open(&rl->loop, vm)) < 0)
		return vmm_error_set(err, r, "console: %s", uv_strerror(r));
	if ((r = vm_start(vm, err)) < 0)
		return r;
	rl->ctl.vm_running = true;
	return 0;
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
	if (cfg.print_config) {
		if (vmm_print_config(&cfg, &err) < 0) {
			fprintf(stderr, "vmm: %s\n", err.msg);
			return 1;
		}
		return 0;
	}
	block_kick_signal();
	/* A peer that vanishes mid-write (API client, migration) is an error
	 * to report, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);

	static struct vm vm;
	static struct run_loop rl;
	vm_init(&vm);
	if ((r = run_loop_init(&rl, &vm, &cfg)) < 0) {
		fprintf(stderr, "vmm: event loop: %s\n", uv_strerror(r));
		return 1;
	}
	static struct vm_spec spec;
	r = vm_spec_resolve(&cfg.vm, &spec, &err);
	if (r == 0 && cfg.incoming) {
		/* Built now, while nothing waits on it: a migration then never
		 * waits for memory slots and vCPUs (a stream describing another
		 * guest gets its own VM, vm_recreate). */
		r = mig_dest_start(&rl.loop, cfg.incoming, &vm, &cfg.vm, &cfg.tls, on_incoming_done,
				   &rl, &rl.ctl.dest, &err);
		if (r == 0)
			r = vm_create(&vm, &spec, &err);
		if (r == 0)
			r = mig_dest_run(rl.ctl.dest, &err);
	} else if (r == 0) {
		r = boot(&rl, &cfg, &spec, &err);
	}
	if (r == 0 && cfg.api_socket)
		r = api_server_start(&rl.loop, cfg.api_socket, vmm_control_commands,
				     vmm_control_ncommands, &rl.ctl, &rl.ctl.api, &err);
	if (r < 0)
		vm_request_exit(&vm, VM_EXIT_FAILED, 1, "%s", err.msg);

	uv_run(&rl.loop, UV_RUN_DEFAULT);
	uv_loop_close(&rl.loop);
	vm_stop(&vm);
	if (rl.ctl.mig)
		mig_source_free(rl.ctl.mig);

	int status = vm.exit_status;
	bool quiet = (vm.exit_reason == VM_EXIT_GUEST_STATUS && status == 0) ||
		     vm.exit_reason == VM_EXIT_QUIT;
	if (!quiet)
		fprintf(stderr, "vmm: %s\n", vm.exit_message);
	vm_destroy(&vm);
	return status;
}

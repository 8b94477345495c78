/*
 * core/vcpu.c: one vCPU: creation with its CPUID, the thread that runs
 * KVM_RUN and handles exits, and the pause/stop protocol.
 *
 * Pausing: vm_pause() takes a pause reference (pause_depth), sets run->immediate_exit and
 * signals the thread (SIGUSR1, no-op handler) so KVM_RUN returns EINTR.
 * Before parking, a thread whose last exit was I/O re-enters KVM_RUN once
 * with immediate_exit set, so KVM completes the instruction and the saved
 * state is consistent (KVM API: "complete after re-entering KVM_RUN").
 */
#include "core/vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define KICK_SIGNAL SIGUSR1

struct kvm_cpuid_buf {
	struct kvm_cpuid2 hdr;
	struct kvm_cpuid_entry2 e[CPUID_TABLE_MAX];
};

static int set_cpuid(struct vcpu *vcpu, const struct cpuid_table *t, struct vmm_error *err)
{
	static __thread struct kvm_cpuid_buf buf; /* 10 KiB: off the stack */
	int r = cpuid_table_to_kvm(t, &buf.hdr, CPUID_TABLE_MAX, err);
	if (r < 0)
		return vmm_error_prefix(err, "vcpu %u", vcpu->index);
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, &buf) < 0)
		return vmm_error_set(err, -errno, "vcpu %u: KVM_SET_CPUID2 (%u entries): %s",
				     vcpu->index, t->n, strerror(errno));
	return 0;
}

int vcpu_get_cpuid(struct vcpu *vcpu, struct cpuid_table *out, struct vmm_error *err)
{
	static __thread struct kvm_cpuid_buf buf;
	memset(&buf, 0, sizeof(buf));
	buf.hdr.nent = CPUID_TABLE_MAX;
	if (ioctl(vcpu->fd, KVM_GET_CPUID2, &buf) < 0)
		return vmm_error_set(err, -errno, "vcpu %u: KVM_GET_CPUID2: %s", vcpu->index,
				     strerror(errno));
	int r = cpuid_table_from_kvm(&buf.hdr, out, err);
	return r < 0 ? vmm_error_prefix(err, "vcpu %u", vcpu->index) : 0;
}

/* Wires LINT0 to the 8259 (ExtINT) and LINT1 to NMI, as firmware does, so
 * legacy PIC interrupts reach the BSP in virtual-wire mode. */
static int setup_lapic_lints(struct vcpu *vcpu, struct vmm_error *err)
{
	struct kvm_lapic_state lapic;
	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
		return vmm_error_set(err, -errno, "vcpu %u: KVM_GET_LAPIC: %s", vcpu->index,
				     strerror(errno));
	uint32_t lint0, lint1;
	memcpy(&lint0, &lapic.regs[0x350], 4);
	memcpy(&lint1, &lapic.regs[0x360], 4);
	lint0 = (lint0 & ~0x700u) | (7u << 8); /* ExtINT */
	lint1 = (lint1 & ~0x700u) | (4u << 8); /* NMI */
	memcpy(&lapic.regs[0x350], &lint0, 4);
	memcpy(&lapic.regs[0x360], &lint1, 4);
	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0)
		return vmm_error_set(err, -errno, "vcpu %u: KVM_SET_LAPIC: %s", vcpu->index,
				     strerror(errno));
	return 0;
}

int vcpu_create(struct vm *vm, unsigned index, struct vmm_error *err)
{
	struct vcpu *vcpu = calloc(1, sizeof(*vcpu));
	if (!vcpu)
		return vmm_error_set(err, -ENOMEM, "vcpu %u: out of memory", index);
	vcpu->vm = vm;
	vcpu->index = index;
	vcpu->fd = -1;
	vcpu->apic_id = guest_cpu_apic_id(vm->cpu, vm->ncpus, index);
	vm->vcpus[index] = vcpu;

	int r;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)vcpu->apic_id);
	if (vcpu->fd < 0)
		return vmm_error_set(err, -errno, "vcpu %u: KVM_CREATE_VCPU (apic id %u): %s", index,
				     vcpu->apic_id, strerror(errno));
	int size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run))
		return vmm_error_set(err, -EINVAL, "KVM_GET_VCPU_MMAP_SIZE: %d", size);
	vcpu->run_size = (size_t)size;
	vcpu->run = mmap(NULL, vcpu->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		return vmm_error_set(err, -errno, "vcpu %u: mmap kvm_run: %s", index, strerror(errno));
	}
	if ((r = guest_cpu_build_cpuid(vm->cpu, vm->ncpus, index, &vcpu->cpuid, err)) < 0)
		return vmm_error_prefix(err, "vcpu %u", index);
	if ((r = set_cpuid(vcpu, &vcpu->cpuid, err)) < 0)
		return r;
	/* Also keep what KVM holds, read back now: vCPU ioctls on a running
	 * vCPU wait until it next leaves KVM_RUN (which a halted guest may not
	 * do for long), so later readers use this copy. */
	if ((r = vcpu_get_cpuid(vcpu, &vcpu->kvm_cpuid, err)) < 0)
		return r;
	int khz = ioctl(vcpu->fd, KVM_GET_TSC_KHZ, 0);
	vcpu->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
	return setup_lapic_lints(vcpu, err);
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (!vcpu)
		return;
	if (vcpu->run)
		munmap(vcpu->run, vcpu->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	free(vcpu);
}

/* ---- exits ---- */

static void describe_rip(struct vcpu *vcpu, char *buf, size_t len)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0) {
		snprintf(buf, len, "rip unknown");
		return;
	}
	int n = snprintf(buf, len, "rip 0x%llx cpl %u", (unsigned long long)regs.rip,
			 sregs.cs.selector & 3);
	struct kvm_translation tr = {.linear_address = sregs.cs.base + regs.rip};
	if (ioctl(vcpu->fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return;
	const uint8_t *insn = guest_ptr(&vcpu->vm->mem, tr.physical_address, 15);
	if (!insn || n < 0 || (size_t)n >= len)
		return;
	n += snprintf(buf + n, len - (size_t)n, ", instruction bytes");
	for (int i = 0; i < 15 && (size_t)n < len; i++)
		n += snprintf(buf + n, len - (size_t)n, " %02x", insn[i]);
}

static const char *internal_error_name(uint32_t suberror)
{
	switch (suberror) {
	case KVM_INTERNAL_ERROR_EMULATION:
		return "instruction emulation failed";
	case KVM_INTERNAL_ERROR_SIMUL_EX:
		return "exception while delivering an exception";
	case KVM_INTERNAL_ERROR_DELIVERY_EV:
		return "exit while delivering an event";
	case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
		return "unexpected exit reason";
	default:
		return "unknown suberror";
	}
}

/* Handles one exit; returns false when this vCPU must stop. */
static bool handle_exit(struct vcpu *vcpu, bool *needs_completion)
{
	struct vm *vm = vcpu->vm;
	struct kvm_run *run = vcpu->run;
	char where[160];
	*needs_completion = false;

	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		uint64_t bytes = (uint64_t)run->io.size * run->io.count;
		if (run->io.data_offset >= vcpu->run_size ||
		    bytes > vcpu->run_size - run->io.data_offset || run->io.size > 4) {
			vm_request_exit(vm, VM_EXIT_CRASH, 1, "vcpu %u: malformed I/O exit",
					vcpu->index);
			return false;
		}
		uint8_t *p = (uint8_t *)run + run->io.data_offset;
		bool out = run->io.direction == KVM_EXIT_IO_OUT;
		for (uint32_t i = 0; i < run->io.count; i++, p += run->io.size)
			io_bus_access(&vm->pio, run->io.port, p, run->io.size, out);
		*needs_completion = !out;
		return true;
	}
	case KVM_EXIT_MMIO:
		if (run->mmio.len > sizeof(run->mmio.data))
			run->mmio.len = sizeof(run->mmio.data);
		io_bus_access(&vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
			      run->mmio.is_write);
		*needs_completion = !run->mmio.is_write;
		return true;
	case KVM_EXIT_INTR:
	case KVM_EXIT_HLT: /* the in-kernel LAPIC handles HLT; tolerate it anyway */
		return true;
	case KVM_EXIT_SHUTDOWN:
		describe_rip(vcpu, where, sizeof(where));
		vm_request_exit(vm, VM_EXIT_SHUTDOWN, 125,
				"vcpu %u: guest triple fault (shutdown) at %s", vcpu->index, where);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		describe_rip(vcpu, where, sizeof(where));
		vm_request_exit(vm, VM_EXIT_CRASH, 125,
				"vcpu %u: KVM internal error: %s (suberror %u) at %s", vcpu->index,
				internal_error_name(run->internal.suberror), run->internal.suberror,
				where);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		vm_request_exit(vm, VM_EXIT_CRASH, 125,
				"vcpu %u: KVM could not enter the guest (hardware reason 0x%llx)",
				vcpu->index,
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
			vm_request_exit(vm, VM_EXIT_RESET, 0, "vcpu %u: guest requested a reset",
					vcpu->index);
		else if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
			vm_request_exit(vm, VM_EXIT_RESET, 0, "vcpu %u: guest powered off",
					vcpu->index);
		else
			vm_request_exit(vm, VM_EXIT_CRASH, 125, "vcpu %u: guest crash event %u",
					vcpu->index, run->system_event.type);
		return false;
	default:
		describe_rip(vcpu, where, sizeof(where));
		vm_request_exit(vm, VM_EXIT_CRASH, 125, "vcpu %u: unexpected KVM exit reason %u at %s",
				vcpu->index, run->exit_reason, where);
		return false;
	}
}

/* Lets KVM finish an I/O instruction whose data we just supplied. */
static void complete_pending_io(struct vcpu *vcpu)
{
	vcpu->run->immediate_exit = 1;
	int r = ioctl(vcpu->fd, KVM_RUN, 0);
	if (r == 0) {
		bool again;
		handle_exit(vcpu, &again); /* an exit raced in: handle it as usual */
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	bool needs_completion = false;
	char name[16];
	snprintf(name, sizeof(name), "vcpu%u", vcpu->index);
	pthread_setname_np(pthread_self(), name);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	for (;;) {
		pthread_mutex_lock(&vm->run_lock);
		if ((vm->pause_depth || atomic_load(&vm->stopping)) && needs_completion) {
			pthread_mutex_unlock(&vm->run_lock);
			complete_pending_io(vcpu);
			needs_completion = false;
			continue;
		}
		while (vm->pause_depth && !atomic_load(&vm->stopping)) {
			vm->paused++;
			pthread_cond_broadcast(&vm->run_cond);
			pthread_cond_wait(&vm->run_cond, &vm->run_lock);
			vm->paused--;
		}
		if (atomic_load(&vm->stopping)) {
			pthread_mutex_unlock(&vm->run_lock);
			break;
		}
		vcpu->run->immediate_exit = 0;
		pthread_mutex_unlock(&vm->run_lock);

		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			vm_request_exit(vm, VM_EXIT_CRASH, 125, "vcpu %u: KVM_RUN: %s", vcpu->index,
					strerror(errno));
			break;
		}
		if (!handle_exit(vcpu, &needs_completion))
			break;
	}

	pthread_mutex_lock(&vm->run_lock);
	vm->running_threads--;
	pthread_cond_broadcast(&vm->run_cond);
	pthread_mutex_unlock(&vm->run_lock);
	return NULL;
}

static void kick_handler(int sig)
{
	(void)sig; /* only interrupts KVM_RUN */
}

int vm_start(struct vm *vm, struct vmm_error *err)
{
	struct sigaction sa = {.sa_handler = kick_handler};
	sigemptyset(&sa.sa_mask);
	if (sigaction(KICK_SIGNAL, &sa, NULL) < 0)
		return vmm_error_set(err, -errno, "sigaction: %s", strerror(errno));
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu *vcpu = vm->vcpus[i];
		pthread_mutex_lock(&vm->run_lock);
		vm->running_threads++;
		pthread_mutex_unlock(&vm->run_lock);
		int r = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
		if (r) {
			pthread_mutex_lock(&vm->run_lock);
			vm->running_threads--;
			pthread_mutex_unlock(&vm->run_lock);
			return vmm_error_set(err, -r, "vcpu %u: pthread_create: %s", i, strerror(r));
		}
		vcpu->thread_started = true;
	}
	return 0;
}

/* Caller holds run_lock. */
static void kick_all(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu *vcpu = vm->vcpus[i];
		if (!vcpu || !vcpu->thread_started)
			continue;
		vcpu->run->immediate_exit = 1;
		pthread_kill(vcpu->thread, KICK_SIGNAL);
	}
}

void vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->run_lock);
	vm->pause_depth++;
	kick_all(vm);
	while (vm->paused < vm->running_threads)
		pthread_cond_wait(&vm->run_cond, &vm->run_lock);
	pthread_mutex_unlock(&vm->run_lock);
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->run_lock);
	if (vm->pause_depth && --vm->pause_depth == 0)
		pthread_cond_broadcast(&vm->run_cond);
	pthread_mutex_unlock(&vm->run_lock);
}

void vm_kick_stop(struct vm *vm)
{
	pthread_mutex_lock(&vm->run_lock);
	atomic_store(&vm->stopping, true);
	kick_all(vm);
	pthread_cond_broadcast(&vm->run_cond);
	pthread_mutex_unlock(&vm->run_lock);
}

void vm_stop(struct vm *vm)
{
	vm_kick_stop(vm);
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu *vcpu = vm->vcpus[i];
		if (vcpu && vcpu->thread_started) {
			pthread_join(vcpu->thread, NULL);
			vcpu->thread_started = false;
		}
	}
}

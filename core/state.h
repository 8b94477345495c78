/*
 * core/state.h: the KVM-held state of a VM as plain structs, and the core
 * functions that get it from KVM and set it back. Migration serialises
 * these structs and never sees a KVM ioctl or <linux/kvm.h>.
 *
 * Get on paused vCPUs (vm_pause) only. Set in KVM's order: for each vCPU
 * vcpu_state_set() (MP state, REGS, SREGS, XSAVE or FPU, XCRS, DEBUGREGS,
 * LAPIC, MSRS, events), then vm_pit_set(), vm_irqchip_set(), the devices,
 * and vm_clock_set() last, right before the vCPUs run. Every set checks
 * every ioctl: a half-restored vCPU never runs.
 *
 * Field names and widths follow KVM's structs (Documentation/virt/kvm/api.rst).
 */
#ifndef VMM_CORE_STATE_H
#define VMM_CORE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vm.h"

#define VCPU_STATE_MAX_MSRS 256
#define VCPU_STATE_MAX_XCRS 16
#define VCPU_STATE_LAPIC_SIZE 1024
#define VCPU_STATE_XSAVE_MAX (64 * 1024)
#define VM_STATE_IOAPIC_PINS 24
#define VM_STATE_PIT_CHANNELS 3

struct vcpu_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
};

struct vcpu_segment {
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, avl, unusable;
};

struct vcpu_dtable {
	uint64_t base;
	uint16_t limit;
};

struct vcpu_sregs {
	struct vcpu_segment cs, ds, es, fs, gs, ss, tr, ldt;
	struct vcpu_dtable gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
	uint64_t interrupt_bitmap[4];
};

/* Legacy FPU state: only where KVM has no XSAVE. */
struct vcpu_fpu {
	uint8_t fpr[128];
	uint16_t fcw, fsw;
	uint8_t ftwx;
	uint16_t last_opcode;
	uint64_t last_ip, last_dp;
	uint8_t xmm[256];
	uint32_t mxcsr;
};

struct vcpu_xcr {
	uint32_t xcr;
	uint64_t value;
};

struct vcpu_debugregs {
	uint64_t db[4];
	uint64_t dr6, dr7, flags;
};

struct vcpu_msr {
	uint32_t index;
	uint64_t value;
};

struct vcpu_events {
	uint8_t exception_injected, exception_nr, exception_has_error_code, exception_pending;
	uint32_t exception_error_code;
	uint8_t interrupt_injected, interrupt_nr, interrupt_soft, interrupt_shadow;
	uint8_t nmi_injected, nmi_pending, nmi_masked;
	uint32_t sipi_vector;
	uint32_t flags;
	uint8_t smi_smm, smi_pending, smi_smm_inside_nmi, smi_latched_init;
	uint8_t triple_fault_pending;
	uint8_t exception_has_payload;
	uint64_t exception_payload;
};

struct vcpu_state {
	uint32_t index, apic_id;
	uint32_t mp_state;
	struct vcpu_regs regs;
	struct vcpu_sregs sregs;
	uint8_t *xsave; /* KVM_GET_XSAVE(2) area, heap; NULL: `fpu` holds the state */
	size_t xsave_len;
	struct vcpu_fpu fpu;
	unsigned nxcrs;
	struct vcpu_xcr xcrs[VCPU_STATE_MAX_XCRS];
	struct vcpu_debugregs debugregs;
	uint8_t lapic[VCPU_STATE_LAPIC_SIZE];
	unsigned nmsrs;
	struct vcpu_msr msrs[VCPU_STATE_MAX_MSRS];
	struct vcpu_events events;
};

/* Reads every piece of a paused vCPU's state; the MSRs are KVM's
 * save list minus any that cannot be read back. Release with
 * vcpu_state_release() (also after a failed get). */
int vcpu_state_get(struct vcpu *vcpu, struct vcpu_state *st, struct vmm_error *err);
void vcpu_state_release(struct vcpu_state *st);
/* Loads it in KVM's order; refuses an APIC ID that differs from this vCPU's,
 * an xsave area larger than this KVM's, and any MSR KVM does not accept. */
int vcpu_state_set(struct vcpu *vcpu, const struct vcpu_state *st, struct vmm_error *err);

struct vm_pic_state {
	uint8_t last_irr, irr, imr, isr, priority_add, irq_base, read_reg_select, poll;
	uint8_t special_mask, init_state, auto_eoi, rotate_on_auto_eoi;
	uint8_t special_fully_nested_mode, init4, elcr, elcr_mask;
};

struct vm_ioapic_state {
	uint64_t base_address;
	uint32_t ioregsel, id, irr;
	uint64_t redirtbl[VM_STATE_IOAPIC_PINS];
};

struct vm_irqchip_state {
	struct vm_pic_state pic[2]; /* master, slave */
	struct vm_ioapic_state ioapic;
};

struct vm_pit_channel {
	uint32_t count;
	uint16_t latched_count;
	uint8_t count_latched, status_latched, status, read_state, write_state, write_latch;
	uint8_t rw_mode, mode, bcd, gate;
	/* count_load_time relative to the moment of saving: the kernel's value
	 * is the host's monotonic clock, meaningless on another host */
	int64_t count_load_age_ns;
};

struct vm_pit_state {
	struct vm_pit_channel channels[VM_STATE_PIT_CHANNELS];
	uint32_t flags;
};

struct vm_clock_state {
	uint64_t clock_ns;    /* kvmclock at save time */
	bool has_realtime;    /* realtime_ns was read at the same instant as clock_ns */
	uint64_t realtime_ns; /* host CLOCK_REALTIME */
};

int vm_irqchip_get(struct vm *vm, struct vm_irqchip_state *st, struct vmm_error *err);
int vm_irqchip_set(struct vm *vm, const struct vm_irqchip_state *st, struct vmm_error *err);
/* The PIT's load times are rebased on this host's clock. */
int vm_pit_get(struct vm *vm, struct vm_pit_state *st, struct vmm_error *err);
int vm_pit_set(struct vm *vm, const struct vm_pit_state *st, struct vmm_error *err);
/* With a realtime pair on both sides, KVM moves kvmclock on by the wall time
 * that passed since the save, so guest time does not lag. */
int vm_clock_get(struct vm *vm, struct vm_clock_state *st, struct vmm_error *err);
int vm_clock_set(struct vm *vm, const struct vm_clock_state *st, struct vmm_error *err);

/* Dirty-page tracking of guest RAM (KVM_MEM_LOG_DIRTY_PAGES on every slot). */
struct vm_dirty_log {
	struct vm *vm;
	unsigned long *bitmaps[GUEST_MEM_MAX_REGIONS]; /* one bit per page of each region */
	unsigned long *scratch[GUEST_MEM_MAX_REGIONS];	/* for vm_dirty_log_sync_merge */
	size_t words[GUEST_MEM_MAX_REGIONS];
	bool enabled;
};
int vm_dirty_log_start(struct vm_dirty_log *d, struct vm *vm, struct vmm_error *err);
/* Fetches and clears KVM's log into the bitmaps; returns the dirty page count. */
int64_t vm_dirty_log_sync(struct vm_dirty_log *d, struct vmm_error *err);
/* The same, but adds to the bitmaps instead of replacing them (pages of the
 * last sync not sent yet stay marked); returns the count of all marked. */
int64_t vm_dirty_log_sync_merge(struct vm_dirty_log *d, struct vmm_error *err);
/* Back to plain slots (the guest runs on without write tracking); frees. */
void vm_dirty_log_stop(struct vm_dirty_log *d);

#endif

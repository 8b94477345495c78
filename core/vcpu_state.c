/*
 * core/vcpu_state.c: one vCPU's KVM state <-> struct vcpu_state (state.h).
 * Getting goes MP state first and events last; setting follows the order
 * KVM needs (CPUID was set when the vCPU was created): MP state, REGS,
 * SREGS, XSAVE (or FPU), XCRS, DEBUGREGS, LAPIC, MSRS (every one must be
 * accepted), events last.
 */
#include "core/state.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

_Static_assert(VCPU_STATE_LAPIC_SIZE == KVM_APIC_REG_SIZE, "LAPIC page size");
_Static_assert(VCPU_STATE_MAX_XCRS == KVM_MAX_XCRS, "XCR count");

static int kvm_fail(const struct vcpu *vcpu, const char *what, struct vmm_error *err)
{
	return vmm_error_set(err, -errno, "vcpu %u: %s: %s", vcpu->index, what, strerror(errno));
}

static void seg_get(struct vcpu_segment *d, const struct kvm_segment *s)
{
	*d = (struct vcpu_segment){
		.base = s->base, .limit = s->limit, .selector = s->selector, .type = s->type,
		.present = s->present, .dpl = s->dpl, .db = s->db, .s = s->s, .l = s->l,
		.g = s->g, .avl = s->avl, .unusable = s->unusable,
	};
}

static void seg_set(struct kvm_segment *d, const struct vcpu_segment *s)
{
	*d = (struct kvm_segment){
		.base = s->base, .limit = s->limit, .selector = s->selector, .type = s->type,
		.present = s->present, .dpl = s->dpl, .db = s->db, .s = s->s, .l = s->l,
		.g = s->g, .avl = s->avl, .unusable = s->unusable,
	};
}

/* The segments of kvm_sregs and vcpu_sregs, in the same order. */
#define SEGMENTS(X) X(cs) X(ds) X(es) X(fs) X(gs) X(ss) X(tr) X(ldt)

static void sregs_get(struct vcpu_sregs *d, const struct kvm_sregs *s)
{
#define GET(seg) seg_get(&d->seg, &s->seg);
	SEGMENTS(GET)
#undef GET
	d->gdt = (struct vcpu_dtable){s->gdt.base, s->gdt.limit};
	d->idt = (struct vcpu_dtable){s->idt.base, s->idt.limit};
	d->cr0 = s->cr0, d->cr2 = s->cr2, d->cr3 = s->cr3, d->cr4 = s->cr4, d->cr8 = s->cr8;
	d->efer = s->efer, d->apic_base = s->apic_base;
	memcpy(d->interrupt_bitmap, s->interrupt_bitmap, sizeof(d->interrupt_bitmap));
}

static void sregs_set(struct kvm_sregs *d, const struct vcpu_sregs *s)
{
	memset(d, 0, sizeof(*d));
#define SET(seg) seg_set(&d->seg, &s->seg);
	SEGMENTS(SET)
#undef SET
	d->gdt.base = s->gdt.base, d->gdt.limit = s->gdt.limit;
	d->idt.base = s->idt.base, d->idt.limit = s->idt.limit;
	d->cr0 = s->cr0, d->cr2 = s->cr2, d->cr3 = s->cr3, d->cr4 = s->cr4, d->cr8 = s->cr8;
	d->efer = s->efer, d->apic_base = s->apic_base;
	memcpy(d->interrupt_bitmap, s->interrupt_bitmap, sizeof(d->interrupt_bitmap));
}

/* The general registers, in kvm_regs order. */
#define REGS(X)                                                                                \
	X(rax) X(rbx) X(rcx) X(rdx) X(rsi) X(rdi) X(rsp) X(rbp) X(r8) X(r9) X(r10) X(r11)      \
		X(r12) X(r13) X(r14) X(r15) X(rip) X(rflags)

static void events_get(struct vcpu_events *d, const struct kvm_vcpu_events *e)
{
	*d = (struct vcpu_events){
		.exception_injected = e->exception.injected,
		.exception_nr = e->exception.nr,
		.exception_has_error_code = e->exception.has_error_code,
		.exception_pending = e->exception.pending,
		.exception_error_code = e->exception.error_code,
		.interrupt_injected = e->interrupt.injected,
		.interrupt_nr = e->interrupt.nr,
		.interrupt_soft = e->interrupt.soft,
		.interrupt_shadow = e->interrupt.shadow,
		.nmi_injected = e->nmi.injected,
		.nmi_pending = e->nmi.pending,
		.nmi_masked = e->nmi.masked,
		.sipi_vector = e->sipi_vector,
		.flags = e->flags,
		.smi_smm = e->smi.smm,
		.smi_pending = e->smi.pending,
		.smi_smm_inside_nmi = e->smi.smm_inside_nmi,
		.smi_latched_init = e->smi.latched_init,
		.triple_fault_pending = e->triple_fault.pending,
		.exception_has_payload = e->exception_has_payload,
		.exception_payload = e->exception_payload,
	};
}

static void events_set(struct kvm_vcpu_events *e, const struct vcpu_events *d)
{
	memset(e, 0, sizeof(*e));
	e->exception.injected = d->exception_injected;
	e->exception.nr = d->exception_nr;
	e->exception.has_error_code = d->exception_has_error_code;
	e->exception.pending = d->exception_pending;
	e->exception.error_code = d->exception_error_code;
	e->interrupt.injected = d->interrupt_injected;
	e->interrupt.nr = d->interrupt_nr;
	e->interrupt.soft = d->interrupt_soft;
	e->interrupt.shadow = d->interrupt_shadow;
	e->nmi.injected = d->nmi_injected;
	e->nmi.pending = d->nmi_pending;
	e->nmi.masked = d->nmi_masked;
	e->sipi_vector = d->sipi_vector;
	e->flags = d->flags;
	e->smi.smm = d->smi_smm;
	e->smi.pending = d->smi_pending;
	e->smi.smm_inside_nmi = d->smi_smm_inside_nmi;
	e->smi.latched_init = d->smi_latched_init;
	e->triple_fault.pending = d->triple_fault_pending;
	e->exception_has_payload = d->exception_has_payload;
	e->exception_payload = d->exception_payload;
}

/* The MSRs KVM can save for this vCPU: its index list, minus any that
 * cannot be read back. */
static int msrs_get(struct vcpu *vcpu, struct vcpu_state *st, struct vmm_error *err)
{
	struct {
		struct kvm_msr_list hdr;
		uint32_t idx[VCPU_STATE_MAX_MSRS];
	} list = {.hdr.nmsrs = VCPU_STATE_MAX_MSRS};
	if (ioctl(vcpu->vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0)
		return kvm_fail(vcpu, "KVM_GET_MSR_INDEX_LIST", err);
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[VCPU_STATE_MAX_MSRS];
	} msrs;
	st->nmsrs = 0;
	for (unsigned start = 0; start < list.hdr.nmsrs;) {
		memset(&msrs, 0, sizeof(msrs));
		unsigned want = list.hdr.nmsrs - start;
		for (unsigned i = 0; i < want; i++)
			msrs.e[i].index = list.idx[start + i];
		msrs.hdr.nmsrs = want;
		int got = ioctl(vcpu->fd, KVM_GET_MSRS, &msrs);
		if (got < 0)
			return kvm_fail(vcpu, "KVM_GET_MSRS", err);
		for (int i = 0; i < got; i++)
			st->msrs[st->nmsrs++] = (struct vcpu_msr){msrs.e[i].index, msrs.e[i].data};
		start += (unsigned)got + 1; /* MSR start+got cannot be read: not state */
	}
	return 0;
}

static int fpu_or_xsave_get(struct vcpu *vcpu, struct vcpu_state *st, struct vmm_error *err)
{
	if (ioctl(vcpu->vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) <= 0) {
		struct kvm_fpu fpu;
		if (ioctl(vcpu->fd, KVM_GET_FPU, &fpu) < 0)
			return kvm_fail(vcpu, "KVM_GET_FPU", err);
		struct vcpu_fpu *f = &st->fpu;
		memcpy(f->fpr, fpu.fpr, sizeof(f->fpr));
		memcpy(f->xmm, fpu.xmm, sizeof(f->xmm));
		f->fcw = fpu.fcw, f->fsw = fpu.fsw, f->ftwx = fpu.ftwx;
		f->last_opcode = fpu.last_opcode, f->last_ip = fpu.last_ip;
		f->last_dp = fpu.last_dp, f->mxcsr = fpu.mxcsr;
		return 0;
	}
	int size = ioctl(vcpu->vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (size < (int)sizeof(struct kvm_xsave))
		size = sizeof(struct kvm_xsave);
	if (size > VCPU_STATE_XSAVE_MAX)
		return vmm_error_set(err, -E2BIG, "vcpu %u: xsave area of %d bytes", vcpu->index, size);
	st->xsave = calloc(1, (size_t)size);
	if (!st->xsave)
		return vmm_error_set(err, -ENOMEM, "vcpu %u: out of memory", vcpu->index);
	st->xsave_len = (size_t)size;
	unsigned long req = size > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
	if (ioctl(vcpu->fd, req, st->xsave) < 0)
		return kvm_fail(vcpu, "KVM_GET_XSAVE", err);
	struct kvm_xcrs xcrs;
	if (ioctl(vcpu->fd, KVM_GET_XCRS, &xcrs) < 0)
		return kvm_fail(vcpu, "KVM_GET_XCRS", err);
	if (xcrs.nr_xcrs > VCPU_STATE_MAX_XCRS)
		return vmm_error_set(err, -EINVAL, "vcpu %u: %u XCRs", vcpu->index, xcrs.nr_xcrs);
	st->nxcrs = xcrs.nr_xcrs;
	for (unsigned i = 0; i < xcrs.nr_xcrs; i++)
		st->xcrs[i] = (struct vcpu_xcr){xcrs.xcrs[i].xcr, xcrs.xcrs[i].value};
	return 0;
}

int vcpu_state_get(struct vcpu *vcpu, struct vcpu_state *st, struct vmm_error *err)
{
	memset(st, 0, sizeof(*st));
	st->index = vcpu->index;
	st->apic_id = vcpu->apic_id;
	struct kvm_mp_state mp;
	if (ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) < 0)
		return kvm_fail(vcpu, "KVM_GET_MP_STATE", err);
	st->mp_state = mp.mp_state;
	struct kvm_regs regs;
	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0)
		return kvm_fail(vcpu, "KVM_GET_REGS", err);
#define GET(r) st->regs.r = regs.r;
	REGS(GET)
#undef GET
	struct kvm_sregs sregs;
	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return kvm_fail(vcpu, "KVM_GET_SREGS", err);
	sregs_get(&st->sregs, &sregs);
	int r = fpu_or_xsave_get(vcpu, st, err);
	if (r < 0)
		return r;
	struct kvm_debugregs dbg;
	if (ioctl(vcpu->fd, KVM_GET_DEBUGREGS, &dbg) < 0)
		return kvm_fail(vcpu, "KVM_GET_DEBUGREGS", err);
	memcpy(st->debugregs.db, dbg.db, sizeof(st->debugregs.db));
	st->debugregs.dr6 = dbg.dr6, st->debugregs.dr7 = dbg.dr7, st->debugregs.flags = dbg.flags;
	struct kvm_lapic_state lapic;
	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
		return kvm_fail(vcpu, "KVM_GET_LAPIC", err);
	memcpy(st->lapic, lapic.regs, sizeof(st->lapic));
	if ((r = msrs_get(vcpu, st, err)) < 0)
		return r;
	struct kvm_vcpu_events ev;
	if (ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return kvm_fail(vcpu, "KVM_GET_VCPU_EVENTS", err);
	events_get(&st->events, &ev);
	return 0;
}

void vcpu_state_release(struct vcpu_state *st)
{
	free(st->xsave);
	st->xsave = NULL;
	st->xsave_len = 0;
}

static int fpu_or_xsave_set(struct vcpu *vcpu, const struct vcpu_state *st,
			    struct vmm_error *err)
{
	if (!st->xsave) {
		const struct vcpu_fpu *f = &st->fpu;
		struct kvm_fpu fpu;
		memset(&fpu, 0, sizeof(fpu));
		memcpy(fpu.fpr, f->fpr, sizeof(fpu.fpr));
		memcpy(fpu.xmm, f->xmm, sizeof(fpu.xmm));
		fpu.fcw = f->fcw, fpu.fsw = f->fsw, fpu.ftwx = f->ftwx;
		fpu.last_opcode = f->last_opcode, fpu.last_ip = f->last_ip;
		fpu.last_dp = f->last_dp, fpu.mxcsr = f->mxcsr;
		if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0)
			return kvm_fail(vcpu, "KVM_SET_FPU", err);
		return 0;
	}
	int size = ioctl(vcpu->vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (size < (int)sizeof(struct kvm_xsave))
		size = sizeof(struct kvm_xsave);
	if (st->xsave_len > (size_t)size)
		return vmm_error_set(err, -E2BIG,
				     "vcpu %u: xsave area of %zu bytes, this host's KVM takes %d",
				     vcpu->index, st->xsave_len, size);
	uint8_t *buf = calloc(1, (size_t)size);
	if (!buf)
		return vmm_error_set(err, -ENOMEM, "vcpu %u: out of memory", vcpu->index);
	memcpy(buf, st->xsave, st->xsave_len);
	int rc = ioctl(vcpu->fd, KVM_SET_XSAVE, buf);
	free(buf);
	if (rc < 0)
		return kvm_fail(vcpu, "KVM_SET_XSAVE", err);
	if (st->nxcrs > VCPU_STATE_MAX_XCRS)
		return vmm_error_set(err, -EINVAL, "vcpu %u: %u XCRs", vcpu->index, st->nxcrs);
	struct kvm_xcrs xcrs;
	memset(&xcrs, 0, sizeof(xcrs));
	xcrs.nr_xcrs = st->nxcrs;
	for (unsigned i = 0; i < st->nxcrs; i++) {
		xcrs.xcrs[i].xcr = st->xcrs[i].xcr;
		xcrs.xcrs[i].value = st->xcrs[i].value;
	}
	if (ioctl(vcpu->fd, KVM_SET_XCRS, &xcrs) < 0)
		return kvm_fail(vcpu, "KVM_SET_XCRS", err);
	return 0;
}

static int msrs_set(struct vcpu *vcpu, const struct vcpu_state *st, struct vmm_error *err)
{
	if (st->nmsrs > VCPU_STATE_MAX_MSRS)
		return vmm_error_set(err, -EINVAL, "vcpu %u: %u MSRs (max %d)", vcpu->index,
				     st->nmsrs, VCPU_STATE_MAX_MSRS);
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[VCPU_STATE_MAX_MSRS];
	} msrs;
	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = st->nmsrs;
	for (unsigned i = 0; i < st->nmsrs; i++) {
		msrs.e[i].index = st->msrs[i].index;
		msrs.e[i].data = st->msrs[i].value;
	}
	int set = ioctl(vcpu->fd, KVM_SET_MSRS, &msrs);
	if (set < 0)
		return kvm_fail(vcpu, "KVM_SET_MSRS", err);
	if ((unsigned)set != st->nmsrs)
		return vmm_error_set(err, -EINVAL,
				     "vcpu %u: KVM_SET_MSRS accepted %d of %u MSRs: MSR 0x%x = 0x%llx "
				     "refused",
				     vcpu->index, set, st->nmsrs, msrs.e[set].index,
				     (unsigned long long)msrs.e[set].data);
	return 0;
}

int vcpu_state_set(struct vcpu *vcpu, const struct vcpu_state *st, struct vmm_error *err)
{
	if (st->apic_id != vcpu->apic_id)
		return vmm_error_set(err, -EINVAL, "vcpu %u: stream has APIC ID %u, this VM %u",
				     vcpu->index, st->apic_id, vcpu->apic_id);
	struct kvm_mp_state mp = {.mp_state = st->mp_state};
	if (ioctl(vcpu->fd, KVM_SET_MP_STATE, &mp) < 0)
		return kvm_fail(vcpu, "KVM_SET_MP_STATE", err);
	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
#define SET(r) regs.r = st->regs.r;
	REGS(SET)
#undef SET
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return kvm_fail(vcpu, "KVM_SET_REGS", err);
	struct kvm_sregs sregs;
	sregs_set(&sregs, &st->sregs);
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		return kvm_fail(vcpu, "KVM_SET_SREGS", err);
	int r = fpu_or_xsave_set(vcpu, st, err);
	if (r < 0)
		return r;
	struct kvm_debugregs dbg;
	memset(&dbg, 0, sizeof(dbg));
	memcpy(dbg.db, st->debugregs.db, sizeof(dbg.db));
	dbg.dr6 = st->debugregs.dr6, dbg.dr7 = st->debugregs.dr7, dbg.flags = st->debugregs.flags;
	if (ioctl(vcpu->fd, KVM_SET_DEBUGREGS, &dbg) < 0)
		return kvm_fail(vcpu, "KVM_SET_DEBUGREGS", err);
	struct kvm_lapic_state lapic;
	memcpy(lapic.regs, st->lapic, sizeof(lapic.regs));
	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0)
		return kvm_fail(vcpu, "KVM_SET_LAPIC", err);
	if ((r = msrs_set(vcpu, st, err)) < 0)
		return r;
	struct kvm_vcpu_events ev;
	events_set(&ev, &st->events);
	if (ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return kvm_fail(vcpu, "KVM_SET_VCPU_EVENTS", err);
	return 0;
}

/*
 * migration/vcpu_state.c: one vCPU's KVM state <-> VcpuState, the only
 * place that knows both. Saving goes MP state first and events last;
 * loading follows the order KVM needs (CPUID was set when the vCPU was
 * created): MP state, REGS, SREGS, XSAVE (or FPU), XCRS, DEBUGREGS, LAPIC,
 * MSRS (every one must be accepted), events last. Any failed ioctl fails
 * the load: a half-restored vCPU never runs.
 */
#include "migration/migration.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define MAX_MSRS 256
#define XSAVE_MAX (64 * 1024)

typedef Vmm__Migration__Segment Segment;

/* Everything one saved VcpuState points to, in one allocation. */
struct vcpu_save {
	Vmm__Migration__VcpuState st; /* first: the pointer handed out */
	Vmm__Migration__Regs regs;
	Vmm__Migration__Sregs sregs;
	Segment seg[8];
	Vmm__Migration__DescriptorTable gdt, idt;
	uint64_t interrupt_bitmap[4];
	Vmm__Migration__Xcr xcr[KVM_MAX_XCRS];
	Vmm__Migration__Xcr *xcrp[KVM_MAX_XCRS];
	Vmm__Migration__DebugRegs dbg;
	uint64_t db[4];
	Vmm__Migration__Msr msr[MAX_MSRS];
	Vmm__Migration__Msr *msrp[MAX_MSRS];
	Vmm__Migration__VcpuEvents events;
	Vmm__Migration__Fpu fpu;
	uint8_t fpr[128], xmm[256];
	uint8_t lapic[KVM_APIC_REG_SIZE];
	uint8_t *xsave;
};

static int kvm_fail(struct vcpu *vcpu, const char *what, struct vmm_error *err)
{
	return vmm_error_set(err, -errno, "vcpu %u: %s: %s", vcpu->index, what, strerror(errno));
}

static void seg_save(Segment *d, const struct kvm_segment *s)
{
	vmm__migration__segment__init(d);
	d->base_addr = s->base;
	d->limit = s->limit;
	d->selector = s->selector;
	d->type = s->type;
	d->present = s->present;
	d->dpl = s->dpl;
	d->db = s->db;
	d->s = s->s;
	d->l = s->l;
	d->g = s->g;
	d->avl = s->avl;
	d->unusable = s->unusable;
}

static int seg_load(struct kvm_segment *d, const Segment *s, const char *name, struct vmm_error *err)
{
	if (!s)
		return vmm_error_set(err, -EBADMSG, "vcpu state: segment %s missing", name);
	*d = (struct kvm_segment){
		.base = s->base_addr,
		.limit = s->limit,
		.selector = (uint16_t)s->selector,
		.type = (uint8_t)s->type,
		.present = (uint8_t)s->present,
		.dpl = (uint8_t)s->dpl,
		.db = (uint8_t)s->db,
		.s = (uint8_t)s->s,
		.l = (uint8_t)s->l,
		.g = (uint8_t)s->g,
		.avl = (uint8_t)s->avl,
		.unusable = (uint8_t)s->unusable,
	};
	return 0;
}

/* The MSRs KVM can save for this vCPU: its index list, minus any that
 * cannot be read back. */
static int save_msrs(struct vcpu *vcpu, struct vcpu_save *b, struct vmm_error *err)
{
	struct {
		struct kvm_msr_list hdr;
		uint32_t idx[MAX_MSRS];
	} list = {.hdr.nmsrs = MAX_MSRS};
	if (ioctl(vcpu->vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0)
		return kvm_fail(vcpu, "KVM_GET_MSR_INDEX_LIST", err);
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[MAX_MSRS];
	} msrs;
	unsigned n = 0;
	for (unsigned start = 0; start < list.hdr.nmsrs;) {
		memset(&msrs, 0, sizeof(msrs));
		unsigned want = list.hdr.nmsrs - start;
		for (unsigned i = 0; i < want; i++)
			msrs.e[i].index = list.idx[start + i];
		msrs.hdr.nmsrs = want;
		int got = ioctl(vcpu->fd, KVM_GET_MSRS, &msrs);
		if (got < 0)
			return kvm_fail(vcpu, "KVM_GET_MSRS", err);
		for (int i = 0; i < got; i++) {
			Vmm__Migration__Msr *m = &b->msr[n];
			vmm__migration__msr__init(m);
			m->index = msrs.e[i].index;
			m->value = msrs.e[i].data;
			b->msrp[n++] = m;
		}
		start += (unsigned)got + 1; /* MSR start+got cannot be read: not state */
	}
	b->st.n_msrs = n;
	b->st.msrs = b->msrp;
	return 0;
}

static int save_fpu_or_xsave(struct vcpu *vcpu, struct vcpu_save *b, struct vmm_error *err)
{
	int size = ioctl(vcpu->vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	bool have_xsave = ioctl(vcpu->vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
	if (have_xsave) {
		if (size < (int)sizeof(struct kvm_xsave))
			size = sizeof(struct kvm_xsave);
		if (size > XSAVE_MAX)
			return vmm_error_set(err, -E2BIG, "vcpu %u: xsave area of %d bytes", vcpu->index,
					     size);
		b->xsave = calloc(1, (size_t)size);
		if (!b->xsave)
			return vmm_error_set(err, -ENOMEM, "vcpu %u: out of memory", vcpu->index);
		unsigned long req = size > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
		if (ioctl(vcpu->fd, req, b->xsave) < 0)
			return kvm_fail(vcpu, "KVM_GET_XSAVE", err);
		b->st.xsave.data = b->xsave;
		b->st.xsave.len = (size_t)size;
		struct kvm_xcrs xcrs;
		if (ioctl(vcpu->fd, KVM_GET_XCRS, &xcrs) < 0)
			return kvm_fail(vcpu, "KVM_GET_XCRS", err);
		if (xcrs.nr_xcrs > KVM_MAX_XCRS)
			return vmm_error_set(err, -EINVAL, "vcpu %u: %u XCRs", vcpu->index,
					     xcrs.nr_xcrs);
		for (unsigned i = 0; i < xcrs.nr_xcrs; i++) {
			vmm__migration__xcr__init(&b->xcr[i]);
			b->xcr[i].xcr = xcrs.xcrs[i].xcr;
			b->xcr[i].value = xcrs.xcrs[i].value;
			b->xcrp[i] = &b->xcr[i];
		}
		b->st.n_xcrs = xcrs.nr_xcrs;
		b->st.xcrs = b->xcrp;
		return 0;
	}
	struct kvm_fpu fpu;
	if (ioctl(vcpu->fd, KVM_GET_FPU, &fpu) < 0)
		return kvm_fail(vcpu, "KVM_GET_FPU", err);
	vmm__migration__fpu__init(&b->fpu);
	memcpy(b->fpr, fpu.fpr, sizeof(b->fpr));
	memcpy(b->xmm, fpu.xmm, sizeof(b->xmm));
	b->fpu.fpr = (ProtobufCBinaryData){sizeof(b->fpr), b->fpr};
	b->fpu.xmm = (ProtobufCBinaryData){sizeof(b->xmm), b->xmm};
	b->fpu.fcw = fpu.fcw;
	b->fpu.fsw = fpu.fsw;
	b->fpu.ftwx = fpu.ftwx;
	b->fpu.last_opcode = fpu.last_opcode;
	b->fpu.last_ip = fpu.last_ip;
	b->fpu.last_dp = fpu.last_dp;
	b->fpu.mxcsr = fpu.mxcsr;
	b->st.fpu = &b->fpu;
	return 0;
}

static void events_save(Vmm__Migration__VcpuEvents *d, const struct kvm_vcpu_events *e)
{
	vmm__migration__vcpu_events__init(d);
	d->exception_injected = e->exception.injected;
	d->exception_nr = e->exception.nr;
	d->exception_has_error_code = e->exception.has_error_code;
	d->exception_pending = e->exception.pending;
	d->exception_error_code = e->exception.error_code;
	d->interrupt_injected = e->interrupt.injected;
	d->interrupt_nr = e->interrupt.nr;
	d->interrupt_soft = e->interrupt.soft;
	d->interrupt_shadow = e->interrupt.shadow;
	d->nmi_injected = e->nmi.injected;
	d->nmi_pending = e->nmi.pending;
	d->nmi_masked = e->nmi.masked;
	d->sipi_vector = e->sipi_vector;
	d->flags = e->flags;
	d->smi_smm = e->smi.smm;
	d->smi_pending = e->smi.pending;
	d->smi_smm_inside_nmi = e->smi.smm_inside_nmi;
	d->smi_latched_init = e->smi.latched_init;
	d->triple_fault_pending = e->triple_fault.pending;
	d->exception_has_payload = e->exception_has_payload;
	d->exception_payload = e->exception_payload;
}

int vcpu_state_save(struct vcpu *vcpu, Vmm__Migration__VcpuState **out, struct vmm_error *err)
{
	struct vcpu_save *b = calloc(1, sizeof(*b));
	if (!b)
		return vmm_error_set(err, -ENOMEM, "vcpu %u: out of memory", vcpu->index);
	Vmm__Migration__VcpuState *st = &b->st;
	vmm__migration__vcpu_state__init(st);
	st->index = vcpu->index;
	st->apic_id = vcpu->apic_id;
	int r;

	struct kvm_mp_state mp;
	if (ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) < 0) {
		r = kvm_fail(vcpu, "KVM_GET_MP_STATE", err);
		goto fail;
	}
	st->mp_state = mp.mp_state;

	struct kvm_regs regs;
	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0) {
		r = kvm_fail(vcpu, "KVM_GET_REGS", err);
		goto fail;
	}
	Vmm__Migration__Regs *g = &b->regs;
	vmm__migration__regs__init(g);
	g->rax = regs.rax, g->rbx = regs.rbx, g->rcx = regs.rcx, g->rdx = regs.rdx;
	g->rsi = regs.rsi, g->rdi = regs.rdi, g->rsp = regs.rsp, g->rbp = regs.rbp;
	g->r8 = regs.r8, g->r9 = regs.r9, g->r10 = regs.r10, g->r11 = regs.r11;
	g->r12 = regs.r12, g->r13 = regs.r13, g->r14 = regs.r14, g->r15 = regs.r15;
	g->rip = regs.rip, g->rflags = regs.rflags;
	st->regs = g;

	struct kvm_sregs sregs;
	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0) {
		r = kvm_fail(vcpu, "KVM_GET_SREGS", err);
		goto fail;
	}
	Vmm__Migration__Sregs *s = &b->sregs;
	vmm__migration__sregs__init(s);
	const struct kvm_segment *segs[8] = {&sregs.cs, &sregs.ds, &sregs.es, &sregs.fs,
					     &sregs.gs, &sregs.ss, &sregs.tr, &sregs.ldt};
	for (int i = 0; i < 8; i++)
		seg_save(&b->seg[i], segs[i]);
	s->cs = &b->seg[0], s->ds = &b->seg[1], s->es = &b->seg[2], s->fs = &b->seg[3];
	s->gs = &b->seg[4], s->ss = &b->seg[5], s->tr = &b->seg[6], s->ldt = &b->seg[7];
	vmm__migration__descriptor_table__init(&b->gdt);
	vmm__migration__descriptor_table__init(&b->idt);
	b->gdt.base_addr = sregs.gdt.base, b->gdt.limit = sregs.gdt.limit;
	b->idt.base_addr = sregs.idt.base, b->idt.limit = sregs.idt.limit;
	s->gdt = &b->gdt, s->idt = &b->idt;
	s->cr0 = sregs.cr0, s->cr2 = sregs.cr2, s->cr3 = sregs.cr3, s->cr4 = sregs.cr4;
	s->cr8 = sregs.cr8, s->efer = sregs.efer, s->apic_base = sregs.apic_base;
	memcpy(b->interrupt_bitmap, sregs.interrupt_bitmap, sizeof(b->interrupt_bitmap));
	s->n_interrupt_bitmap = 4;
	s->interrupt_bitmap = b->interrupt_bitmap;
	st->sregs = s;

	if ((r = save_fpu_or_xsave(vcpu, b, err)) < 0)
		goto fail;

	struct kvm_debugregs dbg;
	if (ioctl(vcpu->fd, KVM_GET_DEBUGREGS, &dbg) < 0) {
		r = kvm_fail(vcpu, "KVM_GET_DEBUGREGS", err);
		goto fail;
	}
	vmm__migration__debug_regs__init(&b->dbg);
	memcpy(b->db, dbg.db, sizeof(b->db));
	b->dbg.n_db = 4;
	b->dbg.db = b->db;
	b->dbg.dr6 = dbg.dr6, b->dbg.dr7 = dbg.dr7, b->dbg.flags = dbg.flags;
	st->debugregs = &b->dbg;

	struct kvm_lapic_state lapic;
	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0) {
		r = kvm_fail(vcpu, "KVM_GET_LAPIC", err);
		goto fail;
	}
	memcpy(b->lapic, lapic.regs, sizeof(b->lapic));
	st->lapic = (ProtobufCBinaryData){sizeof(b->lapic), b->lapic};

	if ((r = save_msrs(vcpu, b, err)) < 0)
		goto fail;

	struct kvm_vcpu_events ev;
	if (ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) < 0) {
		r = kvm_fail(vcpu, "KVM_GET_VCPU_EVENTS", err);
		goto fail;
	}
	events_save(&b->events, &ev);
	st->events = &b->events;
	*out = st;
	return 0;
fail:
	vcpu_state_free(st);
	return r;
}

void vcpu_state_free(Vmm__Migration__VcpuState *st)
{
	struct vcpu_save *b = (struct vcpu_save *)st; /* st is the first member */
	if (!b)
		return;
	free(b->xsave);
	free(b);
}

/* ---- load ---- */

static int load_sregs(struct vcpu *vcpu, const Vmm__Migration__Sregs *s, struct vmm_error *err)
{
	struct kvm_sregs sregs;
	memset(&sregs, 0, sizeof(sregs));
	int r;
	if ((r = seg_load(&sregs.cs, s->cs, "cs", err)) < 0 ||
	    (r = seg_load(&sregs.ds, s->ds, "ds", err)) < 0 ||
	    (r = seg_load(&sregs.es, s->es, "es", err)) < 0 ||
	    (r = seg_load(&sregs.fs, s->fs, "fs", err)) < 0 ||
	    (r = seg_load(&sregs.gs, s->gs, "gs", err)) < 0 ||
	    (r = seg_load(&sregs.ss, s->ss, "ss", err)) < 0 ||
	    (r = seg_load(&sregs.tr, s->tr, "tr", err)) < 0 ||
	    (r = seg_load(&sregs.ldt, s->ldt, "ldt", err)) < 0)
		return r;
	if (!s->gdt || !s->idt || s->n_interrupt_bitmap != 4)
		return vmm_error_set(err, -EBADMSG, "vcpu %u: sregs incomplete", vcpu->index);
	sregs.gdt.base = s->gdt->base_addr, sregs.gdt.limit = (uint16_t)s->gdt->limit;
	sregs.idt.base = s->idt->base_addr, sregs.idt.limit = (uint16_t)s->idt->limit;
	sregs.cr0 = s->cr0, sregs.cr2 = s->cr2, sregs.cr3 = s->cr3, sregs.cr4 = s->cr4;
	sregs.cr8 = s->cr8, sregs.efer = s->efer, sregs.apic_base = s->apic_base;
	memcpy(sregs.interrupt_bitmap, s->interrupt_bitmap, sizeof(sregs.interrupt_bitmap));
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		return kvm_fail(vcpu, "KVM_SET_SREGS", err);
	return 0;
}

static int load_fpu_or_xsave(struct vcpu *vcpu, const Vmm__Migration__VcpuState *st,
			     struct vmm_error *err)
{
	if (st->xsave.len) {
		int size = ioctl(vcpu->vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
		if (size < (int)sizeof(struct kvm_xsave))
			size = sizeof(struct kvm_xsave);
		if (st->xsave.len > (size_t)size)
			return vmm_error_set(err, -E2BIG,
					     "vcpu %u: xsave area of %zu bytes, this host's KVM takes %d",
					     vcpu->index, st->xsave.len, size);
		uint8_t *buf = calloc(1, (size_t)size);
		if (!buf)
			return vmm_error_set(err, -ENOMEM, "vcpu %u: out of memory", vcpu->index);
		memcpy(buf, st->xsave.data, st->xsave.len);
		int rc = ioctl(vcpu->fd, KVM_SET_XSAVE, buf);
		free(buf);
		if (rc < 0)
			return kvm_fail(vcpu, "KVM_SET_XSAVE", err);
		struct kvm_xcrs xcrs;
		memset(&xcrs, 0, sizeof(xcrs));
		if (st->n_xcrs > KVM_MAX_XCRS)
			return vmm_error_set(err, -EBADMSG, "vcpu %u: %zu XCRs", vcpu->index,
					     st->n_xcrs);
		xcrs.nr_xcrs = (uint32_t)st->n_xcrs;
		for (size_t i = 0; i < st->n_xcrs; i++) {
			xcrs.xcrs[i].xcr = st->xcrs[i]->xcr;
			xcrs.xcrs[i].value = st->xcrs[i]->value;
		}
		if (ioctl(vcpu->fd, KVM_SET_XCRS, &xcrs) < 0)
			return kvm_fail(vcpu, "KVM_SET_XCRS", err);
		return 0;
	}
	const Vmm__Migration__Fpu *f = st->fpu;
	if (!f || f->fpr.len != 128 || f->xmm.len != 256)
		return vmm_error_set(err, -EBADMSG, "vcpu %u: neither xsave nor FPU state", vcpu->index);
	struct kvm_fpu fpu;
	memset(&fpu, 0, sizeof(fpu));
	memcpy(fpu.fpr, f->fpr.data, 128);
	memcpy(fpu.xmm, f->xmm.data, 256);
	fpu.fcw = (uint16_t)f->fcw, fpu.fsw = (uint16_t)f->fsw, fpu.ftwx = (uint8_t)f->ftwx;
	fpu.last_opcode = (uint16_t)f->last_opcode, fpu.last_ip = f->last_ip;
	fpu.last_dp = f->last_dp, fpu.mxcsr = f->mxcsr;
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0)
		return kvm_fail(vcpu, "KVM_SET_FPU", err);
	return 0;
}

static int load_msrs(struct vcpu *vcpu, const Vmm__Migration__VcpuState *st, struct vmm_error *err)
{
	if (st->n_msrs > MAX_MSRS)
		return vmm_error_set(err, -EBADMSG, "vcpu %u: %zu MSRs (max %d)", vcpu->index,
				     st->n_msrs, MAX_MSRS);
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[MAX_MSRS];
	} msrs;
	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = (uint32_t)st->n_msrs;
	for (size_t i = 0; i < st->n_msrs; i++) {
		msrs.e[i].index = st->msrs[i]->index;
		msrs.e[i].data = st->msrs[i]->value;
	}
	int set = ioctl(vcpu->fd, KVM_SET_MSRS, &msrs);
	if (set < 0)
		return kvm_fail(vcpu, "KVM_SET_MSRS", err);
	if ((size_t)set != st->n_msrs)
		return vmm_error_set(err, -EINVAL,
				     "vcpu %u: KVM_SET_MSRS accepted %d of %zu MSRs: MSR 0x%x = 0x%llx "
				     "refused",
				     vcpu->index, set, st->n_msrs, msrs.e[set].index,
				     (unsigned long long)msrs.e[set].data);
	return 0;
}

static int load_events(struct vcpu *vcpu, const Vmm__Migration__VcpuEvents *d,
		       struct vmm_error *err)
{
	struct kvm_vcpu_events e;
	memset(&e, 0, sizeof(e));
	e.exception.injected = (uint8_t)d->exception_injected;
	e.exception.nr = (uint8_t)d->exception_nr;
	e.exception.has_error_code = (uint8_t)d->exception_has_error_code;
	e.exception.pending = (uint8_t)d->exception_pending;
	e.exception.error_code = d->exception_error_code;
	e.interrupt.injected = (uint8_t)d->interrupt_injected;
	e.interrupt.nr = (uint8_t)d->interrupt_nr;
	e.interrupt.soft = (uint8_t)d->interrupt_soft;
	e.interrupt.shadow = (uint8_t)d->interrupt_shadow;
	e.nmi.injected = (uint8_t)d->nmi_injected;
	e.nmi.pending = (uint8_t)d->nmi_pending;
	e.nmi.masked = (uint8_t)d->nmi_masked;
	e.sipi_vector = d->sipi_vector;
	e.flags = d->flags;
	e.smi.smm = (uint8_t)d->smi_smm;
	e.smi.pending = (uint8_t)d->smi_pending;
	e.smi.smm_inside_nmi = (uint8_t)d->smi_smm_inside_nmi;
	e.smi.latched_init = (uint8_t)d->smi_latched_init;
	e.triple_fault.pending = (uint8_t)d->triple_fault_pending;
	e.exception_has_payload = (uint8_t)d->exception_has_payload;
	e.exception_payload = d->exception_payload;
	if (ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &e) < 0)
		return kvm_fail(vcpu, "KVM_SET_VCPU_EVENTS", err);
	return 0;
}

int vcpu_state_load(struct vcpu *vcpu, const Vmm__Migration__VcpuState *st, struct vmm_error *err)
{
	if (!st->regs || !st->sregs || !st->debugregs || !st->events ||
	    st->lapic.len != KVM_APIC_REG_SIZE)
		return vmm_error_set(err, -EBADMSG, "vcpu %u: state record incomplete", vcpu->index);
	if (st->apic_id != vcpu->apic_id)
		return vmm_error_set(err, -EINVAL, "vcpu %u: stream has APIC ID %u, this VM %u",
				     vcpu->index, st->apic_id, vcpu->apic_id);
	int r;
	struct kvm_mp_state mp = {.mp_state = st->mp_state};
	if (ioctl(vcpu->fd, KVM_SET_MP_STATE, &mp) < 0)
		return kvm_fail(vcpu, "KVM_SET_MP_STATE", err);

	const Vmm__Migration__Regs *g = st->regs;
	struct kvm_regs regs = {
		.rax = g->rax, .rbx = g->rbx, .rcx = g->rcx, .rdx = g->rdx,
		.rsi = g->rsi, .rdi = g->rdi, .rsp = g->rsp, .rbp = g->rbp,
		.r8 = g->r8,   .r9 = g->r9,   .r10 = g->r10, .r11 = g->r11,
		.r12 = g->r12, .r13 = g->r13, .r14 = g->r14, .r15 = g->r15,
		.rip = g->rip, .rflags = g->rflags,
	};
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return kvm_fail(vcpu, "KVM_SET_REGS", err);
	if ((r = load_sregs(vcpu, st->sregs, err)) < 0)
		return r;
	if ((r = load_fpu_or_xsave(vcpu, st, err)) < 0)
		return r;

	const Vmm__Migration__DebugRegs *d = st->debugregs;
	if (d->n_db != 4)
		return vmm_error_set(err, -EBADMSG, "vcpu %u: %zu debug registers", vcpu->index,
				     d->n_db);
	struct kvm_debugregs dbg;
	memset(&dbg, 0, sizeof(dbg));
	memcpy(dbg.db, d->db, sizeof(dbg.db));
	dbg.dr6 = d->dr6, dbg.dr7 = d->dr7, dbg.flags = d->flags;
	if (ioctl(vcpu->fd, KVM_SET_DEBUGREGS, &dbg) < 0)
		return kvm_fail(vcpu, "KVM_SET_DEBUGREGS", err);

	struct kvm_lapic_state lapic;
	memcpy(lapic.regs, st->lapic.data, sizeof(lapic.regs));
	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0)
		return kvm_fail(vcpu, "KVM_SET_LAPIC", err);
	if ((r = load_msrs(vcpu, st, err)) < 0)
		return r;
	return load_events(vcpu, st->events, err);
}

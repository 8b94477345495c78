/*
 * migration/vcpu_record.c: struct vcpu_state (core/state.h) <-> the
 * VcpuState record. The scalar fields are declared once, as tables, for
 * both directions; loading bounds every count and size before use.
 */
#include "migration/records.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct vcpu_regs R;
static const struct pb_field_map regs_map[] = {
	PBMAP(R, rax), PBMAP(R, rbx), PBMAP(R, rcx), PBMAP(R, rdx), PBMAP(R, rsi),
	PBMAP(R, rdi), PBMAP(R, rsp), PBMAP(R, rbp), PBMAP(R, r8),  PBMAP(R, r9),
	PBMAP(R, r10), PBMAP(R, r11), PBMAP(R, r12), PBMAP(R, r13), PBMAP(R, r14),
	PBMAP(R, r15), PBMAP(R, rip), PBMAP(R, rflags),
};

typedef struct vcpu_segment S;
static const struct pb_field_map segment_map[] = {
	PBMAP_NAMED(S, base, "base_addr"),
	PBMAP(S, limit), PBMAP(S, selector), PBMAP(S, type), PBMAP(S, present), PBMAP(S, dpl),
	PBMAP(S, db), PBMAP(S, s), PBMAP(S, l), PBMAP(S, g), PBMAP(S, avl), PBMAP(S, unusable),
};

typedef struct vcpu_dtable D;
static const struct pb_field_map dtable_map[] = {
	PBMAP_NAMED(D, base, "base_addr"),
	PBMAP(D, limit),
};

typedef struct vcpu_sregs SR;
static const struct pb_field_map sregs_map[] = {
	PBMAP(SR, cr0), PBMAP(SR, cr2),	 PBMAP(SR, cr3),       PBMAP(SR, cr4),
	PBMAP(SR, cr8), PBMAP(SR, efer), PBMAP(SR, apic_base),
};

typedef struct vcpu_fpu F;
static const struct pb_field_map fpu_map[] = {
	PBMAP(F, fcw),	   PBMAP(F, fsw),     PBMAP(F, ftwx),  PBMAP(F, last_opcode),
	PBMAP(F, last_ip), PBMAP(F, last_dp), PBMAP(F, mxcsr),
};

typedef struct vcpu_debugregs DR;
static const struct pb_field_map debugregs_map[] = {
	PBMAP(DR, dr6),
	PBMAP(DR, dr7),
	PBMAP(DR, flags),
};

typedef struct vcpu_events E;
static const struct pb_field_map events_map[] = {
	PBMAP(E, exception_injected),
	PBMAP(E, exception_nr),
	PBMAP(E, exception_has_error_code),
	PBMAP(E, exception_pending),
	PBMAP(E, exception_error_code),
	PBMAP(E, interrupt_injected),
	PBMAP(E, interrupt_nr),
	PBMAP(E, interrupt_soft),
	PBMAP(E, interrupt_shadow),
	PBMAP(E, nmi_injected),
	PBMAP(E, nmi_pending),
	PBMAP(E, nmi_masked),
	PBMAP(E, sipi_vector),
	PBMAP(E, flags),
	PBMAP(E, smi_smm),
	PBMAP(E, smi_pending),
	PBMAP(E, smi_smm_inside_nmi),
	PBMAP(E, smi_latched_init),
	PBMAP(E, triple_fault_pending),
	PBMAP(E, exception_has_payload),
	PBMAP(E, exception_payload),
};

typedef struct vcpu_state V;
static const struct pb_field_map vcpu_map[] = {
	PBMAP(V, index),
	PBMAP(V, apic_id),
	PBMAP(V, mp_state),
};

/* The segments of vcpu_sregs and the Sregs message, in the same order. */
#define SEGMENTS(X) X(cs) X(ds) X(es) X(fs) X(gs) X(ss) X(tr) X(ldt)

/* Everything one saved VcpuState points to, in one allocation. */
struct vcpu_save {
	Vmm__Migration__VcpuState st; /* first: the pointer handed out */
	Vmm__Migration__Regs regs;
	Vmm__Migration__Sregs sregs;
	Vmm__Migration__Segment seg[8];
	Vmm__Migration__DescriptorTable gdt, idt;
	uint64_t interrupt_bitmap[4];
	Vmm__Migration__Xcr xcr[VCPU_STATE_MAX_XCRS];
	Vmm__Migration__Xcr *xcrp[VCPU_STATE_MAX_XCRS];
	Vmm__Migration__DebugRegs dbg;
	uint64_t db[4];
	Vmm__Migration__Msr msr[VCPU_STATE_MAX_MSRS];
	Vmm__Migration__Msr *msrp[VCPU_STATE_MAX_MSRS];
	Vmm__Migration__VcpuEvents events;
	Vmm__Migration__Fpu fpu;
	uint8_t fpr[128], xmm[256];
	uint8_t lapic[VCPU_STATE_LAPIC_SIZE];
	uint8_t xsave[]; /* st->xsave_len bytes */
};

static void sregs_save(struct vcpu_save *b, const struct vcpu_sregs *s)
{
	Vmm__Migration__Sregs *m = &b->sregs;
	vmm__migration__sregs__init(m);
	unsigned i = 0;
#define SAVE(name)                                                                             \
	vmm__migration__segment__init(&b->seg[i]);                                             \
	pbmap_to_msg(&b->seg[i].base, &s->name, segment_map, PBMAP_COUNT(segment_map));        \
	m->name = &b->seg[i++];
	SEGMENTS(SAVE)
#undef SAVE
	vmm__migration__descriptor_table__init(&b->gdt);
	vmm__migration__descriptor_table__init(&b->idt);
	pbmap_to_msg(&b->gdt.base, &s->gdt, dtable_map, PBMAP_COUNT(dtable_map));
	pbmap_to_msg(&b->idt.base, &s->idt, dtable_map, PBMAP_COUNT(dtable_map));
	m->gdt = &b->gdt, m->idt = &b->idt;
	pbmap_to_msg(&m->base, s, sregs_map, PBMAP_COUNT(sregs_map));
	memcpy(b->interrupt_bitmap, s->interrupt_bitmap, sizeof(b->interrupt_bitmap));
	m->n_interrupt_bitmap = 4;
	m->interrupt_bitmap = b->interrupt_bitmap;
}

int vcpu_record_save(const struct vcpu_state *s, Vmm__Migration__VcpuState **out,
		     struct vmm_error *err)
{
	if (s->nmsrs > VCPU_STATE_MAX_MSRS || s->nxcrs > VCPU_STATE_MAX_XCRS ||
	    s->xsave_len > VCPU_STATE_XSAVE_MAX)
		return vmm_error_set(err, -EINVAL, "vcpu %u: state exceeds the stream's limits",
				     s->index);
	struct vcpu_save *b = calloc(1, sizeof(*b) + s->xsave_len);
	if (!b)
		return vmm_error_set(err, -ENOMEM, "vcpu %u: out of memory", s->index);
	Vmm__Migration__VcpuState *m = &b->st;
	vmm__migration__vcpu_state__init(m);
	pbmap_to_msg(&m->base, s, vcpu_map, PBMAP_COUNT(vcpu_map));
	vmm__migration__regs__init(&b->regs);
	pbmap_to_msg(&b->regs.base, &s->regs, regs_map, PBMAP_COUNT(regs_map));
	m->regs = &b->regs;
	sregs_save(b, &s->sregs);
	m->sregs = &b->sregs;
	if (s->xsave) {
		memcpy(b->xsave, s->xsave, s->xsave_len);
		m->xsave = (ProtobufCBinaryData){s->xsave_len, b->xsave};
		for (unsigned i = 0; i < s->nxcrs; i++) {
			vmm__migration__xcr__init(&b->xcr[i]);
			b->xcr[i].xcr = s->xcrs[i].xcr;
			b->xcr[i].value = s->xcrs[i].value;
			b->xcrp[i] = &b->xcr[i];
		}
		m->n_xcrs = s->nxcrs;
		m->xcrs = b->xcrp;
	} else {
		vmm__migration__fpu__init(&b->fpu);
		pbmap_to_msg(&b->fpu.base, &s->fpu, fpu_map, PBMAP_COUNT(fpu_map));
		memcpy(b->fpr, s->fpu.fpr, sizeof(b->fpr));
		memcpy(b->xmm, s->fpu.xmm, sizeof(b->xmm));
		b->fpu.fpr = (ProtobufCBinaryData){sizeof(b->fpr), b->fpr};
		b->fpu.xmm = (ProtobufCBinaryData){sizeof(b->xmm), b->xmm};
		m->fpu = &b->fpu;
	}
	vmm__migration__debug_regs__init(&b->dbg);
	pbmap_to_msg(&b->dbg.base, &s->debugregs, debugregs_map, PBMAP_COUNT(debugregs_map));
	memcpy(b->db, s->debugregs.db, sizeof(b->db));
	b->dbg.n_db = 4;
	b->dbg.db = b->db;
	m->debugregs = &b->dbg;
	memcpy(b->lapic, s->lapic, sizeof(b->lapic));
	m->lapic = (ProtobufCBinaryData){sizeof(b->lapic), b->lapic};
	for (unsigned i = 0; i < s->nmsrs; i++) {
		vmm__migration__msr__init(&b->msr[i]);
		b->msr[i].index = s->msrs[i].index;
		b->msr[i].value = s->msrs[i].value;
		b->msrp[i] = &b->msr[i];
	}
	m->n_msrs = s->nmsrs;
	m->msrs = b->msrp;
	vmm__migration__vcpu_events__init(&b->events);
	pbmap_to_msg(&b->events.base, &s->events, events_map, PBMAP_COUNT(events_map));
	m->events = &b->events;
	*out = m;
	return 0;
}

void vcpu_record_free(Vmm__Migration__VcpuState *m)
{
	free(m); /* the first member of its one allocation */
}

static int sregs_load(const Vmm__Migration__Sregs *m, struct vcpu_sregs *s, unsigned index,
		      struct vmm_error *err)
{
	int r;
#define LOAD(seg)                                                                              \
	if (!m->seg)                                                                           \
		return vmm_error_set(err, -EBADMSG, "vcpu %u: segment " #seg " missing", index); \
	if ((r = pbmap_from_msg(&m->seg->base, &s->seg, segment_map, PBMAP_COUNT(segment_map),  \
				"vcpu segment " #seg, err)) < 0)                               \
		return r;
	SEGMENTS(LOAD)
#undef LOAD
	if (!m->gdt || !m->idt || m->n_interrupt_bitmap != 4)
		return vmm_error_set(err, -EBADMSG, "vcpu %u: sregs incomplete", index);
	if ((r = pbmap_from_msg(&m->gdt->base, &s->gdt, dtable_map, PBMAP_COUNT(dtable_map),
				"vcpu gdt", err)) < 0 ||
	    (r = pbmap_from_msg(&m->idt->base, &s->idt, dtable_map, PBMAP_COUNT(dtable_map),
				"vcpu idt", err)) < 0 ||
	    (r = pbmap_from_msg(&m->base, s, sregs_map, PBMAP_COUNT(sregs_map), "vcpu sregs",
				err)) < 0)
		return r;
	memcpy(s->interrupt_bitmap, m->interrupt_bitmap, sizeof(s->interrupt_bitmap));
	return 0;
}

static int fpu_or_xsave_load(const Vmm__Migration__VcpuState *m, struct vcpu_state *s,
			     struct vmm_error *err)
{
	if (m->xsave.len) {
		if (m->xsave.len > VCPU_STATE_XSAVE_MAX || m->n_xcrs > VCPU_STATE_MAX_XCRS)
			return vmm_error_set(err, -EBADMSG, "vcpu %u: %zu-byte xsave area, %zu XCRs",
					     s->index, m->xsave.len, m->n_xcrs);
		s->xsave = malloc(m->xsave.len);
		if (!s->xsave)
			return vmm_error_set(err, -ENOMEM, "vcpu %u: out of memory", s->index);
		memcpy(s->xsave, m->xsave.data, m->xsave.len);
		s->xsave_len = m->xsave.len;
		s->nxcrs = (unsigned)m->n_xcrs;
		for (size_t i = 0; i < m->n_xcrs; i++)
			s->xcrs[i] = (struct vcpu_xcr){m->xcrs[i]->xcr, m->xcrs[i]->value};
		return 0;
	}
	const Vmm__Migration__Fpu *f = m->fpu;
	if (!f || f->fpr.len != sizeof(s->fpu.fpr) || f->xmm.len != sizeof(s->fpu.xmm))
		return vmm_error_set(err, -EBADMSG, "vcpu %u: neither xsave nor FPU state", s->index);
	memcpy(s->fpu.fpr, f->fpr.data, sizeof(s->fpu.fpr));
	memcpy(s->fpu.xmm, f->xmm.data, sizeof(s->fpu.xmm));
	return pbmap_from_msg(&f->base, &s->fpu, fpu_map, PBMAP_COUNT(fpu_map), "vcpu fpu", err);
}

int vcpu_record_load(const Vmm__Migration__VcpuState *m, struct vcpu_state *s,
		     struct vmm_error *err)
{
	memset(s, 0, sizeof(*s));
	int r = pbmap_from_msg(&m->base, s, vcpu_map, PBMAP_COUNT(vcpu_map), "vcpu", err);
	if (r < 0)
		return r;
	if (!m->regs || !m->sregs || !m->debugregs || !m->events ||
	    m->lapic.len != VCPU_STATE_LAPIC_SIZE)
		return vmm_error_set(err, -EBADMSG, "vcpu %u: state record incomplete", s->index);
	if (m->n_msrs > VCPU_STATE_MAX_MSRS)
		return vmm_error_set(err, -EBADMSG, "vcpu %u: %zu MSRs (max %d)", s->index, m->n_msrs,
				     VCPU_STATE_MAX_MSRS);
	if (m->debugregs->n_db != 4)
		return vmm_error_set(err, -EBADMSG, "vcpu %u: %zu debug registers", s->index,
				     m->debugregs->n_db);
	if ((r = pbmap_from_msg(&m->regs->base, &s->regs, regs_map, PBMAP_COUNT(regs_map),
				"vcpu regs", err)) < 0 ||
	    (r = sregs_load(m->sregs, &s->sregs, s->index, err)) < 0 ||
	    (r = pbmap_from_msg(&m->debugregs->base, &s->debugregs, debugregs_map,
				PBMAP_COUNT(debugregs_map), "vcpu debugregs", err)) < 0 ||
	    (r = pbmap_from_msg(&m->events->base, &s->events, events_map, PBMAP_COUNT(events_map),
				"vcpu events", err)) < 0)
		return r;
	memcpy(s->debugregs.db, m->debugregs->db, sizeof(s->debugregs.db));
	memcpy(s->lapic, m->lapic.data, sizeof(s->lapic));
	s->nmsrs = (unsigned)m->n_msrs;
	for (size_t i = 0; i < m->n_msrs; i++)
		s->msrs[i] = (struct vcpu_msr){m->msrs[i]->index, m->msrs[i]->value};
	return fpu_or_xsave_load(m, s, err); /* last: the one allocation */
}

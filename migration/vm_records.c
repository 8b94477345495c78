/*
 * migration/vm_records.c: the VM-wide KVM state (core/state.h: PICs and
 * I/O APIC, PIT, kvmclock) <-> IrqchipState, PitState, ClockState.
 */
#include "migration/records.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct vm_pic_state P;
static const struct pb_field_map pic_map[] = {
	PBMAP(P, last_irr),
	PBMAP(P, irr),
	PBMAP(P, imr),
	PBMAP(P, isr),
	PBMAP(P, priority_add),
	PBMAP(P, irq_base),
	PBMAP(P, read_reg_select),
	PBMAP(P, poll),
	PBMAP(P, special_mask),
	PBMAP(P, init_state),
	PBMAP(P, auto_eoi),
	PBMAP(P, rotate_on_auto_eoi),
	PBMAP(P, special_fully_nested_mode),
	PBMAP(P, init4),
	PBMAP(P, elcr),
	PBMAP(P, elcr_mask),
};

typedef struct vm_ioapic_state IO;
static const struct pb_field_map ioapic_map[] = {
	PBMAP(IO, base_address),
	PBMAP(IO, ioregsel),
	PBMAP(IO, id),
	PBMAP(IO, irr),
};

typedef struct vm_pit_channel C;
static const struct pb_field_map pit_channel_map[] = {
	PBMAP(C, count),	 PBMAP(C, latched_count), PBMAP(C, count_latched),
	PBMAP(C, status_latched), PBMAP(C, status),	   PBMAP(C, read_state),
	PBMAP(C, write_state),	 PBMAP(C, write_latch),	  PBMAP(C, rw_mode),
	PBMAP(C, mode),		 PBMAP(C, bcd),		  PBMAP(C, gate),
	PBMAP_SIGNED(C, count_load_age_ns),
};

typedef struct vm_clock_state K;
static const struct pb_field_map clock_map[] = {
	PBMAP(K, clock_ns),
	PBMAP(K, realtime_ns),
};
/* ClockState.flags on the wire: this bit says realtime_ns is paired with
 * clock_ns (it is KVM's KVM_CLOCK_REALTIME, kept for stream compatibility). */
#define CLOCK_WIRE_REALTIME 0x4u

struct irqchip_save {
	Vmm__Migration__IrqchipState st;
	Vmm__Migration__PicState pic[2];
	Vmm__Migration__IoapicState ioapic;
	uint64_t redir[VM_STATE_IOAPIC_PINS];
};

int irqchip_record_save(const struct vm_irqchip_state *s, Vmm__Migration__IrqchipState **out,
			struct vmm_error *err)
{
	struct irqchip_save *b = calloc(1, sizeof(*b));
	if (!b)
		return vmm_error_set(err, -ENOMEM, "irqchip: out of memory");
	vmm__migration__irqchip_state__init(&b->st);
	for (unsigned i = 0; i < 2; i++) {
		vmm__migration__pic_state__init(&b->pic[i]);
		pbmap_to_msg(&b->pic[i].base, &s->pic[i], pic_map, PBMAP_COUNT(pic_map));
	}
	vmm__migration__ioapic_state__init(&b->ioapic);
	pbmap_to_msg(&b->ioapic.base, &s->ioapic, ioapic_map, PBMAP_COUNT(ioapic_map));
	memcpy(b->redir, s->ioapic.redirtbl, sizeof(b->redir));
	b->ioapic.n_redirtbl = VM_STATE_IOAPIC_PINS;
	b->ioapic.redirtbl = b->redir;
	b->st.pic_master = &b->pic[0];
	b->st.pic_slave = &b->pic[1];
	b->st.ioapic = &b->ioapic;
	*out = &b->st;
	return 0;
}

int irqchip_record_load(const Vmm__Migration__IrqchipState *m, struct vm_irqchip_state *s,
			struct vmm_error *err)
{
	memset(s, 0, sizeof(*s));
	if (!m->pic_master || !m->pic_slave || !m->ioapic)
		return vmm_error_set(err, -EBADMSG, "irqchip record incomplete");
	if (m->ioapic->n_redirtbl != VM_STATE_IOAPIC_PINS)
		return vmm_error_set(err, -EBADMSG, "irqchip: I/O APIC with %zu pins, this VM has %d",
				     m->ioapic->n_redirtbl, VM_STATE_IOAPIC_PINS);
	int r;
	if ((r = pbmap_from_msg(&m->pic_master->base, &s->pic[0], pic_map, PBMAP_COUNT(pic_map),
				"irqchip pic master", err)) < 0 ||
	    (r = pbmap_from_msg(&m->pic_slave->base, &s->pic[1], pic_map, PBMAP_COUNT(pic_map),
				"irqchip pic slave", err)) < 0 ||
	    (r = pbmap_from_msg(&m->ioapic->base, &s->ioapic, ioapic_map, PBMAP_COUNT(ioapic_map),
				"irqchip ioapic", err)) < 0)
		return r;
	memcpy(s->ioapic.redirtbl, m->ioapic->redirtbl, sizeof(s->ioapic.redirtbl));
	return 0;
}

struct pit_save {
	Vmm__Migration__PitState st;
	Vmm__Migration__PitChannel ch[VM_STATE_PIT_CHANNELS];
	Vmm__Migration__PitChannel *chp[VM_STATE_PIT_CHANNELS];
};

int pit_record_save(const struct vm_pit_state *s, Vmm__Migration__PitState **out,
		    struct vmm_error *err)
{
	struct pit_save *b = calloc(1, sizeof(*b));
	if (!b)
		return vmm_error_set(err, -ENOMEM, "pit: out of memory");
	vmm__migration__pit_state__init(&b->st);
	for (unsigned i = 0; i < VM_STATE_PIT_CHANNELS; i++) {
		vmm__migration__pit_channel__init(&b->ch[i]);
		pbmap_to_msg(&b->ch[i].base, &s->channels[i], pit_channel_map,
			     PBMAP_COUNT(pit_channel_map));
		b->chp[i] = &b->ch[i];
	}
	b->st.n_channels = VM_STATE_PIT_CHANNELS;
	b->st.channels = b->chp;
	b->st.flags = s->flags;
	*out = &b->st;
	return 0;
}

int pit_record_load(const Vmm__Migration__PitState *m, struct vm_pit_state *s,
		    struct vmm_error *err)
{
	memset(s, 0, sizeof(*s));
	if (m->n_channels != VM_STATE_PIT_CHANNELS)
		return vmm_error_set(err, -EBADMSG, "pit record has %zu channels", m->n_channels);
	for (unsigned i = 0; i < VM_STATE_PIT_CHANNELS; i++) {
		int r = pbmap_from_msg(&m->channels[i]->base, &s->channels[i], pit_channel_map,
				       PBMAP_COUNT(pit_channel_map), "pit channel", err);
		if (r < 0)
			return r;
	}
	s->flags = m->flags;
	return 0;
}

int clock_record_save(const struct vm_clock_state *s, Vmm__Migration__ClockState **out,
		      struct vmm_error *err)
{
	Vmm__Migration__ClockState *m = malloc(sizeof(*m));
	if (!m)
		return vmm_error_set(err, -ENOMEM, "clock: out of memory");
	vmm__migration__clock_state__init(m);
	pbmap_to_msg(&m->base, s, clock_map, PBMAP_COUNT(clock_map));
	m->flags = s->has_realtime ? CLOCK_WIRE_REALTIME : 0;
	if (!s->has_realtime)
		m->realtime_ns = 0;
	*out = m;
	return 0;
}

int clock_record_load(const Vmm__Migration__ClockState *m, struct vm_clock_state *s,
		      struct vmm_error *err)
{
	memset(s, 0, sizeof(*s));
	int r = pbmap_from_msg(&m->base, s, clock_map, PBMAP_COUNT(clock_map), "clock", err);
	s->has_realtime = (m->flags & CLOCK_WIRE_REALTIME) != 0;
	return r;
}

void vm_record_free(ProtobufCMessage *m)
{
	free(m); /* each save above is one allocation starting with the message */
}

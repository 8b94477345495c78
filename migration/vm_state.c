/*
 * migration/vm_state.c: the in-kernel devices that belong to the VM, not to
 * a vCPU: the two 8259 PICs and the I/O APIC, the PIT, and kvmclock.
 *
 * The PIT's count_load_time is the source kernel's monotonic clock, which
 * means nothing on another host: it travels as an age relative to the
 * moment of saving and is rebased on the destination's clock.
 */
#include "migration/migration.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#define IOAPIC_PINS KVM_IOAPIC_NUM_PINS

struct irqchip_save {
	Vmm__Migration__IrqchipState st;
	Vmm__Migration__PicState pic[2];
	Vmm__Migration__IoapicState ioapic;
	uint64_t redir[IOAPIC_PINS];
};

struct pit_save {
	Vmm__Migration__PitState st;
	Vmm__Migration__PitChannel ch[3];
	Vmm__Migration__PitChannel *chp[3];
};

static int64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int vm_fail(const char *what, struct vmm_error *err)
{
	return vmm_error_set(err, -errno, "%s: %s", what, strerror(errno));
}

static void pic_save(Vmm__Migration__PicState *d, const struct kvm_pic_state *p)
{
	vmm__migration__pic_state__init(d);
	d->last_irr = p->last_irr, d->irr = p->irr, d->imr = p->imr, d->isr = p->isr;
	d->priority_add = p->priority_add, d->irq_base = p->irq_base;
	d->read_reg_select = p->read_reg_select, d->poll = p->poll;
	d->special_mask = p->special_mask, d->init_state = p->init_state;
	d->auto_eoi = p->auto_eoi, d->rotate_on_auto_eoi = p->rotate_on_auto_eoi;
	d->special_fully_nested_mode = p->special_fully_nested_mode, d->init4 = p->init4;
	d->elcr = p->elcr, d->elcr_mask = p->elcr_mask;
}

static void pic_load(struct kvm_pic_state *p, const Vmm__Migration__PicState *d)
{
	p->last_irr = (uint8_t)d->last_irr, p->irr = (uint8_t)d->irr, p->imr = (uint8_t)d->imr;
	p->isr = (uint8_t)d->isr, p->priority_add = (uint8_t)d->priority_add;
	p->irq_base = (uint8_t)d->irq_base, p->read_reg_select = (uint8_t)d->read_reg_select;
	p->poll = (uint8_t)d->poll, p->special_mask = (uint8_t)d->special_mask;
	p->init_state = (uint8_t)d->init_state, p->auto_eoi = (uint8_t)d->auto_eoi;
	p->rotate_on_auto_eoi = (uint8_t)d->rotate_on_auto_eoi;
	p->special_fully_nested_mode = (uint8_t)d->special_fully_nested_mode;
	p->init4 = (uint8_t)d->init4, p->elcr = (uint8_t)d->elcr;
	p->elcr_mask = (uint8_t)d->elcr_mask;
}

int irqchip_state_save(struct vm *vm, Vmm__Migration__IrqchipState **out, struct vmm_error *err)
{
	struct irqchip_save *b = calloc(1, sizeof(*b));
	if (!b)
		return vmm_error_set(err, -ENOMEM, "irqchip: out of memory");
	vmm__migration__irqchip_state__init(&b->st);
	for (unsigned chip = 0; chip < 3; chip++) {
		struct kvm_irqchip ic = {.chip_id = chip};
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &ic) < 0) {
			int r = vm_fail("KVM_GET_IRQCHIP", err);
			free(b);
			return r;
		}
		if (chip < 2) {
			pic_save(&b->pic[chip], &ic.chip.pic);
			continue;
		}
		Vmm__Migration__IoapicState *io = &b->ioapic;
		vmm__migration__ioapic_state__init(io);
		io->base_address = ic.chip.ioapic.base_address;
		io->ioregsel = ic.chip.ioapic.ioregsel;
		io->id = ic.chip.ioapic.id;
		io->irr = ic.chip.ioapic.irr;
		for (unsigned i = 0; i < IOAPIC_PINS; i++)
			b->redir[i] = ic.chip.ioapic.redirtbl[i].bits;
		io->n_redirtbl = IOAPIC_PINS;
		io->redirtbl = b->redir;
	}
	b->st.pic_master = &b->pic[0];
	b->st.pic_slave = &b->pic[1];
	b->st.ioapic = &b->ioapic;
	*out = &b->st;
	return 0;
}

int irqchip_state_load(struct vm *vm, const Vmm__Migration__IrqchipState *st,
		       struct vmm_error *err)
{
	if (!st->pic_master || !st->pic_slave || !st->ioapic)
		return vmm_error_set(err, -EBADMSG, "irqchip record incomplete");
	if (st->ioapic->n_redirtbl != IOAPIC_PINS)
		return vmm_error_set(err, -EBADMSG, "irqchip: I/O APIC with %zu pins, this VM has %d",
				     st->ioapic->n_redirtbl, IOAPIC_PINS);
	for (unsigned chip = 0; chip < 3; chip++) {
		struct kvm_irqchip ic;
		memset(&ic, 0, sizeof(ic));
		ic.chip_id = chip;
		if (chip == 0) {
			pic_load(&ic.chip.pic, st->pic_master);
		} else if (chip == 1) {
			pic_load(&ic.chip.pic, st->pic_slave);
		} else {
			ic.chip.ioapic.base_address = st->ioapic->base_address;
			ic.chip.ioapic.ioregsel = st->ioapic->ioregsel;
			ic.chip.ioapic.id = st->ioapic->id;
			ic.chip.ioapic.irr = st->ioapic->irr;
			for (unsigned i = 0; i < IOAPIC_PINS; i++)
				ic.chip.ioapic.redirtbl[i].bits = st->ioapic->redirtbl[i];
		}
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &ic) < 0)
			return vm_fail("KVM_SET_IRQCHIP", err);
	}
	return 0;
}

int pit_state_save(struct vm *vm, Vmm__Migration__PitState **out, struct vmm_error *err)
{
	struct kvm_pit_state2 pit;
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
		return vm_fail("KVM_GET_PIT2", err);
	int64_t now = monotonic_ns();
	struct pit_save *b = calloc(1, sizeof(*b));
	if (!b)
		return vmm_error_set(err, -ENOMEM, "pit: out of memory");
	vmm__migration__pit_state__init(&b->st);
	for (int i = 0; i < 3; i++) {
		const struct kvm_pit_channel_state *c = &pit.channels[i];
		Vmm__Migration__PitChannel *d = &b->ch[i];
		vmm__migration__pit_channel__init(d);
		d->count = c->count, d->latched_count = c->latched_count;
		d->count_latched = c->count_latched, d->status_latched = c->status_latched;
		d->status = c->status, d->read_state = c->read_state;
		d->write_state = c->write_state, d->write_latch = c->write_latch;
		d->rw_mode = c->rw_mode, d->mode = c->mode, d->bcd = c->bcd, d->gate = c->gate;
		d->count_load_age_ns = c->count_load_time - now;
		b->chp[i] = d;
	}
	b->st.n_channels = 3;
	b->st.channels = b->chp;
	b->st.flags = pit.flags;
	*out = &b->st;
	return 0;
}

int pit_state_load(struct vm *vm, const Vmm__Migration__PitState *st, struct vmm_error *err)
{
	if (st->n_channels != 3)
		return vmm_error_set(err, -EBADMSG, "pit record has %zu channels", st->n_channels);
	struct kvm_pit_state2 pit;
	memset(&pit, 0, sizeof(pit));
	int64_t now = monotonic_ns();
	for (int i = 0; i < 3; i++) {
		const Vmm__Migration__PitChannel *d = st->channels[i];
		struct kvm_pit_channel_state *c = &pit.channels[i];
		c->count = d->count, c->latched_count = (uint16_t)d->latched_count;
		c->count_latched = (uint8_t)d->count_latched;
		c->status_latched = (uint8_t)d->status_latched, c->status = (uint8_t)d->status;
		c->read_state = (uint8_t)d->read_state, c->write_state = (uint8_t)d->write_state;
		c->write_latch = (uint8_t)d->write_latch, c->rw_mode = (uint8_t)d->rw_mode;
		c->mode = (uint8_t)d->mode, c->bcd = (uint8_t)d->bcd, c->gate = (uint8_t)d->gate;
		c->count_load_time = now + d->count_load_age_ns;
	}
	pit.flags = st->flags;
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return vm_fail("KVM_SET_PIT2", err);
	return 0;
}

int clock_state_save(struct vm *vm, Vmm__Migration__ClockState **out, struct vmm_error *err)
{
	struct kvm_clock_data c;
	memset(&c, 0, sizeof(c));
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &c) < 0)
		return vm_fail("KVM_GET_CLOCK", err);
	Vmm__Migration__ClockState *st = malloc(sizeof(*st));
	if (!st)
		return vmm_error_set(err, -ENOMEM, "clock: out of memory");
	vmm__migration__clock_state__init(st);
	st->clock_ns = c.clock;
	st->flags = c.flags & KVM_CLOCK_REALTIME;
	st->realtime_ns = (c.flags & KVM_CLOCK_REALTIME) ? c.realtime : 0;
	*out = st;
	return 0;
}

int clock_state_load(struct vm *vm, const Vmm__Migration__ClockState *st, struct vmm_error *err)
{
	struct kvm_clock_data c;
	memset(&c, 0, sizeof(c));
	c.clock = st->clock_ns;
	/* With a realtime pair on both sides, KVM moves the clock on by the
	 * wall time that passed during the pause, so guest time does not lag. */
	int caps = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ADJUST_CLOCK);
	if ((st->flags & KVM_CLOCK_REALTIME) && caps > 0 && (caps & KVM_CLOCK_REALTIME)) {
		c.flags = KVM_CLOCK_REALTIME;
		c.realtime = st->realtime_ns;
	}
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &c) < 0)
		return vm_fail("KVM_SET_CLOCK", err);
	return 0;
}

void vm_state_free(ProtobufCMessage *msg)
{
	free(msg); /* each save above is one allocation starting with the message */
}

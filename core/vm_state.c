/*
 * core/vm_state.c: the in-kernel devices that belong to the VM, not to a
 * vCPU (the two 8259 PICs and the I/O APIC, the PIT, kvmclock) <-> their
 * plain structs (state.h).
 *
 * The PIT's count_load_time is the host kernel's monotonic clock, which
 * means nothing on another host: it travels as an age relative to the
 * moment of saving and is rebased on this host's clock when set.
 */
#include "core/state.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

_Static_assert(VM_STATE_IOAPIC_PINS == KVM_IOAPIC_NUM_PINS, "I/O APIC pins");

enum { CHIP_PIC_MASTER = 0, CHIP_PIC_SLAVE = 1, CHIP_IOAPIC = 2 };

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

/* The 8259's registers, in kvm_pic_state order. */
#define PIC_FIELDS(X)                                                                          \
	X(last_irr) X(irr) X(imr) X(isr) X(priority_add) X(irq_base) X(read_reg_select)         \
		X(poll) X(special_mask) X(init_state) X(auto_eoi) X(rotate_on_auto_eoi)         \
			X(special_fully_nested_mode) X(init4) X(elcr) X(elcr_mask)

int vm_irqchip_get(struct vm *vm, struct vm_irqchip_state *st, struct vmm_error *err)
{
	memset(st, 0, sizeof(*st));
	for (unsigned chip = CHIP_PIC_MASTER; chip <= CHIP_IOAPIC; chip++) {
		struct kvm_irqchip ic = {.chip_id = chip};
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &ic) < 0)
			return vm_fail("KVM_GET_IRQCHIP", err);
		if (chip != CHIP_IOAPIC) {
			struct vm_pic_state *p = &st->pic[chip];
#define GET(f) p->f = ic.chip.pic.f;
			PIC_FIELDS(GET)
#undef GET
			continue;
		}
		st->ioapic.base_address = ic.chip.ioapic.base_address;
		st->ioapic.ioregsel = ic.chip.ioapic.ioregsel;
		st->ioapic.id = ic.chip.ioapic.id;
		st->ioapic.irr = ic.chip.ioapic.irr;
		for (unsigned i = 0; i < VM_STATE_IOAPIC_PINS; i++)
			st->ioapic.redirtbl[i] = ic.chip.ioapic.redirtbl[i].bits;
	}
	return 0;
}

int vm_irqchip_set(struct vm *vm, const struct vm_irqchip_state *st, struct vmm_error *err)
{
	for (unsigned chip = CHIP_PIC_MASTER; chip <= CHIP_IOAPIC; chip++) {
		struct kvm_irqchip ic;
		memset(&ic, 0, sizeof(ic));
		ic.chip_id = chip;
		if (chip != CHIP_IOAPIC) {
			const struct vm_pic_state *p = &st->pic[chip];
#define SET(f) ic.chip.pic.f = p->f;
			PIC_FIELDS(SET)
#undef SET
		} else {
			ic.chip.ioapic.base_address = st->ioapic.base_address;
			ic.chip.ioapic.ioregsel = st->ioapic.ioregsel;
			ic.chip.ioapic.id = st->ioapic.id;
			ic.chip.ioapic.irr = st->ioapic.irr;
			for (unsigned i = 0; i < VM_STATE_IOAPIC_PINS; i++)
				ic.chip.ioapic.redirtbl[i].bits = st->ioapic.redirtbl[i];
		}
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &ic) < 0)
			return vm_fail("KVM_SET_IRQCHIP", err);
	}
	return 0;
}

/* A PIT channel's registers, in kvm_pit_channel_state order. */
#define PIT_FIELDS(X)                                                                          \
	X(count) X(latched_count) X(count_latched) X(status_latched) X(status) X(read_state)    \
		X(write_state) X(write_latch) X(rw_mode) X(mode) X(bcd) X(gate)

int vm_pit_get(struct vm *vm, struct vm_pit_state *st, struct vmm_error *err)
{
	struct kvm_pit_state2 pit;
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
		return vm_fail("KVM_GET_PIT2", err);
	int64_t now = monotonic_ns();
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < VM_STATE_PIT_CHANNELS; i++) {
		const struct kvm_pit_channel_state *c = &pit.channels[i];
		struct vm_pit_channel *d = &st->channels[i];
#define GET(f) d->f = c->f;
		PIT_FIELDS(GET)
#undef GET
		d->count_load_age_ns = c->count_load_time - now;
	}
	st->flags = pit.flags;
	return 0;
}

int vm_pit_set(struct vm *vm, const struct vm_pit_state *st, struct vmm_error *err)
{
	struct kvm_pit_state2 pit;
	memset(&pit, 0, sizeof(pit));
	int64_t now = monotonic_ns();
	for (unsigned i = 0; i < VM_STATE_PIT_CHANNELS; i++) {
		const struct vm_pit_channel *d = &st->channels[i];
		struct kvm_pit_channel_state *c = &pit.channels[i];
#define SET(f) c->f = d->f;
		PIT_FIELDS(SET)
#undef SET
		c->count_load_time = now + d->count_load_age_ns;
	}
	pit.flags = st->flags;
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return vm_fail("KVM_SET_PIT2", err);
	return 0;
}

int vm_clock_get(struct vm *vm, struct vm_clock_state *st, struct vmm_error *err)
{
	struct kvm_clock_data c;
	memset(&c, 0, sizeof(c));
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &c) < 0)
		return vm_fail("KVM_GET_CLOCK", err);
	memset(st, 0, sizeof(*st));
	st->clock_ns = c.clock;
	if (c.flags & KVM_CLOCK_REALTIME) {
		st->has_realtime = true;
		st->realtime_ns = c.realtime;
	}
	return 0;
}

int vm_clock_set(struct vm *vm, const struct vm_clock_state *st, struct vmm_error *err)
{
	struct kvm_clock_data c;
	memset(&c, 0, sizeof(c));
	c.clock = st->clock_ns;
	int caps = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ADJUST_CLOCK);
	if (st->has_realtime && caps > 0 && (caps & KVM_CLOCK_REALTIME)) {
		c.flags = KVM_CLOCK_REALTIME;
		c.realtime = st->realtime_ns;
	}
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &c) < 0)
		return vm_fail("KVM_SET_CLOCK", err);
	return 0;
}

/*
 * migration/sections.c: the table of state sections, which the source and
 * the destination both walk. A new kind of state is one row here plus its
 * save/receive/load functions (and its record type in stream.c).
 *
 * Source: with the vCPUs paused, the AT_STOP sections go first (kvmclock is
 * read at the moment of the stop), then the last RAM pages, then the
 * AFTER_RAM sections in table order.
 * Destination: every record is unpacked and checked on arrival and kept;
 * only after End proved the stream whole are the sections loaded into the
 * VM, in load order (KVM's: vCPUs, PIT, irqchip, devices, clock last).
 */
#include "migration/migration.h"
#include "migration/records.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- vCPUs ---- */

static int vcpus_save(struct vm *vm, struct mig_writer *w, struct vmm_error *err)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu_state st;
		Vmm__Migration__VcpuState *m = NULL;
		int r = vcpu_state_get(vm->vcpus[i], &st, err);
		if (r == 0)
			r = vcpu_record_save(&st, &m, err);
		vcpu_state_release(&st);
		if (r == 0)
			r = mig_write_record(w, MIG_REC_VCPU, &m->base, err);
		vcpu_record_free(m);
		if (r < 0)
			return r;
	}
	return 0;
}

static int vcpu_receive(struct mig_state_in *in, const struct mig_record *rec,
			struct vmm_error *err)
{
	Vmm__Migration__VcpuState *m;
	int r = mig_unpack(rec, &vmm__migration__vcpu_state__descriptor, (ProtobufCMessage **)&m,
			   err);
	if (r < 0)
		return r;
	unsigned idx = m->index;
	if (idx >= in->vm->ncpus || in->have_vcpu[idx])
		r = vmm_error_set(err, -EPROTO, "vcpu record %u out of range or repeated", idx);
	else if ((r = vcpu_record_load(m, &in->vcpus[idx], err)) == 0)
		in->have_vcpu[idx] = true;
	protobuf_c_message_free_unpacked(&m->base, NULL);
	return r;
}

static int vcpus_load(struct mig_state_in *in, struct vmm_error *err)
{
	for (unsigned i = 0; i < in->vm->ncpus; i++)
		if (!in->have_vcpu[i])
			return vmm_error_set(err, -EPROTO, "stream incomplete: no state for vCPU %u", i);
	for (unsigned i = 0; i < in->vm->ncpus; i++) {
		int r = vcpu_state_set(in->vm->vcpus[i], &in->vcpus[i], err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- VM-wide KVM state: one record each ---- */

static int irqchip_save(struct vm *vm, struct mig_writer *w, struct vmm_error *err)
{
	struct vm_irqchip_state st;
	Vmm__Migration__IrqchipState *m = NULL;
	int r = vm_irqchip_get(vm, &st, err);
	if (r == 0 && (r = irqchip_record_save(&st, &m, err)) == 0)
		r = mig_write_record(w, MIG_REC_IRQCHIP, &m->base, err);
	vm_record_free(m ? &m->base : NULL);
	return r;
}

static int pit_save(struct vm *vm, struct mig_writer *w, struct vmm_error *err)
{
	struct vm_pit_state st;
	Vmm__Migration__PitState *m = NULL;
	int r = vm_pit_get(vm, &st, err);
	if (r == 0 && (r = pit_record_save(&st, &m, err)) == 0)
		r = mig_write_record(w, MIG_REC_PIT, &m->base, err);
	vm_record_free(m ? &m->base : NULL);
	return r;
}

static int clock_save(struct vm *vm, struct mig_writer *w, struct vmm_error *err)
{
	struct vm_clock_state st;
	Vmm__Migration__ClockState *m = NULL;
	int r = vm_clock_get(vm, &st, err);
	if (r == 0 && (r = clock_record_save(&st, &m, err)) == 0)
		r = mig_write_record(w, MIG_REC_CLOCK, &m->base, err);
	vm_record_free(m ? &m->base : NULL);
	return r;
}

/* Unpacks a single-instance record into its plain struct, once. */
#define SINGLE_RECEIVE(fn, Msg, desc, load, field)                                             \
	static int fn(struct mig_state_in *in, const struct mig_record *rec,                   \
		      struct vmm_error *err)                                                   \
	{                                                                                      \
		if (in->have_##field)                                                          \
			return vmm_error_set(err, -EPROTO, "a second " #field " record");       \
		Msg *m;                                                                        \
		int r = mig_unpack(rec, &desc, (ProtobufCMessage **)&m, err);                  \
		if (r < 0)                                                                     \
			return r;                                                              \
		r = load(m, &in->field, err);                                                  \
		protobuf_c_message_free_unpacked(&m->base, NULL);                              \
		in->have_##field = r == 0;                                                     \
		return r;                                                                      \
	}
SINGLE_RECEIVE(irqchip_receive, Vmm__Migration__IrqchipState,
	       vmm__migration__irqchip_state__descriptor, irqchip_record_load, irqchip)
SINGLE_RECEIVE(pit_receive, Vmm__Migration__PitState, vmm__migration__pit_state__descriptor,
	       pit_record_load, pit)
SINGLE_RECEIVE(clock_receive, Vmm__Migration__ClockState,
	       vmm__migration__clock_state__descriptor, clock_record_load, clock)

static int irqchip_load(struct mig_state_in *in, struct vmm_error *err)
{
	if (!in->have_irqchip)
		return vmm_error_set(err, -EPROTO, "stream incomplete: no irqchip state");
	return vm_irqchip_set(in->vm, &in->irqchip, err);
}

static int pit_load(struct mig_state_in *in, struct vmm_error *err)
{
	if (!in->have_pit)
		return vmm_error_set(err, -EPROTO, "stream incomplete: no PIT state");
	return vm_pit_set(in->vm, &in->pit, err);
}

static int clock_load(struct mig_state_in *in, struct vmm_error *err)
{
	if (!in->have_clock)
		return vmm_error_set(err, -EPROTO, "stream incomplete: no clock state");
	return vm_clock_set(in->vm, &in->clock, err);
}

/* ---- devices emulated by vmm: one record each, by instance name ---- */

static int devices_save(struct vm *vm, struct mig_writer *w, struct vmm_error *err)
{
	for (unsigned i = 0; i < vm->ndevices; i++) {
		struct device *dev = &vm->devices[i];
		if (!dev->type->state)
			continue;
		Vmm__Migration__DeviceState *m;
		pthread_mutex_lock(&dev->lock);
		int r = device_record_save(dev, &m, err);
		pthread_mutex_unlock(&dev->lock);
		if (r < 0)
			return r;
		r = mig_write_record(w, MIG_REC_DEVICE, &m->base, err);
		device_record_free(m);
		if (r < 0)
			return r;
	}
	return 0;
}

static int device_receive(struct mig_state_in *in, const struct mig_record *rec,
			  struct vmm_error *err)
{
	Vmm__Migration__DeviceState *m;
	int r = mig_unpack(rec, &vmm__migration__device_state__descriptor, (ProtobufCMessage **)&m,
			   err);
	if (r < 0)
		return r;
	struct device *dev = m->name ? vm_find_device(in->vm, m->name) : NULL;
	bool dup = false;
	for (unsigned i = 0; i < in->ndevs && dev; i++)
		dup |= strcmp(in->devs[i]->name, m->name) == 0;
	if (!dev || dup || in->ndevs == VM_MAX_DEVICES) {
		r = vmm_error_set(err, -EPROTO, "device record %s: %s",
				  m->name ? m->name : "(unnamed)",
				  !dev ? "no such device in this machine" : "repeated");
		protobuf_c_message_free_unpacked(&m->base, NULL);
		return r;
	}
	in->devs[in->ndevs++] = m; /* loaded by name after End */
	return 0;
}

static int devices_load(struct mig_state_in *in, struct vmm_error *err)
{
	struct vm *vm = in->vm;
	for (unsigned i = 0; i < vm->ndevices; i++) {
		struct device *dev = &vm->devices[i];
		bool found = !dev->type->state;
		for (unsigned j = 0; j < in->ndevs && !found; j++)
			found = strcmp(in->devs[j]->name, dev->name) == 0;
		if (!found)
			return vmm_error_set(err, -EPROTO, "stream incomplete: no state for device %s",
					     dev->name);
	}
	for (unsigned j = 0; j < in->ndevs; j++) {
		int r = device_record_load(vm_find_device(vm, in->devs[j]->name), in->devs[j], err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- the table ---- */

static const struct mig_section sections[] = {
	/* type             name       saved              load order */
	{MIG_REC_CLOCK, "clock", MIG_SAVE_AT_STOP, 5, clock_save, clock_receive, clock_load},
	{MIG_REC_VCPU, "vcpu", MIG_SAVE_AFTER_RAM, 1, vcpus_save, vcpu_receive, vcpus_load},
	{MIG_REC_IRQCHIP, "irqchip", MIG_SAVE_AFTER_RAM, 3, irqchip_save, irqchip_receive,
	 irqchip_load},
	{MIG_REC_PIT, "pit", MIG_SAVE_AFTER_RAM, 2, pit_save, pit_receive, pit_load},
	{MIG_REC_DEVICE, "device", MIG_SAVE_AFTER_RAM, 4, devices_save, device_receive,
	 devices_load},
};
#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

const struct mig_section *mig_section_find(unsigned type)
{
	for (size_t i = 0; i < NSECTIONS; i++)
		if (sections[i].type == type)
			return &sections[i];
	return NULL;
}

int mig_sections_save(struct vm *vm, struct mig_writer *w, enum mig_save_point at,
		      struct vmm_error *err)
{
	for (size_t i = 0; i < NSECTIONS; i++) {
		if (sections[i].save_point != at)
			continue;
		int r = sections[i].save(vm, w, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int mig_sections_load(struct mig_state_in *in, struct vmm_error *err)
{
	for (unsigned order = 0; order <= NSECTIONS; order++)
		for (size_t i = 0; i < NSECTIONS; i++) {
			if (sections[i].load_order != order)
				continue;
			int r = sections[i].load(in, err);
			if (r < 0)
				return r;
		}
	return 0;
}

int mig_state_in_init(struct mig_state_in *in, struct vm *vm, struct vmm_error *err)
{
	memset(in, 0, sizeof(*in));
	in->vm = vm;
	in->vcpus = calloc(vm->ncpus, sizeof(*in->vcpus));
	in->have_vcpu = calloc(vm->ncpus, sizeof(*in->have_vcpu));
	if (!in->vcpus || !in->have_vcpu) {
		mig_state_in_free(in);
		return vmm_error_set(err, -ENOMEM, "out of memory for the incoming state");
	}
	return 0;
}

void mig_state_in_free(struct mig_state_in *in)
{
	if (in->vcpus)
		for (unsigned i = 0; i < in->vm->ncpus; i++)
			vcpu_state_release(&in->vcpus[i]);
	free(in->vcpus);
	free(in->have_vcpu);
	for (unsigned i = 0; i < in->ndevs; i++)
		protobuf_c_message_free_unpacked(&in->devs[i]->base, NULL);
	memset(in, 0, sizeof(*in));
}

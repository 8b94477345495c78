/*
 * migration/records.h: the state records of the stream, each <-> its plain
 * struct from the core (core/state.h) or a device's declared state. One
 * file per record family; the section table (sections.c) says when each is
 * saved and in which order the destination loads them.
 *
 * *_save builds a message in one allocation (free with the matching
 * *_free); *_load checks every count and width before it fills the plain
 * struct, and names what was wrong.
 */
#ifndef VMM_MIGRATION_RECORDS_H
#define VMM_MIGRATION_RECORDS_H

#include "core/state.h"
#include "migration/pbmap.h"
#include "migration/proto/stream.pb-c.h"
#include "util/error.h"

/* vcpu_record.c; the loaded state may own an xsave buffer: vcpu_state_release(). */
int vcpu_record_save(const struct vcpu_state *s, Vmm__Migration__VcpuState **out,
		     struct vmm_error *err);
int vcpu_record_load(const Vmm__Migration__VcpuState *m, struct vcpu_state *s,
		     struct vmm_error *err);
void vcpu_record_free(Vmm__Migration__VcpuState *m);

/* vm_records.c */
int irqchip_record_save(const struct vm_irqchip_state *s, Vmm__Migration__IrqchipState **out,
			struct vmm_error *err);
int irqchip_record_load(const Vmm__Migration__IrqchipState *m, struct vm_irqchip_state *s,
			struct vmm_error *err);
int pit_record_save(const struct vm_pit_state *s, Vmm__Migration__PitState **out,
		    struct vmm_error *err);
int pit_record_load(const Vmm__Migration__PitState *m, struct vm_pit_state *s,
		    struct vmm_error *err);
int clock_record_save(const struct vm_clock_state *s, Vmm__Migration__ClockState **out,
		      struct vmm_error *err);
int clock_record_load(const Vmm__Migration__ClockState *m, struct vm_clock_state *s,
		      struct vmm_error *err);
void vm_record_free(ProtobufCMessage *m);

/* device_record.c: a device's declared state (struct state_desc) by field
 * name; a field missing from an older stream keeps its reset default only
 * if the declaration says it was added after that version. Load runs the
 * device's post_load under its lock. */
int device_record_save(struct device *dev, Vmm__Migration__DeviceState **out,
		       struct vmm_error *err);
int device_record_load(struct device *dev, const Vmm__Migration__DeviceState *st,
		       struct vmm_error *err);
void device_record_free(Vmm__Migration__DeviceState *st);

#endif

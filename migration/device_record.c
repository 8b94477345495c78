/*
 * migration/device_record.c: a device's declared state <-> DeviceState.
 * Fields go by name; a field missing from an older stream keeps its reset
 * default only if the declaration says it was added after that version.
 */
#include "migration/records.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 64

struct device_save {
	Vmm__Migration__DeviceState st;
	Vmm__Migration__DeviceField field[MAX_FIELDS];
	Vmm__Migration__DeviceField *fieldp[MAX_FIELDS];
};

static uint64_t get_uint(const uint8_t *p, size_t size)
{
	uint64_t v = 0;
	memcpy(&v, p, size); /* little-endian host */
	return v;
}

int device_record_save(struct device *dev, Vmm__Migration__DeviceState **out,
		      struct vmm_error *err)
{
	const struct state_desc *desc = dev->type->state;
	if (!desc || desc->nfields > MAX_FIELDS)
		return vmm_error_set(err, -EINVAL, "device %s: no state declaration", dev->name);
	struct device_save *b = calloc(1, sizeof(*b));
	if (!b)
		return vmm_error_set(err, -ENOMEM, "device %s: out of memory", dev->name);
	vmm__migration__device_state__init(&b->st);
	b->st.name = (char *)dev->name;
	b->st.type = (char *)dev->type->name;
	b->st.version = desc->version;
	const uint8_t *base = dev->type->state_ptr(dev);
	for (unsigned i = 0; i < desc->nfields; i++) {
		const struct state_field *f = &desc->fields[i];
		Vmm__Migration__DeviceField *d = &b->field[i];
		vmm__migration__device_field__init(d);
		d->name = (char *)f->name;
		switch (f->kind) {
		case STATE_I64:
			d->value_case = VMM__MIGRATION__DEVICE_FIELD__VALUE_S;
			d->s = (int64_t)get_uint(base + f->offset, f->size);
			break;
		case STATE_BYTES:
			d->value_case = VMM__MIGRATION__DEVICE_FIELD__VALUE_B;
			d->b.len = f->size;
			d->b.data = (uint8_t *)base + f->offset;
			break;
		default:
			d->value_case = VMM__MIGRATION__DEVICE_FIELD__VALUE_U;
			d->u = get_uint(base + f->offset, f->size);
			break;
		}
		b->fieldp[i] = d;
	}
	b->st.n_fields = desc->nfields;
	b->st.fields = b->fieldp;
	*out = &b->st;
	return 0;
}

void device_record_free(Vmm__Migration__DeviceState *st)
{
	free(st); /* one allocation, the message first */
}

static const Vmm__Migration__DeviceField *find_field(const Vmm__Migration__DeviceState *st,
						    const char *name)
{
	for (size_t i = 0; i < st->n_fields; i++)
		if (st->fields[i]->name && strcmp(st->fields[i]->name, name) == 0)
			return st->fields[i];
	return NULL;
}

static int load_field(struct device *dev, const struct state_field *f,
		      const Vmm__Migration__DeviceField *d, uint8_t *dst, struct vmm_error *err)
{
	uint64_t v;
	switch (f->kind) {
	case STATE_BYTES:
		if (d->value_case != VMM__MIGRATION__DEVICE_FIELD__VALUE_B || d->b.len != f->size)
			return vmm_error_set(err, -EINVAL, "device %s: field %s: expected %zu bytes",
					     dev->name, f->name, f->size);
		memcpy(dst, d->b.data, f->size);
		return 0;
	case STATE_I64:
		if (d->value_case != VMM__MIGRATION__DEVICE_FIELD__VALUE_S)
			return vmm_error_set(err, -EINVAL, "device %s: field %s: expected a signed value",
					     dev->name, f->name);
		memcpy(dst, &d->s, sizeof(d->s));
		return 0;
	default:
		if (d->value_case != VMM__MIGRATION__DEVICE_FIELD__VALUE_U)
			return vmm_error_set(err, -EINVAL, "device %s: field %s: expected an unsigned "
					     "value", dev->name, f->name);
		v = d->u;
		if (f->kind == STATE_BOOL && v > 1)
			return vmm_error_set(err, -EINVAL, "device %s: field %s: %llu is not a bool",
					     dev->name, f->name, (unsigned long long)v);
		if (f->size < 8 && (v >> (8 * f->size)))
			return vmm_error_set(err, -ERANGE, "device %s: field %s: %llu does not fit "
					     "%zu bytes", dev->name, f->name, (unsigned long long)v,
					     f->size);
		memcpy(dst, &v, f->size);
		return 0;
	}
}

int device_record_load(struct device *dev, const Vmm__Migration__DeviceState *st,
		      struct vmm_error *err)
{
	const struct state_desc *desc = dev->type->state;
	if (!desc)
		return vmm_error_set(err, -EINVAL, "device %s: has no migratable state", dev->name);
	if (!st->type || strcmp(st->type, dev->type->name) != 0)
		return vmm_error_set(err, -EINVAL, "device %s: stream has type %s, this VM %s",
				     dev->name, st->type ? st->type : "(none)", dev->type->name);
	if (st->version > desc->version || st->version < desc->min_version)
		return vmm_error_set(err, -EPROTONOSUPPORT,
				     "device %s (%s): state version %u, this vmm loads %u..%u",
				     dev->name, dev->type->name, st->version, desc->min_version,
				     desc->version);
	/* Unknown names would be state we cannot place: refuse, don't drop. */
	for (size_t i = 0; i < st->n_fields; i++) {
		bool known = false;
		for (unsigned j = 0; j < desc->nfields && !known; j++)
			known = st->fields[i]->name &&
				strcmp(st->fields[i]->name, desc->fields[j].name) == 0;
		if (!known)
			return vmm_error_set(err, -EINVAL, "device %s: unknown state field %s",
					     dev->name,
					     st->fields[i]->name ? st->fields[i]->name : "(none)");
	}
	uint8_t *base = dev->type->state_ptr(dev);
	int r = 0;
	pthread_mutex_lock(&dev->lock);
	for (unsigned i = 0; i < desc->nfields && r == 0; i++) {
		const struct state_field *f = &desc->fields[i];
		const Vmm__Migration__DeviceField *d = find_field(st, f->name);
		if (!d) {
			if (f->since > st->version)
				continue; /* added later: keep the reset default */
			r = vmm_error_set(err, -EINVAL, "device %s: field %s missing", dev->name,
					  f->name);
			break;
		}
		r = load_field(dev, f, d, base + f->offset, err);
	}
	if (r == 0 && dev->type->post_load)
		r = dev->type->post_load(dev, err);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

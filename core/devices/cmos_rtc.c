/*
 * core/devices/cmos_rtc.c: MC146818-style CMOS RTC at 0x70 (index) / 0x71
 * (data). The clock is the host's wall clock plus an offset the guest sets
 * by writing the time registers; the offset (not a host time) is the state,
 * so the guest's clock stays continuous across a migration between hosts
 * with synchronised clocks. No periodic or alarm interrupts are generated.
 */
#include "core/devices/devices.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SEC = 0, MIN = 2, HOUR = 4, WDAY = 6, MDAY = 7, MON = 8, YEAR = 9, REG_A = 10,
       REG_B = 11, REG_C = 12, REG_D = 13 };
#define REG_B_SET 0x80
#define REG_B_BINARY 0x04
#define REG_B_24H 0x02

struct rtc_state {
	uint8_t index;
	uint8_t cmos[128];
	int64_t offset_sec; /* guest time - host CLOCK_REALTIME */
};

struct rtc {
	struct rtc_state s;
	unsigned century_reg;
};

static uint8_t to_reg(const struct rtc *r, unsigned v)
{
	return (r->s.cmos[REG_B] & REG_B_BINARY) ? (uint8_t)v : (uint8_t)(((v / 10) << 4) | (v % 10));
}

static unsigned from_reg(const struct rtc *r, uint8_t v)
{
	return (r->s.cmos[REG_B] & REG_B_BINARY) ? v : (unsigned)((v >> 4) * 10 + (v & 0x0f));
}

static void latch_time(struct rtc *r)
{
	time_t now = time(NULL) + (time_t)r->s.offset_sec;
	struct tm tm;
	gmtime_r(&now, &tm);
	r->s.cmos[SEC] = to_reg(r, (unsigned)tm.tm_sec);
	r->s.cmos[MIN] = to_reg(r, (unsigned)tm.tm_min);
	unsigned hour = (unsigned)tm.tm_hour;
	if (r->s.cmos[REG_B] & REG_B_24H) {
		r->s.cmos[HOUR] = to_reg(r, hour);
	} else {
		unsigned h12 = hour % 12 ? hour % 12 : 12;
		r->s.cmos[HOUR] = (uint8_t)(to_reg(r, h12) | (hour >= 12 ? 0x80 : 0));
	}
	r->s.cmos[WDAY] = to_reg(r, (unsigned)tm.tm_wday + 1);
	r->s.cmos[MDAY] = to_reg(r, (unsigned)tm.tm_mday);
	r->s.cmos[MON] = to_reg(r, (unsigned)tm.tm_mon + 1);
	r->s.cmos[YEAR] = to_reg(r, (unsigned)(tm.tm_year % 100));
	if (r->century_reg < 128)
		r->s.cmos[r->century_reg] = to_reg(r, (unsigned)(1900 + tm.tm_year) / 100);
}

/* The guest finished setting the clock: remember how far it is from ours. */
static void commit_time(struct rtc *r)
{
	struct tm tm = {0};
	tm.tm_sec = (int)from_reg(r, r->s.cmos[SEC]);
	tm.tm_min = (int)from_reg(r, r->s.cmos[MIN]);
	uint8_t h = r->s.cmos[HOUR];
	if (r->s.cmos[REG_B] & REG_B_24H)
		tm.tm_hour = (int)from_reg(r, h);
	else
		tm.tm_hour = (int)(from_reg(r, h & 0x7f) % 12 + ((h & 0x80) ? 12 : 0));
	tm.tm_mday = (int)from_reg(r, r->s.cmos[MDAY]);
	tm.tm_mon = (int)from_reg(r, r->s.cmos[MON]) - 1;
	unsigned century = r->century_reg < 128 ? from_reg(r, r->s.cmos[r->century_reg]) : 20;
	tm.tm_year = (int)(century * 100 + from_reg(r, r->s.cmos[YEAR])) - 1900;
	time_t guest = timegm(&tm);
	if (guest != (time_t)-1)
		r->s.offset_sec = (int64_t)guest - (int64_t)time(NULL);
}

static void rtc_read(struct device *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct rtc *r = dev->state;
	memset(data, 0, size);
	if (off == 0) {
		data[0] = 0xff; /* the index port is write-only */
		return;
	}
	unsigned idx = r->s.index;
	if (idx <= YEAR || idx == r->century_reg) {
		if (!(r->s.cmos[REG_B] & REG_B_SET))
			latch_time(r);
	}
	data[0] = r->s.cmos[idx];
	if (idx == REG_C)
		r->s.cmos[REG_C] = 0; /* reading C acknowledges its flags */
}

static void rtc_write(struct device *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct rtc *r = dev->state;
	(void)size;
	if (off == 0) {
		r->s.index = data[0] & 0x7f; /* bit 7 is the NMI mask */
		return;
	}
	unsigned idx = r->s.index;
	switch (idx) {
	case REG_A:
		r->s.cmos[REG_A] = data[0] & 0x7f; /* UIP is read-only */
		break;
	case REG_B: {
		bool was_set = r->s.cmos[REG_B] & REG_B_SET;
		if (!was_set && (data[0] & REG_B_SET))
			latch_time(r); /* freeze the current time for editing */
		r->s.cmos[REG_B] = data[0];
		if (was_set && !(data[0] & REG_B_SET))
			commit_time(r);
		break;
	}
	case REG_C:
	case REG_D:
		break; /* read-only */
	default:
		r->s.cmos[idx] = data[0];
		if ((idx <= YEAR || idx == r->century_reg) && !(r->s.cmos[REG_B] & REG_B_SET))
			commit_time(r);
		break;
	}
}

static const struct state_field rtc_fields[] = {
	STATE_FIELD(struct rtc_state, index, STATE_U8),
	STATE_FIELD(struct rtc_state, cmos, STATE_BYTES),
	STATE_FIELD(struct rtc_state, offset_sec, STATE_I64),
};
static const struct state_desc rtc_state_desc = STATE_DESC(1, 1, rtc_fields);

static void *rtc_state_ptr(struct device *dev)
{
	return &((struct rtc *)dev->state)->s;
}

static int rtc_post_load(struct device *dev, struct vmm_error *err)
{
	struct rtc *r = dev->state;
	if (r->s.index >= 128)
		return vmm_error_set(err, -EINVAL, "%s: register index %u out of range", dev->name,
				     r->s.index);
	return 0;
}

static int rtc_create(struct vm *vm, struct device *dev, struct vmm_error *err)
{
	uint64_t iobase, century;
	int rc;
	if ((rc = device_prop_u64(dev, "iobase", &iobase, err)) < 0 ||
	    (rc = device_prop_u64(dev, "century-register", &century, err)) < 0)
		return rc;
	if (century < 14 || century > 127)
		return vmm_error_set(err, -EINVAL, "%s: century-register 0x%llx out of range",
				     dev->name, (unsigned long long)century);
	struct rtc *r = calloc(1, sizeof(*r));
	if (!r)
		return vmm_error_set(err, -ENOMEM, "%s: out of memory", dev->name);
	r->century_reg = (unsigned)century;
	r->s.cmos[REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate */
	r->s.cmos[REG_B] = REG_B_24H;
	r->s.cmos[REG_D] = 0x80; /* valid RAM and time */
	dev->state = r;
	return io_bus_register(&vm->pio, iobase, 2, dev, rtc_read, rtc_write, err);
}

static void rtc_destroy(struct device *dev)
{
	free(dev->state);
	dev->state = NULL;
}

const struct device_type device_cmos_rtc = {
	.name = "cmos-rtc",
	.create = rtc_create,
	.destroy = rtc_destroy,
	.state = &rtc_state_desc,
	.state_ptr = rtc_state_ptr,
	.post_load = rtc_post_load,
};

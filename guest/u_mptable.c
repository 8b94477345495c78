/*
 * u_mptable.c: which CPUs exist and where ISA IRQ0 arrives. First the Intel
 * MultiProcessor Specification 1.4 table (floating pointer "_MP_" in the first
 * KiB of the EBDA, the last KiB of base memory, then 0xF0000-0xFFFFF), else
 * the ACPI MADT (RSDP from start_info or the usual scan); see u_main.c for
 * which one wins when both exist. Runs at CPL3, so
 * scanning the BIOS area costs nothing. The BSP is always vCPU index 0; the
 * others follow in table order.
 */
#include "user.h"

static uint8_t rd8(uint64_t a)
{
	return *(const volatile uint8_t *)phys(a);
}

static uint16_t rd16(uint64_t a)
{
	return (uint16_t)(rd8(a) | rd8(a + 1) << 8);
}

static uint32_t rd32(uint64_t a)
{
	return rd16(a) | (uint32_t)rd16(a + 2) << 16;
}

static uint64_t rd64(uint64_t a)
{
	return rd32(a) | (uint64_t)rd32(a + 4) << 32;
}

static bool sum_ok(uint64_t a, uint64_t len)
{
	uint8_t s = 0;

	while (len--)
		s = (uint8_t)(s + rd8(a++));
	return s == 0;
}

static bool sig_is(uint64_t a, const char *sig)
{
	for (; *sig; sig++, a++)
		if (rd8(a) != (uint8_t)*sig)
			return false;
	return true;
}

/* 16-byte aligned search; cklen 0 = checksum length from byte 8 in paragraphs (MP) */
static uint64_t scan(uint64_t start, uint64_t len, const char *sig, uint64_t cklen)
{
	uint64_t a;

	for (a = start; a + 16 <= start + len; a += 16) {
		if (!sig_is(a, sig))
			continue;
		if (sum_ok(a, cklen ? cklen : rd8(a + 8) * 16ull))
			return a;
	}
	return 0;
}

static uint64_t ebda_base(void)
{
	uint64_t e = (uint64_t)rd16(0x40e) << 4;

	return e >= 0x80000 && e < 0xa0000 ? e : 0;
}

static void add_cpu(struct sysinfo *si, uint32_t apic, uint32_t bsp_apic)
{
	uint32_t i;

	if (apic == bsp_apic)
		return; /* index 0, already there */
	for (i = 0; i < si->ncpus; i++)
		if (si->apic_id[i] == apic)
			return;
	if (si->ncpus == MAX_CPUS) {
		u_printf("testguest: more than %u cpus, ignoring apic=%u\n", MAX_CPUS, apic);
		return;
	}
	si->apic_id[si->ncpus++] = apic;
}

static void sys_init(struct sysinfo *si, uint32_t bsp_apic, const char *source)
{
	si->ncpus = 1;
	si->apic_id[0] = bsp_apic;
	si->ioapic = 0;
	si->irq0_pin = 2;
	si->source = source;
}

bool mp_find(struct sysinfo *si, uint32_t bsp_apic)
{
	uint64_t fp = 0, t, e, end, ebda = ebda_base();
	uint32_t n, i, isa_buses = 0, ioapic_id = 0;
	bool have_ioapic = false;
	int pass;

	if (ebda)
		fp = scan(ebda, 1024, "_MP_", 0);
	if (!fp)
		fp = scan(0x9fc00, 1024, "_MP_", 0);
	if (!fp)
		fp = scan(0xf0000, 0x10000, "_MP_", 0);
	if (!fp || rd8(fp + 11) != 0 || !(t = rd32(fp + 4)))
		return false; /* none, or a "default configuration" without a table */
	if (!sig_is(t, "PCMP") || !sum_ok(t, rd16(t + 4))) {
		u_printf("testguest: MP table at 0x%lx is invalid, ignoring it\n", t);
		return false;
	}
	sys_init(si, bsp_apic, "mptable");
	n = rd16(t + 34);
	end = t + rd16(t + 4);
	/* pass 0: processors, buses, IOAPIC; pass 1: interrupt assignments */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0, e = t + 44; i < n && e < end; i++) {
			uint8_t type = rd8(e);

			if (type == 0) {
				if (pass == 0 && (rd8(e + 3) & 1))
					add_cpu(si, rd8(e + 1), bsp_apic);
				e += 20;
				continue;
			}
			if (type > 4)
				break; /* unknown entry: its length is unknown too */
			if (pass == 0 && type == 1 && sig_is(e + 2, "ISA") && rd8(e + 1) < 32)
				isa_buses |= 1u << rd8(e + 1);
			if (pass == 0 && type == 2 && (rd8(e + 3) & 1) && !have_ioapic) {
				have_ioapic = true;
				ioapic_id = rd8(e + 1);
				si->ioapic = rd32(e + 4);
			}
			if (pass == 1 && type == 3 && rd8(e + 1) == 0 && rd8(e + 4) < 32 &&
			    (isa_buses >> rd8(e + 4) & 1) && rd8(e + 5) == 0 &&
			    (rd8(e + 6) == ioapic_id || rd8(e + 6) == 0xff))
				si->irq0_pin = rd8(e + 7);
			e += 8;
		}
	}
	if (!have_ioapic)
		si->ioapic = 0xfec00000;
	return true;
}

static uint64_t find_rsdp(void)
{
	uint64_t r = 0, ebda = ebda_base();

	if (k_bootinfo.rsdp_paddr && sig_is(k_bootinfo.rsdp_paddr, "RSD PTR "))
		return k_bootinfo.rsdp_paddr;
	if (ebda)
		r = scan(ebda, 1024, "RSD PTR ", 20);
	if (!r)
		r = scan(0xe0000, 0x20000, "RSD PTR ", 20);
	return r;
}

static uint64_t find_madt(void)
{
	uint64_t rsdp = find_rsdp(), sdt, i, n, step;
	bool x;

	if (!rsdp)
		return 0;
	x = rd8(rsdp + 15) >= 2 && rd64(rsdp + 24) && rd64(rsdp + 24) < (1ull << 32);
	sdt = x ? rd64(rsdp + 24) : rd32(rsdp + 16);
	step = x ? 8 : 4;
	if (!sdt || !sig_is(sdt, x ? "XSDT" : "RSDT") || !sum_ok(sdt, rd32(sdt + 4)))
		return 0;
	n = (rd32(sdt + 4) - 36) / step;
	for (i = 0; i < n; i++) {
		uint64_t t = x ? rd64(sdt + 36 + i * 8) : rd32(sdt + 36 + i * 4);

		if (t && t < (1ull << 32) && sig_is(t, "APIC") && sum_ok(t, rd32(t + 4)))
			return t;
	}
	return 0;
}

bool acpi_find(struct sysinfo *si, uint32_t bsp_apic)
{
	uint64_t madt = find_madt(), e, end;
	uint32_t gsi_base = 0, gsi0 = 0;
	bool have_ioapic = false;

	if (!madt)
		return false;
	sys_init(si, bsp_apic, "acpi");
	end = madt + rd32(madt + 4);
	for (e = madt + 44; e + 2 <= end && rd8(e + 1) >= 2; e += rd8(e + 1)) {
		uint8_t type = rd8(e);

		if (type == 0 && (rd32(e + 4) & 1))
			add_cpu(si, rd8(e + 3), bsp_apic);
		if (type == 1 && !have_ioapic) {
			have_ioapic = true;
			si->ioapic = rd32(e + 4);
			gsi_base = rd32(e + 8);
		}
		if (type == 2 && rd8(e + 2) == 0 && rd8(e + 3) == 0)
			gsi0 = rd32(e + 4); /* ISA IRQ0 override */
	}
	if (!have_ioapic)
		si->ioapic = 0xfec00000;
	si->irq0_pin = gsi0 >= gsi_base ? gsi0 - gsi_base : 0; /* no override: identity */
	return true;
}

/*
 * core/x86/mptable.c: the Intel MultiProcessor Specification 1.4 tables, how
 * a guest without ACPI finds its CPUs (APIC IDs), the I/O APIC and the ISA
 * interrupt wiring. The floating pointer goes at the start of the EBDA and
 * the configuration table in the reserved BIOS area, both from the machine
 * type. ISA IRQ 0 (the PIT) is wired to I/O APIC pin 2, as KVM routes it.
 */
#include "core/x86/x86.h"

#include <errno.h>
#include <string.h>

#define MP_PROCESSOR 0
#define MP_BUS 1
#define MP_IOAPIC 2
#define MP_IOINTR 3
#define MP_LINTR 4
#define MP_INT 0
#define MP_NMI 1
#define MP_EXTINT 3

struct mpf_intel {
	char signature[4]; /* "_MP_" */
	uint32_t physptr;
	uint8_t length; /* in 16-byte units */
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature1, feature2, feature3, feature4, feature5;
} __attribute__((packed));

struct mpc_table {
	char signature[4]; /* "PCMP" */
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount; /* entry count */
	uint32_t lapic;
	uint16_t reserved_ext_len;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type, apicid, apicver, cpuflag;
	uint32_t cpufeature, featureflag, reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type, busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type, apicid, apicver, flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type, irqtype;
	uint16_t irqflag;
	uint8_t srcbus, srcbusirq, dstapic, dstirq;
} __attribute__((packed));

static uint8_t checksum(const void *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + ((const uint8_t *)p)[i]);
	return (uint8_t)(0 - sum);
}

int mptable_write(struct vm *vm, struct vmm_error *err)
{
	uint64_t fp_addr, tbl_addr, lapic_addr, lapic_ver, ioapic_addr, ioapic_ver, pit_pin;
	int r;
	const struct machine *m = &vm->spec.machine;
	if ((r = machine_get_u64(m, "boot", "mptable-floating", &fp_addr, err)) < 0 ||
	    (r = machine_get_u64(m, "boot", "mptable", &tbl_addr, err)) < 0 ||
	    (r = machine_get_u64(m, "lapic", "address", &lapic_addr, err)) < 0 ||
	    (r = machine_get_u64(m, "lapic", "version", &lapic_ver, err)) < 0 ||
	    (r = machine_get_u64(m, "ioapic", "address", &ioapic_addr, err)) < 0 ||
	    (r = machine_get_u64(m, "ioapic", "version", &ioapic_ver, err)) < 0 ||
	    (r = machine_get_u64(m, "pit", "ioapic-pin", &pit_pin, err)) < 0)
		return r;

	size_t size = sizeof(struct mpc_table) + vm->ncpus * sizeof(struct mpc_cpu) +
		      sizeof(struct mpc_bus) + sizeof(struct mpc_ioapic) +
		      17 * sizeof(struct mpc_intsrc) + 2 * sizeof(struct mpc_intsrc);
	struct mpf_intel *mpf = guest_ptr(&vm->mem, fp_addr, sizeof(*mpf));
	uint8_t *tbl = guest_ptr(&vm->mem, tbl_addr, size);
	if (!mpf || !tbl || size > 0xffff)
		return vmm_error_set(err, -EINVAL, "MP table does not fit at 0x%llx",
				     (unsigned long long)tbl_addr);
	memset(tbl, 0, size);

	struct mpc_table *hdr = (struct mpc_table *)tbl;
	uint8_t *p = tbl + sizeof(*hdr);
	uint16_t count = 0;
	uint32_t max_apic = 0;

	for (unsigned i = 0; i < vm->ncpus; i++) {
		const struct vcpu *v = vm->vcpus[i];
		const struct cpuid_leaf *l1 = cpuid_table_find(&v->cpuid, 1, 0);
		struct mpc_cpu cpu = {
			.type = MP_PROCESSOR,
			.apicid = (uint8_t)v->apic_id,
			.apicver = (uint8_t)lapic_ver,
			.cpuflag = (uint8_t)(0x01 | (i == 0 ? 0x02 : 0)), /* enabled, BSP */
			.cpufeature = l1 ? l1->eax : 0,
			.featureflag = l1 ? l1->edx : 0,
		};
		memcpy(p, &cpu, sizeof(cpu));
		p += sizeof(cpu);
		count++;
		if (v->apic_id > max_apic)
			max_apic = v->apic_id;
	}
	struct mpc_bus bus = {.type = MP_BUS, .busid = 0};
	memcpy(bus.bustype, "ISA   ", 6);
	memcpy(p, &bus, sizeof(bus));
	p += sizeof(bus);
	count++;

	uint8_t ioapic_id = (uint8_t)(max_apic + 1);
	struct mpc_ioapic io = {.type = MP_IOAPIC, .apicid = ioapic_id,
				.apicver = (uint8_t)ioapic_ver, .flags = 1,
				.apicaddr = (uint32_t)ioapic_addr};
	memcpy(p, &io, sizeof(io));
	p += sizeof(io);
	count++;

	/* ISA IRQs: pin 0 is the 8259 (ExtINT); IRQ 0 goes to the PIT's pin;
	 * IRQ 2 is the cascade and is not wired; the rest are identity-mapped.
	 * Flags 0: conforms to the bus (ISA: edge, active high). */
	struct mpc_intsrc is = {.type = MP_IOINTR, .irqtype = MP_EXTINT, .srcbus = 0,
				.srcbusirq = 0, .dstapic = ioapic_id, .dstirq = 0};
	memcpy(p, &is, sizeof(is));
	p += sizeof(is);
	count++;
	for (uint8_t irq = 0; irq < 16; irq++) {
		if (irq == 2)
			continue;
		is = (struct mpc_intsrc){.type = MP_IOINTR, .irqtype = MP_INT, .srcbus = 0,
					 .srcbusirq = irq, .dstapic = ioapic_id,
					 .dstirq = irq == 0 ? (uint8_t)pit_pin : irq};
		memcpy(p, &is, sizeof(is));
		p += sizeof(is);
		count++;
	}
	/* Local interrupts on every LAPIC: LINT0 = ExtINT, LINT1 = NMI. */
	for (uint8_t lint = 0; lint < 2; lint++) {
		is = (struct mpc_intsrc){.type = MP_LINTR, .irqtype = lint ? MP_NMI : MP_EXTINT,
					 .srcbus = 0, .srcbusirq = 0, .dstapic = 0xff,
					 .dstirq = lint};
		memcpy(p, &is, sizeof(is));
		p += sizeof(is);
		count++;
	}

	memcpy(hdr->signature, "PCMP", 4);
	hdr->length = (uint16_t)(p - tbl);
	hdr->spec = 4;
	memcpy(hdr->oem, "VMM     ", 8);
	memcpy(hdr->productid, "MICROVM     ", 12);
	hdr->oemcount = count;
	hdr->lapic = (uint32_t)lapic_addr;
	hdr->checksum = checksum(tbl, hdr->length);

	memset(mpf, 0, sizeof(*mpf));
	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = (uint32_t)tbl_addr;
	mpf->length = 1;
	mpf->specification = 4;
	mpf->checksum = checksum(mpf, sizeof(*mpf));
	return 0;
}

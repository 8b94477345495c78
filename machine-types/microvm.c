/*
 * machine-types/microvm.c: the "microvm" family, a minimal PC without PCI or
 * firmware (unclaimed ports, PCI config included, read as all-ones): PVH boot, in-kernel LAPIC/IOAPIC/PIC/PIT,
 * COM1, CMOS RTC, i8042 (reset only), port 0xcf9 reset, debug-exit port.
 *
 * Append-only: a released version is never edited; a change is a new
 * version listing only what differs from its parent.
 */
#include "machine-types/machine.h"
#include "machine-types/registry.h"

static const struct machine_prop microvm_1_0[] = {
	/* Memory map. RAM below 4 GiB stops at the 32-bit hole; the rest of RAM
	 * starts at 4 GiB. The hole holds the IOAPIC, LAPIC and KVM's TSS. */
	{"memory", "type", "ram"},
	{"memory", "low-ram-max", "0xc0000000"},
	{"memory", "high-ram-base", "0x100000000"},
	{"memory", "min-size", "0x1000000"},	   /* 16 MiB */
	{"memory", "max-size", "0x10000000000"},   /* 1 TiB */
	{"memory", "ebda-base", "0x9fc00"},	   /* e820: reserved up to 640 KiB */
	{"memory", "bios-base", "0xf0000"},	   /* e820: reserved up to 1 MiB */
	{"memory", "page-size", "4096"},
	/* Where the VMM writes boot data (the guest may read it, nothing else). */
	{"boot", "type", "pvh"},
	{"boot", "gdt", "0x5000"},
	{"boot", "start-info", "0x6000"},
	{"boot", "cmdline", "0x7000"},
	{"boot", "cmdline-max", "4096"},
	{"boot", "mptable-floating", "0x9fc00"},
	{"boot", "mptable", "0xf0000"},
	{"boot", "initrd-max-addr", "0xc0000000"},
	/* KVM needs three pages for the real-mode TSS and one for the EPT
	 * identity map inside the 32-bit hole, away from the IOAPIC/LAPIC. */
	{"kvm", "type", "kvm-x86"},
	{"kvm", "tss-addr", "0xfffbd000"},
	{"kvm", "identity-map-addr", "0xfffbc000"},
	{"cpu", "type", "x86"},
	{"cpu", "max-cpus", "254"}, /* xAPIC IDs 0..254, one I/O APIC ID left */
	{"cpu", "default-model", "x86-64-v1"},
	{"memory", "default-size", "0x10000000"}, /* 256 MiB */
	{"lapic", "type", "kvm-lapic"},
	{"lapic", "address", "0xfee00000"},
	{"lapic", "version", "0x14"},
	{"ioapic", "type", "kvm-ioapic"},
	{"ioapic", "address", "0xfec00000"},
	{"ioapic", "version", "0x11"},
	{"ioapic", "pins", "24"},
	{"pic", "type", "kvm-i8259"},
	{"pit", "type", "kvm-pit2"},
	{"pit", "irq", "0"},
	{"pit", "ioapic-pin", "2"}, /* KVM routes GSI 0 to IOAPIC pin 2 */
	{"serial0", "type", "uart-16550a"},
	{"serial0", "iobase", "0x3f8"},
	{"serial0", "irq", "4"},
	{"serial0", "fifo-size", "16"},
	{"rtc", "type", "cmos-rtc"},
	{"rtc", "iobase", "0x70"},
	{"rtc", "irq", "8"},
	{"rtc", "century-register", "0x32"},
	{"i8042", "type", "i8042"},
	{"i8042", "iobase", "0x60"},
	{"i8042", "irq", "1"},
	{"reset", "type", "reset-cf9"},
	{"reset", "iobase", "0xcf9"},
	{"debug-exit", "type", "debug-exit"},
	{"debug-exit", "iobase", "0x501"},
	{"debug-exit", "size", "2"},
	/* Defaults written down when vmm 0.2.0 made the machine type own every
	 * default: the vCPU count, and which version each unversioned CPU model
	 * name means (its newest version when 1.0 was released, so a command
	 * line that worked then keeps giving the same CPU forever). */
	{"cpu", "default-count", "1"},
	{"cpu-models", "x86-64-v1", "x86-64-v1-v1"},
	{"cpu-models", "x86-64-v2", "x86-64-v2-v1"},
	{"cpu-models", "x86-64-v3", "x86-64-v3-v1"},
	{"cpu-models", "x86-64-v4", "x86-64-v4-v1"},
	{"cpu-models", "Nehalem", "Nehalem-v2"},
	{"cpu-models", "Westmere", "Westmere-v2"},
	{"cpu-models", "SandyBridge", "SandyBridge-v2"},
	{"cpu-models", "IvyBridge", "IvyBridge-v2"},
	{"cpu-models", "Haswell", "Haswell-v4"},
	{"cpu-models", "Broadwell", "Broadwell-v4"},
	{"cpu-models", "Skylake-Client", "Skylake-Client-v4"},
	{"cpu-models", "Skylake-Server", "Skylake-Server-v5"},
	{"cpu-models", "Cascadelake-Server", "Cascadelake-Server-v5"},
	{"cpu-models", "Cooperlake", "Cooperlake-v2"},
	{"cpu-models", "Icelake-Server", "Icelake-Server-v6"},
	{"cpu-models", "SapphireRapids", "SapphireRapids-v2"},
	{"cpu-models", "Opteron_G1", "Opteron_G1-v1"},
	{"cpu-models", "Opteron_G2", "Opteron_G2-v1"},
	{"cpu-models", "Opteron_G3", "Opteron_G3-v1"},
	{"cpu-models", "Opteron_G4", "Opteron_G4-v1"},
	{"cpu-models", "Opteron_G5", "Opteron_G5-v1"},
	{"cpu-models", "EPYC", "EPYC-v3"},
	{"cpu-models", "EPYC-Rome", "EPYC-Rome-v2"},
	{"cpu-models", "EPYC-Milan", "EPYC-Milan-v2"},
	{"cpu-models", "EPYC-Genoa", "EPYC-Genoa-v1"},
	{NULL, NULL, NULL},
};

/* 1.1: a second UART for guests that want a separate log channel, and a
 * default RAM size that fits a distribution kernel with an initrd. */
static const struct machine_prop microvm_1_1[] = {
	{"serial1", "type", "uart-16550a"},
	{"serial1", "iobase", "0x2f8"},
	{"serial1", "irq", "3"},
	{"serial1", "fifo-size", "16"},
	{"memory", "default-size", "0x20000000"}, /* 512 MiB */
	{NULL, NULL, NULL},
};

/* 1.2: virtio-mmio (virtio 1.x, version 2 registers) for --disk, --rng and --net.
 * Eight 512-byte slots where QEMU's microvm puts them, each on an ISA IRQ
 * that no other device of this machine uses (the MP table lists ISA IRQs,
 * so Linux finds them without ACPI). Per device type: the feature bits it
 * may offer (a read-only disk adds RO) and its queues' size. */
static const struct machine_prop microvm_1_2[] = {
	{"virtio-mmio", "type", "virtio-mmio"},
	{"virtio-mmio", "base", "0xfeb00000"},
	{"virtio-mmio", "size", "0x200"},
	{"virtio-mmio", "slots", "8"},
	{"virtio-mmio", "irqs", "5,6,7,9,10,11,14,15"},
	/* VERSION_1 | EVENT_IDX | INDIRECT_DESC | DISCARD | FLUSH | BLK_SIZE | RO | SEG_MAX */
	{"virtio-blk", "features", "0x130002264"},
	{"virtio-blk", "queue-size", "256"},
	{"virtio-blk", "seg-max", "254"},
	{"virtio-blk", "blk-size", "512"},
	{"virtio-blk", "max-discard-sectors", "0x400000"},
	{"virtio-blk", "discard-sector-alignment", "8"},
	/* VERSION_1 | EVENT_IDX | INDIRECT_DESC */
	{"virtio-rng", "features", "0x130000000"},
	{"virtio-rng", "queue-size", "64"},
	/* VERSION_1 | EVENT_IDX | INDIRECT_DESC | GUEST_ANNOUNCE | CTRL_VQ | STATUS |
	 * MRG_RXBUF | HOST_TSO6 | HOST_TSO4 | GUEST_TSO6 | GUEST_TSO4 | MAC | GUEST_CSUM |
	 * CSUM. A card offers the checksum and TSO bits only where its tap can do them
	 * (virtio-net headers, TUNSETOFFLOAD). Three queues: receive, transmit, control. */
	{"virtio-net", "features", "0x1302399a3"},
	{"virtio-net", "queue-size", "256"},
	/* Unversioned CPU model names: the models released since 1.0 */
	{"cpu-models", "x86-64-v4-amd", "x86-64-v4-amd-v1"},
	{NULL, NULL, NULL},
};

const struct machine_version machine_microvm_versions[] = {
	{"microvm-1.0", NULL,
	 "first release: PVH boot, COM1, CMOS RTC, i8042 reset, 0xcf9 reset, debug-exit, MP table",
	 microvm_1_0},
	{"microvm-1.1", "microvm-1.0",
	 "adds COM2 (serial1, 0x2f8, IRQ 3); default RAM 256 MiB -> 512 MiB", microvm_1_1},
	{"microvm-1.2", "microvm-1.1",
	 "adds 8 virtio-mmio slots (0xfeb00000, IRQs 5-7,9-11,14,15) for --disk (virtio-blk), "
	 "--rng (virtio-rng) and --net (virtio-net)", microvm_1_2},
};
const unsigned machine_microvm_nversions =
	sizeof(machine_microvm_versions) / sizeof(machine_microvm_versions[0]);

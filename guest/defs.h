/*
 * defs.h: constants shared by the guest's assembly and C (selectors, control
 * register bits, vectors, per-CPU layout, memory layout). Kept free of C so
 * the .S files can include it.
 */
#ifndef GUEST_DEFS_H
#define GUEST_DEFS_H

/* Memory layout (physical == virtual, identity mapped). */
#define KERNEL_BASE  0x100000 /* load address of the image; isr_table sits here */
#define TRAMP_BASE   0x8000   /* real-mode AP trampoline (SIPI vector 0x08) */
#define PAGE_SIZE    4096
#define LARGE_PAGE   0x200000 /* 2 MiB */
#define MAX_CPUS     64
#define KSTACK_SHIFT 13 /* 8 KiB kernel stack per CPU */
#define KSTACK_SIZE  (1 << KSTACK_SHIFT)
#define USTACK_SIZE  16384 /* 16 KiB user (CPL3) stack per CPU */

/* GDT selectors (laid out as sysret would need them; it is not used). */
#define SEL_KCODE32 0x08
#define SEL_KCODE64 0x10
#define SEL_KDATA   0x18
#define SEL_UCODE32 0x23 /* unused */
#define SEL_UDATA   0x2b
#define SEL_UCODE64 0x33
#define SEL_TSS0    0x38 /* 16-byte TSS descriptor of CPU i at SEL_TSS0 + 16*i */
#define GDT_ENTRIES (7 + 2 * MAX_CPUS)

/* Control registers and MSRs. */
#define CR0_PE		 (1 << 0)
#define CR0_MP		 (1 << 1)
#define CR0_EM		 (1 << 2)
#define CR0_TS		 (1 << 3)
#define CR0_NE		 (1 << 5)
#define CR0_WP		 (1 << 16)
#define CR0_PG		 (1 << 31)
#define CR4_PAE		 (1 << 5)
#define CR4_OSFXSR	 (1 << 9)
#define CR4_OSXMMEXC	 (1 << 10)
#define MSR_EFER	 0xc0000080
#define EFER_LME	 (1 << 8)
#define MSR_GS_BASE	 0xc0000101
#define MSR_APIC_BASE	 0x1b
#define APIC_BASE_ENABLE (1 << 11)

/* Local APIC (xAPIC MMIO) and vectors. */
#define LAPIC_BASE     0xfee00000
#define LAPIC_ID       0x020
#define LAPIC_TPR      0x080
#define LAPIC_EOI      0x0b0
#define LAPIC_SVR      0x0f0
#define LAPIC_ICR_LO   0x300
#define LAPIC_ICR_HI   0x310
#define ICR_INIT       0x00004500 /* INIT, level assert */
#define ICR_SIPI       0x00004600 /* start-up, vector in bits 0-7 */
#define ICR_NMI	       0x00000400 /* NMI delivery */
#define ICR_ALL_BUT_ME 0x000c0000 /* destination shorthand: all excluding self */
#define VEC_TIMER      0x20	  /* PIT via IOAPIC, BSP only */
#define VEC_TICK_IPI   0x21	  /* BSP's timer handler forwards each tick to the APs */
#define VEC_PIC_BASE   0x30	  /* masked 8259s are remapped here, never expected */
#define VEC_DEVICE     0x40	  /* virtio devices via the IOAPIC (SYS_IRQ_ROUTE), BSP only */
#define VEC_SPURIOUS   0xff

#define HZ 100

/* Exit statuses of the guest (besides the user's exit=N). */
#define EXIT_USAGE    2 /* bad command line, dirty= does not fit */
#define EXIT_VERIFY   3 /* verifier found a corrupted page */
#define EXIT_INTERNAL 4 /* CPU exception, AP did not start, bad boot data */

#endif

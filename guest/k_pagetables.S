/*
 * k_pagetables.S: static identity page tables for the first 4 GiB, 2 MiB
 * pages, built by the assembler so no CPL0 instruction is spent on them (the
 * VMM just loads them with the image). RAM above 4 GiB, if any, is mapped at
 * boot by kmain() into pdpt[4..]. Every entry is user-accessible (CPL3 does
 * the work and reads boot data directly), Accessed/Dirty are preset so the
 * CPU never writes to the tables (no page-table noise in dirty logs), and
 * the 32 MiB below 4 GiB (IOAPIC, local APIC, flash) are uncached.
 */
#include "defs.h"

#define PT_P   0x001
#define PT_RW  0x002
#define PT_US  0x004
#define PT_PWT 0x008
#define PT_PCD 0x010
#define PT_A   0x020
#define PT_D   0x040
#define PT_PS  0x080
#define PT_TABLE (PT_P | PT_RW | PT_US | PT_A)
#define PT_LARGE (PT_P | PT_RW | PT_US | PT_A | PT_D | PT_PS)

	.section .data.pagetables, "aw"
	.p2align 12
	.globl pml4, pdpt, pd_low
pml4:
	.quad pdpt + PT_TABLE
	.fill 511, 8, 0
pdpt:
	.quad pd_low + 0 * 4096 + PT_TABLE
	.quad pd_low + 1 * 4096 + PT_TABLE
	.quad pd_low + 2 * 4096 + PT_TABLE
	.quad pd_low + 3 * 4096 + PT_TABLE
	.fill 508, 8, 0
pd_low:
	.set page, 0
	.rept 2048
	.if page >= 2032
	.quad (page << 21) | PT_LARGE | PT_PCD | PT_PWT
	.else
	.quad (page << 21) | PT_LARGE
	.endif
	.set page, page + 1
	.endr

/*
 * k_trampoline.S: where an AP starts after INIT/SIPI/SIPI. SYS_START_CPUS
 * copies tramp_start..tramp_end to TRAMP_BASE (0x8000, SIPI vector 0x08); the
 * AP wakes in real mode at CS=0x0800:IP=0, loads our GDT, enters protected
 * mode and joins the BSP's path at long_mode_enable (k_entry.S) with esi = 0,
 * which makes it an AP there. Position independent: real-mode addresses are
 * offsets from tramp_start, later ones are absolute.
 */
#include "defs.h"

	.section .rodata.tramp, "a"
	.code16
	.globl tramp_start, tramp_end
tramp_start:
	cli
	cld
	movw %cs, %ax
	movw %ax, %ds
	lgdtl tramp_gdt_desc - tramp_start
	movl %cr0, %eax
	orl $CR0_PE, %eax
	movl %eax, %cr0
	ljmpl $SEL_KCODE32, $(TRAMP_BASE + tramp_pm32 - tramp_start)

	.code32
tramp_pm32:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %esi, %esi
	ljmp $SEL_KCODE32, $long_mode_enable

	.p2align 3
tramp_gdt_desc:
	.word GDT_ENTRIES * 8 - 1
	.long gdt
tramp_end:

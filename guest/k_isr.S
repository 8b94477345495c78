/*
 * k_isr.S: interrupt and system-call entry points, and the static IDT.
 * The 256 stubs are 16 bytes apart starting exactly at KERNEL_BASE (the
 * linker script asserts it), so the assembler can build the IDT as constant
 * data: no CPL0 instruction is spent filling it. #UD doubles as the
 * system call trap (see ud_entry). Handlers are a few
 * instructions each because every one of them is emulated on our KVM.
 */
#include "defs.h"

	.section .isr, "ax"
	.code64
	.globl isr_table
isr_table:
	.set vec, 0
	.rept 256
	.p2align 4
	.if vec == VEC_TIMER
	jmp timer_isr
	.elseif vec == 6
	jmp ud_entry			/* #UD: also the syscall trap */
	.elseif vec == VEC_DEVICE
	jmp device_isr
	.elseif vec == VEC_SPURIOUS
	iretq
	.elseif vec >= 32
	jmp irq_eoi			/* tick IPI and anything unexpected */
	.else
	.if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	/* the CPU pushed an error code */
	.else
	pushq $0
	.endif
	pushq $vec
	jmp exc_common
	.endif
	.set vec, vec + 1
	.endr

	.text
/* PIT tick on the BSP: count it, forward it to the APs, EOI. */
timer_isr:
	pushq %rax
	incq k_ticks
	movl $LAPIC_BASE, %eax
	movl $(ICR_ALL_BUT_ME | VEC_TICK_IPI), LAPIC_ICR_LO(%rax)
	movl $0, LAPIC_EOI(%rax)
	popq %rax
	iretq

/* A device interrupt (virtio): count it, EOI. The CPL3 driver reads the count. */
device_isr:
	pushq %rax
	lock incq k_device_irqs
	movl $LAPIC_BASE, %eax
	movl $0, LAPIC_EOI(%rax)
	popq %rax
	iretq

irq_eoi:
	pushq %rax
	movl $LAPIC_BASE, %eax
	movl $0, LAPIC_EOI(%rax)
	popq %rax
	iretq

/* Exceptions: report and exit; the frame is vec, err, rip, cs, rflags, rsp, ss. */
exc_common:
	movq %rsp, %rdi
	andq $-16, %rsp
	call k_trap
	ud2

/*
 * System calls. On our paravirtual KVM neither `syscall` (it reaches LSTAR
 * without leaving CPL3) nor `int n` (#UD) work from CPL3, but exceptions are
 * delivered through the IDT as usual. So CPL3 calls the kernel with the ud2
 * at u_syscall_trap (u_syscall.S): rax = number, rdi, rsi, rdx = arguments,
 * result in rax; rcx, r8-r11 and the argument registers are clobbered.
 * Any other #UD is a real one. IF stays clear until iretq (interrupt gate).
 */
ud_entry:
	cmpq $u_syscall_trap, (%rsp)
	jne 1f
	cmpq $SEL_UCODE64, 8(%rsp)
	jne 1f
	addq $2, (%rsp)			/* resume after the ud2 */
	subq $8, %rsp			/* 16-byte alignment for the C call */
	movq %rdx, %rcx
	movq %rsi, %rdx
	movq %rdi, %rsi
	movq %rax, %rdi
	call k_syscall
	addq $8, %rsp
	iretq
1:	pushq $0
	pushq $6
	jmp exc_common

/* enter_user(rip, rsp, arg): first entry to CPL3, IF=1. */
	.globl enter_user
enter_user:
	pushq $SEL_UDATA
	pushq %rsi
	pushq $0x202
	pushq $SEL_UCODE64
	pushq %rdi
	movq %rdx, %rdi
	iretq

	.section .data.idt, "aw"
	.p2align 4
idt:
	.set vec, 0
	.rept 256
	.set off, KERNEL_BASE + 16 * vec
	.word off & 0xffff
	.word SEL_KCODE64
	.word 0x8e00			/* present, DPL 0, interrupt gate */
	.word (off >> 16) & 0xffff
	.long 0				/* offset bits 32-63 */
	.long 0
	.set vec, vec + 1
	.endr
	.p2align 3
	.word 0, 0, 0
	.globl idt_desc
idt_desc:
	.word 256 * 16 - 1
	.quad idt

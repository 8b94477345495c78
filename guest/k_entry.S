/*
 * k_entry.S: the PVH entry. The VMM (or QEMU's PVH option ROM) jumps here in
 * 32-bit protected mode, paging off, EBX = struct hvm_start_info. We load our
 * GDT, zero .bss, switch to long mode with the static identity page tables of
 * k_pagetables.S and call kmain(start_info) on CPU 0's kernel stack.
 * Also holds the GDT, shared by all CPUs (TSS descriptors filled at run time).
 * Every instruction here is emulated on our KVM, so it stays short.
 */
#include "defs.h"

/* PVH: ELF note "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY), 4-byte entry. */
	.section .note.Xen, "a"
	.p2align 2
	.long 4			/* namesz: "Xen\0" */
	.long 4			/* descsz */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_entry
	/*
	 * An empty note (namesz = descsz = type = 0) follows, so the 4 bytes
	 * after the entry are zero: QEMU reads the entry as a size_t.
	 */
	.long 0, 0, 0

	.section .text.entry, "ax"
	.code32
	.globl pvh_entry
pvh_entry:
	cli
	cld
	movl %ebx, %esi			/* start_info, kept in esi for kmain */
	lgdt gdt_desc
	ljmp $SEL_KCODE32, $1f
1:	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	/* .bss is small (kernel globals); stacks and IDT live elsewhere */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $2, %ecx
	xorl %eax, %eax
	rep stosl
	.globl long_mode_enable
long_mode_enable:
	/* shared with the AP trampoline from here (it jumps here with esi = 0) */
	movl %cr4, %eax
	orl $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXC), %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	andl $~(CR0_EM | CR0_TS), %eax
	orl $(CR0_PE | CR0_MP | CR0_NE | CR0_WP | CR0_PG), %eax
	movl %eax, %cr0
	ljmp $SEL_KCODE64, $long_entry

	.code64
long_entry:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
	testl %esi, %esi
	jz ap_entry64			/* trampoline: an AP */
	movq $(k_stacks + KSTACK_SIZE), %rsp
	movl %esi, %edi
	call kmain
	ud2

/*
 * An AP: find our index from the local APIC ID in k_cpu_apic[] (filled by
 * SYS_START_CPUS before the SIPIs) and take that CPU's kernel stack.
 */
ap_entry64:
	movl $(LAPIC_BASE + LAPIC_ID), %eax
	movl (%rax), %eax
	shrl $24, %eax
	xorl %ecx, %ecx
1:	cmpl k_ncpus, %ecx
	jae 3f
	cmpl k_cpu_apic(, %rcx, 4), %eax
	je 2f
	incl %ecx
	jmp 1b
2:	movl %ecx, %edi
	leaq 1(%rcx), %rax
	shlq $KSTACK_SHIFT, %rax
	addq $k_stacks, %rax
	movq %rax, %rsp
	call kap_main
3:	cli				/* unknown APIC ID: park */
	hlt
	jmp 3b

	.section .data.gdt, "aw"
	.p2align 4
	.globl gdt
gdt:
	.quad 0
	.quad 0x00cf9b000000ffff	/* 0x08 kernel code, 32-bit */
	.quad 0x00af9b000000ffff	/* 0x10 kernel code, 64-bit */
	.quad 0x00cf93000000ffff	/* 0x18 kernel data */
	.quad 0x00cffb000000ffff	/* 0x20 user code, 32-bit (unused) */
	.quad 0x00cff3000000ffff	/* 0x28 user data */
	.quad 0x00affb000000ffff	/* 0x30 user code, 64-bit */
	.fill 2 * MAX_CPUS, 8, 0	/* 0x38 TSS descriptors */
gdt_end:
	.p2align 3
	.word 0, 0, 0
	.globl gdt_desc
gdt_desc:				/* limit + 64-bit base (32-bit lgdt reads 6 bytes) */
	.word gdt_end - gdt - 1
	.quad gdt

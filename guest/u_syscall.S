/*
 * u_syscall.S: the CPL3 side of a system call. u_syscall(nr, a1, a2, a3)
 * traps into the kernel with the ud2 at u_syscall_trap, which ud_entry
 * (k_isr.S) recognises by its address. See k_isr.S for why not `syscall`.
 */
	.text
	.globl u_syscall, u_syscall_trap
u_syscall:
	movq %rdi, %rax
	movq %rsi, %rdi
	movq %rdx, %rsi
	movq %rcx, %rdx
u_syscall_trap:
	ud2
	ret

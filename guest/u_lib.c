/*
 * u_lib.c: the CPL3 program's runtime: syscall stubs, line output, time from
 * the tick counter (read straight from kernel memory), sleeping, barriers.
 */
#include "user.h"

/* One call, one atomic write: callers pass whole lines. */
void u_printf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = fmt_vsn(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	u_syscall(SYS_WRITE, (uint64_t)(uintptr_t)buf, n, 0);
}

void u_exit(uint32_t status)
{
	u_syscall(SYS_EXIT, status, 0, 0);
	for (;;)
		;
}

uint64_t u_ticks(void)
{
	return k_ticks;
}

uint64_t u_ms(void)
{
	return k_ticks * (1000 / HZ);
}

void u_sleep_until(uint64_t tick)
{
	u_syscall(SYS_WAIT_TICK, tick, 0, 0);
}

/* Arrive at a one-shot barrier and sleep until n vCPUs have. */
void u_barrier(volatile uint32_t *count, uint32_t n)
{
	__atomic_fetch_add(count, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(count, __ATOMIC_SEQ_CST) < n)
		u_sleep_until(u_ticks() + 1);
}

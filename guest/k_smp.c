/*
 * k_smp.c: start the APs the architectural way. Copy the trampoline to
 * 0x8000, publish the APIC ID table (ap_entry64 looks itself up in it), send
 * INIT to every AP, wait 10-20 ms, send a start-up IPI (vector 0x08), wait a
 * tick, send a second one to those not yet up, then wait up to 1 s for all.
 * The waits sleep in hlt on the timer, so the timer must be running.
 */
#include "kernel.h"
#include "x86.h"

#define ICR_BUSY (1u << 12)

static void send_ipi(uint32_t apic_id, uint32_t icr)
{
	while (lapic_read(LAPIC_ICR_LO) & ICR_BUSY)
		cpu_relax();
	lapic_write(LAPIC_ICR_HI, apic_id << 24);
	lapic_write(LAPIC_ICR_LO, icr);
}

uint64_t k_start_cpus(const uint32_t *apic_ids, uint32_t n)
{
	uint64_t all, deadline;
	uint32_t i;
	volatile char *tramp = (volatile char *)TRAMP_BASE;

	if (n > MAX_CPUS)
		n = MAX_CPUS;
	if (n <= 1 || apic_ids[0] != k_bootinfo.bsp_apic_id || k_ncpus != 1)
		return k_started;
	for (i = 0; i < (uint32_t)(tramp_end - tramp_start); i++)
		tramp[i] = tramp_start[i];
	for (i = 1; i < n; i++)
		k_cpu_apic[i] = apic_ids[i];
	__atomic_store_n(&k_ncpus, n, __ATOMIC_SEQ_CST);
	all = n == 64 ? ~0ull : (1ull << n) - 1;

	for (i = 1; i < n; i++)
		send_ipi(k_cpu_apic[i], ICR_INIT);
	k_wait_tick(k_ticks + 2);
	for (i = 1; i < n; i++)
		send_ipi(k_cpu_apic[i], ICR_SIPI | (TRAMP_BASE >> 12));
	k_wait_tick(k_ticks + 1);
	for (i = 1; i < n; i++)
		if (!(k_started & (1ull << i)))
			send_ipi(k_cpu_apic[i], ICR_SIPI | (TRAMP_BASE >> 12));
	deadline = k_ticks + HZ;
	while (k_started != all && k_ticks < deadline)
		k_wait_tick(k_ticks + 1);
	return k_started;
}

/*
 * u_main.c: what every vCPU runs at CPL3, and the BSP's share of booting
 * (CPU discovery, timer, command line, memory plan, AP start-up). Prints the
 * fixed boot lines the tests parse, then runs what the command line asks.
 */
#include "user.h"
#include "x86.h"

struct sysinfo u_sys UBSS;
struct config u_cfg UBSS;
struct slice u_slice[MAX_CPUS] UBSS;

static volatile uint32_t n_online UBSS, go UBSS, n_cpuid_done UBSS, n_final UBSS;
static volatile uint64_t errors_total UBSS;
extern char __ubss_start[], __ubss_end[];

static void announce(uint32_t idx)
{
	u_printf("testguest: vcpu %u apic=%u online\n", idx, u_sys.apic_id[idx]);
	__atomic_fetch_add(&n_online, 1, __ATOMIC_SEQ_CST);
}

/*
 * Our vmm provides only an MP table. Under QEMU, SeaBIOS writes one too, but
 * lists only the first logical CPU of each package, so with QEMU 7.2's
 * default topology (-smp 2 = one socket of 2 cores) it shows 1 CPU. QEMU's
 * own ACPI MADT is right, so the MADT wins when it lists more enabled CPUs.
 */
static uint32_t mp_cpus UBSS; /* CPUs in an MP table the MADT overruled */

static void discover_cpus(uint32_t bsp_apic)
{
	static struct sysinfo madt UBSS;
	bool have_mp = !u_cfg.selftest_acpi && mp_find(&u_sys, bsp_apic);
	/* no RSDP from the VMM and an MP table: skip the slow BIOS-area scan */
	bool have_madt = (k_bootinfo.rsdp_paddr || !have_mp) && acpi_find(&madt, bsp_apic);

	if (have_madt && (!have_mp || madt.ncpus > u_sys.ncpus)) {
		mp_cpus = have_mp ? u_sys.ncpus : 0;
		u_sys = madt;
	} else if (!have_mp) {
		u_sys.ncpus = 1;
		u_sys.apic_id[0] = bsp_apic;
		u_sys.ioapic = 0xfec00000;
		u_sys.irq0_pin = 2;
		u_sys.source = "default";
	}
}

/* Route ISA IRQ0 to `pin` and wait (natively, by the TSC) for a first tick. */
static bool timer_ticks(uint32_t pin, uint64_t cycles)
{
	uint64_t t0;

	if (u_syscall(SYS_TIMER_START, u_sys.ioapic, pin, 0)) {
		u_printf("testguest: cannot route the timer: ioapic=0x%lx pin=%u\n", u_sys.ioapic,
			 pin);
		u_exit(EXIT_INTERNAL);
	}
	t0 = rdtsc();
	while (!u_ticks())
		if (rdtsc() - t0 > cycles)
			return false;
	return true;
}

/*
 * Everything later sleeps on the tick, so make sure it ticks. If nothing
 * arrives on the pin the tables name, try the other usual one (KVM's default
 * routing puts the PIT on pin 0, QEMU's on pin 2; some firmware tables get it
 * wrong) and say so loudly; if neither ticks, stop with a clear message.
 */
static void timer_start(void)
{
	uint32_t pin = u_sys.irq0_pin, alt = pin == 2 ? 0 : 2;

	if (timer_ticks(pin, 500000000ull))
		return;
	if (timer_ticks(alt, 4000000000ull)) {
		u_printf("testguest: WARNING: no timer tick on ioapic pin %u (from the %s), "
			 "ticks arrive on pin %u\n",
			 pin, u_sys.source, alt);
		u_sys.irq0_pin = alt;
		return;
	}
	u_printf("testguest: no timer interrupt: PIT via ioapic=0x%lx pin %u or %u "
		 "(is ISA IRQ0 routed to the pin the MP table names?)\n",
		 u_sys.ioapic, pin, alt);
	u_exit(EXIT_INTERNAL);
}

static void bsp_boot(void)
{
	uint32_t bsp_apic = k_bootinfo.bsp_apic_id, i;
	char err[CMDLINE_MAX + 64];
	bool cmd_ok;
	uint64_t started;

	memset(__ubss_start, 0, (size_t)(__ubss_end - __ubss_start));
	err[0] = '\0';
	cmd_ok = cmdline_parse(err, sizeof(err));
	discover_cpus(bsp_apic);
	u_printf("testguest: boot cpus=%u mem=%luMiB cmdline=\"%s\"\n", u_sys.ncpus,
		 mem_ram_bytes() >> 20, k_bootinfo.cmdline);
	if (mp_cpus)
		u_printf("testguest: the MP table lists only %u cpus, using the ACPI MADT\n",
			 mp_cpus);
	u_printf("testguest: cpus from %s, ioapic=0x%lx irq0-pin=%u\n", u_sys.source, u_sys.ioapic,
		 u_sys.irq0_pin);
	if (!cmd_ok) {
		u_printf("%s\n", err);
		u_exit(EXIT_USAGE);
	}
	mem_plan(u_sys.ncpus);
	announce(0);
	timer_start();
	started = u_syscall(SYS_START_CPUS, (uint64_t)(uintptr_t)u_sys.apic_id, u_sys.ncpus, 0);
	for (i = 1; i < u_sys.ncpus; i++)
		if (!(started >> i & 1))
			u_printf("testguest: vcpu %u apic=%u did not start\n", i, u_sys.apic_id[i]);
	if (u_sys.ncpus > 1 && started != (u_sys.ncpus == 64 ? ~0ull : (1ull << u_sys.ncpus) - 1))
		u_exit(EXIT_INTERNAL);
}

static NORETURN void idle_forever(void)
{
	for (;;)
		u_sleep_until(~0ull);
}

static NORETURN void heartbeat(void)
{
	uint64_t next = u_ticks();

	for (;;) {
		next += 5 * HZ;
		u_sleep_until(next);
		u_printf("heartbeat t=%lu\n", u_ms());
	}
}

void user_main(uint32_t idx)
{
	uint64_t errors;

	if (idx == 0) {
		bsp_boot();
		while (n_online < u_sys.ncpus)
			u_sleep_until(u_ticks() + 1);
		u_printf("testguest: ready t=%lu\n", u_ms());
		go = 1;
	} else {
		announce(idx);
	}
	while (!go)
		u_sleep_until(u_ticks() + 1);

	if (u_cfg.cpuid) {
		cpuid_report(idx);
		u_barrier(&n_cpuid_done, u_sys.ncpus);
	}
	if (idx == 0 && u_cfg.rng && !rng_run())
		u_exit(EXIT_VERIFY);
	if (idx == 0 && u_cfg.blkbench) {
		blkbench_run();
		u_exit(0);
	}
	if (u_cfg.has_exit) {
		if (idx == 0)
			u_exit(u_cfg.exit_status);
		idle_forever();
	}
	if (!u_cfg.has_dirty && !u_cfg.has_runtime && !u_cfg.blk && !u_cfg.net_echo) {
		if (idx == 0)
			heartbeat();
		idle_forever();
	}
	errors = idx == 0 && u_cfg.blk	    ? blk_run()
		 : idx == 0 && u_cfg.net_echo ? net_run()
					      : dirty_run(idx);
	__atomic_fetch_add(&errors_total, errors, __ATOMIC_SEQ_CST);
	u_barrier(&n_final, u_sys.ncpus);
	if (idx == 0)
		u_exit(errors_total ? EXIT_VERIFY : 0);
	idle_forever();
}

/*
 * cpumodels/host_rule.c: the one rule for what a host offers a guest beyond
 * the CPUID bits it reports, applied to every kind of host (this machine's
 * KVM, a host profile written by `vmm cpu-model host-profile`, a raw CPUID
 * dump standing for a KVM host on that CPU).
 *
 *   offered = reported bits
 *           + every PROVIDE row whose condition holds
 *           - every BACKED row whose condition fails
 *   usable  = offered, minus each feature whose dependency is not offered
 *             (repeated until nothing changes: a downgrade, never an error)
 *
 * PROVIDE rows are features the VMM provides itself, whatever the CPU: a
 * guest gets them from vmm's CPUID table and KVM's in-kernel devices, not
 * from the physical CPU, so they are offered whether or not
 * KVM_GET_SUPPORTED_CPUID sets the bit (Intel hosts never report TOPOEXT;
 * bare-metal KVM does not report the TSC-deadline timer). BACKED rows are
 * features KVM reports that need something more of KVM: without it they are
 * withdrawn although KVM reports them.
 *
 * The conditions are facts about the host's KVM ("kvm facts"), read with
 * KVM_CHECK_EXTENSION / KVM_GET_MSR_INDEX_LIST on this machine and recorded
 * in host profiles. A raw CPUID dump says nothing about KVM: every fact
 * counts as true there (any KVM since Linux 4.20 has them all).
 *
 * QEMU 7.2 applies the same adjustments to KVM_GET_SUPPORTED_CPUID (its
 * kvm_arch_get_supported_cpuid()); the qemu-agreement and qemu-rule tests
 * compare the outcome. The rule is written out in cpumodels/README.md.
 */
#include <string.h>

#include "cpumodels/engine.h"

static const char *const fact_names[KVM_NFACTS] = {
    [KVM_FACT_IRQCHIP] = "irqchip",
    [KVM_FACT_TSC_DEADLINE] = "tsc-deadline-timer",
    [KVM_FACT_ARCH_CAPS_MSR] = "arch-capabilities-msr",
};

const char *kvm_fact_name(enum kvm_fact f)
{
	return (unsigned)f < KVM_NFACTS ? fact_names[f] : "?";
}

int kvm_fact_find(const char *name)
{
	for (int f = 0; f < KVM_NFACTS; f++)
		if (strcmp(fact_names[f], name) == 0)
			return f;
	return -1;
}

void kvm_facts_all(struct kvm_facts *f)
{
	for (int i = 0; i < KVM_NFACTS; i++)
		f->has[i] = true;
}

#define ALWAYS	    0
#define NEEDS(fact) (1u << (fact))
#define IRQCHIP	    NEEDS(KVM_FACT_IRQCHIP)

// clang-format off (one rule per entry reads best as a table)
static const struct host_rule rules[] = {
    {"hypervisor", HOST_RULE_PROVIDE, ALWAYS, "vmm sets CPUID.01H:ECX[31] in every guest's table"},
    {"topoext", HOST_RULE_PROVIDE, ALWAYS,
     "vmm builds leaves 0x8000001D and 0x8000001E from the model itself"},
    {"arat", HOST_RULE_PROVIDE, ALWAYS,
     "the APIC timer KVM emulates keeps running in every idle state"},
    {"tsc_deadline_timer", HOST_RULE_PROVIDE, IRQCHIP | NEEDS(KVM_FACT_TSC_DEADLINE),
     "KVM's in-kernel local APIC (vmm always creates it) emulates the TSC-deadline timer"},
    {"kvm_hint_realtime", HOST_RULE_PROVIDE, ALWAYS,
     "a hint the VMM gives (vCPUs are never preempted), not a CPU property"},
    {"x2apic", HOST_RULE_BACKED, IRQCHIP,
     "KVM emulates x2APIC mode in its in-kernel local APIC only"},
    {"kvm_pv_unhalt", HOST_RULE_BACKED, IRQCHIP,
     "the PV kick (KVM_HC_KICK_CPU) needs the in-kernel local APIC"},
    {"arch_capabilities", HOST_RULE_BACKED, NEEDS(KVM_FACT_ARCH_CAPS_MSR),
     "the guest reads IA32_ARCH_CAPABILITIES; vmm migrates it only if KVM lists the MSR"},
};
// clang-format on
#define NRULES (sizeof(rules) / sizeof(rules[0]))

size_t host_rule_count(void)
{
	return NRULES;
}

const struct host_rule *host_rule_at(size_t i)
{
	return i < NRULES ? &rules[i] : NULL;
}

const struct host_rule *host_rule_for(const struct cpufeat *f)
{
	for (size_t i = 0; i < NRULES; i++)
		if (cpufeat_find(rules[i].feature) == f)
			return &rules[i];
	return NULL;
}

bool host_rule_holds(const struct host_rule *r, const struct kvm_facts *facts)
{
	for (int f = 0; f < KVM_NFACTS; f++)
		if ((r->needs >> f & 1) && !facts->has[f])
			return false;
	return true;
}

void host_rule_apply(struct cpufeat_set *s, const struct kvm_facts *facts)
{
	for (size_t i = 0; i < NRULES; i++) {
		const struct host_rule *r = &rules[i];
		const struct cpufeat *f = cpufeat_find(r->feature);
		bool holds = host_rule_holds(r, facts);
		if (!f)
			continue; /* test_features makes sure every row names a feature */
		if (r->kind == HOST_RULE_PROVIDE && holds)
			cpufeat_set_add(s, f);
		else if (r->kind == HOST_RULE_BACKED && !holds)
			cpufeat_set_del(s, f);
	}
}

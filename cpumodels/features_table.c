/*
 * cpumodels/features_table.c: every named CPUID feature bit, as data.
 *
 * One row per bit: {name, aliases, leaf, subleaf, register, bit, flags}.
 * Names are the Linux /proc/cpuinfo spelling; bits Linux does not print use
 * the lower-cased name of its X86_FEATURE_ define (amd_ibpb, spec_ctrl), and
 * bits Linux does not know get a short descriptive name (pt_*, kvm_*).
 * Aliases are mostly QEMU's spellings. '-', '_' and '.' are equivalent when
 * looking names up, so "sse4.1" and "sse4-1" need no alias of their own.
 * Sources: Intel SDM vol. 2A (CPUID), AMD APM vol. 3 (CPUID), Linux
 * Documentation/virt/kvm/x86/cpuid.rst for leaf 0x40000001.
 *
 * Adding a row never changes an existing model's expansion (models name the
 * bits they use). Changing a row's bit would: the frozen-expansion test fails.
 */
#include "cpumodels/engine.h"

#define R(n, a, l, s, r, b, fl)                                                                    \
	{                                                                                          \
		n, a, l, s, CPUID_##r, b, fl                                                       \
	}
/* tsc_deadline_timer, arat, topoext, hypervisor and kvm_hint_realtime are
 * provided by the VMM itself, and x2apic needs the in-kernel APIC: the host
 * rule (host_rule.c) decides when, not a flag */
#define NK CPUFEAT_NOKVM
#define PV CPUFEAT_PV
/* PV features every current KVM offers count as KVM-provided on any CPU */
#define PVE (CPUFEAT_PV | CPUFEAT_KVM_EMU)
#define PVD (CPUFEAT_PV | CPUFEAT_PV_DEFAULT | CPUFEAT_KVM_EMU)

// clang-format off (one row per line reads best as a table)
static const struct cpufeat table[] = {
    /* CPUID.01H:EDX */
    R("fpu", NULL, 0x1, 0, EDX, 0, 0),
    R("vme", NULL, 0x1, 0, EDX, 1, 0),
    R("de", NULL, 0x1, 0, EDX, 2, 0),
    R("pse", NULL, 0x1, 0, EDX, 3, 0),
    R("tsc", NULL, 0x1, 0, EDX, 4, 0),
    R("msr", NULL, 0x1, 0, EDX, 5, 0),
    R("pae", NULL, 0x1, 0, EDX, 6, 0),
    R("mce", NULL, 0x1, 0, EDX, 7, 0),
    R("cx8", NULL, 0x1, 0, EDX, 8, 0),
    R("apic", NULL, 0x1, 0, EDX, 9, 0),
    R("sep", NULL, 0x1, 0, EDX, 11, 0),
    R("mtrr", NULL, 0x1, 0, EDX, 12, 0),
    R("pge", NULL, 0x1, 0, EDX, 13, 0),
    R("mca", NULL, 0x1, 0, EDX, 14, 0),
    R("cmov", NULL, 0x1, 0, EDX, 15, 0),
    R("pat", NULL, 0x1, 0, EDX, 16, 0),
    R("pse36", NULL, 0x1, 0, EDX, 17, 0),
    R("pn", "psn", 0x1, 0, EDX, 18, NK),
    R("clflush", NULL, 0x1, 0, EDX, 19, 0),
    R("dts", "ds", 0x1, 0, EDX, 21, NK),
    R("acpi", NULL, 0x1, 0, EDX, 22, NK),
    R("mmx", NULL, 0x1, 0, EDX, 23, 0),
    R("fxsr", NULL, 0x1, 0, EDX, 24, 0),
    R("sse", NULL, 0x1, 0, EDX, 25, 0),
    R("sse2", NULL, 0x1, 0, EDX, 26, 0),
    R("ss", NULL, 0x1, 0, EDX, 27, 0),
    R("ht", "htt", 0x1, 0, EDX, 28, CPUFEAT_COMPUTED),
    R("tm", NULL, 0x1, 0, EDX, 29, NK),
    R("ia64", NULL, 0x1, 0, EDX, 30, NK),
    R("pbe", NULL, 0x1, 0, EDX, 31, NK),

    /* CPUID.01H:ECX */
    R("pni", "sse3", 0x1, 0, ECX, 0, 0),
    R("pclmulqdq", "pclmuldq", 0x1, 0, ECX, 1, 0),
    R("dtes64", NULL, 0x1, 0, ECX, 2, NK),
    R("monitor", "mwait", 0x1, 0, ECX, 3, NK),
    R("ds_cpl", NULL, 0x1, 0, ECX, 4, NK),
    R("vmx", NULL, 0x1, 0, ECX, 5, 0),
    R("smx", NULL, 0x1, 0, ECX, 6, NK),
    R("est", NULL, 0x1, 0, ECX, 7, NK),
    R("tm2", NULL, 0x1, 0, ECX, 8, NK),
    R("ssse3", NULL, 0x1, 0, ECX, 9, 0),
    R("cid", "cnxt_id", 0x1, 0, ECX, 10, NK),
    R("sdbg", NULL, 0x1, 0, ECX, 11, NK),
    R("fma", "fma3", 0x1, 0, ECX, 12, 0),
    R("cx16", NULL, 0x1, 0, ECX, 13, 0),
    R("xtpr", NULL, 0x1, 0, ECX, 14, NK),
    R("pdcm", NULL, 0x1, 0, ECX, 15, 0),
    R("pcid", NULL, 0x1, 0, ECX, 17, 0),
    R("dca", NULL, 0x1, 0, ECX, 18, NK),
    R("sse4_1", NULL, 0x1, 0, ECX, 19, 0),
    R("sse4_2", NULL, 0x1, 0, ECX, 20, 0),
    R("x2apic", NULL, 0x1, 0, ECX, 21, CPUFEAT_KVM_EMU), /* KVM emulates it in software */
    R("movbe", NULL, 0x1, 0, ECX, 22, 0),
    R("popcnt", NULL, 0x1, 0, ECX, 23, 0),
    R("tsc_deadline_timer", "tsc_deadline", 0x1, 0, ECX, 24, 0),
    R("aes", "aes_ni", 0x1, 0, ECX, 25, 0),
    R("xsave", NULL, 0x1, 0, ECX, 26, 0),
    R("osxsave", NULL, 0x1, 0, ECX, 27, CPUFEAT_DYNAMIC),
    R("avx", NULL, 0x1, 0, ECX, 28, 0),
    R("f16c", NULL, 0x1, 0, ECX, 29, 0),
    R("rdrand", NULL, 0x1, 0, ECX, 30, 0),
    R("hypervisor", NULL, 0x1, 0, ECX, 31, CPUFEAT_COMPUTED),

    /* CPUID.06H:EAX (thermal and power management) */
    R("dtherm", NULL, 0x6, 0, EAX, 0, NK),
    R("ida", NULL, 0x6, 0, EAX, 1, NK),
    R("arat", NULL, 0x6, 0, EAX, 2, 0),
    R("pln", NULL, 0x6, 0, EAX, 4, NK),
    R("pts", NULL, 0x6, 0, EAX, 6, NK),
    R("hwp", NULL, 0x6, 0, EAX, 7, NK),
    R("hwp_notify", NULL, 0x6, 0, EAX, 8, NK),
    R("hwp_act_window", NULL, 0x6, 0, EAX, 9, NK),
    R("hwp_epp", NULL, 0x6, 0, EAX, 10, NK),
    R("hwp_pkg_req", NULL, 0x6, 0, EAX, 11, NK),
    R("hfi", NULL, 0x6, 0, EAX, 19, NK),

    /* CPUID.07H.00H:EBX */
    R("fsgsbase", NULL, 0x7, 0, EBX, 0, 0),
    R("tsc_adjust", NULL, 0x7, 0, EBX, 1, 0),
    R("sgx", NULL, 0x7, 0, EBX, 2, 0),
    R("bmi1", NULL, 0x7, 0, EBX, 3, 0),
    R("hle", NULL, 0x7, 0, EBX, 4, 0),
    R("avx2", NULL, 0x7, 0, EBX, 5, 0),
    R("fdp_excptn_only", NULL, 0x7, 0, EBX, 6, 0),
    R("smep", NULL, 0x7, 0, EBX, 7, 0),
    R("bmi2", NULL, 0x7, 0, EBX, 8, 0),
    R("erms", NULL, 0x7, 0, EBX, 9, 0),
    R("invpcid", NULL, 0x7, 0, EBX, 10, 0),
    R("rtm", NULL, 0x7, 0, EBX, 11, 0),
    R("cqm", "pqm", 0x7, 0, EBX, 12, NK),
    R("zero_fcs_fds", NULL, 0x7, 0, EBX, 13, 0),
    R("mpx", NULL, 0x7, 0, EBX, 14, 0),
    R("rdt_a", "pqe", 0x7, 0, EBX, 15, NK),
    R("avx512f", NULL, 0x7, 0, EBX, 16, 0),
    R("avx512dq", NULL, 0x7, 0, EBX, 17, 0),
    R("rdseed", NULL, 0x7, 0, EBX, 18, 0),
    R("adx", NULL, 0x7, 0, EBX, 19, 0),
    R("smap", NULL, 0x7, 0, EBX, 20, 0),
    R("avx512ifma", NULL, 0x7, 0, EBX, 21, 0),
    R("pcommit", NULL, 0x7, 0, EBX, 22, NK),
    R("clflushopt", NULL, 0x7, 0, EBX, 23, 0),
    R("clwb", NULL, 0x7, 0, EBX, 24, 0),
    R("intel_pt", NULL, 0x7, 0, EBX, 25, 0),
    R("avx512pf", NULL, 0x7, 0, EBX, 26, 0),
    R("avx512er", NULL, 0x7, 0, EBX, 27, 0),
    R("avx512cd", NULL, 0x7, 0, EBX, 28, 0),
    R("sha_ni", "sha", 0x7, 0, EBX, 29, 0),
    R("avx512bw", NULL, 0x7, 0, EBX, 30, 0),
    R("avx512vl", NULL, 0x7, 0, EBX, 31, 0),

    /* CPUID.07H.00H:ECX */
    R("prefetchwt1", NULL, 0x7, 0, ECX, 0, 0),
    R("avx512vbmi", "avx512_vbmi", 0x7, 0, ECX, 1, 0),
    R("umip", NULL, 0x7, 0, ECX, 2, 0),
    R("pku", NULL, 0x7, 0, ECX, 3, 0),
    R("ospke", NULL, 0x7, 0, ECX, 4, CPUFEAT_DYNAMIC),
    R("waitpkg", NULL, 0x7, 0, ECX, 5, 0),
    R("avx512_vbmi2", "avx512vbmi2", 0x7, 0, ECX, 6, 0),
    R("shstk", "cet_ss", 0x7, 0, ECX, 7, 0),
    R("gfni", NULL, 0x7, 0, ECX, 8, 0),
    R("vaes", NULL, 0x7, 0, ECX, 9, 0),
    R("vpclmulqdq", NULL, 0x7, 0, ECX, 10, 0),
    R("avx512_vnni", "avx512vnni", 0x7, 0, ECX, 11, 0),
    R("avx512_bitalg", "avx512bitalg", 0x7, 0, ECX, 12, 0),
    R("tme", NULL, 0x7, 0, ECX, 13, NK),
    R("avx512_vpopcntdq", "avx512vpopcntdq", 0x7, 0, ECX, 14, 0),
    R("la57", NULL, 0x7, 0, ECX, 16, 0),
    R("rdpid", NULL, 0x7, 0, ECX, 22, 0),
    R("keylocker", "kl", 0x7, 0, ECX, 23, NK),
    R("bus_lock_detect", NULL, 0x7, 0, ECX, 24, 0),
    R("cldemote", NULL, 0x7, 0, ECX, 25, 0),
    R("movdiri", NULL, 0x7, 0, ECX, 27, 0),
    R("movdir64b", NULL, 0x7, 0, ECX, 28, 0),
    R("enqcmd", NULL, 0x7, 0, ECX, 29, 0),
    R("sgx_lc", "sgxlc", 0x7, 0, ECX, 30, 0),
    R("pks", NULL, 0x7, 0, ECX, 31, 0),

    /* CPUID.07H.00H:EDX */
    R("avx512_4vnniw", "avx5124vnniw", 0x7, 0, EDX, 2, 0),
    R("avx512_4fmaps", "avx5124fmaps", 0x7, 0, EDX, 3, 0),
    R("fsrm", NULL, 0x7, 0, EDX, 4, 0),
    R("avx512_vp2intersect", "avx512vp2intersect", 0x7, 0, EDX, 8, 0),
    R("srbds_ctrl", NULL, 0x7, 0, EDX, 9, 0),
    R("md_clear", NULL, 0x7, 0, EDX, 10, 0),
    R("rtm_always_abort", NULL, 0x7, 0, EDX, 11, 0),
    R("tsx_force_abort", NULL, 0x7, 0, EDX, 13, 0),
    R("serialize", NULL, 0x7, 0, EDX, 14, 0),
    R("hybrid_cpu", "hybrid", 0x7, 0, EDX, 15, NK),
    R("tsxldtrk", "tsx_ldtrk", 0x7, 0, EDX, 16, 0),
    R("pconfig", NULL, 0x7, 0, EDX, 18, NK),
    R("arch_lbr", NULL, 0x7, 0, EDX, 19, 0),
    R("ibt", "cet_ibt", 0x7, 0, EDX, 20, 0),
    R("amx_bf16", NULL, 0x7, 0, EDX, 22, 0),
    R("avx512_fp16", NULL, 0x7, 0, EDX, 23, 0),
    R("amx_tile", NULL, 0x7, 0, EDX, 24, 0),
    R("amx_int8", NULL, 0x7, 0, EDX, 25, 0),
    R("spec_ctrl", "ibrs_ibpb", 0x7, 0, EDX, 26, 0),
    R("intel_stibp", "stibp", 0x7, 0, EDX, 27, 0),
    R("flush_l1d", "l1d_flush", 0x7, 0, EDX, 28, 0),
    R("arch_capabilities", NULL, 0x7, 0, EDX, 29, 0),
    R("core_capabilities", "core_capability", 0x7, 0, EDX, 30, 0),
    R("spec_ctrl_ssbd", "ssbd", 0x7, 0, EDX, 31, 0),

    /* CPUID.07H.01H:EAX */
    R("sha512", NULL, 0x7, 1, EAX, 0, 0),
    R("sm3", NULL, 0x7, 1, EAX, 1, 0),
    R("sm4", NULL, 0x7, 1, EAX, 2, 0),
    R("avx_vnni", NULL, 0x7, 1, EAX, 4, 0),
    R("avx512_bf16", NULL, 0x7, 1, EAX, 5, 0),
    R("cmpccxadd", NULL, 0x7, 1, EAX, 7, 0),
    R("arch_perfmon_ext", NULL, 0x7, 1, EAX, 8, NK),
    R("fzrm", NULL, 0x7, 1, EAX, 10, 0),
    R("fsrs", NULL, 0x7, 1, EAX, 11, 0),
    R("fsrc", NULL, 0x7, 1, EAX, 12, 0),
    R("fred", NULL, 0x7, 1, EAX, 17, 0),
    R("lkgs", NULL, 0x7, 1, EAX, 18, 0),
    R("wrmsrns", NULL, 0x7, 1, EAX, 19, 0),
    R("amx_fp16", NULL, 0x7, 1, EAX, 21, 0),
    R("hreset", NULL, 0x7, 1, EAX, 22, NK),
    R("avx_ifma", NULL, 0x7, 1, EAX, 23, 0),
    R("lam", NULL, 0x7, 1, EAX, 26, 0),

    /* CPUID.07H.01H:EDX */
    R("avx_vnni_int8", NULL, 0x7, 1, EDX, 4, 0),
    R("avx_ne_convert", NULL, 0x7, 1, EDX, 5, 0),
    R("amx_complex", NULL, 0x7, 1, EDX, 8, 0),
    R("avx_vnni_int16", NULL, 0x7, 1, EDX, 10, 0),
    R("prefetchiti", NULL, 0x7, 1, EDX, 14, 0),

    /* CPUID.0DH.01H:EAX (XSAVE extensions) */
    R("xsaveopt", NULL, 0xd, 1, EAX, 0, 0),
    R("xsavec", NULL, 0xd, 1, EAX, 1, 0),
    R("xgetbv1", NULL, 0xd, 1, EAX, 2, 0),
    R("xsaves", NULL, 0xd, 1, EAX, 3, 0),
    R("xfd", NULL, 0xd, 1, EAX, 4, 0),

    /* CPUID.14H.00H:EBX/ECX (Intel Processor Trace capabilities) */
    R("pt_cr3_filter", NULL, 0x14, 0, EBX, 0, 0),
    R("pt_psb_cyc", NULL, 0x14, 0, EBX, 1, 0),
    R("pt_ip_filter", NULL, 0x14, 0, EBX, 2, 0),
    R("pt_mtc", NULL, 0x14, 0, EBX, 3, 0),
    R("pt_ptwrite", NULL, 0x14, 0, EBX, 4, 0),
    R("pt_power_event", NULL, 0x14, 0, EBX, 5, 0),
    R("pt_topa", NULL, 0x14, 0, ECX, 0, 0),
    R("pt_topa_multi", NULL, 0x14, 0, ECX, 1, 0),
    R("pt_single_range", NULL, 0x14, 0, ECX, 2, 0),
    R("pt_trace_transport", NULL, 0x14, 0, ECX, 3, 0),
    R("pt_lip", "intel_pt_lip", 0x14, 0, ECX, 31, 0),

    /* CPUID.19H:EBX (Key Locker: KVM does not virtualize it, host-only; AESKLE
     * reads 1 only once the OS enabled Key Locker, so a dump may show wide_kl
     * without it) */
    R("aeskle", NULL, 0x19, 0, EBX, 0, NK),
    R("wide_kl", "widekl", 0x19, 0, EBX, 2, NK),
    R("kl_iwkey_backup", NULL, 0x19, 0, EBX, 4, NK),

    /* CPUID.80000001H:EDX (bits that repeat leaf 1 EDX on AMD are not
     * named: the engine mirrors them for AMD models) */
    R("syscall", NULL, 0x80000001, 0, EDX, 11, 0),
    R("mp", NULL, 0x80000001, 0, EDX, 19, NK),
    R("nx", "xd", 0x80000001, 0, EDX, 20, 0),
    R("mmxext", NULL, 0x80000001, 0, EDX, 22, 0),
    R("fxsr_opt", "ffxsr", 0x80000001, 0, EDX, 25, 0),
    R("pdpe1gb", NULL, 0x80000001, 0, EDX, 26, 0),
    R("rdtscp", NULL, 0x80000001, 0, EDX, 27, 0),
    R("lm", "i64", 0x80000001, 0, EDX, 29, 0),
    R("3dnowext", NULL, 0x80000001, 0, EDX, 30, 0),
    R("3dnow", NULL, 0x80000001, 0, EDX, 31, 0),

    /* CPUID.80000001H:ECX */
    R("lahf_lm", NULL, 0x80000001, 0, ECX, 0, 0),
    R("cmp_legacy", NULL, 0x80000001, 0, ECX, 1, 0),
    R("svm", NULL, 0x80000001, 0, ECX, 2, 0),
    R("extapic", NULL, 0x80000001, 0, ECX, 3, NK),
    R("cr8_legacy", "cr8legacy", 0x80000001, 0, ECX, 4, 0),
    R("abm", "lzcnt", 0x80000001, 0, ECX, 5, 0),
    R("sse4a", NULL, 0x80000001, 0, ECX, 6, 0),
    R("misalignsse", NULL, 0x80000001, 0, ECX, 7, 0),
    R("3dnowprefetch", "prefetchw", 0x80000001, 0, ECX, 8, 0),
    R("osvw", NULL, 0x80000001, 0, ECX, 9, 0),
    R("ibs", NULL, 0x80000001, 0, ECX, 10, NK),
    R("xop", NULL, 0x80000001, 0, ECX, 11, 0),
    R("skinit", NULL, 0x80000001, 0, ECX, 12, NK),
    R("wdt", NULL, 0x80000001, 0, ECX, 13, NK),
    R("lwp", NULL, 0x80000001, 0, ECX, 15, NK),
    R("fma4", NULL, 0x80000001, 0, ECX, 16, 0),
    R("tce", NULL, 0x80000001, 0, ECX, 17, NK),
    R("nodeid_msr", NULL, 0x80000001, 0, ECX, 19, NK),
    R("tbm", NULL, 0x80000001, 0, ECX, 21, 0),
    R("topoext", NULL, 0x80000001, 0, ECX, 22, 0),
    R("perfctr_core", NULL, 0x80000001, 0, ECX, 23, 0),
    R("perfctr_nb", NULL, 0x80000001, 0, ECX, 24, NK),
    R("bpext", NULL, 0x80000001, 0, ECX, 26, NK),
    R("ptsc", NULL, 0x80000001, 0, ECX, 27, NK),
    R("perfctr_llc", NULL, 0x80000001, 0, ECX, 28, NK),
    R("mwaitx", NULL, 0x80000001, 0, ECX, 29, NK),

    /* CPUID.80000007H:EDX (advanced power management) */
    R("ts", NULL, 0x80000007, 0, EDX, 0, NK),
    R("fid", NULL, 0x80000007, 0, EDX, 1, NK),
    R("vid", NULL, 0x80000007, 0, EDX, 2, NK),
    R("ttp", NULL, 0x80000007, 0, EDX, 3, NK),
    R("amd_htc", NULL, 0x80000007, 0, EDX, 4, NK),
    R("stc", NULL, 0x80000007, 0, EDX, 5, NK),
    R("100mhzsteps", NULL, 0x80000007, 0, EDX, 6, NK),
    R("hwpstate", NULL, 0x80000007, 0, EDX, 7, NK),
    R("invtsc", "constant_tsc", 0x80000007, 0, EDX, 8, CPUFEAT_NOMIGRATE),
    R("cpb", NULL, 0x80000007, 0, EDX, 9, NK),
    R("eff_freq_ro", NULL, 0x80000007, 0, EDX, 10, NK),
    R("proc_feedback", NULL, 0x80000007, 0, EDX, 11, NK),
    R("acc_power", NULL, 0x80000007, 0, EDX, 12, NK),

    /* CPUID.80000008H:EBX */
    R("clzero", NULL, 0x80000008, 0, EBX, 0, 0),
    R("irperf", NULL, 0x80000008, 0, EBX, 1, NK),
    R("xsaveerptr", "rstr_fp_err_ptrs", 0x80000008, 0, EBX, 2, 0),
    R("rdpru", NULL, 0x80000008, 0, EBX, 4, NK),
    R("mba", NULL, 0x80000008, 0, EBX, 6, NK),
    R("mcommit", NULL, 0x80000008, 0, EBX, 8, NK),
    R("wbnoinvd", NULL, 0x80000008, 0, EBX, 9, 0),
    R("amd_ibpb", "ibpb", 0x80000008, 0, EBX, 12, 0),
    R("int_wbinvd", NULL, 0x80000008, 0, EBX, 13, NK),
    R("amd_ibrs", "ibrs", 0x80000008, 0, EBX, 14, 0),
    R("amd_stibp", NULL, 0x80000008, 0, EBX, 15, 0),
    R("amd_ibrs_always_on", NULL, 0x80000008, 0, EBX, 16, 0),
    R("amd_stibp_always_on", "stibp_always_on", 0x80000008, 0, EBX, 17, 0),
    R("amd_ibrs_preferred", NULL, 0x80000008, 0, EBX, 18, 0),
    R("amd_ibrs_same_mode", NULL, 0x80000008, 0, EBX, 19, 0),
    R("efer_lmsle_unsupported", NULL, 0x80000008, 0, EBX, 20, 0),
    R("amd_ppin", NULL, 0x80000008, 0, EBX, 23, NK),
    R("amd_ssbd", NULL, 0x80000008, 0, EBX, 24, 0),
    R("virt_ssbd", NULL, 0x80000008, 0, EBX, 25, 0),
    R("amd_ssb_no", "amd_no_ssb", 0x80000008, 0, EBX, 26, 0),
    R("cppc", NULL, 0x80000008, 0, EBX, 27, NK),
    R("amd_psfd", NULL, 0x80000008, 0, EBX, 28, 0),
    R("btc_no", NULL, 0x80000008, 0, EBX, 29, 0),
    R("ibpb_ret", NULL, 0x80000008, 0, EBX, 30, 0),

    /* CPUID.80000021H:EAX (AMD extended features 2) */
    R("no_nested_data_bp", NULL, 0x80000021, 0, EAX, 0, 0),
    R("fsgs_non_serializing", NULL, 0x80000021, 0, EAX, 1, 0),
    R("lfence_rdtsc", "lfence_always_serializing", 0x80000021, 0, EAX, 2, 0),
    R("smm_pg_cfg_lock", NULL, 0x80000021, 0, EAX, 3, NK),
    R("null_sel_clr_base", NULL, 0x80000021, 0, EAX, 6, 0),
    R("upper_addr_ignore", NULL, 0x80000021, 0, EAX, 7, 0),
    R("autoibrs", "auto_ibrs", 0x80000021, 0, EAX, 8, 0),
    R("no_smm_ctl_msr", NULL, 0x80000021, 0, EAX, 9, 0),
    R("fsrs_amd", NULL, 0x80000021, 0, EAX, 10, 0),
    R("fsrc_amd", NULL, 0x80000021, 0, EAX, 11, 0),
    R("prefetch_ctl_msr", NULL, 0x80000021, 0, EAX, 13, NK),
    R("cpuid_user_dis", NULL, 0x80000021, 0, EAX, 17, NK),
    R("ibpb_brtype", NULL, 0x80000021, 0, EAX, 28, 0),
    R("srso_no", NULL, 0x80000021, 0, EAX, 29, 0),

    /* CPUID.40000001H:EAX/EDX (KVM paravirtual features) */
    R("kvmclock", NULL, 0x40000001, 0, EAX, 0, PVD),
    R("kvm_nopiodelay", NULL, 0x40000001, 0, EAX, 1, PVD),
    R("kvm_mmu", NULL, 0x40000001, 0, EAX, 2, PV),
    R("kvmclock2", "kvm_clocksource2", 0x40000001, 0, EAX, 3, PVD),
    R("kvm_asyncpf", "kvm_async_pf", 0x40000001, 0, EAX, 4, PVD),
    R("kvm_steal_time", NULL, 0x40000001, 0, EAX, 5, PVD),
    R("kvm_pv_eoi", NULL, 0x40000001, 0, EAX, 6, PVD),
    R("kvm_pv_unhalt", NULL, 0x40000001, 0, EAX, 7, PVE),
    R("kvm_pv_tlb_flush", NULL, 0x40000001, 0, EAX, 9, PVE),
    R("kvm_asyncpf_vmexit", NULL, 0x40000001, 0, EAX, 10, PVE),
    R("kvm_pv_ipi", "kvm_pv_send_ipi", 0x40000001, 0, EAX, 11, PVE),
    R("kvm_poll_control", NULL, 0x40000001, 0, EAX, 12, PVE),
    R("kvm_pv_sched_yield", NULL, 0x40000001, 0, EAX, 13, PVE),
    R("kvm_asyncpf_int", NULL, 0x40000001, 0, EAX, 14, PVE),
    R("kvm_msi_ext_dest_id", NULL, 0x40000001, 0, EAX, 15, PVE),
    R("kvm_hc_map_gpa_range", NULL, 0x40000001, 0, EAX, 16, PV),
    R("kvm_migration_control", NULL, 0x40000001, 0, EAX, 17, PV),
    R("kvmclock_stable_bit", NULL, 0x40000001, 0, EAX, 24, PVD),
    R("kvm_hint_realtime", "kvm_hint_dedicated", 0x40000001, 0, EDX, 0, PV),
};

/* Features that need another one to work (a guest given avx without xsave
 * cannot enable it). Models and user adjustments must respect these. */
static const struct cpufeat_dep deps[] = {
    {"avx", "xsave"},
    {"xsaveopt", "xsave"},
    {"xsavec", "xsave"},
    {"xgetbv1", "xsave"},
    {"xsaves", "xsave"},
    {"xfd", "xsave"},
    {"fma", "avx"},
    {"f16c", "avx"},
    {"avx2", "avx"},
    {"vaes", "avx"},
    {"vpclmulqdq", "avx"},
    {"avx_vnni", "avx2"},
    {"avx512f", "avx2"},
    {"avx512dq", "avx512f"},
    {"avx512ifma", "avx512f"},
    {"avx512pf", "avx512f"},
    {"avx512er", "avx512f"},
    {"avx512cd", "avx512f"},
    {"avx512bw", "avx512f"},
    {"avx512vl", "avx512f"},
    {"avx512vbmi", "avx512f"},
    {"avx512_vbmi2", "avx512f"},
    {"avx512_vnni", "avx512f"},
    {"avx512_bitalg", "avx512f"},
    {"avx512_vpopcntdq", "avx512f"},
    {"avx512_4vnniw", "avx512f"},
    {"avx512_4fmaps", "avx512f"},
    {"avx512_vp2intersect", "avx512f"},
    {"avx512_bf16", "avx512f"},
    {"avx512_fp16", "avx512f"},
    {"amx_tile", "xsave"},
    {"amx_bf16", "amx_tile"},
    {"amx_int8", "amx_tile"},
    {"amx_fp16", "amx_tile"},
    {"amx_complex", "amx_tile"},
    {"pku", "xsave"},
    {"mpx", "xsave"},
    {"xop", "avx"},
    {"fma4", "avx"},
    {"pt_cr3_filter", "intel_pt"},
    {"pt_psb_cyc", "intel_pt"},
    {"pt_ip_filter", "intel_pt"},
    {"pt_mtc", "intel_pt"},
    {"pt_ptwrite", "intel_pt"},
    {"pt_power_event", "intel_pt"},
    {"pt_topa", "intel_pt"},
    {"pt_topa_multi", "intel_pt"},
    {"pt_single_range", "intel_pt"},
    {"pt_trace_transport", "intel_pt"},
    {"pt_lip", "intel_pt"},
    {"aeskle", "keylocker"},
    {"wide_kl", "aeskle"},
    {"kl_iwkey_backup", "keylocker"},
    {"intel_stibp", "spec_ctrl"},
    {"spec_ctrl_ssbd", "spec_ctrl"},
    {"kvmclock_stable_bit", "kvmclock"},
    {"kvm_asyncpf_vmexit", "kvm_asyncpf"},
    {"kvm_asyncpf_int", "kvm_asyncpf"},
};

// clang-format on

const struct cpufeat_word cpufeat_words[CPUFEAT_NWORDS] = {
    [FW_1_EDX] = {0x1, 0, CPUID_EDX},
    [FW_1_ECX] = {0x1, 0, CPUID_ECX},
    [FW_6_EAX] = {0x6, 0, CPUID_EAX},
    [FW_7_0_EBX] = {0x7, 0, CPUID_EBX},
    [FW_7_0_ECX] = {0x7, 0, CPUID_ECX},
    [FW_7_0_EDX] = {0x7, 0, CPUID_EDX},
    [FW_7_1_EAX] = {0x7, 1, CPUID_EAX},
    [FW_7_1_EDX] = {0x7, 1, CPUID_EDX},
    [FW_D_1_EAX] = {0xd, 1, CPUID_EAX},
    [FW_14_0_EBX] = {0x14, 0, CPUID_EBX},
    [FW_14_0_ECX] = {0x14, 0, CPUID_ECX},
    [FW_19_0_EBX] = {0x19, 0, CPUID_EBX},
    [FW_8000_0001_EDX] = {0x80000001, 0, CPUID_EDX},
    [FW_8000_0001_ECX] = {0x80000001, 0, CPUID_ECX},
    [FW_8000_0007_EDX] = {0x80000007, 0, CPUID_EDX},
    [FW_8000_0008_EBX] = {0x80000008, 0, CPUID_EBX},
    [FW_8000_0021_EAX] = {0x80000021, 0, CPUID_EAX},
    [FW_4000_0001_EAX] = {0x40000001, 0, CPUID_EAX},
    [FW_4000_0001_EDX] = {0x40000001, 0, CPUID_EDX},
};

size_t cpufeat_count(void)
{
	return sizeof(table) / sizeof(table[0]);
}

const struct cpufeat *cpufeat_at(size_t i)
{
	return i < cpufeat_count() ? &table[i] : NULL;
}

size_t cpufeat_dep_count(void)
{
	return sizeof(deps) / sizeof(deps[0]);
}

const struct cpufeat_dep *cpufeat_dep_at(size_t i)
{
	return i < cpufeat_dep_count() ? &deps[i] : NULL;
}

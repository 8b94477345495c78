#!/usr/bin/env python3
"""The engine's host rule against QEMU 7.2's, on both vendors' real CPUs.

qemu_agreement.py compares with QEMU on this machine only, so it exercises
one vendor. This test takes every CPUID dump of ../shared/cpuid-hosts as the
table KVM_GET_SUPPORTED_CPUID would report on that CPU, writes it as a host
profile (the documented format, written here independently of the engine's
writer), and asks the engine which features each model version misses. The
expected answer is what QEMU 7.2 makes of the same table: its
kvm_arch_get_supported_cpuid() adjusts what KVM reports as follows (facts of
QEMU's target/i386/kvm/kvm.c, restated):

  leaf 1 EDX   |= MTRR, PAT, MCE, MCA (for KVM before Linux 2.6.30)
  leaf 1 ECX   |= hypervisor; |= TSC-deadline if the irqchip is in the kernel
                  and KVM_CAP_TSC_DEADLINE_TIMER; x2APIC cleared without the
                  in-kernel irqchip
  leaf 6 EAX   |= ARAT
  7.0 EDX      ARCH_CAPABILITIES cleared unless KVM_GET_MSR_INDEX_LIST has
               IA32_ARCH_CAPABILITIES
  0x80000001 ECX |= TOPOEXT (always: QEMU fills leaf 0x8000001E itself)
  0x80000001 EDX |= leaf 1 EDX's AMD aliases (bits the engine does not name)
  0x40000001 EAX PV_UNHALT cleared without the in-kernel irqchip
  0x40000001 EDX |= the realtime hint

A feature is unavailable when the model has it and the adjusted word lacks
its bit; compared over the features both QEMU and the engine define, for
every same-named model version. Each dump is tried as reported and as a
bare-metal KVM reports on Intel (no TOPOEXT, no TSC-deadline bit), with all
facts, without KVM_CAP_TSC_DEADLINE_TIMER, without the ARCH_CAPABILITIES MSR
and without the irqchip. The vendor branch each dump takes is printed.

Model features come from the engine (`show`): qemu_agreement.py and
qemu_definitions.py check them against QEMU's own expansion. QEMU itself is
asked for its model names and feature vocabulary (TCG is enough).

usage: qemu_rule.py CPUMODEL_CLI DATA_DIR
Exit 0 agree, 1 disagree, 77 skipped (no dumps; no QEMU by hand).
"""
import os
import sys
import tempfile

from qemu_peer import Qmp, fail, feature_table, norm, ours, require_qemu, skip

HOSTS_DIR = os.environ.get("CPUID_HOSTS_DIR", "")
FACTS = ("irqchip", "tsc-deadline-timer", "arch-capabilities-msr")
REG = {"EAX": 2, "EBX": 3, "ECX": 4, "EDX": 5}


def read_dump(path):
    rows = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        v = [int(x, 16) for x in line.split()]
        rows[(v[0], v[1])] = v[2:]
    return rows


def fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


def write_profile(path, rows, facts):
    """A host profile, format version 1 (cpumodels/README.md)."""
    eax1 = rows[(1, 0)][0]
    base = eax1 >> 8 & 0xf
    family = base + (eax1 >> 20 & 0xff) if base == 0xf else base
    model = (eax1 >> 4 & 0xf) | ((eax1 >> 12 & 0xf0) if base in (6, 0xf) else 0)
    l0 = rows[(0, 0)]
    vendor = b"".join(x.to_bytes(4, "little") for x in (l0[1], l0[3], l0[2])).decode()
    phys = rows.get((0x80000008, 0), [0, 0, 0, 0])[0] & 0xff
    text = "# written by tests/cpumodels/qemu_rule.py from a CPUID dump\n"
    text += "vmm-host-profile 1\nhostname dump\nvendor %s\nfamily %d\nmodel %d\nstepping %d\n" % (
        vendor, family, model, eax1 & 0xf)
    text += "model-name -\nphys-bits %d\nkernel -\nvmm -\nkvm-facts %s\n" % (
        phys, " ".join(facts))
    for (leaf, sub), r in sorted(rows.items()):
        if leaf == 0xd and 2 <= sub < 64 and r[0]:
            text += "xsave %d 0x%x %d\n" % (sub, r[1], r[0])
    for (leaf, sub), r in sorted(rows.items()):
        text += "cpuid 0x%08x 0x%08x 0x%08x 0x%08x 0x%08x 0x%08x\n" % ((leaf, sub) + tuple(r))
    text += "end %d 0x%016x\n" % (len(rows), fnv1a(text.encode()))
    open(path, "w").write(text)


def qemu72_supported(rows, facts):
    """{(leaf, subleaf, reg): bits} as QEMU 7.2 adjusts KVM's table."""
    irqchip = "irqchip" in facts

    def get(leaf, sub, reg):
        return rows.get((leaf, sub), [0, 0, 0, 0])[REG[reg] - 2]

    words = {}
    for (leaf, sub), r in rows.items():
        for reg, i in REG.items():
            words[(leaf, sub, reg)] = r[i - 2]
    w = lambda leaf, sub, reg: words.get((leaf, sub, reg), 0)  # noqa: E731
    words[(1, 0, "EDX")] = w(1, 0, "EDX") | 1 << 12 | 1 << 16 | 1 << 7 | 1 << 14
    ecx = w(1, 0, "ECX") | 1 << 31
    if irqchip and "tsc-deadline-timer" in facts:
        ecx |= 1 << 24
    if not irqchip:
        ecx &= ~(1 << 21)
    words[(1, 0, "ECX")] = ecx
    words[(6, 0, "EAX")] = w(6, 0, "EAX") | 1 << 2
    if "arch-capabilities-msr" not in facts:
        words[(7, 0, "EDX")] = w(7, 0, "EDX") & ~(1 << 29)
    words[(0x80000001, 0, "ECX")] = w(0x80000001, 0, "ECX") | 1 << 22
    aliases = 0x0183f3ff  # leaf 1 EDX bits AMD repeats; the engine names none of them
    words[(0x80000001, 0, "EDX")] = w(0x80000001, 0, "EDX") | (get(1, 0, "EDX") & aliases)
    pv = w(0x40000001, 0, "EAX")
    if not irqchip:
        pv &= ~(1 << 7)
    words[(0x40000001, 0, "EAX")] = pv
    words[(0x40000001, 0, "EDX")] = w(0x40000001, 0, "EDX") | 1
    return words


def variants(rows):
    """(label, rows, facts): as reported, and as bare-metal KVM on Intel."""
    bare = dict(rows)
    l1 = list(bare[(1, 0)])
    l1[2] &= ~(1 << 24)  # no TSC-deadline bit (KVM_CAP_TSC_DEADLINE_TIMER says it)
    bare[(1, 0)] = l1
    if (0x80000001, 0) in bare:
        x = list(bare[(0x80000001, 0)])
        x[2] &= ~(1 << 22)  # no TOPOEXT
        bare[(0x80000001, 0)] = x
    yield "as reported, all facts", rows, FACTS
    yield "bare-metal style, all facts", bare, FACTS
    yield "bare-metal style, no TSC-deadline cap", bare, ("irqchip", "arch-capabilities-msr")
    yield "as reported, no ARCH_CAPABILITIES MSR", rows, ("irqchip", "tsc-deadline-timer")
    yield "as reported, no irqchip", rows, ("tsc-deadline-timer", "arch-capabilities-msr")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    cli, data_dir = sys.argv[1:]
    if not os.path.isdir(HOSTS_DIR):
        skip("CPUID dumps not found at %r (../shared/cpuid-hosts)" % HOSTS_DIR)
    require_qemu()
    qmp = Qmp(["-accel", "tcg", "-M", "none"])
    try:
        qnames = {d["name"] for d in qmp.cmd("query-cpu-definitions")}
        vocab = {norm(k) for k in qmp.cmd("query-cpu-model-expansion", {
            "type": "full", "model": {"name": "max"}})["model"]["props"]}
    finally:
        qmp.close()
    table, spelling = feature_table(cli, data_dir)
    pos = {f["name"]: (f["leaf"], f["subleaf"], f["register"], f["bit"], f["flags"])
           for f in table}
    both = {spelling[k] for k in vocab if k in spelling}
    listing = ours(cli, data_dir, "list", "--no-host-check", "--json")
    shared = [v["name"] for m in listing["models"] for v in m["versions"] if v["name"] in qnames]
    if not shared:
        fail("no model version shares its name with QEMU's")
    model = {n: set(ours(cli, data_dir, "show", n, "--json")["features"]) for n in shared}
    dumps = sorted(f for f in os.listdir(HOSTS_DIR) if f.endswith(".txt"))
    failures, compared = [], 0
    with tempfile.TemporaryDirectory(prefix="qemu-rule-") as d:
        for dump in dumps:
            rows = read_dump(os.path.join(HOSTS_DIR, dump))
            vendor = "Intel" if dump.startswith("intel") else "AMD"
            topo = rows.get((0x80000001, 0), [0, 0, 0, 0])[2] >> 22 & 1
            print("%-42s %-5s branch: %s" % (dump[:-4], vendor, "the CPU reports topoext" if topo
                                             else "no topoext from the CPU; the rule adds it"))
            for label, table_rows, facts in variants(rows):
                prof = os.path.join(d, "p.profile")
                write_profile(prof, table_rows, facts)
                got = ours(cli, data_dir, "list", "--json", "--host-cpu-profile", prof)
                missing = {v["name"]: set(v["missing"]) for m in got["models"]
                           for v in m["versions"]}
                words = qemu72_supported(table_rows, facts)
                for n in shared:
                    want = set()
                    for f in model[n] & both:
                        leaf, sub, reg, bit, flags = pos[f]
                        if "computed" in flags or "guest-os" in flags:
                            continue
                        if not words.get((leaf, sub, reg), 0) >> bit & 1:
                            want.add(f)
                    have = missing[n] & both
                    compared += 1
                    if want != have:
                        failures.append("%s (%s) %s: QEMU 7.2's rule only %s, ours only %s"
                                        % (dump[:-4], label, n, sorted(want - have),
                                           sorted(have - want)))
    print("compared %d (dump, variant, model version) answers: %d dumps x 5 variants x %d "
          "same-named versions" % (compared, len(dumps), len(shared)))
    for f in failures[:40]:
        print("FAIL: " + f)
    if len(failures) > 40:
        print("FAIL: ... and %d more" % (len(failures) - 40))
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        print("FAIL: %s" % e)
        sys.exit(1)

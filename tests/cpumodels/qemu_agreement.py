#!/usr/bin/env python3
"""QEMU agreement test for the CPU-model engine, on this machine's KVM.

For every model version that shares its name with one of QEMU's (as listed
by QMP query-cpu-definitions on this machine, with KVM), the features our
engine says this host's KVM cannot provide must equal QEMU's
`unavailable-features`, over the features both define. Fixed version aliases
both define (Skylake-Server-IBRS, ...) must name the same version. As a
cross-check of the data, each such version's feature set must equal QEMU's
full expansion (query-cpu-model-expansion), again over the features both
define.

The answer depends on the vendor of the CPU under KVM, and the test says
which branch it took: on AMD, KVM_GET_SUPPORTED_CPUID reports TOPOEXT; on
Intel it does not, and both QEMU and our engine (its host rule,
cpumodels/host_rule.c) add it because the VMM builds leaf 0x8000001E itself.
qemu_rule.py checks both branches against the real CPUs of
../shared/cpuid-hosts on any machine.

Documented differences, handled explicitly below:
  * QEMU lists some bits it derives from MSRs, not CPUID (ibrs-all, taa-no,
    ...: bits of IA32_ARCH_CAPABILITIES). Our table has no such names; they
    fall outside "features both define" and are printed for the record.
  * QEMU may list a feature twice (pku: once for the CPUID bit, once for its
    XSAVE component); the comparison is of sets.
  * hypervisor: QEMU's expansion shows it as a feature of every model under
    KVM; our engine always sets it (a computed bit, not part of a model).
  * A bare model name (Skylake-Server) is an alias in both, but QEMU resolves
    it per machine type (v1 with -M none) and we resolve it to the newest
    version: by design, so bare names are not compared.

Usage: qemu_agreement.py CPUMODEL_CLI DATA_DIR
Exit: 0 agree, 1 disagree, 77 skipped (no /dev/kvm; no qemu-system-x86_64 when
run by hand: under scripts/test.sh, VMM_TEST_STRICT=1, a missing QEMU fails).
"""
import os
import subprocess
import sys

from qemu_peer import Qmp, feature_table, kvm_usable, norm, ours, require_qemu, skip

def kvm_branch(cli, data_dir):
    """Which vendor branch this machine takes, from its own host profile."""
    env = dict(os.environ, VMM_CPU_MODEL_DIR=data_dir)
    text = subprocess.run([cli, "host-profile"], capture_output=True, text=True, env=env,
                          check=True).stdout
    vendor = next(l.split()[1] for l in text.splitlines() if l.startswith("vendor "))
    ecx = 0
    for l in text.splitlines():
        f = l.split()
        if f and f[0] == "cpuid" and int(f[1], 16) == 0x80000001 and int(f[2], 16) == 0:
            ecx = int(f[5], 16)
    reported = bool(ecx >> 22 & 1)
    return vendor, ("KVM_GET_SUPPORTED_CPUID reports topoext" if reported else
                    "KVM_GET_SUPPORTED_CPUID lacks topoext; QEMU and the host rule add it")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    cli, data_dir = sys.argv[1], sys.argv[2]
    require_qemu()
    if not kvm_usable():
        skip("/dev/kvm missing or not accessible: both sides must ask the same KVM")
    vendor, branch = kvm_branch(cli, data_dir)
    print("this machine: %s under KVM; %s" % (vendor, branch))

    # our side: the feature vocabulary, every version with its missing
    # features on this host's KVM
    _, spelling = feature_table(cli, data_dir)
    listing = ours(cli, data_dir, "list", "--json")
    versions = {v["name"]: v for m in listing["models"] for v in m["versions"]}
    valias = {a: v["name"] for v in versions.values() for a in v["aliases"]}

    qmp = Qmp(["-enable-kvm", "-M", "none"])
    try:
        defs = qmp.cmd("query-cpu-definitions")
        qnames = {d["name"]: d for d in defs}
        shared = sorted(n for n in versions if n in qnames)
        vocab = None
        expansions = {}
        for n in shared:
            e = qmp.cmd("query-cpu-model-expansion",
                        {"type": "full", "model": {"name": n}})["model"]["props"]
            expansions[n] = e
            if vocab is None:
                vocab = {norm(k) for k in e}
    finally:
        qmp.close()

    if not shared:
        print("FAIL: no model shares a name with QEMU's (%d QEMU models)" % len(qnames))
        return 1
    both = {spelling[k] for k in vocab if k in spelling}  # features both define
    failures = []
    msr_only = set()
    agree = 0
    for n in shared:
        q = set()
        for u in qnames[n]["unavailable-features"]:
            if norm(u) in spelling:
                q.add(spelling[norm(u)])
            else:
                msr_only.add(u)
        o = set(versions[n]["missing"]) & both
        if q != o:
            failures.append("%s: unavailable differs: QEMU only %s, ours only %s"
                            % (n, sorted(q - o), sorted(o - q)))
        else:
            agree += 1
        # data cross-check: the model's features
        qf = {spelling[norm(k)] for k, v in expansions[n].items()
              if v is True and norm(k) in spelling} - {"hypervisor"}
        of = set(ours(cli, data_dir, "show", n, "--json")["features"]) & both
        if qf != of:
            failures.append("%s: features differ: QEMU only %s, ours only %s"
                            % (n, sorted(qf - of), sorted(of - qf)))
        print("%-28s unavailable here: %2d %s" % (n, len(o), "ok" if q == o else "DIFFERS"))
    aliases = 0
    for a, target in sorted(valias.items()):
        d = qnames.get(a)
        if d is None:
            continue
        aliases += 1
        if d.get("alias-of") != target:
            failures.append("alias %s: QEMU means %s, we mean %s"
                            % (a, d.get("alias-of"), target))
    print("unavailable-features agree for %d of %d same-named model versions (%s, %s); "
          "%d version aliases compared; QEMU-only non-CPUID names ignored: %s"
          % (agree, len(shared), vendor, branch.split(";")[0], aliases, sorted(msr_only)))
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        print("FAIL: %s" % e)
        sys.exit(1)

#!/usr/bin/env python3
"""The frozen expansions against QEMU's own definitions.

tests/data/cpumodels/expected/NAME-vN.cpuid were written by the engine
itself, so the frozen-expansion test only proves they do not change. This
test checks them against what QEMU 7.2 says of every model version the two
share a name with, from outside the engine: for each version it starts QEMU
with that CPU (-accel tcg -M microvm -S: the CPU is realized, never run)
and reads over QMP the CPU object's vendor, family, model, stepping,
level, xlevel and model-id, and its CPUID feature words bit by bit
("feature-words" plus "filtered-features": the model's words before TCG
drops what it cannot emulate). The frozen file is decoded here as a guest
would read it (leaf 0, leaf 1 EAX, 0x80000000, 0x80000002-4) and its
feature words are compared bit by bit, register by register, over the bits
the engine names.

Differences by design are listed in BY_DESIGN with the reason (TCG's and
KVM's defaults in QEMU, the frozen vCPU being 1 of 2), differences in
released versions kept because they are frozen in KNOWN_FROZEN; each one
found is printed, any other difference fails.

usage: qemu_definitions.py CPUMODEL_CLI DATA_DIR EXPECTED_DIR
Exit 0 agree, 1 differ, 77 skipped (no QEMU when run by hand).
"""
import os
import sys

from qemu_peer import Qmp, fail, feature_table, ours, require_qemu

REG = {"EAX": 0, "EBX": 1, "ECX": 2, "EDX": 3}

# Differences by design: feature (or "kvm" for the paravirtual leaf, or
# "xlevel-svm") -> why the frozen table differs from QEMU's TCG CPU object.
KVM_DEFAULTS = ("QEMU applies its KVM defaults (svm and monitor off, x2apic on) to every model "
                "only under KVM; the engine's models are QEMU's KVM expansion, which "
                "qemu-agreement compares name by name")
BY_DESIGN = {
    "ht": "frozen tables are vCPU 1 of 2, where HTT is set; this QEMU CPU is alone",
    "vme": "QEMU turns VME off by default under TCG only (this test runs TCG); its models have "
           "it under KVM, as the engine's do",
    "svm": KVM_DEFAULTS,
    "monitor": KVM_DEFAULTS,
    "x2apic": KVM_DEFAULTS,
    "xlevel-svm": "QEMU raises xlevel to 0x8000000A for svm's leaf, and svm is off under KVM "
                  "(" + KVM_DEFAULTS + ")",
    "kvm": "the paravirtual leaf 0x40000001: QEMU clears it without KVM; the engine's default "
           "paravirtual set is compared with QEMU's KVM expansion by qemu-agreement",
}
# Differences in released versions, kept because a released version is
# frozen (guests run it; a change would be a new version): version -> what.
KNOWN_FROZEN = {
    ("Nehalem-v2", "model-id"): "released as 'Intel Core i7 9xx (Nehalem, IBRS update)'; QEMU "
                                "says 'Nehalem Core i7' inside the parentheses",
}


def decode(path):
    rows = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        v = [int(x, 16) for x in line.split()]
        rows[(v[0], v[1])] = v[2:]
    l0, eax1 = rows[(0, 0)], rows[(1, 0)][0]
    base = eax1 >> 8 & 0xf
    brand = b"".join(x.to_bytes(4, "little") for leaf in (0x80000002, 0x80000003, 0x80000004)
                     for x in rows[(leaf, 0)])
    return rows, {
        "vendor": b"".join(x.to_bytes(4, "little") for x in (l0[1], l0[3], l0[2])).decode(),
        "family": base + (eax1 >> 20 & 0xff) if base == 0xf else base,
        "model": (eax1 >> 4 & 0xf) | ((eax1 >> 12 & 0xf0) if base in (6, 0xf) else 0),
        "stepping": eax1 & 0xf,
        "level": l0[0],
        "xlevel": rows[(0x80000000, 0)][0],
        "model-id": brand.split(b"\0")[0].decode(),
    }


def qemu_cpu(name):
    """Identity and feature words of QEMU's CPU object for model `name`."""
    q = Qmp(["-accel", "tcg", "-M", "microvm", "-m", "16M", "-smp", "1", "-cpu", name, "-S"])
    try:
        path = q.cmd("query-cpus-fast")[0]["qom-path"]
        ident = {k: q.cmd("qom-get", {"path": path, "property": k})
                 for k in ("vendor", "family", "model", "stepping", "level", "xlevel",
                           "model-id")}
        words = {}
        for prop in ("feature-words", "filtered-features"):
            for w in q.cmd("qom-get", {"path": path, "property": prop}):
                key = (w["cpuid-input-eax"], w.get("cpuid-input-ecx", 0), w["cpuid-register"])
                words[key] = words.get(key, 0) | w["features"]
    finally:
        q.close()
    return ident, words


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    cli, data_dir, expected = sys.argv[1:]
    require_qemu()
    table, _ = feature_table(cli, data_dir)
    named = {}  # (leaf, subleaf, reg) -> {bit: name}
    for f in table:
        named.setdefault((f["leaf"], f["subleaf"], f["register"]), {})[f["bit"]] = f
    q = Qmp(["-accel", "tcg", "-M", "none"])
    try:
        qnames = {d["name"] for d in q.cmd("query-cpu-definitions")}
    finally:
        q.close()
    listing = ours(cli, data_dir, "list", "--no-host-check", "--json")
    shared = [v["name"] for m in listing["models"] for v in m["versions"] if v["name"] in qnames]
    if not shared:
        fail("no model version shares its name with QEMU's")
    failures, seen = [], {}
    for n in shared:
        rows, mine = decode(os.path.join(expected, n + ".cpuid"))
        theirs, words = qemu_cpu(n)
        svm = words.get((0x80000001, 0, "ECX"), 0) >> 2 & 1
        for k, v in mine.items():
            if theirs[k] == v:
                continue
            what = "%s: %s: frozen %r, QEMU %r" % (n, k, v, theirs[k])
            if (n, k) in KNOWN_FROZEN:
                seen.setdefault("released and frozen: " + KNOWN_FROZEN[(n, k)], []).append(what)
            elif k == "xlevel" and svm and theirs[k] == 0x8000000A and v == 0x80000008:
                seen.setdefault(BY_DESIGN["xlevel-svm"], []).append(what)
            else:
                failures.append(what)
        bits_checked = 0
        for (leaf, sub, reg), names in named.items():
            if (leaf, sub, reg) not in words:
                continue  # QEMU has no such feature word
            frozen = rows.get((leaf, sub), [0, 0, 0, 0])[REG[reg]]
            for bit, f in names.items():
                a, b = frozen >> bit & 1, words[(leaf, sub, reg)] >> bit & 1
                bits_checked += 1
                if a == b:
                    continue
                why = BY_DESIGN.get(f["name"]) or (BY_DESIGN["kvm"] if leaf == 0x40000001
                                                   else None)
                what = "%s %s (frozen %d, QEMU %d)" % (n, f["description"], a, b)
                if why:
                    seen.setdefault(why, []).append(what)
                else:
                    failures.append(what)
        bad = any(f.startswith(n + " ") or f.startswith(n + ":") for f in failures)
        print("%-28s identity and %d named feature bits: %s"
              % (n, bits_checked, "DIFFER" if bad else "agree (or by design)"))
    for why, whats in seen.items():
        kind = "known, frozen" if why.startswith("released and frozen") else "by design"
        print("%s (%d): %s\n    e.g. %s" % (kind, len(whats), why, whats[0]))
    print("checked %d frozen expansions against QEMU's definitions" % len(shared))
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        print("FAIL: %s" % e)
        sys.exit(1)

#!/usr/bin/env python3
"""QEMU agreement test for the CPU-model engine.

For every model version that shares its name with one of QEMU's (as listed
by QMP query-cpu-definitions on this machine, with KVM), the features our
engine says this host's KVM cannot provide must equal QEMU's
`unavailable-features`, over the features both define. Fixed version aliases
both define (Skylake-Server-IBRS, ...) must name the same version. As a
cross-check of the data, each such version's feature set must equal QEMU's
full expansion (query-cpu-model-expansion), again over the features both
define.

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
import json
import os
import re
import shutil
import subprocess
import sys

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


def norm(name):
    return name.lower().replace("-", "_").replace(".", "_")


class Qmp:
    def __init__(self):
        self.p = subprocess.Popen(
            [QEMU, "-enable-kvm", "-M", "none", "-qmp", "stdio", "-display", "none",
             "-nodefaults"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        greeting = self.p.stdout.readline()
        if not greeting:
            err = self.p.stderr.read()
            raise RuntimeError("QEMU did not start: " + err.strip())
        self.cmd("qmp_capabilities")

    def cmd(self, name, args=None):
        msg = {"execute": name}
        if args is not None:
            msg["arguments"] = args
        self.p.stdin.write(json.dumps(msg) + "\n")
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("QEMU closed QMP during " + name)
            reply = json.loads(line)
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError("%s: %s" % (name, reply["error"]))

    def close(self):
        try:
            self.cmd("quit")
        except RuntimeError:
            pass
        self.p.wait(timeout=10)


def ours(cli, data_dir, *args):
    env = dict(os.environ, VMM_CPU_MODEL_DIR=data_dir)
    r = subprocess.run([cli] + list(args), capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError("%s %s: %s" % (cli, " ".join(args), r.stderr.strip()))
    return json.loads(r.stdout)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    cli, data_dir = sys.argv[1], sys.argv[2]
    if not shutil.which(QEMU):
        why = "%s not installed (Debian package qemu-system-x86; scripts/setup.sh " \
              "--for-tests installs it)" % QEMU
        if os.environ.get("VMM_TEST_STRICT") == "1":
            print("FAIL: %s; VMM_TEST_STRICT=1 (scripts/test.sh) makes this a failure" % why)
            return 1
        skip(why)
    if not os.path.exists("/dev/kvm"):
        skip("/dev/kvm missing: both sides must ask the same KVM")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        skip("/dev/kvm not accessible to this user")

    # our side: the feature vocabulary, every version with its missing
    # features on this host's KVM
    table = ours(cli, data_dir, "features", "--json")
    spelling = {}  # normalized spelling -> our name
    for f in table:
        for n in [f["name"]] + f["aliases"].split():
            spelling[norm(n)] = f["name"]
    listing = ours(cli, data_dir, "list", "--json")
    versions = {v["name"]: v for m in listing["models"] for v in m["versions"]}
    valias = {a: v["name"] for v in versions.values() for a in v["aliases"]}

    qmp = Qmp()
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
    print("compared %d model versions and %d version aliases with QEMU; "
          "QEMU-only non-CPUID names ignored: %s" % (len(shared), aliases, sorted(msr_only)))
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        print("FAIL: %s" % e)
        sys.exit(1)

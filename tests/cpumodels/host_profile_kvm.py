#!/usr/bin/env python3
"""Host profiles on this machine's KVM, end to end with the vmm binary.

1. `vmm cpu-model host-profile -o P` writes this host; used as
   --host-cpu-profile, P gives the same `list` answers (every version's
   runnable and missing features) and the same `labels` as the host itself,
   and `vmm --host-cpu-profile P` boots a guest with the same CPUID table
   (--dump-cpuid) as without it.
2. A cut or mangled P is refused by `vmm cpu-model` and by `vmm
   --host-cpu-profile`, with an error naming P and the line.
3. baseline/matrix/compare take P next to a raw CPUID dump.

usage: host_profile_kvm.py VMM TESTGUEST
Exit 0 pass, 1 fail, 77 skip (no /dev/kvm).
"""
import json
import os
import re
import subprocess
import sys
import tempfile

HOSTS_DIR = os.environ.get("CPUID_HOSTS_DIR", "")


def run(vmm, *args, expect=0):
    r = subprocess.run([vmm] + list(args), capture_output=True, text=True, timeout=120)
    if expect is not None and r.returncode != expect:
        raise AssertionError(f"vmm {' '.join(args)}: exit {r.returncode}, expected {expect}\n"
                             f"{r.stdout[-1500:]}{r.stderr[-1500:]}")
    return r


def ok(msg):
    print(f"ok: {msg}")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    vmm, guest = sys.argv[1:]
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm not usable: a host profile is what this host's KVM offers")
        return 77
    with tempfile.TemporaryDirectory(prefix="host-profile-") as d:
        prof = os.path.join(d, "here.profile")
        run(vmm, "cpu-model", "host-profile", "-o", prof)
        text = open(prof).read()
        ok(f"host-profile wrote {len(text.splitlines())} lines: "
           + ", ".join(l for l in text.splitlines() if l.split(" ")[0] in ("vendor", "model-name")))

        # 1. the same answers as the host itself
        here = json.loads(run(vmm, "cpu-model", "list", "--json").stdout)
        prof_list = json.loads(run(vmm, "cpu-model", "list", "--json",
                                   "--host-cpu-profile", prof).stdout)
        if here["models"] != prof_list["models"]:
            for a, b in zip(here["models"], prof_list["models"]):
                if a != b:
                    print(f"differs: {a}\n   vs    {b}")
            raise AssertionError("list differs between the host and its profile")
        runnable = [v["name"] for m in here["models"] for v in m["versions"] if v["runnable"]]
        ok(f"list: the same answer for all {sum(len(m['versions']) for m in here['models'])} "
           f"versions ({len(runnable)} runnable here: {', '.join(runnable[:6])}...)")
        for what in (["labels"], ["labels", "--json"]):
            a = run(vmm, "cpu-model", *what).stdout
            b = run(vmm, "cpu-model", *what, "--host-cpu-profile", prof).stdout
            if a != b or not a:
                raise AssertionError(f"{' '.join(what)} differs:\n{a}\nvs\n{b}")
        ok(f"labels: the same {len(a and json.loads(a))} labels")
        # the model the other KVM tests boot, if it runs here (any 64-bit host)
        model = "x86-64-v1-v1" if "x86-64-v1-v1" in runnable else runnable[0]
        common = ["--kernel", guest, "--memory", "64M", "--cpus", "2", "--cmdline", "exit=0",
                  "--cpu-model", model]
        run(vmm, *common, "--dump-cpuid", os.path.join(d, "a.cpuid"))
        run(vmm, *common, "--host-cpu-profile", prof, "--dump-cpuid", os.path.join(d, "b.cpuid"))
        a, b = open(os.path.join(d, "a.cpuid")).read(), open(os.path.join(d, "b.cpuid")).read()
        if a != b or not a:
            raise AssertionError("the guest's CPUID differs with --host-cpu-profile")
        ok(f"vmm --host-cpu-profile boots {model} with the same CPUID table")

        # 2. cut and mangled
        lines = text.splitlines(keepends=True)
        cut = os.path.join(d, "cut.profile")
        open(cut, "w").write("".join(lines[: len(lines) // 2]))
        mangled = os.path.join(d, "mangled.profile")
        open(mangled, "w").write(text.replace("\ncpuid 0x00000001 ", "\ncpuid 0x0000001 ", 1))
        bad_line = next(i for i, l in enumerate(lines, 1) if l.startswith("cpuid 0x00000001 "))
        for path, line, why in ((cut, len(lines) // 2, "ends before its 'end' line"),
                                (mangled, bad_line, "cpuid: expected six")):
            where = f"{path}:{line}: "
            r = run(vmm, "cpu-model", "list", "--host-cpu-profile", path, expect=2)
            if where not in r.stderr or why not in r.stderr:
                raise AssertionError(f"cpu-model list: {r.stderr!r} lacks {where!r} / {why!r}")
            r = run(vmm, *common, "--host-cpu-profile", path, expect=None)
            if r.returncode == 0 or where not in r.stderr or why not in r.stderr:
                raise AssertionError(f"vmm --host-cpu-profile {path}: exit {r.returncode}, "
                                     f"{r.stderr!r}")
            ok(f"refused by cpu-model and by vmm: {r.stderr.strip().splitlines()[-1]}")

        # 3. next to a raw dump
        if not os.path.isdir(HOSTS_DIR):
            print(f"note: no CPUID dumps at {HOSTS_DIR!r}: baseline/matrix with a dump not run")
            return 0
        dump = os.path.join(HOSTS_DIR, "amd-zen4-genoa-epyc-9654.txt")
        r = run(vmm, "cpu-model", "baseline", prof, dump)
        m = re.search(r"^baseline: (\S+)", r.stdout, re.M)
        if not m:
            raise AssertionError(r.stdout)
        run(vmm, "cpu-model", "matrix", prof, dump, "--newest")
        run(vmm, "cpu-model", "compare", prof, dump)
        ok(f"baseline of this host and Genoa: {m.group(1)}; matrix and compare take both")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)

"""Every bad input gives one clear line on stderr and a non-zero exit, never
a crash (a signal) and never a silent exit 0."""
import os
import shutil
import subprocess

from vmmtest import VMM, check, fail, run, skip, tmpdir

d = tmpdir()
notelf = os.path.join(d, "not-elf")
with open(notelf, "w") as f:
    f.write("this is not a kernel\n")
truncated = os.path.join(d, "truncated.elf")
with open(truncated, "wb") as f:
    f.write(b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x02\x00\x3e\x00")

cases = [
    (["--kernel", "/nonexistent/vmlinux"], r"kernel /nonexistent/vmlinux: No such file"),
    (["--kernel", notelf], r"not an ELF file"),
    (["--kernel", truncated], r"truncated ELF header|too short"),
    (["--kernel", "/bin/true"], r"no PVH entry note"),
    (["--kernel", d], r"not a regular file"),
    (["--memory", "12Q", "--kernel", "/bin/true"], r"--memory: size \"12Q\": unknown unit"),
    (["--memory", "abc", "--kernel", "/bin/true"], r"--memory: size \"abc\": not a number"),
    (["--memory", "-5", "--kernel", "/bin/true"], r"not a positive number"),
    (["--memory", "99999999999999999999G", "--kernel", "/bin/true"], r"--memory: size .*: too large"),
    (["--memory", "17179869184G", "--kernel", "/bin/true"], r"--memory: size .*: too large"),
    (["--cpus", "0", "--kernel", "/bin/true"], r"--cpus 0: must be between 1 and"),
    (["--cpus", "two", "--kernel", "/bin/true"], r"--cpus \"two\": not a number"),
    (["--bogus-option"], r"unknown option --bogus-option"),
    (["--kernel"], r"option --kernel needs a value"),
    ([], r"no --kernel given"),
    (["--serial", "tcp:1", "--kernel", "/bin/true"], r"--serial \"tcp:1\""),
    (["--machine", "pc-q35-9.2", "--kernel", "/bin/true"], r"machine type pc-q35-9.2: unknown"),
]

kvm_cases = [
    (["--cpu-model", "Nehalem", "--kernel", "/bin/true"],
     r"cpu model Nehalem-v\d+: host lacks CPUID\.01H:ECX\.pni \[bit 0\]"),
    (["--cpu-model", "NoSuchCPU", "--kernel", "/bin/true"], r"unknown cpu model NoSuchCPU"),
    (["--cpu-model", "x86-64-v1,+nosuchfeat", "--kernel", "/bin/true"], r"unknown feature 'nosuchfeat'"),
    (["--memory", "1M", "--kernel", "/bin/true"], r"too small .*at least 16 MiB"),
    (["--memory", "2T", "--kernel", "/bin/true"], r"too large .*at most 1024 GiB"),
    (["--memory", "600G", "--kernel", "/bin/true"], r"beyond the 39-bit physical address space"),
    (["--cpus", "4000", "--kernel", "/bin/true"], r"--cpus 4000: KVM on this host allows at most \d+"),
    (["--cpus", "300", "--kernel", "/bin/true"], r"--cpus 300: machine microvm-1.\d+ allows at most 254"),
]

from vmmtest import TESTGUEST
if TESTGUEST:
    kvm_cases.append((["--kernel", TESTGUEST, "--initrd", "/nonexistent/initrd"],
                      r"initrd /nonexistent/initrd: No such file"))
    kvm_cases.append((["--kernel", TESTGUEST, "--cmdline", "x" * 5000],
                      r"--cmdline: 5000 bytes, machine microvm-1.\d+ allows 4095"))

have_kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
if have_kvm:
    cases += kvm_cases
else:
    print(f"note: /dev/kvm unusable, {len(kvm_cases)} KVM-dependent cases not run")

import re
for args, pattern in cases:
    p = run(args, timeout=30)
    what = " ".join(args) or "(no arguments)"
    if p.returncode < 0:
        fail(f"vmm {what}: killed by signal {-p.returncode}")
    check(p.returncode != 0, f"vmm {what}: exit {p.returncode} (non-zero)")
    lines = [l for l in p.stderr.splitlines() if l.startswith("vmm: ") and "warning" not in l]
    if not lines or not re.search(pattern, lines[0]):
        fail(f"vmm {what}: stderr {p.stderr!r} does not match {pattern!r}")
    print(f"   {lines[0]}")

# No /dev/kvm, and no permission on it: simulated with a private /dev and an
# unprivileged user (both need root).
if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("setpriv"):
    p = subprocess.run(["unshare", "-m", "sh", "-c",
                        f"mount -t tmpfs none /dev && exec {VMM} --kernel /bin/true"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode != 0 and "/dev/kvm: not found" in p.stderr,
          f"missing /dev/kvm: {p.stderr.strip()}")
    if have_kvm and (os.stat("/dev/kvm").st_mode & 0o006) == 0:
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            VMM, "--kernel", "/bin/true"], capture_output=True, text=True,
                           timeout=30)
        check(p.returncode != 0 and "/dev/kvm: permission denied" in p.stderr,
              f"no permission on /dev/kvm: {p.stderr.strip()}")
else:
    print("note: not root: missing-/dev/kvm and permission cases not run")

shutil.rmtree(d)

"""Boots the Debian kernel (uncompressed vmlinux from linux-image-amd64) and
expects its first lines on the serial console: its version, our command line,
our e820 map and our MP table. On this project's paravirtual KVM the kernel
later stops on an instruction KVM cannot emulate: vmm must then report the
internal error and exit 125, not hang. On bare-metal KVM it panics without a
root fs and reboots (panic=-1): vmm reports the reset and exits 0.

Time: everything runs against one budget under meson's 180 s limit. Once the
lines it needs are there, the test waits for the end only while the kernel
keeps printing (silence for SILENT_S with vmm still running is a hang, a
failure); if the budget runs out first on a slow machine, it stops the guest
and says that the end was not reached on this run."""
import glob
import os
import subprocess
import sys
import time

from vmmtest import (BUILD_ROOT, SOURCE_ROOT, Guest, check, fail, require_installed,
                     require_kvm)

BUDGET_S = 165  # meson kills this test at 180 s
SILENT_S = 60   # a line every 0.1-5 s here, up to ~30 s apart on a loaded 2-core machine
start = time.monotonic()


def left():
    return BUDGET_S - (time.monotonic() - start)


require_kvm()
images = sorted(glob.glob("/boot/vmlinuz-*"))
require_installed(images, "a Debian kernel (/boot/vmlinuz-*)", "linux-image-amd64")
vmlinux = os.path.join(BUILD_ROOT, "tests", "vmlinux-" + os.path.basename(images[-1]))
if not os.path.exists(vmlinux):
    subprocess.run([os.path.join(SOURCE_ROOT, "scripts", "extract-vmlinux.sh"), images[-1],
                    vmlinux], check=True, timeout=max(10, left() - 60))

cmdline = "console=ttyS0 earlyprintk=ttyS0 panic=-1"
g = Guest(["--kernel", vmlinux, "--memory", "512M", "--cmdline", cmdline], name="linux")
m = g.wait_line(r"Linux version (\S+)", timeout=min(90, left()))
check(True, f"kernel says Linux version {m.group(1)} ({time.monotonic() - start:.0f} s)")
g.wait_line(r"Command line: " + cmdline, timeout=min(10, left()))
check(True, "kernel echoes the command line")
g.wait_line(r"BIOS-e820: \[mem 0x0000000000000000-0x000000000009fbff\] usable",
            timeout=min(10, left()))
g.wait_line(r"BIOS-e820: \[mem 0x0000000000100000-0x000000001fffffff\] usable",
            timeout=min(10, left()))
check(True, "kernel prints our e820 map")
g.wait_line(r"found SMP MP-table at \[mem 0x0009fc00-0x0009fc0f\]", timeout=min(20, left()))
check(True, "kernel finds our MP table")

# The end, watched for as long as the kernel shows signs of life.
last_line_at = time.monotonic()
while g.proc.poll() is None:
    if g.collect(1.0):
        last_line_at = time.monotonic()
    quiet = time.monotonic() - last_line_at
    if quiet > SILENT_S and g.proc.poll() is None:
        g.kill()
        fail(f"vmm neither exits nor prints: {quiet:.0f} s without a console line; last "
             "lines:\n" + "\n".join(g.lines[-10:]))
    if left() < 3:
        g.kill()
        print(f"note: the budget of {BUDGET_S} s ran out after {len(g.lines)} console lines "
              f"with the kernel still printing (last line {quiet:.0f} s ago); the kernel's end "
              "and vmm's exit status were not reached on this run (a slow or loaded machine)")
        check(True, "the kernel boots on vmm's hardware (end not reached within the budget)")
        sys.exit(0)
rc = g.wait(timeout=10)
print(f"vmm exit {rc} after {time.monotonic() - start:.0f} s; stderr: {g.stderr.strip()}")
if "KVM internal error" in g.stderr:
    check(rc == 125, "KVM internal error reported, exit status 125")
elif "reset" in g.stderr:
    check(rc == 0, "guest reset after panic reported, exit 0")
else:
    fail(f"vmm ended without a clear reason (exit {rc})")

"""Boots the Debian kernel (uncompressed vmlinux from linux-image-amd64) and
expects its first lines on the serial console within 90 s. On this project's
paravirtual KVM the kernel later stops on an instruction KVM cannot emulate:
vmm must then report the internal error and exit non-zero, not hang. On
bare-metal KVM it panics without a root fs and reboots (panic=-1): vmm
reports the reset and exits."""
import glob
import os
import subprocess

from vmmtest import BUILD_ROOT, SOURCE_ROOT, Guest, check, fail, require_kvm, skip

require_kvm()
images = sorted(glob.glob("/boot/vmlinuz-*"))
if not images:
    skip("no /boot/vmlinuz-*: install the Debian package linux-image-amd64")
vmlinux = os.path.join(BUILD_ROOT, "tests", "vmlinux-" + os.path.basename(images[-1]))
if not os.path.exists(vmlinux):
    subprocess.run([os.path.join(SOURCE_ROOT, "scripts", "extract-vmlinux.sh"), images[-1],
                    vmlinux], check=True, timeout=120)

cmdline = "console=ttyS0 earlyprintk=ttyS0 panic=-1"
g = Guest(["--kernel", vmlinux, "--memory", "512M", "--cmdline", cmdline], name="linux")
m = g.wait_line(r"Linux version (\S+)", timeout=90)
check(True, f"kernel says Linux version {m.group(1)}")
g.wait_line(r"Command line: " + cmdline, timeout=10)
check(True, "kernel echoes the command line")
g.wait_line(r"BIOS-e820: \[mem 0x0000000000000000-0x000000000009fbff\] usable", timeout=10)
g.wait_line(r"BIOS-e820: \[mem 0x0000000000100000-0x000000001fffffff\] usable", timeout=10)
check(True, "kernel prints our e820 map")
g.wait_line(r"found SMP MP-table at \[mem 0x0009fc00-0x0009fc0f\]", timeout=20)
check(True, "kernel finds our MP table")

rc = g.wait(timeout=120)
print(f"vmm exit {rc}; stderr: {g.stderr.strip()}")
if "KVM internal error" in g.stderr:
    check(rc == 125, "KVM internal error reported, exit status 125")
elif "reset" in g.stderr:
    check(rc == 0, "guest reset after panic reported, exit 0")
else:
    fail(f"vmm ended without a clear reason (exit {rc})")

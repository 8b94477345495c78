#!/usr/bin/env python3
"""virtio-blk throughput: vmm vs QEMU's virtio-blk-device, same test guest.

usage: python3 bench/blk-bench.py [--seconds S] [--size SIZE_MIB] [--repeat N] [--json]

Each side boots build/guest/testguest with `blkbench=MODE blk=SIZE runtime=S`
on a raw image in /var/tmp (host page cache, as both default to): the guest
keeps 8 requests in flight through one queue, 1 MiB sequential or 4 KiB
random, and prints operations and bytes over its own clock. Modes run in
the order seqwrite (which also fills the image), seqread, randwrite,
randread, each in a fresh VM, vmm and QEMU alternating. QEMU runs as
`qemu-system-x86_64 -M microvm,acpi=off -global virtio-mmio.force-legacy=false
 -drive file=IMG,format=raw,if=none -device virtio-blk-device` (its defaults:
cache=writeback, aio=threads). The median of --repeat runs is reported.
Not a test: prints a table and the vmm/QEMU ratios. --qemu-ram memfd gives
QEMU guest RAM like vmm's (a memfd, 4 KiB pages: this host has shmem huge
pages off), which isolates the device from the cost of copying into RAM.
--thp sets the host's transparent hugepages for shmem to advise for the run
(restored after): vmm's memfd RAM then gets 2 MiB pages as QEMU's anonymous
RAM does (root).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VMM = os.path.join(ROOT, "build", "vmm", "vmm")
GUEST = os.path.join(ROOT, "build", "guest", "testguest")
MODES = ["seqwrite", "seqread", "randwrite", "randread"]
LINE = re.compile(r"blkbench mode=(\w+) qd=(\d+) bs=(\d+) ops=(\d+) bytes=(\d+) ms=(\d+)")


def run_vmm(image, cmdline, timeout):
    return subprocess.run([VMM, "--kernel", GUEST, "--memory", "512M", "--serial", "stdio",
                           "--disk", f"path={image}", "--cmdline", cmdline],
                          capture_output=True, text=True, timeout=timeout)


QEMU_RAM = []  # --qemu-ram memfd: guest RAM in a memfd, as vmm keeps it


def run_qemu(image, cmdline, timeout):
    return subprocess.run(
        ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host,-arch-capabilities",
         "-M", "microvm,pit=on,pic=on,rtc=on,acpi=off", "-m", "512M", "-smp", "1",
         "-display", "none", "-nodefaults", "-no-reboot", "-serial", "stdio",
         "-device", "isa-debug-exit,iobase=0x501,iosize=2",
         "-global", "virtio-mmio.force-legacy=false",
         "-drive", f"id=d0,file={image},format=raw,if=none",
         "-device", "virtio-blk-device,drive=d0",
         "-kernel", GUEST, "-append", cmdline] + QEMU_RAM,
        capture_output=True, text=True, timeout=timeout)


def measure(runner, image, mode, size_mib, seconds):
    cmdline = f"blkbench={mode} blk={size_mib}M runtime={seconds} progress=0"
    p = runner(image, cmdline, seconds + 60)
    m = LINE.search(p.stdout)
    if not m:
        sys.exit(f"no blkbench line ({mode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    ops, nbytes, ms = int(m.group(4)), int(m.group(5)), int(m.group(6))
    return {"mbps": nbytes / ms / 1000, "iops": ops * 1000 / ms}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--size", type=int, default=256, help="MiB of disk the guest uses")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    ap.add_argument("--qemu-ram", choices=["anon", "memfd"], default="anon",
                    help="QEMU's guest RAM: its default (anonymous memory, transparent huge "
                         "pages) or a memfd without huge pages, like vmm's")
    ap.add_argument("--thp", action="store_true",
                    help="shmem transparent hugepages on (advise) for the run: vmm's RAM on "
                         "2 MiB pages like QEMU's default")
    a = ap.parse_args()
    thp = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
    if a.thp:
        before = open(thp).read().split("[")[1].split("]")[0]
        with open(thp, "w") as f:
            f.write("advise")
        try:
            run(a)
        finally:
            with open(thp, "w") as f:
                f.write(before)
    else:
        run(a)


def run(a):
    if a.qemu_ram == "memfd":
        QEMU_RAM.extend(["-object", "memory-backend-memfd,id=mem,size=512M,share=on",
                         "-machine", "memory-backend=mem"])
    results = {}
    sides = (("vmm", run_vmm), ("qemu", run_qemu))
    with tempfile.TemporaryDirectory(prefix="blk-bench-", dir="/var/tmp") as d:
        images = {}
        for name, _ in sides:
            images[name] = os.path.join(d, f"{name}.img")
            with open(images[name], "wb") as f:
                f.truncate(a.size << 20)
        for mode in a.modes.split(","):
            runs = {name: [] for name, _ in sides}
            for _ in range(a.repeat):  # alternate, so both see the same background load
                for name, runner in sides:
                    runs[name].append(measure(runner, images[name], mode, a.size, a.seconds))
            for name, _ in sides:
                results[(name, mode)] = {
                    k: statistics.median(r[k] for r in runs[name]) for k in ("mbps", "iops")}
    if a.json:
        print(json.dumps({f"{n}/{m}": v for (n, m), v in results.items()}))
        return
    print(f"{'mode':10} {'vmm MB/s':>10} {'QEMU MB/s':>10} {'vmm IOPS':>10} {'QEMU IOPS':>10} "
          f"{'ratio':>7}")
    for mode in a.modes.split(","):
        v, q = results[("vmm", mode)], results[("qemu", mode)]
        print(f"{mode:10} {v['mbps']:10.1f} {q['mbps']:10.1f} {v['iops']:10.0f} {q['iops']:10.0f} "
              f"{v['mbps'] / q['mbps']:7.2f}")


if __name__ == "__main__":
    main()

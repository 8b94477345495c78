#!/usr/bin/env python3
"""virtio-net throughput: vmm vs QEMU's virtio-net-device, same echo guest,
same tap set-up, in the same run.

usage: python3 bench/net-bench.py [--seconds S] [--sizes 60,1514] [--window W]
                                  [--repeat N] [--json]      (root: taps, namespaces)

A network namespace holds a tap (made here with `ip tuntap`, removed at the
end); each side boots build/guest/testguest with `net=echo` on it: vmm with
`--net tap=TAP`, QEMU with `-M microvm,acpi=off -netdev tap,ifname=TAP,
vhost=off -device virtio-net-device` (no vhost: the device model runs in
QEMU's process, as ours does in vmm's). On the host side of the tap,
bench/net-flood.c (compiled here with cc) keeps W frames in flight (a new
frame for each echo) for S seconds and counts echoes: frames per second through the
guest (each one crosses the device twice, in and out) and bytes per second
of echoed frames. Sizes are Ethernet frame sizes. Also the CPU time of the
thread that moves the frames (vmm's card thread, QEMU's main loop) per
echoed frame: on a shared, loaded machine a steadier comparison than the
rates. Runs alternate vmm and
QEMU (both see the same background load); the median of --repeat runs is
reported, with the vmm/QEMU ratio. Not a test.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VMM = os.path.join(ROOT, "build", "vmm", "vmm")
GUEST = os.path.join(ROOT, "build", "guest", "testguest")
FLOOD_SRC = os.path.join(ROOT, "bench", "net-flood.c")
FLOOD = []  # the compiled sender
MAC = "52:54:00:12:34:56"
TAP = "nb0"
CMDLINE = "net=echo progress=0"


def vmm_cmd():
    return [VMM, "--kernel", GUEST, "--memory", "256M", "--serial", "none",
            "--net", f"tap={TAP},mac={MAC}", "--cmdline", CMDLINE]


def qemu_cmd():
    return ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host,-arch-capabilities",
            "-M", "microvm,pit=on,pic=on,rtc=on,acpi=off", "-m", "256M", "-smp", "1",
            "-display", "none", "-nodefaults", "-no-reboot", "-serial", "none",
            "-device", "isa-debug-exit,iobase=0x501,iosize=2",
            "-global", "virtio-mmio.force-legacy=false",
            "-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no,vhost=off",
            "-device", f"virtio-net-device,netdev=n0,mac={MAC}",
            "-kernel", GUEST, "-append", CMDLINE]


def device_thread_cpu(pid, name):
    """CPU seconds of the thread that moves the frames: vmm's card thread
    ("net0"), QEMU's main loop (its first thread: virtio-net and the tap
    run there without vhost)."""
    ticks = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            st = f.read()
        comm = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        if (name and comm == name) or (not name and int(tid) == pid):
            return (int(fields[11]) + int(fields[12])) / ticks
    return float("nan")


def measure(ns, cmd, size, seconds, window):
    netns = ["ip", "netns", "exec", ns]
    vm = subprocess.Popen(netns + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        p = subprocess.run(netns + FLOOD + [TAP, MAC, str(seconds), str(size), str(window)],
                           capture_output=True, text=True, timeout=seconds + 90)
        cpu = device_thread_cpu(vm.pid, "net0" if cmd[0] == VMM else None)
    finally:
        vm.kill()
        err = vm.communicate()[1].decode(errors="replace")
    if p.returncode != 0:
        sys.exit(f"net-flood failed: {p.stderr}\n{err}")
    r = json.loads(p.stdout)
    if not r["echoes"]:
        sys.exit(f"no echoes from {cmd[0]}:\n{err[-2000:]}")
    return {"fps": r["echoes"] / r["seconds"], "mbps": r["bytes"] / r["seconds"] / 1e6,
            "lost": r["sent"] - r["echoes"], "cpu_us": cpu * 1e6 / r["echoes"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--sizes", default="60,1514")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("net-bench: needs root (a tap in a network namespace)")
    ns = f"netbench-{os.getpid()}"
    results = {}
    with tempfile.TemporaryDirectory(prefix="net-bench-") as d:
        FLOOD.append(os.path.join(d, "net-flood"))
        subprocess.run(["cc", "-O2", "-o", FLOOD[0], FLOOD_SRC], check=True)
        subprocess.run(["ip", "netns", "add", ns], check=True)
        try:
            run_all(a, ns, results)
        finally:
            subprocess.run(["ip", "netns", "del", ns])
    if a.json:
        print(json.dumps({f"{n}/{s}": v for (n, s), v in results.items()}))
        return
    print(f"{'frame':>6} {'vmm frames/s':>13} {'QEMU frames/s':>14} {'vmm MB/s':>9} "
          f"{'QEMU MB/s':>10} {'ratio':>6} {'vmm us/frame':>13} {'QEMU us/frame':>14}")
    for size in (int(x) for x in a.sizes.split(",")):
        v, q = results[("vmm", size)], results[("qemu", size)]
        print(f"{size:>6} {v['fps']:13.0f} {q['fps']:14.0f} {v['mbps']:9.1f} {q['mbps']:10.1f} "
              f"{v['fps'] / q['fps']:6.2f} {v['cpu_us']:13.2f} {q['cpu_us']:14.2f}")


def run_all(a, ns, results):
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
                   check=True)
    subprocess.run(["ip", "-n", ns, "tuntap", "add", "dev", TAP, "mode", "tap"], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", TAP, "up"], check=True)
    sides = (("vmm", vmm_cmd()), ("qemu", qemu_cmd()))
    for size in (int(x) for x in a.sizes.split(",")):
        runs = {name: [] for name, _ in sides}
        for _ in range(a.repeat):  # alternate: the same background load for both
            for name, cmd in sides:
                runs[name].append(measure(ns, cmd, size, a.seconds, a.window))
                time.sleep(0.2)
        for name, _ in sides:
            results[(name, size)] = {k: statistics.median(r[k] for r in runs[name])
                                     for k in ("fps", "mbps", "lost", "cpu_us")}


if __name__ == "__main__":
    main()

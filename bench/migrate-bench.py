#!/usr/bin/env python3
"""Live-migration benchmark: vmm against QEMU, same guests, same machine, one run.

For each workload (a guest and what it does) the bench migrates it under vmm
in each vmm configuration, and under Debian's qemu-system-x86_64 in each of
QEMU's configurations, all in the same run, interleaved, --repeat times each;
the table shows medians and compares vmm with QEMU's best configuration for
that workload (its lowest median total time; its lowest median downtime).

Workloads (the test guest's own verification runs on both sides and is
checked after every move: a single VERIFY-FAIL or errors= line fails the
bench loudly):
  touched-512M        1 GiB guest, 512 MiB written with random data, then 1 MiB/s
  touched-512M-mixed  the same with fill=mixed (compresses ~2.4x, like real memory)
  touched-2G          4 GiB guest, 2 GiB touched (random), then 1 MiB/s
  touched-2G-mixed
  veth-512M           touched-512M between two network namespaces over a veth pair
  linux-midboot       the Debian kernel (vmlinux) 1 GiB, migrated mid-boot
  local-1G, local-4G  same-host moves (vmm only): 512 MiB / 2 GiB touched
  disk-busy           1 GiB guest writing and re-verifying 16 MiB of a virtio-blk disk
                      without pause (8 requests in flight; a raw image in /var/tmp
                      both sides open: shared storage), QEMU as -M microvm with
                      virtio-blk-device: in-flight requests and the flush at the
                      stop are part of the downtime. After every move the image is
                      checked block by block from the host.
  touched-512M-tls    touched-512M inside TLS 1.3 with mutual x509 authentication
                      (certificates made here by certtool, QEMU's directory layout
                      for both VMMs), against the same guest in plaintext
vmm configurations: default (4 KiB pages, 1 connection), 2conn (connections=2),
hugepages (--memory ...,hugepages=on), huge-2conn (both), thp and thp-2conn
(4 KiB configuration with the host's transparent hugepages for shmem set to
advise for the run: vmm asks for them on its memfd RAM, as QEMU does on its
anonymous RAM), local (same host), tls and tls-2conn (--tls-creds / tls-creds).
QEMU configurations: max-bandwidth raised to 100 GB/s ("raised"), its defaults
("defaults"), multifd with 2 channels ("multifd2", bandwidth raised),
hugepages (memory-backend-memfd hugetlb=on, bandwidth raised; "huge"), and
TLS (tls-creds-x509 objects, bandwidth raised; "tls").

Also reported: peak RSS of each vmm process beyond guest RAM during the
migration (RssAnon + RssFile sampled every 5 ms; guest RAM is RssShmem or
hugetlb, not counted), and the load average before and after each workload
(2 cores here: anything above ~1 means other jobs shared the machine).

The machine's floor: for the workloads that fill memory with random data
(touched-512M, touched-2G) the bench first runs bench/floor.c (compiled here
with cc): the same number of bytes over loopback TCP, 1 and 2 connections,
from one process's memfd into another's memory that is already mapped, and
the time to map that much fresh 4 KiB memfd memory with 1 and 2 threads
(MADV_POPULATE_WRITE), and hugetlb memory. No migration over TCP here can be
faster than the first; no destination with 4 KiB RAM can be faster than the
second with both cores (it must map every page it receives). It also times
the transfer into fresh 4 KiB pages mapped ahead by two threads: vmm's own
mechanism without vmm, what its 4 KiB configurations can approach. The table ends
with those lower bounds next to the issue-10 targets, so a target below what
the machine allows is shown as such.

Hugepages: the bench adds what it needs to /proc/sys/vm/nr_hugepages (root),
touches every new page once (a freshly reserved page's first touch costs a
fault in the outer hypervisor on these nested machines, for vmm and QEMU
alike) and gives them back at the end.

usage: bench/migrate-bench.py [--build DIR] [--repeat N] [--json] [--workloads a,b]
       [--vmm-only] [--qemu-variants raised,defaults,multifd2,huge,tls]
       [--guest-extra OPTS]
--guest-extra appends test-guest options to every workload's command line
(e.g. selftest-corrupt, to see the guest-verification check fail the bench).
"""
import argparse
import contextlib
import glob
import json
import mmap
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MIB = 1 << 20

WORKLOADS = {
    "touched-512M": {"mem": 1024, "cmdline": "dirty=512M rate=1M progress=500", "floor": 512,
                     "vmm": ["default", "2conn", "hugepages", "huge-2conn", "thp", "thp-2conn"]},
    "touched-512M-mixed": {"mem": 1024, "cmdline": "dirty=512M rate=1M fill=mixed progress=500",
                           "vmm": ["default"]},
    "touched-2G": {"mem": 4096, "cmdline": "dirty=2G rate=1M progress=500", "floor": 2048,
                   "vmm": ["default", "2conn", "thp"]},
    "touched-2G-mixed": {"mem": 4096, "cmdline": "dirty=2G rate=1M fill=mixed progress=500",
                         "vmm": ["default"], "qemu": ["raised", "defaults", "multifd2"]},
    "veth-512M": {"mem": 1024, "cmdline": "dirty=512M rate=1M progress=500", "veth": True,
                  "vmm": ["default", "2conn"], "qemu": ["raised", "multifd2"]},
    "linux-midboot": {"mem": 1024, "linux": True, "vmm": ["default", "hugepages", "thp"]},
    "local-1G": {"mem": 1024, "cmdline": "dirty=512M rate=1M progress=500", "vmm": ["local"],
                 "qemu": []},
    "local-4G": {"mem": 4096, "cmdline": "dirty=2G rate=1M progress=500", "vmm": ["local"],
                 "qemu": []},
    "disk-busy": {"mem": 1024, "cmdline": "blk=16M progress=500", "disk": 16,
                  "vmm": ["default"], "qemu": ["raised", "multifd2"]},
    "touched-512M-tls": {"mem": 1024, "cmdline": "dirty=512M rate=1M progress=500",
                         "vmm": ["default", "tls", "tls-2conn"], "qemu": ["raised", "tls"]},
}
# "tls" only where a workload asks for it (its own QEMU list)
QEMU_VARIANTS = ["raised", "defaults", "multifd2", "huge"]
CREDS = None  # {role: dir}, made once per run when a TLS configuration runs


def tls_creds():
    global CREDS
    if CREDS is None:
        sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
        import tlscerts
        CREDS = tlscerts.make_all(tempfile.mkdtemp(prefix="vmm-bench-certs-"))
    return CREDS
LINUX_CMDLINE = "console=ttyS0 earlyprintk=ttyS0 panic=-1"
LINUX_MIGRATE_AFTER = 6.0  # seconds after "Linux version": mid-boot, before it stops


class BenchError(Exception):
    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Json:
    """A JSON-lines control connection (vmm's API or QEMU's QMP)."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise BenchError(f"no control socket at {path}")
                time.sleep(0.02)
        self.f = self.s.makefile("rwb")
        json.loads(self.f.readline())  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "event" in r:
                continue
            if "error" in r:
                raise BenchError(f"{name}: {r['error']}")
            return r["return"]

    def close(self):
        self.s.close()


def wait_status(api, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = api.cmd("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        time.sleep(0.01)
    raise BenchError("migration did not finish")


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_file(path, pattern, timeout=120, start=0):
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = rx.search(read(path), start)
        if m:
            return m
        time.sleep(0.05)
    raise BenchError(f"{path}: no '{pattern}' within {timeout}s; last lines:\n"
                     + "\n".join(read(path).splitlines()[-5:]))


# The test guest's progress lines: a memory sweep, or a lap of its disk
# (group 4: sweeps or laps done, group 5: errors found).
PROGRESS = re.compile(r"progress vcpu=(\d+) t=(\d+) writes=(\d+) sweeps=(\d+) errors=(\d+)")
BLK = re.compile(r"blk t=(\d+) writes=(\d+) reads=(\d+) laps=(\d+) errors=(\d+)")


def check_guest(log, who, progress=PROGRESS):
    """The test guest's own verification: any failure fails the bench."""
    text = read(log)
    bad = [l for l in text.splitlines() if "VERIFY-FAIL" in l or "request failed" in l]
    errs = [m.group(0) for m in progress.finditer(text) if m.group(5) != "0"]
    if bad or errs:
        raise BenchError(f"GUEST VERIFICATION FAILED ({who}): " + "; ".join((bad + errs)[:3]))


def verified_after_move(src_log, dst_log, who, progress=PROGRESS, timeout=60):
    """Waits for two more full verifications (sweeps of memory, or laps of
    the disk) on the destination."""
    src = [m for m in progress.finditer(read(src_log))]
    if not src:
        raise BenchError(f"{who}: the source guest never reported progress")
    base = int(src[-1].group(4))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dst = [m for m in progress.finditer(read(dst_log))]
        if dst and int(dst[-1].group(4)) >= base + 2:
            break
        time.sleep(0.1)
    else:
        raise BenchError(f"{who}: the guest did not verify a full sweep after the move")
    check_guest(src_log, who + " source", progress)
    check_guest(dst_log, who + " destination", progress)


@contextlib.contextmanager
def disk_image(wl):
    """A fresh raw image for a disk workload, on a real filesystem (/var/tmp:
    the flush at the stop reaches it), removed afterwards."""
    if not wl.get("disk"):
        yield
        return
    fd, path = tempfile.mkstemp(prefix="vmm-bench-disk-", suffix=".img", dir="/var/tmp")
    try:
        os.ftruncate(fd, (wl["disk"] + 1) * MIB)
        os.close(fd)
        wl["image"] = path
        yield
    finally:
        os.unlink(path)


def check_image(wl, who):
    """Every block the guest wrote, read from the host: number, generation, pattern."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    from blkimage import bad_blocks
    bad, _ = bad_blocks(wl["image"], wl["disk"] * MIB)
    if bad:
        raise BenchError(f"DISK IMAGE DAMAGED after {who}: {len(bad)} bad blocks, e.g. "
                         + "; ".join(bad[:3]))


class RssSampler:
    """Peak RssAnon+RssFile (the VMM's own memory, not guest RAM) of pids."""

    def __init__(self, pids):
        self.pids = pids
        self.peak = {p: 0 for p in pids}
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _sample(self):
        for p in self.pids:
            try:
                st = open(f"/proc/{p}/status").read()
            except OSError:
                continue
            kb = sum(int(m.group(1)) for m in re.finditer(r"^Rss(?:Anon|File):\s+(\d+)", st, re.M))
            self.peak[p] = max(self.peak[p], kb * 1024)

    def _run(self):
        while not self.stop.is_set():
            self._sample()
            time.sleep(0.005)

    def done(self):
        self.stop.set()
        self.t.join()
        self._sample()
        return max(self.peak.values()) if self.peak else 0


def kill(*procs):
    for p in procs:
        if p and p.poll() is None:
            p.kill()
            p.wait()


def loadavg():
    return os.getloadavg()[0]


# ---- the machine: hugepages, namespaces, the Debian kernel ----

HUGEPAGES = "/proc/sys/vm/nr_hugepages"


@contextlib.contextmanager
def hugepage_pool(pages):
    """Adds `pages` to the pool, touches them once, gives them back."""
    if pages == 0:
        yield False
        return
    avail = int(re.search(r"MemAvailable:\s+(\d+)", open("/proc/meminfo").read()).group(1))
    if avail * 1024 < pages * 2 * MIB + 8 * 1024 * MIB:
        print(f"bench: {avail >> 10} MiB available: not reserving {pages * 2} MiB of "
              "hugepages (other jobs need memory too)", file=sys.stderr)
        yield False
        return
    if os.geteuid() != 0:
        print(f"bench: not root: no hugepages ({HUGEPAGES})", file=sys.stderr)
        yield False
        return
    before = int(open(HUGEPAGES).read())
    with open(HUGEPAGES, "w") as f:
        f.write(str(before + pages))
    got = int(open(HUGEPAGES).read()) - before
    try:
        if got < pages:
            print(f"bench: the hugepage pool grew by {got} of {pages} pages only",
                  file=sys.stderr)
            yield False
            return
        warm_pool(got)
        yield True
    finally:
        with open(HUGEPAGES, "w") as f:
            f.write(str(max(0, int(open(HUGEPAGES).read()) - got)))


FLOOR_SRC = os.path.join(HERE, "floor.c")


def machine_floor(mib, repeat, tmp):
    """bench/floor.c's lower bounds for moving `mib` MiB here (milliseconds)."""
    exe = os.path.join(tmp, "floor")
    subprocess.run(["cc", "-O2", "-pthread", "-o", exe, FLOOR_SRC], check=True)
    p = subprocess.run([exe, str(mib), str(repeat)], capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        raise BenchError(f"bench/floor.c failed: {p.stderr.strip()}")
    return json.loads(p.stdout)


def warm_pool(pages):
    """Touches every free pool page once (a hugetlb memfd of that size)."""
    fd = os.memfd_create("warm", os.MFD_HUGETLB)
    try:
        os.ftruncate(fd, pages * 2 * MIB)
        m = mmap.mmap(fd, pages * 2 * MIB)
        for off in range(0, pages * 2 * MIB, 2 * MIB):
            m[off] = 1
        m.close()
    finally:
        os.close(fd)


class Veth:
    """Two network namespaces joined by a veth pair (192.0.2.1 <-> .2)."""

    def __init__(self):
        pid = os.getpid()
        self.a, self.b = f"vmmb-a-{pid}", f"vmmb-b-{pid}"
        va, vb = f"vba{pid % 100000}", f"vbb{pid % 100000}"
        cmds = [["netns", "add", self.a], ["netns", "add", self.b],
                ["link", "add", va, "type", "veth", "peer", "name", vb],
                ["link", "set", va, "netns", self.a], ["link", "set", vb, "netns", self.b],
                ["-n", self.a, "addr", "add", "192.0.2.1/30", "dev", va],
                ["-n", self.b, "addr", "add", "192.0.2.2/30", "dev", vb],
                ["-n", self.a, "link", "set", va, "up"], ["-n", self.b, "link", "set", vb, "up"],
                ["-n", self.a, "link", "set", "lo", "up"], ["-n", self.b, "link", "set", "lo", "up"]]
        try:
            for c in cmds:
                subprocess.run(["ip"] + c, check=True, capture_output=True)
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            self.close()
            raise BenchError(f"cannot make network namespaces: {e}")

    def close(self):
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def debian_vmlinux(build):
    images = sorted(glob.glob("/boot/vmlinuz-*"))
    if not images:
        raise BenchError("no /boot/vmlinuz-*: install linux-image-amd64")
    out = os.path.join(build, "tests", "vmlinux-" + os.path.basename(images[-1]))
    if not os.path.exists(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run([os.path.join(ROOT, "scripts", "extract-vmlinux.sh"), images[-1], out],
                       check=True, timeout=300)
    return out


# ---- one migration under vmm ----

THP_SHMEM = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"


@contextlib.contextmanager
def thp_shmem(on):
    """For vmm's thp configurations: the host's transparent hugepages for
    shmem set to advise (vmm asks for them on its memfd RAM) for the run,
    restored after. QEMU's anonymous RAM is governed by .../enabled
    (madvise here, and QEMU asks), which stays as it is."""
    if not on:
        yield
        return
    if os.geteuid() != 0 or not os.path.exists(THP_SHMEM):
        raise BenchError(f"thp: needs root and {THP_SHMEM}")
    before = open(THP_SHMEM).read().split("[")[1].split("]")[0]
    with open(THP_SHMEM, "w") as f:
        f.write("advise")
    try:
        yield
    finally:
        with open(THP_SHMEM, "w") as f:
            f.write(before)


def run_vmm(exe, guest, wl, cfg, tmp, veth):
    with thp_shmem(cfg.startswith("thp")):
        return run_vmm_once(exe, guest, wl, cfg, tmp, veth)


def run_vmm_once(exe, guest, wl, cfg, tmp, veth):
    mem = f"{wl['mem']}M" + (",hugepages=on" if cfg in ("hugepages", "huge-2conn") else "")
    kernel = wl.get("kernel", guest)
    cmdline = LINUX_CMDLINE if wl.get("linux") else wl["cmdline"]
    common = [exe, "--kernel", kernel, "--memory", mem, "--cpus", "1", "--cmdline", cmdline]
    if wl.get("image"):
        common += ["--disk", f"path={wl['image']}"]
    local = cfg == "local"
    pre_a = ["ip", "netns", "exec", veth.a] if veth else []
    pre_b = ["ip", "netns", "exec", veth.b] if veth else []
    if local:
        uri = f"unix:{tmp}/mig.sock"
    elif veth:
        uri = f"tcp:192.0.2.2:{free_port()}"
    else:
        uri = f"tcp:127.0.0.1:{free_port()}"
    slog, dlog = os.path.join(tmp, "vmm-src.log"), os.path.join(tmp, "vmm-dst.log")
    src = subprocess.Popen(pre_a + common + ["--serial", f"file:{slog}", "--api-socket",
                                             os.path.join(tmp, "vmm-src.sock")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dst = None
    try:
        settle(slog, wl)
        tls = ["--tls-creds", tls_creds()["dst"]] if cfg.startswith("tls") else []
        dst = subprocess.Popen(pre_b + common + ["--serial", f"file:{dlog}", "--incoming", uri,
                                                 "--api-socket", os.path.join(tmp, "vmm-dst.sock")]
                               + tls, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        Json(os.path.join(tmp, "vmm-dst.sock")).close()
        api = Json(os.path.join(tmp, "vmm-src.sock"))
        if cfg in ("2conn", "huge-2conn", "tls-2conn", "thp-2conn"):
            api.cmd("migrate-set-parameters", connections=2)
        if tls:
            api.cmd("migrate-set-parameters", **{"tls-creds": tls_creds()["src"],
                                                 "tls-hostname": "localhost"})
        rss = RssSampler([src.pid, dst.pid])
        if local:
            api.cmd("migrate", uri=uri, local=True)
        else:
            api.cmd("migrate", uri=uri)
        info = wait_status(api)
        peak = rss.done()
        if info["status"] != "completed":
            raise BenchError(f"vmm {cfg} migration {info['status']}: {info.get('error-desc')}")
        if tls and not info.get("tls", {}).get("encrypted"):
            raise BenchError(f"vmm {cfg}: the TLS configuration ran without TLS")
        after_move(slog, dlog, wl, f"vmm {cfg}")
        return {"total_ms": info["total-time"], "downtime_ms": info["downtime-us"] / 1000.0,
                "bytes": info["ram"]["transferred"], "rss_mib": peak / MIB,
                "compression": info.get("compression"), "reason": info.get("compression-reason")}
    finally:
        kill(src, dst)


def settle(log, wl):
    if wl.get("linux"):
        wait_file(log, r"Linux version", timeout=120)
        time.sleep(LINUX_MIGRATE_AFTER)
        return
    if wl.get("disk"):  # a whole lap written and verified, the next under way
        wait_file(log, r"blk t=\d+ writes=\d+ reads=\d+ laps=[1-9]", timeout=120)
        return
    wait_file(log, r"dirty vcpu=0", timeout=300)  # the fill is done
    wait_file(log, r"progress vcpu=0 .* sweeps=[1-9]", timeout=60)


def after_move(slog, dlog, wl, who):
    if wl.get("linux"):
        # The kernel goes on printing at the destination (it stops later on
        # an instruction this KVM cannot emulate, wherever it runs).
        before = len(read(dlog))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(read(dlog)) == before:
            time.sleep(0.1)
        if len(read(dlog)) == before:
            raise BenchError(f"{who}: the kernel printed nothing after the move")
        return
    verified_after_move(slog, dlog, who, BLK if wl.get("disk") else PROGRESS)


# ---- one migration under QEMU ----

def run_qemu(exe, guest, wl, variant, tmp, veth):
    kernel = wl.get("kernel", guest)
    cmdline = LINUX_CMDLINE if wl.get("linux") else wl["cmdline"]
    mem = wl["mem"]
    common = [exe, "-enable-kvm", "-cpu", "host,-arch-capabilities", "-m", f"{mem}M", "-smp",
              "1", "-display", "none", "-nodefaults", "-no-reboot", "-kernel", kernel,
              "-append", cmdline or " "]
    if wl.get("image"):  # virtio-mmio, as vmm's machine has it
        common += ["-M", "microvm,pit=on,pic=on,rtc=on,acpi=off",
                   "-global", "virtio-mmio.force-legacy=false",
                   "-drive", f"id=d0,file={wl['image']},format=raw,if=none",
                   "-device", "virtio-blk-device,drive=d0"]
    elif variant == "huge":
        common += ["-object", f"memory-backend-memfd,id=ram,size={mem}M,hugetlb=on,"
                   "hugetlbsize=2M,share=on", "-M", "pc,memory-backend=ram"]
    else:
        common += ["-M", "pc"]
    pre_a = ["ip", "netns", "exec", veth.a] if veth else []
    pre_b = ["ip", "netns", "exec", veth.b] if veth else []
    host = "192.0.2.2" if veth else "127.0.0.1"
    port = free_port()
    tls = variant == "tls"
    src_tls = ["-object", f"tls-creds-x509,id=tls0,dir={tls_creds()['src']},endpoint=client"] \
        if tls else []
    dst_tls = ["-object", f"tls-creds-x509,id=tls0,dir={tls_creds()['dst']},endpoint=server,"
               "verify-peer=on"] if tls else []
    slog, dlog = os.path.join(tmp, "qemu-src.log"), os.path.join(tmp, "qemu-dst.log")
    ssock, dsock = os.path.join(tmp, "qemu-src.sock"), os.path.join(tmp, "qemu-dst.sock")
    src = subprocess.Popen(pre_a + common + src_tls + ["-serial", f"file:{slog}", "-qmp",
                                                       f"unix:{ssock},server=on,wait=off"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dst = None
    try:
        settle(slog, wl)
        incoming = "defer" if variant in ("multifd2", "tls") else f"tcp:{host}:{port}"
        dst = subprocess.Popen(pre_b + common + dst_tls + ["-serial", f"file:{dlog}",
                                                           "-incoming", incoming,
                                                 "-qmp", f"unix:{dsock},server=on,wait=off"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        api_dst = Json(dsock)
        api = Json(ssock)
        if variant == "multifd2":
            for a in (api, api_dst):
                a.cmd("migrate-set-capabilities",
                      capabilities=[{"capability": "multifd", "state": True}])
                a.cmd("migrate-set-parameters", **{"multifd-channels": 2})
            api_dst.cmd("migrate-incoming", uri=f"tcp:{host}:{port}")
        if tls:  # QEMU's TLS destination: parameters first, then listen
            api_dst.cmd("migrate-set-parameters", **{"tls-creds": "tls0"})
            api_dst.cmd("migrate-incoming", uri=f"tcp:{host}:{port}")
            api.cmd("migrate-set-parameters", **{"tls-creds": "tls0",
                                                 "tls-hostname": "localhost"})
        if variant != "defaults":
            api.cmd("migrate-set-parameters", **{"max-bandwidth": 100 * 1000 * 1000 * 1000,
                                                 "downtime-limit": 300})
        rss = RssSampler([src.pid, dst.pid])
        api.cmd("migrate", uri=f"tcp:{host}:{port}")
        info = wait_status(api)
        peak = rss.done()
        if info["status"] != "completed":
            raise BenchError(f"QEMU {variant} migration {info['status']}: "
                             f"{info.get('error-desc')}")
        after_move(slog, dlog, wl, f"QEMU {variant}")
        return {"total_ms": info["total-time"], "downtime_ms": float(info["downtime"]),
                "bytes": info["ram"]["transferred"], "rss_mib": peak / MIB}
    finally:
        kill(src, dst)


def median_of(runs):
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    out = {k: statistics.median(r[k] for r in runs) for k in keys}
    for k in ("compression", "reason"):
        if k in runs[0]:
            out[k] = runs[-1][k]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--vmm-only", action="store_true")
    ap.add_argument("--qemu-variants", default=",".join(QEMU_VARIANTS + ["tls"]))
    ap.add_argument("--guest-extra", default="",
                    help="test-guest options appended to every workload (e.g. selftest-corrupt)")
    a = ap.parse_args()
    vmm = os.path.join(a.build, "vmm", "vmm")
    guest = os.path.join(a.build, "guest", "testguest")
    qemu = shutil.which("qemu-system-x86_64")
    for what, path in (("vmm", vmm), ("test guest", guest)):
        if not os.path.exists(path):
            sys.exit(f"bench: {what} not built at {path} (run scripts/setup.sh)")
    if not qemu and not a.vmm_only:
        sys.exit("bench: qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        sys.exit("bench: /dev/kvm is not usable here")
    names = [n for n in a.workloads.split(",") if n]
    for n in names:
        if n not in WORKLOADS:
            sys.exit(f"bench: unknown workload {n} (one of {', '.join(WORKLOADS)})")
    variants = [v for v in a.qemu_variants.split(",") if v]

    # Hugepages for the pair of guests of one workload that use them, held
    # only while that workload runs (the machine is shared).
    def huge_pages_needed(wl):
        uses = "hugepages" in wl["vmm"] or "huge-2conn" in wl["vmm"] or (
            not a.vmm_only and "huge" in wl.get("qemu", QEMU_VARIANTS) and "huge" in variants)
        return wl["mem"] + 16 if uses else 0  # two guests of mem/2 pages

    results = {}
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    for name in names:
        wl = dict(WORKLOADS[name])
        if "cmdline" in wl:
            wl["cmdline"] = " ".join(x for x in (wl["cmdline"], a.guest_extra) if x)
        if wl.get("linux"):
            wl["kernel"] = debian_vmlinux(a.build)
        veth = Veth() if wl.get("veth") else None
        try:
            with hugepage_pool(huge_pages_needed(wl)) as have_huge:
                floor = None
                if wl.get("floor"):
                    with tempfile.TemporaryDirectory(prefix="vmm-bench-floor-") as tmp:
                        floor = machine_floor(wl["floor"], a.repeat, tmp)
                    print(f"  {name} floor: {floor}", file=sys.stderr)
                load_before = loadavg()
                cfgs = [c for c in wl["vmm"] if "huge" not in c or have_huge]
                qvars = [] if a.vmm_only else [v for v in wl.get("qemu", QEMU_VARIANTS)
                                               if v in variants and (v != "huge" or have_huge)]
                runs = {("vmm", c): [] for c in cfgs}
                runs.update({("qemu", v): [] for v in qvars})
                for _ in range(a.repeat):
                    for (side, c) in runs:
                        with tempfile.TemporaryDirectory(prefix="vmm-bench-") as tmp, \
                                disk_image(wl):
                            fn = run_vmm if side == "vmm" else run_qemu
                            exe = vmm if side == "vmm" else qemu
                            r = fn(exe, guest, wl, c, tmp, veth)
                            if wl.get("disk"):  # both processes are gone
                                check_image(wl, f"{side} {c}")
                            runs[(side, c)].append(r)
                            print(f"  {name} {side} {c}: {r['total_ms']:.0f} ms, downtime "
                                  f"{r['downtime_ms']:.1f} ms, rss {r['rss_mib']:.0f} MiB, "
                                  f"load {loadavg():.1f}", file=sys.stderr)
                med = {f"{s}:{c}": median_of(r) for (s, c), r in runs.items()}
                results[name] = {"medians": med, "load_before": load_before, "floor": floor,
                                 "load_after": loadavg(), "memory_mib": wl["mem"],
                                 "guest": "linux" if wl.get("linux") else wl["cmdline"],
                                 "runs": {f"{s}:{c}": r for (s, c), r in runs.items()}}
        finally:
            if veth:
                veth.close()

    if a.json:
        print(json.dumps({"benchmark": "live-migration", "repeat": a.repeat, "started": started,
                          "qemu": subprocess.run([qemu, "--version"], capture_output=True,
                                                 text=True).stdout.splitlines()[0] if qemu else None,
                          "workloads": results}, indent=2))
        return
    print(f"live migration, vmm vs QEMU, median of {a.repeat} runs, started {started}")
    print("QEMU's = its best configuration for the workload (lowest median total; lowest "
          "median downtime)")
    hdr = (f"{'workload':<19} {'vmm config':<10} {'total ms':>9} {'downtime':>9} {'MB sent':>8} "
           f"{'rss MiB':>7} {'QEMU total':>10} {'(best)':<9} {'QEMU down':>9} {'ratio':>6} "
           f"{'load':>9}")
    print(hdr)
    for name, r in results.items():
        med = r["medians"]
        q = {k.split(":")[1]: v for k, v in med.items() if k.startswith("qemu:")}
        best_t = min(q.items(), key=lambda kv: kv[1]["total_ms"]) if q else None
        best_d = min(v["downtime_ms"] for v in q.values()) if q else None
        for k, v in med.items():
            if not k.startswith("vmm:"):
                continue
            ratio = f"{v['total_ms'] / best_t[1]['total_ms']:.2f}" if best_t else "-"
            qt = f"{best_t[1]['total_ms']:.0f}" if best_t else "-"
            qn = best_t[0] if best_t else ""
            qd = f"{best_d:.1f}" if best_d is not None else "-"
            print(f"{name:<19} {k[4:]:<10} {v['total_ms']:>9.0f} {v['downtime_ms']:>9.1f} "
                  f"{v['bytes'] / 1e6:>8.1f} {v['rss_mib']:>7.0f} {qt:>10} {qn:<9} {qd:>9} "
                  f"{ratio:>6} {r['load_before']:>4.1f}/{r['load_after']:<4.1f}")
        for qn, v in q.items():  # (QEMU's RSS holds its guest RAM: anonymous memory)
            print(f"{'':<19} {'  QEMU ' + qn:<10} {v['total_ms']:>9.0f} {v['downtime_ms']:>9.1f} "
                  f"{v['bytes'] / 1e6:>8.1f} {'':>7}")
    for name, r in results.items():
        print_floor(name, r)
    loaded = [n for n, r in results.items() if max(r["load_before"], r["load_after"]) > 1.5]
    if loaded:
        print(f"note: the machine was loaded (load average > 1.5 on 2 cores) during: "
              f"{', '.join(loaded)}: other jobs shared the CPUs")


# Issue 10's targets, as multiples of QEMU's best total, by vmm page size.
# vmm's best configuration of that page size counts.
TARGETS = (("4 KiB pages", ("default", "2conn"), 0.5),
           ("hugepages", ("hugepages", "huge-2conn"), 0.2))


def print_floor(name, r):
    f = r.get("floor")
    if not f:
        return
    q = [v["total_ms"] for k, v in r["medians"].items() if k.startswith("qemu:")]
    print(f"{name}: this machine's floor for {f['mib']} MiB over loopback TCP (bench/floor.c): "
          f"{f['copy2']:.0f} ms into mapped memory over 2 connections ({f['copy1']:.0f} over "
          f"1); mapping it as fresh 4 KiB pages takes {f['populate4k_2t']:.0f} ms of both cores "
          f"({f['populate4k_1t']:.0f} of one)"
          + (f", as hugepages {f['populate2m']:.0f} ms" if f.get("populate2m") else "")
          + f"; into fresh 4 KiB pages mapped ahead by 2 threads (vmm's mechanism, bare): "
          f"{min(f['fresh1'], f['fresh2']):.0f} ms")
    floors = {"4 KiB pages": max(f["copy2"], f["populate4k_2t"]), "hugepages": f["copy2"]}
    for what, cfgs, x in TARGETS:
        have = [(r["medians"][f"vmm:{c}"], c) for c in cfgs if f"vmm:{c}" in r["medians"]]
        if not q or not have:
            continue
        v, cfg = min(have, key=lambda vc: vc[0]["total_ms"])
        target, lower = x * min(q), floors[what]
        verdict = ("met" if v["total_ms"] <= target else
                   "not met; the target is below this machine's floor" if target < lower else
                   "not met")
        print(f"  {what}: target <= {x} x QEMU's best = {target:.0f} ms; floor {lower:.0f} ms; "
              f"vmm {cfg} {v['total_ms']:.0f} ms ({v['total_ms'] / lower:.2f} x the floor): "
              f"{verdict}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        sys.exit(f"bench: FAILED: {e}")

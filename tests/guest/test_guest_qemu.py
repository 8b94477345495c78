#!/usr/bin/python3
"""Boots the test guest (guest/testguest) under QEMU/KVM and checks what it prints.

usage: test_guest_qemu.py TESTGUEST CPUID_HOST

Exit 0 when all cases pass, 1 on a failure, 77 (meson's "skipped") without
a usable /dev/kvm or, run by hand, without qemu-system-x86_64. Under
scripts/test.sh (VMM_TEST_STRICT=1) a missing QEMU is a failure: setup.sh
installs it for the tests. Every QEMU run has a timeout.
Python 3 standard library only.
"""

import os
import re
import select
import shutil
import subprocess
import sys
import time

QEMU = "qemu-system-x86_64"
# The project's reference command line (see guest/README.md); -smp varies.
QEMU_ARGS = ["-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", "pc", "-m", "512M",
             "-display", "none", "-nodefaults", "-no-reboot", "-serial", "stdio",
             "-device", "isa-debug-exit,iobase=0x501,iosize=2"]
RUN_TIMEOUT = 30
HEARTBEAT_LATE_MS = 1000

CPUID_RE = re.compile(r"^cpuid\[(\w+)\] (0x[0-9a-f]{8}) (0x[0-9a-f]{8}) "
                      r"(0x[0-9a-f]{8}) (0x[0-9a-f]{8}) (0x[0-9a-f]{8}) (0x[0-9a-f]{8})$")


class Failure(Exception):
    pass


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(77)


def check_platform():
    if not shutil.which(QEMU):
        why = f"{QEMU} not found (Debian package qemu-system-x86; scripts/setup.sh --for-tests installs it)"
        if os.environ.get("VMM_TEST_STRICT") == "1":
            print(f"FAIL: {why}; VMM_TEST_STRICT=1 (scripts/test.sh) makes this a failure")
            sys.exit(1)
        skip(why)
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        os.close(fd)
    except OSError as e:
        skip(f"/dev/kvm not usable: {e.strerror}")


class Run:
    """One QEMU boot: output lines, exit code, wall time to the ready line."""

    def __init__(self, guest, cmdline, smp="2", timeout=RUN_TIMEOUT, machine="pc", stop_on=None,
                 extra=(), prefix=()):
        """stop_on: a regex; QEMU is killed after the first line matching it.
        prefix: e.g. ip netns exec NS (QEMU runs in that namespace)."""
        self.cmdline = cmdline
        self.stopped = False
        args = list(QEMU_ARGS)
        args[args.index("-M") + 1] = machine
        argv = list(prefix) + [QEMU] + args + ["-smp", smp, "-kernel", guest, "-append",
                                               cmdline] + list(extra)
        start = time.monotonic()
        deadline = start + timeout
        self.ready_wall = None
        self.timed_out = False
        self.lines = []
        pending = b""
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL) as p:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    p.kill()
                    self.timed_out = True
                    break
                if not select.select([p.stdout], [], [], left)[0]:
                    continue
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                pending += chunk
                while b"\n" in pending:
                    raw, pending = pending.split(b"\n", 1)
                    self._add(raw, start)
                    if stop_on and re.fullmatch(stop_on, self.lines[-1]):
                        self.stopped = True
                if self.stopped:
                    p.kill()
                    break
            if pending:
                self._add(pending, start)
            p.wait()
        self.code = p.returncode
        self.wall = time.monotonic() - start

    def _add(self, raw, start):
        line = raw.decode(errors="replace").replace("\r", "")
        if line.startswith("testguest: ready") and self.ready_wall is None:
            self.ready_wall = time.monotonic() - start
        self.lines.append(line)

    def dump(self):
        return "\n".join("    | " + l for l in self.lines[-40:])

    def fail(self, msg):
        raise Failure(f"{msg}\n  cmdline: {self.cmdline!r}, qemu exit code {self.code}"
                      f"{' (timed out)' if self.timed_out else ''}\n{self.dump()}")

    def expect_code(self, status):
        want = (status << 1) | 1  # isa-debug-exit
        if self.timed_out or self.code != want:
            self.fail(f"expected guest status {status} (qemu exit code {want})")

    def find(self, pattern):
        rx = re.compile(pattern)
        return [m for m in (rx.fullmatch(l) for l in self.lines) if m]

    def expect(self, pattern, count=None):
        found = self.find(pattern)
        if not found or (count is not None and len(found) != count):
            self.fail(f"expected {count if count is not None else 'some'} line(s) "
                      f"matching {pattern!r}, found {len(found)}")
        return found


def check_boot(r, ncpus):
    b = r.expect(r'testguest: boot cpus=(\d+) mem=(\d+)MiB cmdline="(.*)"', 1)[0]
    if int(b.group(1)) != ncpus:
        r.fail(f"boot line says cpus={b.group(1)}, expected {ncpus}")
    if not 500 <= int(b.group(2)) <= 512:
        r.fail(f"boot line says mem={b.group(2)}MiB for -m 512M")
    if b.group(3) != r.cmdline:
        r.fail(f"boot line cmdline {b.group(3)!r} != {r.cmdline!r}")
    for i in range(ncpus):
        r.expect(rf"testguest: vcpu {i} apic=\d+ online", 1)
    return int(r.expect(r"testguest: ready t=(\d+)", 1)[0].group(1))


def case_exit(guest, _):
    r = Run(guest, "exit=5")
    t = check_boot(r, 2)
    r.expect(r"testguest: exit status=5", 1)
    r.expect_code(5)
    return f"exit=5 -> qemu exit code 11; ready t={t} ms guest, {r.ready_wall:.2f} s wall"


def case_microvm(guest, _):
    # No SeaBIOS: qboot, then the PVH entry, like our vmm. Its MP table lists
    # one CPU and its MADT has no IRQ0 override (pin 0) while the PIT is on
    # pin 2, so this also covers the guest's timer-pin fallback.
    r = Run(guest, "dirty=8M runtime=1", machine="microvm,pit=on,pic=on,rtc=on")
    t = check_boot(r, 2)
    r.expect(r"final vcpu=1 writes=\d+ sweeps=\d+ errors=0 csum=0x[0-9a-f]{16}", 1)
    r.expect_code(0)
    return f"microvm (qboot); ready t={t} ms guest, {r.ready_wall:.2f} s wall"


def case_one_cpu(guest, _):
    r = Run(guest, "exit=0", smp="1")
    t = check_boot(r, 1)
    r.expect_code(0)
    return f"1 vCPU; ready t={t} ms guest, {r.ready_wall:.2f} s wall"


def case_mptable(guest, _):
    # Two sockets: SeaBIOS's MP table then lists both CPUs and is used
    # (with the default one-socket topology it lists one and the MADT wins).
    r = Run(guest, "exit=0", smp="2,sockets=2,cores=1")
    check_boot(r, 2)
    r.expect(r"testguest: cpus from mptable, ioapic=0xfec00000 irq0-pin=2", 1)
    r.expect_code(0)
    r = Run(guest, "exit=0 selftest-acpi", smp="2,sockets=2,cores=1")
    check_boot(r, 2)
    r.expect(r"testguest: cpus from acpi, ioapic=0xfec00000 irq0-pin=2", 1)
    r.expect_code(0)
    return "MP table parser (2 sockets) and the ACPI MADT path agree"


def parse_cpuid(lines, who):
    leaves = {}
    for l in lines:
        m = CPUID_RE.fullmatch(l)
        if m and m.group(1) == who:
            leaf, sub, *regs = (int(x, 16) for x in m.groups()[1:])
            leaves[(leaf, sub)] = regs
    return leaves


def case_cpuid(guest, cpuid_host):
    r = Run(guest, "cpuid exit=0")
    check_boot(r, 2)
    r.expect_code(0)
    host_out = subprocess.run([cpuid_host], capture_output=True, text=True, timeout=10,
                              check=True).stdout.splitlines()
    host = parse_cpuid(host_out, "host")
    notes = []
    for i in range(2):
        r.expect(rf"cpuid\[{i}\] end", 1)
        r.expect(rf"cpuid-cpl0\[{i}\] end differ=\d+", 1)
        g = parse_cpuid(r.lines, str(i))
        if (0, 0) not in g or g[(0, 0)][0] < 1:
            r.fail(f"vcpu {i}: no sane CPUID leaf 0")
        vendor = b"".join(x.to_bytes(4, "little") for x in
                          (g[(0, 0)][1], g[(0, 0)][3], g[(0, 0)][2])).decode(errors="replace")
        if not re.fullmatch(r"[ -~]{12}", vendor):
            r.fail(f"vcpu {i}: vendor {vendor!r} is not printable")
        # Must match the host on any KVM: vendor, signature, brand string.
        strict = [((0, 0), (1, 2, 3), "vendor"), ((1, 0), (0,), "signature")] + \
            [((l, 0), (0, 1, 2, 3), "brand") for l in (0x80000002, 0x80000003, 0x80000004)]
        for key, regs, what in strict:
            if key in host and key in g and any(g[key][x] != host[key][x] for x in regs):
                r.fail(f"vcpu {i}: CPUID {what} leaf {key[0]:#x} differs from the host: "
                       f"guest {[hex(v) for v in g[key]]} host {[hex(v) for v in host[key]]}")
        # Feature words: equal only where CPUID is not intercepted (our paravirtual
        # KVM); on VMX/SVM the guest sees the VMM's table, with the hypervisor bit.
        feats = [((1, 0), (2, 3)), ((7, 0), (1, 2, 3)), ((0x80000001, 0), (2, 3))]
        same = all(g.get(k) and host.get(k) and all(g[k][x] == host[k][x] for x in regs)
                   for k, regs in feats)
        if same:
            notes.append(f"vcpu {i}: feature leaves equal the host's raw CPUID: "
                         f"this platform does not intercept CPUID at CPL3")
        elif not g[(1, 0)][2] >> 31 & 1:
            r.fail(f"vcpu {i}: feature leaves differ from the host but the hypervisor bit is clear")
        else:
            notes.append(f"vcpu {i}: CPUID is intercepted (guest sees the VMM's table)")
    return "; ".join(sorted(set(n.split(": ", 1)[1] for n in notes))) + \
        f"; {len(parse_cpuid(r.lines, '0'))} leaves on vcpu 0"


def case_dirty(guest, _):
    r = Run(guest, "dirty=32M runtime=3", timeout=40)
    check_boot(r, 2)
    summary = []
    for i in range(2):
        r.expect(rf"dirty vcpu={i} pages=4096 base=0x[0-9a-f]+ t=\d+", 1)
        prog = r.expect(rf"progress vcpu={i} t=(\d+) writes=(\d+) sweeps=(\d+) errors=0 "
                        r"csum=0x[0-9a-f]{16}")
        writes = [int(m.group(2)) for m in prog]
        if writes != sorted(writes) or writes[-1] == 0:
            r.fail(f"vcpu {i}: progress writes do not grow: {writes}")
        f = r.expect(rf"final vcpu={i} writes=(\d+) sweeps=(\d+) errors=(\d+) "
                     r"csum=0x[0-9a-f]{16}", 1)[0]
        if int(f.group(3)) != 0 or int(f.group(2)) < 1:
            r.fail(f"vcpu {i}: final line {f.group(0)!r}")
        summary.append(f"vcpu {i}: {int(f.group(1)) * 4096 / 3 / 2**30:.1f} GiB/s written")
    r.expect(r"testguest: exit status=0", 1)
    if r.find(r"VERIFY-FAIL.*"):
        r.fail("VERIFY-FAIL in a clean run")
    r.expect_code(0)
    return ", ".join(summary)


def case_corrupt(guest, _):
    r = Run(guest, "dirty=32M runtime=3 selftest-corrupt", timeout=40)
    flip = r.expect(r"testguest: selftest-corrupt: flipped vcpu=0 page=(\d+) word=7", 1)[0]
    fails = r.expect(r"VERIFY-FAIL vcpu=0 page=(\d+) word=(\d+) expected=0x([0-9a-f]{16}) "
                     r"got=0x([0-9a-f]{16})")
    m = fails[0]
    if m.group(1) != flip.group(1) or m.group(2) != "7":
        r.fail("VERIFY-FAIL names another page/word than the one flipped")
    if int(m.group(3), 16) ^ int(m.group(4), 16) != 1 << 17:
        r.fail("VERIFY-FAIL expected/got differ by more than the flipped bit")
    r.expect(r"testguest: exit status=3", 1)
    r.expect_code(3)
    return "flipped bit found by the verifier, status 3"


def case_usage(guest, _):
    r = Run(guest, "exit=0 bogus=1")
    r.expect(r"testguest: unknown option bogus", 1)
    r.expect_code(2)
    r = Run(guest, "dirty=2G")
    r.expect(r"testguest: dirty=2G: only \d+ MiB free", 1)
    r.expect_code(2)
    return "unknown option and oversized dirty= give status 2"


def case_idle(guest, _):
    # The first heartbeat comes 5 s of the guest's own clock after it is
    # ready. Measured from the ready line, not from boot: how long booting
    # takes in guest ticks depends on the machine's load (CPL0 is emulated
    # here). The guest sleeps until exactly 500 ticks after its ready tick, so
    # the gap is at least 5000 ms; the allowance above covers waking late and
    # a burst of ticks KVM re-injects after the vCPU thread was descheduled.
    r = Run(guest, "", stop_on=r"heartbeat t=\d+", timeout=2 * RUN_TIMEOUT)
    ready = check_boot(r, 2)
    hb = r.expect(r"heartbeat t=(\d+)")
    if r.find(r"testguest: exit status=.*"):
        r.fail("idle guest exited")
    gap = int(hb[0].group(1)) - ready
    if not 5000 <= gap <= 5000 + HEARTBEAT_LATE_MS:
        r.fail(f"first heartbeat {gap} ms of guest time after ready (t={ready}), expected "
               f"5000..{5000 + HEARTBEAT_LATE_MS}")
    return f"idle guest prints heartbeat t={hb[0].group(1)}, {gap} ms after ready"


def case_virtio(guest, _):
    # Our virtio driver against QEMU's virtio-blk-device and virtio-rng-device
    # (modern virtio-mmio: force-legacy=false; acpi=off so QEMU appends the
    # virtio_mmio.device= words, as our vmm does).
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
    from blkimage import bad_blocks
    import tempfile
    with tempfile.TemporaryDirectory(prefix="vmmtest-qemu-") as d:
        img = os.path.join(d, "disk.img")
        with open(img, "wb") as f:
            f.truncate(16 << 20)
        extra = ["-global", "virtio-mmio.force-legacy=false",
                 "-drive", f"id=d0,file={img},format=raw,if=none",
                 "-device", "virtio-blk-device,drive=d0,serial=qemu-disk-0",
                 "-object", "rng-random,id=r0,filename=/dev/urandom",
                 "-device", "virtio-rng-device,rng=r0"]
        r = Run(guest, "blk=2M rng=16K runtime=2 progress=500", smp="1",
                machine="microvm,pit=on,pic=on,rtc=on,acpi=off", extra=extra)
        r.expect(r"rng bytes=16384 chi2=\d+ ones-permille=\d+ random=yes irqs=[1-9]\d*", 1)
        r.expect(r'blk disk0 capacity=16777216 serial="qemu-disk-0" base=0x[0-9a-f]+ irq=\d+', 1)
        r.expect(r"blk t=\d+ writes=\d+ reads=\d+ laps=[1-9]\d* errors=0")
        fin = r.expect(r"blk-final writes=(\d+) reads=\d+ laps=\d+ errors=0", 1)
        r.expect_code(0)
        bad, gens = bad_blocks(img, 2 << 20)
        if bad:
            r.fail(f"image after the run: {len(bad)} bad blocks, e.g. {bad[:2]}")
    return (f"virtio-blk and virtio-rng of QEMU: {fin[0].group(1)} blocks written and verified, "
            f"image checked from the host (generations {gens[0]}..{gens[1]})")


def qmp_announce(path, at, result):
    """Connects to QEMU's QMP socket and, `at` seconds from now, asks it to
    announce the guest (announce-self: with GUEST_ANNOUNCE negotiated QEMU
    sets VIRTIO_NET_S_ANNOUNCE and a config interrupt, as our vmm does after
    a migration)."""
    import json
    import socket
    deadline = time.monotonic() + 20
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            break
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                result.append("no QMP socket")
                return
            time.sleep(0.05)
    f = s.makefile("rw")
    f.readline()  # greeting
    f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
    f.flush()
    f.readline()
    time.sleep(max(0.0, at - time.monotonic()))
    f.write(json.dumps({"execute": "announce-self", "arguments": {
        "initial": 50, "max": 550, "rounds": 1, "step": 100}}) + "\n")
    f.flush()
    result.append(f.readline().strip())
    s.close()


def case_net(guest, _):
    # Our virtio-net driver (net=echo) against QEMU's virtio-net-device on a
    # tap in a namespace of its own: a host-side sender's frames come back
    # with the MACs swapped, and QEMU's announce-self makes the guest
    # announce itself (RARP) and acknowledge on the control queue.
    import json
    import tempfile
    import threading
    if os.geteuid() != 0 or not shutil.which("ip") or not os.path.exists("/dev/net/tun"):
        return "not run: a tap needs root, iproute2 and /dev/net/tun"
    mac = "52:54:00:12:34:56"
    ns = f"vmmq-{os.getpid()}"
    peer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration",
                        "netpeer.py")

    def ip(*a):
        p = subprocess.run(["ip"] + list(a), capture_output=True, text=True)
        if p.returncode != 0:
            raise Failure(f"ip {' '.join(a)}: {p.stderr.strip()}")

    with tempfile.TemporaryDirectory(prefix="vmmtest-qemu-") as d:
        try:
            ip("netns", "add", ns)
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                            "net.ipv6.conf.all.disable_ipv6=1",
                            "net.ipv6.conf.default.disable_ipv6=1"], capture_output=True)
            ip("-n", ns, "tuntap", "add", "dev", "tq0", "mode", "tap")
            ip("-n", ns, "link", "set", "tq0", "up")
            qmp = os.path.join(d, "qmp.sock")
            extra = ["-global", "virtio-mmio.force-legacy=false",
                     "-netdev", "tap,id=n0,ifname=tq0,script=no,downscript=no,vhost=off",
                     "-device", f"virtio-net-device,netdev=n0,mac={mac}",
                     "-qmp", f"unix:{qmp},server=on,wait=off"]
            netns = ["ip", "netns", "exec", ns]
            sender = subprocess.Popen(netns + [sys.executable, peer, "send", "--dev", "tq0",
                                               "--guest", mac, "--rate", "200", "--seconds", "4"],
                                      stdout=subprocess.PIPE, text=True)
            capture = subprocess.Popen(netns + [sys.executable, peer, "capture", "--dev", "tq0",
                                                "--guest", mac, "--seconds", "6"],
                                       stdout=subprocess.PIPE, text=True)
            qmp_result = []
            t = threading.Thread(target=qmp_announce,
                                 args=(qmp, time.monotonic() + 3, qmp_result))
            t.start()
            r = Run(guest, "net=echo runtime=5 progress=500", smp="1", timeout=60,
                    machine="microvm,pit=on,pic=on,rtc=on,acpi=off", extra=extra, prefix=netns)
            t.join(timeout=20)
            out = json.loads(sender.communicate(timeout=20)[0])
            rarp = json.loads(capture.communicate(timeout=20)[0])["rarp"]
        finally:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    r.expect(r"net mac=52:54:00:12:34:56 features=0x[0-9a-f]+ status=0x1 base=0x[0-9a-f]+ "
             r"irq=\d+", 1)
    fin = r.expect(r"net-final rx=(\d+) tx=(\d+) bytes=\d+ dropped=0 announces=(\d+) errors=0", 1)[0]
    r.expect_code(0)
    seqs = [e[0] for e in out["echoes"]]
    if len(seqs) != len(set(seqs)):
        r.fail("a frame came back twice")
    if len(seqs) < out["sent"] // 2:
        r.fail(f"{len(seqs)} echoes of {out['sent']} frames")
    late = [s for s in range(out["sent"] // 2, out["sent"] - 20) if s not in set(seqs)]
    if late:
        r.fail(f"frames lost in the steady state: {late[:5]}")
    if not qmp_result or "return" not in qmp_result[0]:
        r.fail(f"QMP announce-self: {qmp_result}")
    ann = r.expect(r"net announce n=1 ack=0 t=\d+", 1)
    if int(fin.group(3)) != 1 or len(rarp) < 2:
        r.fail(f"announce: {fin.group(3)} by the guest, {len(rarp)} RARP frames seen "
               f"(QEMU's and the guest's)")
    return (f"virtio-net-device of QEMU: {len(seqs)} of {out['sent']} frames echoed, none twice; "
            f"announce-self: the guest announced itself and acknowledged ({ann[0].group(0)}), "
            f"{len(rarp)} RARP frames on the tap")


CASES = [case_exit, case_one_cpu, case_microvm, case_mptable, case_cpuid, case_dirty, case_corrupt,
         case_usage, case_idle, case_virtio, case_net]


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    guest, cpuid_host = sys.argv[1:]
    check_platform()
    failed = 0
    for case in CASES:
        t0 = time.monotonic()
        try:
            info = case(guest, cpuid_host)
            print(f"ok   {case.__name__} ({time.monotonic() - t0:.1f} s): {info}")
        except Failure as e:
            failed += 1
            print(f"FAIL {case.__name__} ({time.monotonic() - t0:.1f} s): {e}")
        sys.stdout.flush()
    print(f"{len(CASES) - failed}/{len(CASES)} cases passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

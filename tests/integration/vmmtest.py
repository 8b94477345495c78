"""Shared helpers for the integration tests (Python 3 stdlib only).

Tests run from meson with VMM (the vmm binary), VMM_SOURCE_ROOT,
VMM_BUILD_ROOT and, when built, TESTGUEST in the environment. A test that
cannot run here calls skip(reason): exit code 77, which meson reports as
SKIP, never as a pass. A dependency that scripts/setup.sh installs for the
tests (QEMU, the Debian kernel, iproute2) goes through require_installed():
a skip when a person runs one test by hand, a failure under scripts/test.sh,
which sets VMM_TEST_STRICT=1 (what is missing there is a broken set-up, not
a reason to report fewer tests).
"""
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

VMM = os.environ.get("VMM", "")
SOURCE_ROOT = os.environ.get("VMM_SOURCE_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD_ROOT = os.environ.get("VMM_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))
TESTGUEST = os.environ.get("TESTGUEST", "")
SHARED = os.path.normpath(os.path.join(SOURCE_ROOT, "..", "shared"))
HOSTS_DIR = os.path.join(SHARED, "cpuid-hosts")


STRICT = os.environ.get("VMM_TEST_STRICT") == "1"


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(77)


def require_installed(present, what, package):
    """`what` comes from the Debian package `package`, which scripts/setup.sh
    --for-tests installs: missing, it skips by hand and fails under strict."""
    if present:
        return
    why = f"{what} is missing (Debian package {package}; scripts/setup.sh --for-tests installs it)"
    if STRICT:
        fail(why + "; VMM_TEST_STRICT=1 (scripts/test.sh) makes a missing test dependency a failure")
    skip(why)


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print(f"ok: {msg}")


def require_kvm():
    if not os.path.exists("/dev/kvm"):
        skip("/dev/kvm is missing: KVM tests need a host with KVM")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        skip("/dev/kvm is not accessible to this user")


def require_guest():
    if not TESTGUEST or not os.path.exists(TESTGUEST):
        fail("the test guest was not built (TESTGUEST unset)")


def tmpdir():
    d = tempfile.mkdtemp(prefix="vmmtest-")
    return d


def run(args, timeout=60, **kw):
    """Runs vmm to completion; returns CompletedProcess (text)."""
    return subprocess.run([VMM] + list(args), capture_output=True, text=True,
                          timeout=timeout, **kw)


_started = []


def _kill_leftovers():
    """A test that fails half-way (fail() or an exception) leaves no vmm
    behind: even one it stopped with SIGSTOP."""
    for p in _started:
        if p.poll() is None:
            p.kill()
            p.wait()


import atexit  # noqa: E402
atexit.register(_kill_leftovers)


class Guest:
    """A vmm process whose serial console (stdout) is read line by line."""

    def __init__(self, args, name="vmm", stdin=subprocess.DEVNULL, env=None, prefix=None,
                 binary=None):
        cmd = (prefix or []) + [binary or VMM] + list(args)
        self.name = name
        self.lines = []
        self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        _started.append(self.proc)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._buf = b""
        self.stderr = ""

    def _pump(self, timeout):
        fd = self.proc.stdout.fileno()
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return False
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            return None
        self._buf += chunk
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            text = line.decode(errors="replace").rstrip("\r")
            self.lines.append(text)
        return True

    def wait_line(self, pattern, timeout=30, start=0):
        """Waits for a console line matching regex `pattern` (searching from
        line index `start`); returns the re.Match or fails."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        idx = start
        while True:
            while idx < len(self.lines):
                m = rx.search(self.lines[idx])
                idx += 1
                if m:
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                fail(f"{self.name}: no line matching {pattern!r} within {timeout}s; last lines:\n"
                     + "\n".join(self.lines[-15:]) + f"\nstderr: {self.stderr}")
            got = self._pump(min(left, 0.5))
            if got is None and idx >= len(self.lines):
                self.wait(5)
                fail(f"{self.name}: exited ({self.proc.returncode}) before a line matching "
                     f"{pattern!r}; last lines:\n" + "\n".join(self.lines[-15:])
                     + f"\nstderr: {self.stderr}")

    def collect(self, seconds):
        """Reads console output for `seconds` of wall time; returns the new lines."""
        first = len(self.lines)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._pump(left) is None:
                break
        return self.lines[first:]

    def wait(self, timeout=30):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._pump(0.2)
        if self.proc.poll() is None:
            self.kill()
            fail(f"{self.name}: did not exit within {timeout}s")
        while self._pump(0):
            pass
        self.stderr += self.proc.stderr.read().decode(errors="replace")
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            self.stderr += self.proc.stderr.read().decode(errors="replace")
        except Exception:
            pass


def host_profiles():
    if not os.path.isdir(HOSTS_DIR):
        skip(f"host CPU profiles not found at {HOSTS_DIR}")
    return HOSTS_DIR


def parse_cpuid_dump(text):
    """Parses vm_dump_cpuid output into {vcpu: (apic_id, [lines])}."""
    out = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r"# vcpu (\d+) apic-id (\d+)", line)
        if m:
            cur = int(m.group(1))
            out[cur] = (int(m.group(2)), [])
        elif line and not line.startswith("#") and cur is not None:
            out[cur][1].append(line)
    return out


# ---- the control API (JSON lines over a unix socket) ----

import json
import socket


class ApiError(Exception):
    pass


class Api:
    def __init__(self, path, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    fail(f"control socket {path} did not come up within {timeout}s")
                time.sleep(0.05)
        self.sock.settimeout(30)
        self.buf = b""
        greeting = self._read()
        if "QMP" not in greeting and "VMM" not in greeting:  # vmm 0.1.x greeted "VMM"
            fail(f"unexpected greeting {greeting}")
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ApiError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = {k.replace("_", "-"): v for k, v in args.items()}
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise ApiError(reply["error"].get("desc", str(reply["error"])))
            return reply.get("return", {})

    def close(self):
        self.sock.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_migration(api, timeout=120):
    """Polls query-migrate until it ends; returns the last answer."""
    deadline = time.monotonic() + timeout
    info = {}
    while time.monotonic() < deadline:
        try:
            info = api.cmd("query-migrate")
        except (ApiError, OSError) as e:
            fail(f"query-migrate failed: {e}; last status {info.get('status')}")
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        time.sleep(0.05)
    fail(f"migration did not end within {timeout}s: {info}")


PROGRESS = r"progress vcpu=(\d+) t=(\d+) writes=(\d+) sweeps=(\d+) errors=(\d+) csum=(0x[0-9a-f]+)"


def progress_lines(lines):
    """[(vcpu, t, writes, sweeps, errors)] for every progress line."""
    out = []
    for l in lines:
        m = re.search(PROGRESS, l)
        if m:
            out.append(tuple(int(m.group(i)) for i in range(1, 6)))
    return out


def check_no_verify_failures(lines, who, vcpus=1):
    """The guest's own verification passed on these console lines: no
    VERIFY-FAIL, no progress line with errors, and progress lines from each
    of the first `vcpus` vCPUs (no progress at all proves nothing)."""
    bad = [l for l in lines if "VERIFY-FAIL" in l]
    if bad:
        fail(f"{who}: guest memory verification failed:\n" + "\n".join(bad[:5]))
    progress = progress_lines(lines)
    errs = [p for p in progress if p[4] != 0]
    if errs:
        fail(f"{who}: progress lines report errors: {errs[:3]}")
    missing = [v for v in range(vcpus) if not any(p[0] == v for p in progress)]
    if missing:
        fail(f"{who}: no progress line from vCPU(s) {missing}: the guest's verification "
             f"never reported, so nothing was verified; last lines:\n" + "\n".join(lines[-10:]))


def guest_args(cmdline, memory="256M", cpus=1, extra=()):
    require_guest()
    return ["--kernel", TESTGUEST, "--memory", memory, "--cpus", str(cpus),
            "--serial", "stdio", "--cmdline", cmdline] + list(extra)


def cpuid_report(lines, vcpu=0, mask_per_cpu=False):
    """The guest's CPL3 CPUID report lines for a vCPU as {(leaf, subleaf): regs}.
    With mask_per_cpu, the fields that name the CPU the code runs on are
    zeroed (leaf 1 EBX[31:24], 0xB/0x1F EDX, 0x8000001E EAX/EBX): on a
    platform that does not intercept CPUID they follow the physical CPU."""
    out = {}
    for l in lines:
        if not l.startswith(f"cpuid[{vcpu}] 0x"):
            continue
        leaf, sub, a, b, c, d = (int(x, 16) for x in l.split()[1:7])
        if mask_per_cpu:
            if leaf == 1:
                b &= 0x00ffffff
            elif leaf in (0xB, 0x1F):
                d = 0
            elif leaf == 0x8000001E:
                a, b = 0, b & ~0xff
        out[(leaf, sub)] = (a, b, c, d)
    return out


def wait_dropped(dapi, n, timeout=30):
    """A listening destination's query-migrate "incoming" object once it has
    dropped n connections (it logs a drop right after closing it)."""
    deadline = time.monotonic() + timeout
    while True:
        inc = dapi.cmd("query-migrate").get("incoming", {})
        if inc.get("dropped-connections", 0) >= n or time.monotonic() > deadline:
            return inc
        time.sleep(0.05)


def stream_records(data):
    """The records of a migration stream (STREAM.md): [(offset, type,
    length, data_offset, data_len)] after the 16-byte preamble; data_offset
    and data_len are the page data of a ram-pages record (type 10), else
    the payload."""
    import struct
    out, at = [], 16
    while at + 8 <= len(data):
        length, rtype = struct.unpack_from("<IH", data, at)
        doff, dlen = at + 8, length
        if rtype == 10:
            env = struct.unpack_from("<I", data, at + 8)[0]
            doff, dlen = at + 12 + env, length - 4 - env
        out.append((at, rtype, length, doff, dlen))
        at += 8 + length
    return out


# ---- hugepages: a test reserves what it needs and gives it back ----

import contextlib
import fcntl

HUGEPAGES = "/proc/sys/vm/nr_hugepages"


def meminfo(name):
    for line in open("/proc/meminfo"):
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


@contextlib.contextmanager
def hugepages(pages):
    """Adds `pages` 2 MiB pages to the host's pool for the duration, and
    gives them back (also on failure); skips (77) with the reason when this
    cannot be done. Tests running at the same time add and remove their
    own share under a lock, so none undoes another's."""
    if os.geteuid() != 0:
        skip("hugepages: reserving them needs root (/proc/sys/vm/nr_hugepages)")
    if not os.path.exists(HUGEPAGES):
        skip("hugepages: this kernel has no hugetlbfs pool")
    lock = open("/tmp/vmmtest-hugepages.lock", "w")

    def adjust(delta):
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            now = int(open(HUGEPAGES).read())
            with open(HUGEPAGES, "w") as f:
                f.write(str(max(0, now + delta)))
            return int(open(HUGEPAGES).read()) - now
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    got = adjust(pages)
    try:
        if got < pages:
            skip(f"hugepages: asked the pool for {pages} more 2 MiB pages, got {got} "
                 "(not enough contiguous memory)")
        # Freshly reserved pages were never touched by this (nested) host:
        # the first touch costs a fault in the outer hypervisor. Not a
        # test's concern, but it makes the first guest slow to fill.
        yield
    finally:
        adjust(-got)
        lock.close()


THP_SHMEM = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"


@contextlib.contextmanager
def thp_shmem(mode):
    """Sets the host's transparent-hugepage mode for shmem (memfd) for the
    duration and restores it (also on failure); skips (77) with the reason
    when this cannot be done."""
    if os.geteuid() != 0:
        skip(f"transparent hugepages for shmem: setting them needs root ({THP_SHMEM})")
    if not os.path.exists(THP_SHMEM):
        skip(f"this kernel has no transparent hugepages for shmem ({THP_SHMEM})")
    before = open(THP_SHMEM).read().split("[")[1].split("]")[0]
    with open(THP_SHMEM, "w") as f:
        f.write(mode)
    try:
        if not _thp_shmem_works():
            skip(f"shmem_enabled={mode}, yet this kernel maps a memfd asking for transparent "
                 "hugepages with 4 KiB pages (no free 2 MiB blocks?)")
        yield
    finally:
        with open(THP_SHMEM, "w") as f:
            f.write(before)


def _thp_shmem_works():
    """Whether a memfd of our own, asking for transparent hugepages, gets
    them now (independent of vmm: the host's answer)."""
    import mmap
    size = 8 << 20
    fd = os.memfd_create("vmmtest-thp")
    try:
        os.ftruncate(fd, size)
        m = mmap.mmap(fd, size)
        m.madvise(mmap.MADV_HUGEPAGE)
        for off in range(0, size, 4096):
            m[off] = 1
        got = shmem_pmd_kib(os.getpid())
        m.close()
        return got > 0
    finally:
        os.close(fd)


def shmem_pmd_kib(pid):
    """Shmem this process maps with 2 MiB page-table entries (transparent
    hugepages of its memfd RAM), in KiB."""
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("ShmemPmdMapped:"):
            return int(line.split()[1])
    return 0


# ---- a TCP proxy that can hold back or cut a data connection ----

import struct
import threading


class Proxy:
    """Forwards connections from 127.0.0.1:self.port to a destination port.
    Connection 0 (the first) is the main one; later ones are data
    connections: their source->destination bytes are parsed as records, and
    the DataEnd record (type 13) is held until release() (or the connection
    is cut with cut()). With stranger=True a garbage connection reaches the
    destination before each data connection."""

    def __init__(self, target_port, stranger=False):
        self.target = target_port
        self.stranger = stranger
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.held = threading.Event()
        self.go = threading.Event()
        self.cut_it = False
        self.count = 0
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def release(self):
        self.go.set()

    def cut(self):
        self.cut_it = True
        self.go.set()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            index = self.count
            self.count += 1
            if index > 0 and self.stranger:
                s = socket.create_connection(("127.0.0.1", self.target))
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                self.socks.append(s)
                time.sleep(0.2)
            u = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [c, u]
            threading.Thread(target=self._pump, args=(c, u, index > 0), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()

    def _pump(self, a, b, watch):
        buf, at, need = b"", 0, 16  # preamble first, then record headers
        try:
            while True:
                data = a.recv(1 << 20)
                if not data:
                    b.shutdown(socket.SHUT_WR)
                    return
                if not watch:
                    b.sendall(data)
                    continue
                buf += data
                # forward whole records; stop in front of DataEnd
                while True:
                    if need == 16:
                        if len(buf) < 16:
                            break
                        b.sendall(buf[:16])
                        buf, need = buf[16:], 8
                        continue
                    if len(buf) < 8:
                        break
                    length, rtype = struct.unpack_from("<IH", buf, 0)
                    if rtype == 13 and not self.go.is_set():
                        self.held.set()
                        self.go.wait()
                        if self.cut_it:  # shutdown: close() alone waits for the other pump
                            for x in (a, b):
                                x.shutdown(socket.SHUT_RDWR)
                                x.close()
                            return
                    if len(buf) < 8 + length:
                        break
                    b.sendall(buf[:8 + length])
                    buf = buf[8 + length:]
        except OSError:
            return

    def close(self):
        self.srv.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


class Relay(threading.Thread):
    """Forwards one migration connection; `hold(type)` says, per record the
    destination sends back, whether to stop there (the record is not passed
    on and on_hold runs)."""

    def __init__(self, port, hold, on_hold, close_on_hold=False):
        super().__init__(daemon=True)
        self.close_on_hold = close_on_hold
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.target, self.hold, self.on_hold, self.held = port, hold, on_hold, None

    def run(self):
        a, _ = self.lsock.accept()
        b = socket.create_connection(("127.0.0.1", self.target))

        def forward():
            try:
                while (chunk := a.recv(65536)):
                    b.sendall(chunk)
            except OSError:
                pass
        threading.Thread(target=forward, daemon=True).start()
        buf = b""
        try:
            while (chunk := b.recv(65536)):
                buf += chunk
                while len(buf) >= 8:
                    ln, rtype = struct.unpack_from("<IH", buf)
                    if len(buf) < 8 + ln:
                        break
                    rec, buf = buf[:8 + ln], buf[8 + ln:]
                    if self.hold(rtype):
                        self.held = rtype
                        self.on_hold()
                        if self.close_on_hold:
                            a.close()
                        return
                    a.sendall(rec)
        except OSError:
            pass

"""The conversation across releases: a newer vmm must take guests from an
older one and hand guests to it, or refuse clearly, naming the newer side.

1. Recorded exchanges (tests/data/exchanges, made by record_exchange.py with
   the previous release) replayed against today's build, both directions:
   - as a source of that format: its recorded stream is sent to today's
     destination, which must answer Accepted and Ready, take Go, answer
     Resumed and run the guest with its own verification clean;
   - as a destination of that format: today's source migrates to a fake
     destination that answers with the recorded Accepted, Ready and Resumed
     at the points the protocol puts them; the source must complete and
     report the destination's format.
2. The previous release itself, built from git history (tests/data/
   releases.txt names its commit), migrating to and from today's build with
   the test guest verifying its memory on both sides. Skipped, with the
   reason, where the git history or the commit is absent."""
import json
import os
import socket
import struct
import subprocess
import sys
import time

from vmmtest import (BUILD_ROOT, SOURCE_ROOT, TESTGUEST, VMM, Api, Guest, check,
                     check_no_verify_failures, fail, free_port, progress_lines, require_guest,
                     require_kvm, skip, tmpdir, wait_migration)

REC_READY, REC_GO, REC_RESUMED, REC_ACCEPTED, REC_HEADER, REC_END = 16, 18, 19, 20, 1, 8
EXCH = os.path.join(SOURCE_ROOT, "tests", "data", "exchanges")

require_kvm()
require_guest()
d = tmpdir()


def records(data, preamble=True):
    """[(type, raw bytes of the whole record)] of a stream or return path."""
    out, off = [], 16 if preamble else 0
    while off + 8 <= len(data):
        length, rtype = struct.unpack_from("<IH", data, off)
        out.append((rtype, data[off:off + 8 + length]))
        off += 8 + length
    if off != len(data):
        fail(f"recording is cut at byte {off} of {len(data)}")
    return out


class RecordReader:
    """Reads records off a socket (optionally after a 16-byte preamble)."""

    def __init__(self, sock, preamble):
        self.sock, self.buf, self.need_preamble = sock, b"", preamble

    def _fill(self, n, timeout):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                b = self.sock.recv(1 << 20)
            except socket.timeout:
                if time.monotonic() > deadline:
                    return False
                continue
            if not b:
                return False
            self.buf += b
        return True

    def next(self, timeout=30):
        if self.need_preamble:
            if not self._fill(16, timeout):
                return None
            self.buf, self.need_preamble = self.buf[16:], False
        if not self._fill(8, timeout):
            return None
        length, rtype = struct.unpack_from("<IH", self.buf, 0)
        if not self._fill(8 + length, timeout):
            return None
        raw, self.buf = self.buf[:8 + length], self.buf[8 + length:]
        return rtype, raw


meta = json.load(open(os.path.join(EXCH, "exchanges.json")))
for name, spec in meta.items():
    to_dest = open(os.path.join(EXCH, name + ".to-dest"), "rb").read()
    to_source = records(open(os.path.join(EXCH, name + ".to-source"), "rb").read(), False)
    answers = {t: raw for t, raw in to_source}
    for t in (REC_ACCEPTED, REC_READY, REC_RESUMED):
        if t not in answers:
            fail(f"{name}: the recorded destination sent no record type {t}")
    recs = records(to_dest)
    if recs[-1][0] != REC_GO:
        fail(f"{name}: the recorded stream does not end with Go")
    guest = ["--kernel", TESTGUEST, "--serial", "stdio"] + spec["guest_args"]

    # 1a. That format's source, replayed to today's destination.
    port = free_port()
    dst = Guest(guest + ["--incoming", f"tcp:127.0.0.1:{port}"], name=f"{name} destination")
    for _ in range(100):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.05)
    else:
        fail("today's destination does not listen")
    go = recs[-1][1]
    s.sendall(to_dest[:len(to_dest) - len(go)])
    rr = RecordReader(s, preamble=False)
    got = [rr.next(), rr.next()]
    check([g[0] for g in got if g] == [REC_ACCEPTED, REC_READY],
          f"{name} ({spec['recorded_with']}) -> today: Accepted, then Ready")
    s.sendall(go)
    res = rr.next()
    check(res is not None and res[0] == REC_RESUMED, f"{name} -> today: Resumed after Go")
    s.close()
    m = dst.wait_line(r"progress vcpu=0 .* sweeps=(\d+) errors=0", timeout=30)
    dst.wait_line(rf"progress vcpu=0 .* sweeps=({int(m.group(1)) + 1}|[1-9]\d+) errors=0",
                  timeout=30)
    check_no_verify_failures(dst.lines, f"{name} at today's destination")
    check(True, f"{name} -> today: the guest runs with its own verification clean")
    dst.kill()

    # 1b. Today's source, answered by that format's recorded destination.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]
    api_path = os.path.join(d, f"{name}-src.sock")
    src = Guest(guest + ["--api-socket", api_path], name=f"today's source")
    src.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=30)
    api = Api(api_path)
    api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    lsock.settimeout(10)
    conn, _ = lsock.accept()
    rr = RecordReader(conn, preamble=True)
    seen = []
    while True:
        r = rr.next()
        if r is None:
            fail(f"today's source stopped before Go; records so far {seen[:5]}...")
        seen.append(r[0])
        if r[0] == REC_HEADER:
            conn.sendall(answers[REC_ACCEPTED])
        elif r[0] == REC_END:
            conn.sendall(answers[REC_READY])
        elif r[0] == REC_GO:
            conn.sendall(answers[REC_RESUMED])
            break
    info = wait_migration(api)
    check(info["status"] == "completed",
          f"today -> {name}: completed ({info.get('error-desc', '')})")
    dest = info.get("destination", {})
    check(dest.get("format") == "1.0",
          f"today's source knew its peer spoke format 1.0 ({dest})")
    conn.close()
    lsock.close()
    src.wait(timeout=15)

# 2. The previous release itself, from git history.
releases = [l.split() for l in open(os.path.join(SOURCE_ROOT, "tests", "data", "releases.txt"))
            if l.strip() and not l.startswith("#")]
prev_version, prev_commit = releases[-1][0], releases[-1][1]
git = subprocess.run(["git", "-C", SOURCE_ROOT, "cat-file", "-e", prev_commit + "^{commit}"],
                     capture_output=True)
if git.returncode != 0:
    skip(f"the recorded exchanges passed; git history with release {prev_version} "
         f"({prev_commit[:12]}) is not in this checkout, so it cannot be built")
rel = os.path.join(BUILD_ROOT, "releases", prev_version)
old_vmm = os.path.join(rel, "build", "vmm", "vmm")
if not os.path.exists(old_vmm):
    src_dir = os.path.join(rel, "src")
    subprocess.run(["rm", "-rf", rel], check=True)
    os.makedirs(src_dir)
    subprocess.run(f"git -C {SOURCE_ROOT} archive {prev_commit} | tar -x -C {src_dir}",
                   shell=True, check=True)
    b = subprocess.run(["meson", "setup", os.path.join(rel, "build"), src_dir, "-Dtests=false",
                        "--buildtype=debugoptimized"], capture_output=True, text=True)
    if b.returncode == 0:
        b = subprocess.run(["ninja", "-C", os.path.join(rel, "build"), "vmm/vmm"],
                           capture_output=True, text=True)
    if b.returncode != 0:
        fail(f"building release {prev_version}: {b.stdout[-2000:]}{b.stderr[-2000:]}")
out = subprocess.run([old_vmm, "--version"], capture_output=True, text=True).stdout.strip()
check(out == f"vmm {prev_version}", f"built the previous release from git: {out}")

guest_cmd = ["--kernel", TESTGUEST, "--machine", "microvm-1.1", "--memory", "128M",
             "--serial", "stdio", "--cmdline", "dirty=16M rate=16M runtime=60 progress=300"]


def move(src_vmm, dst_vmm, label):
    port = free_port()
    src_api = os.path.join(d, f"{label}-src.sock")
    dst_api = os.path.join(d, f"{label}-dst.sock")
    src = Guest(guest_cmd + ["--api-socket", src_api], name=f"{label} source", binary=src_vmm)
    src.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=30)
    dst = Guest(guest_cmd + ["--incoming", f"tcp:127.0.0.1:{port}", "--api-socket", dst_api],
                name=f"{label} destination", binary=dst_vmm)
    Api(dst_api)  # listening
    api = Api(src_api)
    t0 = time.monotonic()
    api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    info = wait_migration(api, timeout=60)
    took = time.monotonic() - t0
    if info["status"] != "completed":
        src.kill(), dst.kill()
        fail(f"{label}: {info['status']} after {took:.1f} s: {info.get('error-desc')}")
    check(True, f"{label}: completed in {took:.1f} s, downtime {info.get('downtime')} ms")
    last = progress_lines(src.lines)[-1]
    src.wait(timeout=15)
    m = dst.wait_line(r"progress vcpu=0 t=(\d+) writes=(\d+) sweeps=(\d+) errors=0", timeout=30)
    check(int(m.group(2)) >= last[2], f"{label}: the guest's counters continue")
    dst.wait_line(rf"progress vcpu=0 .* sweeps=({int(m.group(3)) + 2}|[1-9]\d+) errors=0",
                  timeout=30)
    check_no_verify_failures(src.lines, f"{label} source")
    check_no_verify_failures(dst.lines, f"{label} destination")
    check(True, f"{label}: the guest verifies its memory on both sides")
    dst.kill()


move(old_vmm, VMM, f"vmm {prev_version} -> today")
move(VMM, old_vmm, f"today -> vmm {prev_version}")

"""Failed migrations lose nothing: the source guest keeps running and
verifying its memory, query-migrate says failed/cancelled with the reason
(the destination's own words when it refused), and a destination never
starts a guest from a refused, incomplete or corrupt stream."""
import os
import signal
import time

from vmmtest import (Api, Guest, check, check_no_verify_failures, fail, free_port, guest_args,
                     progress_lines, require_kvm, stream_records, tmpdir, wait_migration)

require_kvm()
d = tmpdir()
cmdline = "dirty=64M rate=32M progress=500"
args = guest_args(cmdline, memory="256M")
src = Guest(args + ["--api-socket", os.path.join(d, "src.sock")], name="source")
src.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=30)
api = Api(os.path.join(d, "src.sock"))


def source_still_verifies(what):
    """The source guest keeps dirtying and verifying: two more sweeps."""
    base = progress_lines(src.lines)[-1]
    src.wait_line(rf"progress vcpu=0 .* sweeps=({base[3] + 2}|{base[3] + 3}|[1-9]\d{{2,}})",
                  timeout=30, start=len(src.lines))
    check_no_verify_failures(src.lines, "source")
    now = progress_lines(src.lines)[-1]
    check(now[2] > base[2], f"{what}: the source guest runs on (writes {base[2]} -> {now[2]})")
    check(api.cmd("query-status")["status"] == "running", f"{what}: source status running")


def start_dest(extra, name):
    port = free_port()
    g = Guest(args + ["--incoming", f"tcp:127.0.0.1:{port}",
                      "--api-socket", os.path.join(d, name + ".sock")] + extra, name=name)
    Api(os.path.join(d, name + ".sock")).close()  # listening once its API is up
    return g, f"tcp:127.0.0.1:{port}"


# 1. The destination is killed in the middle of the transfer.
api.cmd("migrate-set-parameters", max_bandwidth=16 << 20)
dst, uri = start_dest([], "killed")
api.cmd("migrate", uri=uri)
time.sleep(1.0)
check(api.cmd("query-migrate")["status"] == "active", "migration is under way")
dst.proc.send_signal(signal.SIGKILL)
info = wait_migration(api)
check(info["status"] == "failed", f"killed destination: status failed ({info.get('error-desc')})")
source_still_verifies("killed destination")

# 2. Cancelled by the operator; then a fresh migration still works.
dst, uri = start_dest([], "cancelled")
api.cmd("migrate", uri=uri)
time.sleep(0.5)
api.cmd("migrate-cancel")
info = wait_migration(api)
check(info["status"] == "cancelled", "migrate-cancel: status cancelled")
rc = dst.wait(timeout=20)
check(rc != 0 and "not started" in dst.stderr,
      f"the destination of a cancelled migration exits without starting the guest ({rc})")
source_still_verifies("cancel")

# 3. Refusals: the destination's reason reaches the source.
api.cmd("migrate-set-parameters", max_bandwidth=0)
refusals = [
    (["--cpu-model", "x86-64-v1,-sse2"], r"CPUID mismatch.*sse2"),
    (["--memory", "512M"], r"RAM size mismatch: stream 256 MiB, this side 512 MiB"),
    (["--cpus", "2"], r"vCPU count mismatch: stream 1, this side 2"),
    (["--machine", "microvm-1.0"], r"machine type mismatch: stream microvm-1\.1, command line microvm-1\.0"),
]
import re
for extra, pattern in refusals:
    # Later options win: the destination differs from the source in one way.
    dst, uri = start_dest(extra, "refusing")
    api.cmd("migrate", uri=uri)
    info = wait_migration(api)
    desc = info.get("error-desc", "")
    check(info["status"] == "failed" and desc.startswith("destination refused:")
          and re.search(pattern, desc), f"refused with the reason at the source: {desc}")
    rc = dst.wait(timeout=20)
    check(rc == 1 and re.search(pattern, dst.stderr), f"destination exits 1: {dst.stderr.strip()}")
    source_still_verifies(" ".join(extra))

# 4. Snapshot, then broken copies of it: never a started guest.
snap = os.path.join(d, "snap")
api.cmd("migrate", uri=f"file:{snap}")
info = wait_migration(api)
check(info["status"] == "completed", "snapshot written")
check(api.cmd("query-status")["status"] == "postmigrate", "the source stays paused after a snapshot")
api.cmd("cont")
source_still_verifies("cont after the snapshot")
data = open(snap, "rb").read()
def flip(blob, at):
    return blob[:at] + bytes([blob[at] ^ 0x40]) + blob[at + 1:]


# Where to garble (format 1.2): the stream checksum covers every record but
# the page data of ram-pages records, which carries a hash per page; a copy
# of a page that a later copy replaces may even be torn legitimately (the
# guest wrote it while it was sent). So: a byte of the state records at the
# end, and a byte of the last pass's page data (never sent again).
recs = stream_records(data)
last_state = [r for r in recs if r[1] not in (2, 8, 9, 10)][-1]
last_pages = [r for r in recs if r[1] == 10 and r[4] > 0][-1]
broken = {
    "truncated": data[: len(data) // 2],
    "garbled": flip(data, last_state[0] + 8 + last_state[2] // 2),
    "garbled-page": flip(data, last_pages[3] + last_pages[4] // 2),
    "newer-major": data[:8] + bytes([99, 0]) + data[10:],
    "not-a-stream": b"hello world, not a stream at all" * 10,
}
expect = {
    "truncated": r"ends before the end record",
    "garbled": r"checksum|malformed|zstd|refused",
    "garbled-page": r"arrived corrupted \(page hash mismatch",
    "newer-major": r"stream format 99\.\d+ is newer than this vmm reads",
    "not-a-stream": r"not a vmm migration stream",
}
for name, blob in broken.items():
    path = os.path.join(d, name)
    open(path, "wb").write(blob)
    g = Guest(args + ["--incoming", f"file:{path}"], name=name)
    rc = g.wait(timeout=30)
    started = any(l.startswith("progress") for l in g.lines)
    check(rc == 1 and not started and re.search(expect[name], g.stderr),
          f"{name} snapshot refused, guest not started: {g.stderr.strip().splitlines()[-1]}")

# 5. A guest the operator paused arrives paused, and runs on `cont`.
api.cmd("stop")
check(api.cmd("query-status")["status"] == "paused", "source guest paused by the operator")
dst, uri = start_dest([], "paused")
api_dst = Api(os.path.join(d, "paused.sock"))
api.cmd("migrate", uri=uri)
check(wait_migration(api)["status"] == "completed", "a paused guest migrates")
check(src.wait(timeout=20) == 0, "source exits after the handover")
check_no_verify_failures(src.lines, "source")
check(api_dst.cmd("query-status")["status"] == "paused", "it arrives paused")
time.sleep(1.5)
check(not any(l.startswith("progress") for l in dst.lines), "and does not run until cont")
api_dst.cmd("cont")
dst.wait_line(r"progress vcpu=0 .* errors=0", timeout=10)
check(api_dst.cmd("query-status")["status"] == "running", "cont: it runs, memory still verified")
api_dst.cmd("quit")
check(dst.wait(timeout=20) == 0, "destination quits cleanly")
check_no_verify_failures(dst.lines, "destination")

"""Failed migrations lose nothing: the source guest keeps running and
verifying its memory, query-migrate says failed/cancelled with the reason
(the destination's own words when it refused), and a destination never
starts a guest from a refused, incomplete or corrupt stream."""
import os
import signal
import time

from vmmtest import (Api, Guest, check, check_no_verify_failures, fail, free_port, guest_args,
                     progress_lines, require_kvm, stream_records, tmpdir, wait_dropped,
                     wait_migration)

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
# Kill it once pages are flowing (at 16 MiB/s the first pass lasts seconds);
# polling, not a fixed sleep, so a slow start on a loaded machine is no failure.
deadline = time.monotonic() + 30
while (info := api.cmd("query-migrate")).get("status") != "active" or \
        info.get("ram", {}).get("transferred", 0) < (1 << 20):
    if info.get("status") not in ("setup", "active") or time.monotonic() > deadline:
        fail(f"the migration did not get under way: {info}")
    time.sleep(0.05)
check(True, f"migration is under way ({info['ram']['transferred']} bytes sent)")
dst.proc.send_signal(signal.SIGKILL)
info = wait_migration(api)
check(info["status"] == "failed", f"killed destination: status failed ({info.get('error-desc')})")
source_still_verifies("killed destination")

# 2. Cancelled by the operator; then a fresh migration still works.
dst, uri = start_dest([], "cancelled")
api.cmd("migrate", uri=uri)
# Once the destination accepted the header, this source is the one it
# serves: a cancel then ends the destination too.
deadline = time.monotonic() + 30
while "destination" not in api.cmd("query-migrate") and time.monotonic() < deadline:
    time.sleep(0.02)
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
    (["--machine", "microvm-1.0"], r"machine type mismatch: stream microvm-1\.\d+, command line microvm-1\.0"),
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
    # A refused header is not this destination's source: it says why, drops
    # the connection and waits on for the right one (STREAM.md "Strangers").
    dapi = Api(os.path.join(d, "refusing.sock"))
    inc = wait_dropped(dapi, 1)
    check(inc["dropped-connections"] == 1 and re.search(pattern, inc["last-dropped"]),
          f"destination drops it and waits on: {inc['last-dropped']}")
    check(dapi.cmd("query-status")["status"] == "inmigrate", "nothing started there")
    if extra[0] == "--cpu-model":
        # The refused stream got as far as building a VM for it: the
        # destination rebuilds its VM from its command line, and a source
        # that matches it then migrates there, memory verified.
        src2 = Guest(guest_args(cmdline, memory="256M", extra=extra)
                     + ["--api-socket", os.path.join(d, "src2.sock")], name="matching source")
        src2.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=60)
        api2 = Api(os.path.join(d, "src2.sock"))
        api2.cmd("migrate", uri=uri)
        info2 = wait_migration(api2)
        check(info2["status"] == "completed", f"the matching source migrates there after the "
              f"refusal ({info2.get('error-desc')})")
        check(src2.wait(timeout=30) == 0, "the matching source exits after the handover")
        dst.wait_line(r"progress vcpu=0 .* errors=0", timeout=60, start=len(dst.lines))
        check_no_verify_failures(dst.lines, "destination after a dropped connection")
        dapi.cmd("quit")
        dst.wait(timeout=30)
        check("the VM was rebuilt from the command line" in dst.stderr,
              "the destination rebuilt its VM after the refused stream")
    else:
        dst.kill()
    check(re.search(r"incoming connection dropped .*1 so far\): .*" + pattern, dst.stderr),
          f"destination log: {dst.stderr.strip().splitlines()[-1]}")
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
src_last = progress_lines(src.lines)[-1]
check(api_dst.cmd("query-status")["status"] == "paused", "it arrives paused")
# A running guest prints a progress line every 500 ms of its time. Look
# PAUSED_LOOKS times, one interval apart: the status must read paused and the
# console must stay silent at every look (a guest that ran for even one
# interval would have printed).
PROGRESS_S, PAUSED_LOOKS = 0.5, 6
for look in range(PAUSED_LOOKS):
    out = dst.collect(PROGRESS_S)
    status = api_dst.cmd("query-status")["status"]
    if status != "paused" or progress_lines(dst.lines):
        fail(f"look {look + 1}: the guest ran before cont: status {status}, console {out[-3:]}")
check(True, f"it does not run until cont: paused and silent over {PAUSED_LOOKS} progress intervals")
api_dst.cmd("cont")
first = dst.wait_line(r"progress vcpu=0 t=\d+ writes=(\d+) sweeps=\d+ errors=0", timeout=10)
second = dst.wait_line(r"progress vcpu=0 t=\d+ writes=(\d+) sweeps=\d+ errors=0", timeout=10,
                       start=dst.lines.index(first.string) + 1)
check(int(second.group(1)) > int(first.group(1)) > src_last[2],
      f"cont: its counters advance again (writes {src_last[2]} at the source -> "
      f"{first.group(1)} -> {second.group(1)})")
check(api_dst.cmd("query-status")["status"] == "running", "cont: it runs, memory still verified")
api_dst.cmd("quit")
check(dst.wait(timeout=20) == 0, "destination quits cleanly")
check_no_verify_failures(dst.lines, "destination")

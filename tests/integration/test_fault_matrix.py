"""The fault matrix (issue 11): every way a migration can break leaves the
guest running in exactly one place, with its own memory verification clean.
Destination killed before, during and after the switch-over; the source
killed mid-stream (the destination exits with a clear error and never
starts a guest); cancel in the setup, active and device phases; two
`migrate` commands at once; a destination stopped (SIGSTOP) for longer than
the handshake timeout. Strangers are in test_strangers.py/test_migrate_tls.py."""
import os
import re
import signal
import time

from vmmtest import (Api, Relay, Guest, check, check_no_verify_failures, free_port, guest_args,
                     progress_lines, require_kvm, tmpdir, wait_migration)

require_kvm()
d = tmpdir()
args = guest_args("dirty=32M rate=16M progress=250", memory="128M")
names = iter(range(1000))


def new_source():
    sock = os.path.join(d, f"src{next(names)}.sock")
    g = Guest(args + ["--api-socket", sock], name="source")
    g.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=60)
    return g, Api(sock)


def start_dest(name):
    port = free_port()
    sock = os.path.join(d, f"{name}{next(names)}.sock")
    g = Guest(args + ["--incoming", f"tcp:127.0.0.1:{port}", "--api-socket", sock], name=name)
    Api(sock).close()
    return g, port


def runs_here(g, api, what):
    """g's guest keeps running and verifying (two more sweeps), status running."""
    base = progress_lines(g.lines)[-1]
    g.wait_line(rf"progress vcpu=0 .* sweeps=({base[3] + 1}|{base[3] + 2}|[1-9]\d{{2,}})",
                timeout=60, start=len(g.lines))
    check_no_verify_failures(g.lines, what)
    check(api.cmd("query-status")["status"] == "running", f"{what}: the guest runs here")


def never_started(g, what):
    check(not any(l.startswith("progress") for l in g.lines), f"{what}: no guest ran there")


READY, RESUMED = 16, 19
src, api = new_source()

# 1. Destination killed before the migration: nobody listens any more.
dst, port = start_dest("dead")
dst.kill()
api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
info = wait_migration(api)
check(info["status"] == "failed" and "connect" in info.get("error-desc", ""),
      f"destination gone before: {info.get('error-desc')}")
runs_here(src, api, "destination killed before")

# 2. Destination killed during the transfer.
api.cmd("migrate-set-parameters", max_bandwidth=8 << 20)
dst, port = start_dest("during")
api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
time.sleep(1.0)
check(api.cmd("query-migrate")["status"] == "active", "under way")
dst.kill()
info = wait_migration(api)
check(info["status"] == "failed", f"destination killed during: {info.get('error-desc')}")
runs_here(src, api, "destination killed during")

# 3. Cancel in the setup phase: the destination is stopped, so the source
# waits for its answer with the guest running; cancel then.
dst, port = start_dest("setup")
os.kill(dst.proc.pid, signal.SIGSTOP)
api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
time.sleep(1.0)
api.cmd("migrate-cancel")
info = wait_migration(api)
check(info["status"] == "cancelled", f"cancel while waiting for the destination: {info['status']}")
runs_here(src, api, "cancel in setup")
os.kill(dst.proc.pid, signal.SIGCONT)
dst.kill()

# 4. Cancel in the active phase (bandwidth-limited pre-copy).
dst, port = start_dest("active")
api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
deadline = time.monotonic() + 30
while "destination" not in api.cmd("query-migrate") and time.monotonic() < deadline:
    time.sleep(0.02)
time.sleep(0.5)
check(api.cmd("query-migrate")["status"] == "active", "pre-copy under way")
api.cmd("migrate-cancel")
info = wait_migration(api)
check(info["status"] == "cancelled", "cancel while active")
rc = dst.wait(timeout=30)
check(rc == 1 and "not started" in dst.stderr, "its destination exits without starting the guest")
never_started(dst, "cancel while active")
runs_here(src, api, "cancel while active")

# 5. Two migrate commands at once: the second is refused, the first goes on.
dst, port = start_dest("twice")
api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
try:
    api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    check(False, "a second migrate is refused")
except Exception as e:
    check("already running" in str(e), f"a second migrate is refused: {e}")
api.cmd("migrate-cancel")
check(wait_migration(api)["status"] == "cancelled", "the first one ends by cancel")
dst.kill()
runs_here(src, api, "two migrates")
api.cmd("migrate-set-parameters", max_bandwidth=0)

# 6. Cancel in the device phase: the destination's Ready is held back, so
# the source waits with the guest stopped; the cancel resumes it here.
api.cmd("migrate-set-parameters", switchover_timeout=20000)
dst, port = start_dest("device")
relay = Relay(port, lambda t: t == READY, lambda: None)
relay.start()
api.cmd("migrate", uri=f"tcp:127.0.0.1:{relay.port}")
deadline = time.monotonic() + 60
while relay.held is None and time.monotonic() < deadline:
    time.sleep(0.01)
check(relay.held == READY and api.cmd("query-migrate")["status"] == "device",
      "the source waits for Ready with the guest stopped (device phase)")
api.cmd("migrate-cancel")
info = wait_migration(api)
check(info["status"] == "cancelled", f"cancel in the device phase: {info['status']}")
runs_here(src, api, "cancel in the device phase")
rc = dst.wait(timeout=90)
check(rc == 1, "its destination exits (the source went) ...")
never_started(dst, "cancel in the device phase")
api.cmd("migrate-set-parameters", switchover_timeout=5000)

# 7. Destination stopped for longer than the handshake timeout: the source
# gives up with the guest running; the destination, woken, never starts it.
dst, port = start_dest("stopped")
os.kill(dst.proc.pid, signal.SIGSTOP)
t0 = time.monotonic()
api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
info = wait_migration(api, timeout=120)
check(info["status"] == "failed" and re.search(r"did not answer|nothing moved", info.get("error-desc", "")),
      f"after {time.monotonic() - t0:.0f} s: {info.get('error-desc')}")
runs_here(src, api, "destination stopped")
os.kill(dst.proc.pid, signal.SIGCONT)
rc = dst.wait(timeout=60)
check(rc == 1 and re.search(r"closed the connection|not started", dst.stderr),
      f"the woken destination ends: {dst.stderr.strip().splitlines()[-1]}")
never_started(dst, "destination stopped")

# 8. Source killed mid-stream: the destination exits with a clear error and
# never starts a guest; the guest was only ever at the source.
api.cmd("migrate-set-parameters", max_bandwidth=8 << 20)
dst, port = start_dest("orphan")
api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
time.sleep(1.0)
check(api.cmd("query-migrate")["status"] == "active", "under way")
src.kill()
rc = dst.wait(timeout=90)
check(rc == 1 and re.search(r"(closed the connection|connection to the source broke) before the end "
                            r"of the stream", dst.stderr),
      f"source killed: the destination says so: {dst.stderr.strip().splitlines()[-1]}")
never_started(dst, "source killed")

# 9. Destination killed after the switch-over: it sent Resumed (the guest
# ran there) and died before the source heard it. The source never
# resumes a guest it handed over: it stays paused there, and says so.
src, api = new_source()
dst, port = start_dest("after")
relay = Relay(port, lambda t: t == RESUMED, lambda: dst.proc.kill(), close_on_hold=True)
relay.start()
api.cmd("migrate", uri=f"tcp:127.0.0.1:{relay.port}")
info = wait_migration(api, timeout=120)
check(relay.held == RESUMED and info["status"] == "failed"
      and "the guest stays paused here" in info.get("error-desc", ""),
      f"destination killed after the switch-over: {info.get('error-desc')}")
check(api.cmd("query-status")["status"] == "postmigrate", "the source keeps it paused")
n = len(progress_lines(src.lines))
time.sleep(1.0)
check(len(progress_lines(src.lines)) <= n + 1, "and it does not run there")
api.cmd("cont")  # the operator knows the destination is gone
runs_here(src, api, "cont after the lost destination")
api.cmd("quit")
src.wait(timeout=30)

"""Migration over several connections (migrate-set-parameters connections=2):
pages spread over two TCP connections, each with its own thread on both
sides; the guest's own verification proves every page arrived right.

Then, with a proxy in front of the destination that holds back the data
connection's last record (its DataEnd) after everything else has arrived:
the destination must not start the guest while a connection's data is
missing (it stays `inmigrate`, the guest prints nothing), and it completes
once the record comes. A stranger's garbage connection before the data
connection is dropped without harm. Finally the data connection is cut at
that point: the destination refuses, never starts the guest, and the guest
runs on at the source."""
import os
import re
import time

from vmmtest import (Api, Guest, Proxy, check, check_no_verify_failures, fail, free_port,
                     guest_args, progress_lines, require_kvm, tmpdir, wait_migration)

require_kvm()
d = tmpdir()
cmdline = "dirty=48M rate=16M runtime=14 progress=500"
args = guest_args(cmdline, memory="256M")


def source(name):
    g = Guest(args + ["--api-socket", os.path.join(d, name + ".sock")], name=name)
    g.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=30)
    api = Api(os.path.join(d, name + ".sock"))
    api.cmd("migrate-set-parameters", connections=2)
    return g, api


def dest(name):
    port = free_port()
    g = Guest(args + ["--incoming", f"tcp:127.0.0.1:{port}",
                      "--api-socket", os.path.join(d, name + ".sock")], name=name)
    return g, Api(os.path.join(d, name + ".sock")), port


def runs_on_to_the_end(dst, src, who):
    last = progress_lines(src.lines)[-1]
    m = dst.wait_line(r"progress vcpu=0 t=\d+ writes=(\d+) sweeps=\d+ errors=0", timeout=30)
    check(int(m.group(1)) >= last[2], f"{who}: the guest continues where it stopped")
    rc = dst.wait(timeout=40)
    check_no_verify_failures(src.lines + dst.lines, who)
    check(rc == 0 and any(l.startswith("final vcpu=0") and "errors=0" in l for l in dst.lines),
          f"{who}: final verification passes, the guest exits 0")


# 1. Two connections, straight.
src, api = source("src1")
dst, api_dst, port = dest("dst1")
api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
info = wait_migration(api)
if info["status"] != "completed":
    fail(f"migration over 2 connections {info['status']}: {info.get('error-desc')}")
check(info["connections"] == 2, f"query-migrate: 2 connections ({info['ram']['transferred']} "
      f"bytes, total {info['total-time']} ms, downtime {info['downtime-us']} us)")
check(src.wait(timeout=15) == 0, "the source exits after the handover")
runs_on_to_the_end(dst, src, "2 connections")
check("over 2 connections" in dst.stderr, "the destination received over 2 connections")

# 2. The data connection's last record held back (and a stranger first).
src, api = source("src2")
dst, api_dst, port = dest("dst2")
proxy = Proxy(port, stranger=True)
api.cmd("migrate-set-parameters", switchover_timeout=60000)
api.cmd("migrate", uri=f"tcp:127.0.0.1:{proxy.port}")
if not proxy.held.wait(60):
    fail("the data connection never reached its end")
time.sleep(2.0)  # the main connection's End has long arrived
st = api_dst.cmd("query-status")["status"]
started = [l for l in dst.lines if l.startswith("progress")]
check(st == "inmigrate" and not started,
      f"with a connection's data missing the destination does not start the guest ({st})")
check(api.cmd("query-migrate")["status"] in ("active", "device"), "the source still waits")
proxy.release()
info = wait_migration(api)
check(info["status"] == "completed", f"completed once the data came ({info.get('error-desc')})")
check(src.wait(timeout=15) == 0, "the source exits after the handover")
runs_on_to_the_end(dst, src, "held data connection")
check(re.search(r"incoming connection dropped .*not a vmm migration stream", dst.stderr),
      "the stranger's connection (screened beside the data connection) was dropped and the "
      "destination kept waiting")
proxy.close()

# 3. The data connection cut at the same point: refused, guest safe at the source.
src, api = source("src3")
dst, api_dst, port = dest("dst3")
proxy = Proxy(port)
api.cmd("migrate", uri=f"tcp:127.0.0.1:{proxy.port}")
if not proxy.held.wait(60):
    fail("the data connection never reached its end")
proxy.cut()
info = wait_migration(api)
check(info["status"] == "failed", f"cut data connection: failed ({info.get('error-desc')})")
rc = dst.wait(timeout=30)
check(rc == 1 and "not started" in dst.stderr and not any(l.startswith("progress") for l in dst.lines),
      f"the destination exits 1 without starting the guest: {dst.stderr.strip().splitlines()[-1]}")
base = progress_lines(src.lines)[-1]
src.wait_line(rf"progress vcpu=0 .* sweeps=({base[3] + 2}|{base[3] + 3})", timeout=30,
              start=len(src.lines))
check_no_verify_failures(src.lines, "source")
check(api.cmd("query-status")["status"] == "running", "the guest runs on at the source, verified")
api.cmd("quit")
src.wait(20)
proxy.close()

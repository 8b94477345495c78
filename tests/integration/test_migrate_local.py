"""Same-host moves ("local": true over unix:): the guest's RAM memfd is
passed (SCM_RIGHTS), not copied; the destination maps the same memory and
only vCPU and device state travel. The guest's own verification proves
nothing was lost. Refused clearly over tcp: and to a file. A move whose
destination cannot map the memory (its address space limited) fails, and
the guest runs on at the source, still verifying its memory."""
import os
import resource

from vmmtest import (Api, ApiError, Guest, check, check_no_verify_failures, fail, free_port,
                     guest_args, progress_lines, require_kvm, tmpdir, wait_migration)

require_kvm()
d = tmpdir()
cmdline = "dirty=256M rate=32M runtime=12 progress=500"
args = guest_args(cmdline, memory="1G")

src = Guest(args + ["--api-socket", os.path.join(d, "src.sock")], name="source")
src.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=60)
api = Api(os.path.join(d, "src.sock"))

# Refusals before anything starts.
for uri, why in ((f"tcp:127.0.0.1:{free_port()}", "tcp: reaches other hosts"),
                 (f"file:{d}/x.snap", "a snapshot file cannot hold a descriptor")):
    try:
        api.cmd("migrate", uri=uri, local=True)
        fail(f"local=true to {uri} was accepted")
    except ApiError as e:
        check(why in str(e) and "unix:" in str(e), f"local to {uri.split(':')[0]}: refused: {e}")
check(api.cmd("query-status")["status"] == "running", "the guest runs on")

# A destination that cannot map the guest's memory: its address space is
# limited to its own RAM plus a margin, so a second 1 GiB mapping fails.
limit = (1 << 30) + (640 << 20)


def limit_as():
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


import subprocess
sock = os.path.join(d, "small.sock")
small = subprocess.Popen([os.environ["VMM"]] + args + ["--incoming", f"unix:{sock}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=limit_as)
import time
for _ in range(200):
    if os.path.exists(sock):
        break
    time.sleep(0.05)
api.cmd("migrate", uri=f"unix:{sock}", local=True)
info = wait_migration(api)
out, err = small.communicate(timeout=30)
check(info["status"] == "failed" and "cannot use the guest's memory" in info.get("error-desc", ""),
      f"unmappable at the destination: failed with its reason ({info.get('error-desc')})")
check(small.returncode == 1 and "not started" in err and "progress" not in out,
      "that destination never started the guest")
base = progress_lines(src.lines)[-1]
src.wait_line(rf"progress vcpu=0 .* sweeps=({base[3] + 2}|{base[3] + 3})", timeout=30,
              start=len(src.lines))
check_no_verify_failures(src.lines, "source")
now = progress_lines(src.lines)[-1]
check(now[2] > base[2] and api.cmd("query-status")["status"] == "running",
      f"after the failed local move the guest runs on at the source (writes {base[2]} -> {now[2]})")

# The real move.
uri = f"unix:{os.path.join(d, 'local.sock')}"
dst = Guest(args + ["--incoming", uri, "--api-socket", os.path.join(d, "dst.sock")],
            name="destination")
Api(os.path.join(d, "dst.sock")).close()
api.cmd("migrate", uri=uri, local=True)
info = wait_migration(api)
if info["status"] != "completed":
    fail(f"local move {info['status']}: {info.get('error-desc')}")
check(info["local"] and info["ram"]["normal"] == 0,
      f"local move: no page copied, {info['ram']['transferred']} bytes of state, total "
      f"{info['total-time']} ms, downtime {info['downtime-us']} us")
check(src.wait(timeout=15) == 0, "the source exits after the handover")
last = progress_lines(src.lines)[-1]
m = dst.wait_line(r"progress vcpu=0 t=\d+ writes=(\d+) sweeps=\d+ errors=0", timeout=30)
check(int(m.group(1)) >= last[2], "the guest continues at the destination on the same memory")
rc = dst.wait(timeout=40)
check_no_verify_failures(src.lines + dst.lines, "guest")
check(rc == 0 and any(l.startswith("final vcpu=0") and "errors=0" in l for l in dst.lines),
      "final verification at the destination passes, the guest exits 0")
check("local: memory shared" in dst.stderr, "the destination says the memory was shared")

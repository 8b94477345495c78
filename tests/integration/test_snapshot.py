"""A file snapshot restores later: `migrate file:PATH`, then
`vmm --incoming file:PATH` with the same command line continues the guest,
whose own memory verification passes until it exits by itself."""
import os

from vmmtest import (Api, Guest, check, check_no_verify_failures, fail, guest_args,
                     progress_lines, require_kvm, tmpdir, wait_migration)

require_kvm()
d = tmpdir()
args = guest_args("dirty=32M rate=32M runtime=10 progress=500", memory="128M", cpus=2)
src = Guest(args + ["--api-socket", os.path.join(d, "src.sock")], name="source")
for v in range(2):
    src.wait_line(rf"progress vcpu={v} .* sweeps=[1-9]", timeout=30)
api = Api(os.path.join(d, "src.sock"))
snap = os.path.join(d, "guest.snap")
api.cmd("migrate", uri=f"file:{snap}")
info = wait_migration(api)
check(info["status"] == "completed", f"snapshot written: {os.path.getsize(snap)} bytes, "
      f"{info['ram']['normal']} pages with data, {info['ram']['untouched']} untouched")
api.cmd("quit")
check(src.wait(timeout=20) == 0, "source quit")
last = {p[0]: p for p in progress_lines(src.lines)}

restored = Guest(args + ["--incoming", f"file:{snap}"], name="restored")
for v in range(2):
    m = restored.wait_line(rf"progress vcpu={v} t=(\d+) writes=(\d+) sweeps=(\d+) errors=0",
                           timeout=30)
    # a whole progress interval of new writes after the restore: strictly more
    check(int(m.group(2)) > last[v][2] and int(m.group(1)) > last[v][1],
          f"vCPU {v} continues from the snapshot's counters (writes {last[v][2]} -> {m.group(2)})")
rc = restored.wait(timeout=40)
check_no_verify_failures(restored.lines, "restored", vcpus=2)
finals = [l for l in restored.lines if l.startswith("final ")]
check(len(finals) == 2 and all("errors=0" in l for l in finals), f"final verification: {finals}")
check(rc == 0, f"restored guest exited with status {rc}")

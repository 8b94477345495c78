"""Guest ABI over time.

1. Golden streams (tests/data/streams/, made by earlier builds) restore with
   this build: the guest continues, its own memory verification passes, and
   it runs on the machine type version it was made on even though the
   command line says the alias `microvm`.
2. Live: a guest booted on microvm-1.0 migrates to a destination started
   with `--machine microvm` (newest) and keeps microvm-1.0's ABI; an alias
   on the source resolves to the newest version, which is what the stream
   records (an explicit older version on the destination is refused).
3. A stream naming a machine version this build does not know is refused
   with a clear message and the guest is not started."""
import json
import os
import shutil

from vmmtest import (SOURCE_ROOT, Api, Guest, check, check_no_verify_failures, guest_args,
                     require_guest, require_kvm, tmpdir, wait_migration, TESTGUEST)

require_kvm()
require_guest()
d = tmpdir()
streams_dir = os.path.join(SOURCE_ROOT, "tests", "data", "streams")
specs = json.load(open(os.path.join(streams_dir, "streams.json")))
newest = Guest(["--print-config"], name="print-config")
newest.wait(10)
newest_machine = [l for l in newest.lines if l.startswith("machine ")][0].split("=")[1].split()[0]
check(newest_machine.startswith("microvm-"), f"`microvm` resolves to {newest_machine} in this build")
check(any(l.startswith("machine ") and "alias microvm" in l for l in newest.lines)
      and any(l.startswith("cpu-model") and "recorded as x86-64-v1-v1" in l for l in newest.lines),
      "--print-config names the alias and the recorded CPU model version")
old_cfg = Guest(["--print-config", "--machine", "microvm-1.0"], name="print-config 1.0")
old_cfg.wait(10)
check("memory           = 256 MiB (the machine type's default)" in old_cfg.lines
      and not any(l.startswith("serial1.") for l in old_cfg.lines),
      "--print-config shows microvm-1.0's own defaults (256 MiB, no COM2)")

# 1. golden streams
for name, spec in specs.items():
    path = os.path.join(streams_dir, name + ".vmmstream")
    sock = os.path.join(d, name + ".sock")
    g = Guest(["--kernel", TESTGUEST, "--incoming", f"file:{path}", "--api-socket", sock]
              + spec["restore_args"], name=name)
    for v in range(spec["cpus"]):
        g.wait_line(rf"progress vcpu={v} .* sweeps=[2-9] errors=0", timeout=30)
    m = Api(sock).cmd("query-machine")
    check(m["machine"] == spec["machine"],
          f"{name}: restored on {m['machine']} (command line said microvm)")
    check(("serial1.type" in m["properties"]) == (spec["machine"] != "microvm-1.0"),
          f"{name}: the device set of {spec['machine']}")
    rc = g.wait(timeout=40)
    check_no_verify_failures(g.lines, name)
    finals = [l for l in g.lines if l.startswith("final ")]
    check(rc == 0 and len(finals) == spec["cpus"] and all("errors=0" in l for l in finals),
          f"{name}: the guest finished its run with a clean final verification")

# 2. live: an older machine version survives a move to `--machine microvm`
args = guest_args("dirty=8M rate=8M runtime=8 progress=500", memory="64M")
src = Guest(args + ["--machine", "microvm-1.0", "--api-socket", os.path.join(d, "s.sock")],
            name="source")
src.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=30)
dst = Guest(args + ["--machine", "microvm", "--incoming", f"unix:{os.path.join(d, 'm.sock')}",
                    "--api-socket", os.path.join(d, "d.sock")], name="destination")
api_dst = Api(os.path.join(d, "d.sock"))
api_src = Api(os.path.join(d, "s.sock"))
api_src.cmd("migrate", uri=f"unix:{os.path.join(d, 'm.sock')}")
info = wait_migration(api_src, 60)
check(info["status"] == "completed", "microvm-1.0 guest migrated to a `--machine microvm` vmm")
m = api_dst.cmd("query-machine")
check(m["machine"] == "microvm-1.0" and "serial1.type" not in m["properties"]
      and m["properties"]["memory.default-size"] == "0x10000000",
      "the destination built microvm-1.0 (no COM2, its defaults), not the newest")
check(dst.wait(timeout=30) == 0, "the guest ran to its end on the destination")
check_no_verify_failures(dst.lines, "destination")

# The alias resolves to the newest version, and the stream records it.
src = Guest(args + ["--machine", "microvm", "--api-socket", os.path.join(d, "a.sock")], name="alias")
src.wait_line(r"progress vcpu=0", timeout=30)
api = Api(os.path.join(d, "a.sock"))
check(api.cmd("query-machine")["machine"] == newest_machine, "`--machine microvm` runs the newest")
snap = os.path.join(d, "alias.snap")
api.cmd("migrate", uri=f"file:{snap}")
check(wait_migration(api)["status"] == "completed", "snapshot of the alias guest")
api.cmd("quit")
src.wait(20)
check(newest_machine.encode() in open(snap, "rb").read(4096),
      f"the stream's header names {newest_machine}, not the alias")
older = Guest(args + ["--machine", "microvm-1.0", "--incoming", f"file:{snap}"], name="older")
rc = older.wait(20)
check(rc == 1 and f"machine type mismatch: stream {newest_machine}, command line microvm-1.0"
      in older.stderr, "an explicit, different machine version on the destination is refused")

# 3. an unknown machine version in a stream
golden = open(os.path.join(streams_dir, "format1.0-microvm1.0-1cpu.vmmstream"), "rb").read()
forged = golden.replace(b"microvm-1.0", b"microvm-9.9", 1)
path = os.path.join(d, "unknown.vmmstream")
open(path, "wb").write(forged)
g = Guest(["--kernel", TESTGUEST, "--incoming", f"file:{path}"]
          + specs["format1.0-microvm1.0-1cpu"]["restore_args"], name="unknown")
rc = g.wait(20)
check(rc == 1 and "stream machine type microvm-9.9 is unknown to this vmm" in g.stderr
      and not any(l.startswith("progress") for l in g.lines),
      f"unknown machine version refused, guest not started: {g.stderr.strip().splitlines()[-1]}")

# 4. The machine type pins what an unversioned CPU model name means: adding a
#    newer version of the model (here in a copy of the model data) changes
#    nothing for a released machine type.
def resolved_cpu(env=None):
    g = Guest(["--machine", "microvm-1.0", "--cpu-model", "Skylake-Server", "--print-config"],
              name="print-config pin", env=env)
    g.wait(10)
    line = [l for l in g.lines if l.startswith("cpu-model")][0]
    return line.split("=")[1].split()[0], line


before, line = resolved_cpu()
check('"Skylake-Server" pinned by the machine type microvm-1.0' in line, f"print-config says where it came from: {line}")
data = os.path.join(d, "cpumodels")
shutil.copytree(os.path.join(SOURCE_ROOT, "cpumodels", "data"), data)
sky = os.path.join(data, "21-intel-skylake.cpumodel")
text = open(sky).read()
at = text.index("\nmodel Cascadelake-Server")
open(sky, "w").write(text[:at] + "\nversion 6\n    note test only\n    remove xsaves\n" + text[at:])
after, _ = resolved_cpu(dict(os.environ, VMM_CPU_MODEL_DIR=data))
check(before == after == "Skylake-Server-v5",
      f"--machine microvm-1.0 --cpu-model Skylake-Server is {before} before and {after} after "
      f"a new Skylake-Server version appears")

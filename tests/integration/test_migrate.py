"""Live migration of the test guest while it dirties and verifies memory.

usage: test_migrate.py tcp|unix CPUS

Two vmm processes on this machine: the source boots the test guest dirtying
memory at a set rate and verifying every page against its own generation
counters; the destination waits with --incoming. After the move the
destination's guest must go on with continuous counters and zero
verification errors until it exits by itself with status 0 (its final full
verification), the source must exit 0, and the CPUID tables KVM holds for
every vCPU must be equal on both sides. The guest's own CPUID report is
compared too, and where the platform does not intercept CPUID the test says
so."""
import os
import sys

from vmmtest import (Api, Guest, check, check_no_verify_failures, cpuid_report, fail, free_port,
                     guest_args, progress_lines, require_kvm, tmpdir, wait_migration)

require_kvm()
transport = sys.argv[1] if len(sys.argv) > 1 else "tcp"
cpus = int(sys.argv[2]) if len(sys.argv) > 2 else 1
d = tmpdir()
uri = (f"tcp:127.0.0.1:{free_port()}" if transport == "tcp"
       else f"unix:{os.path.join(d, 'migrate.sock')}")

# 48 MiB dirtied at 24 MiB/s; the guest ends by itself after 14 s of guest time.
cmdline = "dirty=48M rate=24M runtime=14 progress=500 cpuid cpuid-interval=4"
args = guest_args(cmdline, memory="256M", cpus=cpus)
src = Guest(args + ["--api-socket", os.path.join(d, "src.sock")], name="source")
src.wait_line(r"testguest: ready", timeout=30)
for v in range(cpus):
    src.wait_line(rf"progress vcpu={v} .* sweeps=[1-9]", timeout=30)
check(True, f"source guest runs on {cpus} vCPU(s), dirtying and verifying memory")

dst = Guest(args + ["--incoming", uri, "--api-socket", os.path.join(d, "dst.sock")],
            name="destination")
api_dst = Api(os.path.join(d, "dst.sock"))
check(api_dst.cmd("query-status")["status"] == "inmigrate", "destination waits: inmigrate")
api_src = Api(os.path.join(d, "src.sock"))
cpuid_src = api_src.cmd("query-cpuid")

before = len(src.lines)
api_src.cmd("migrate", uri=uri)
info = wait_migration(api_src)
if info["status"] != "completed":
    fail(f"migration {info['status']}: {info.get('error-desc')}")
ram = info["ram"]
print(f"stats: total {info['total-time']} ms, setup {info['setup-time']} ms, downtime "
      f"{info['downtime']} ms, {ram['transferred']} bytes, {ram['normal']} pages with data, "
      f"{ram['duplicate']} zero, {ram['untouched']} untouched, {ram['dirty-sync-count']} syncs, "
      f"compression {info['compression-ratio']:.2f}")
check(ram["normal"] > (48 << 20) // 4096, "every dirtied page was sent at least once")
check(ram["untouched"] > 0, "never-touched pages were skipped")
check(info["downtime"] < 2000, f"downtime {info['downtime']} ms")

rc = src.wait(timeout=15)
check(rc == 0 and "now runs at" in src.stderr, f"source exits 0 after handing over ({src.stderr.strip().splitlines()[-1]})")
check_no_verify_failures(src.lines, "source", vcpus=cpus)
last_src = {}
for vcpu, t, writes, sweeps, errors in progress_lines(src.lines):
    last_src[vcpu] = (t, writes, sweeps)
check(len(last_src) == cpus, "every vCPU reported progress on the source")

# The destination continues where the source stopped.
dst_first = 0  # the destination's console starts with the migrated guest
cpuid_dst = api_dst.cmd("query-cpuid")
check(cpuid_dst == cpuid_src, "every vCPU's CPUID (KVM_GET_CPUID2 and the model's table) is equal on destination and source")
for v in range(cpus):
    m = dst.wait_line(rf"progress vcpu={v} t=(\d+) writes=(\d+) sweeps=(\d+) errors=0", timeout=30)
    t, writes, sweeps = int(m.group(1)), int(m.group(2)), int(m.group(3))
    # The guest dirtied on after its last line at the source and again for a
    # whole interval here: both counters must have grown, not merely stayed.
    check(writes > last_src[v][1] and t > last_src[v][0],
          f"vCPU {v}: counters continue after the move (writes {last_src[v][1]} -> {writes}, "
          f"t {last_src[v][0]} -> {t})")
# Two more full verification sweeps on the destination, then the guest's own end.
for v in range(cpus):
    base = last_src[v][2]
    dst.wait_line(rf"progress vcpu={v} .* sweeps=({base + 2}|{base + 3}|[1-9]\d{{2,}})", timeout=40)
rc = dst.wait(timeout=40)
check_no_verify_failures(dst.lines, "destination", vcpus=cpus)
finals = [l for l in dst.lines if l.startswith("final ")]
check(len(finals) == cpus and all("errors=0" in l for l in finals),
      f"final verification on the destination: {finals}")
check(rc == 0, f"destination guest exited with status {rc}")

# The guest's own CPUID report, before and after the move (the guest repeats
# it every 4 s, so the destination reports too).
table = {tuple(int(x, 16) for x in l.split()[:2]): tuple(int(x, 16) for x in l.split()[2:])
         for l in cpuid_src["vcpus"][0]["model-table"].splitlines()}
before = cpuid_report(src.lines)
after = cpuid_report(dst.lines[dst_first:])
check(before and after, "the guest reported its CPUID on both sides")
intercepted = all(table.get(k) == v for k, v in before.items())
if intercepted:
    check(before == after, "the guest's CPUID report equals KVM's table on both sides")
else:
    print("note: this platform does not intercept CPUID: the guest sees the physical host's "
          "values, not KVM's table, so its report cannot prove the CPU model here; the "
          "KVM_GET_CPUID2 comparison above is the proof. Comparing the guest's reports "
          "before and after the move with the per-CPU APIC ID fields masked.")
    check(cpuid_report(src.lines, mask_per_cpu=True) == cpuid_report(dst.lines[dst_first:], mask_per_cpu=True),
          "the guest's own CPUID report is the same after the move")

"""Migration between two "hosts": source and destination each in its own
network namespace, joined by a veth pair (192.0.2.1/30 <-> 192.0.2.2/30,
a documentation range), each posing as a different real CPU with
--host-cpu-profile (its CPUID intersected with this machine's KVM). The
stream crosses a real network interface and the CPUID check runs between
two machines. Namespaces are removed at the end, also on failure."""
import os
import shutil
import subprocess

from vmmtest import (Api, Guest, HOSTS_DIR, check, check_no_verify_failures, fail, guest_args,
                     host_profiles, progress_lines, require_installed, require_kvm, skip, tmpdir,
                     wait_migration)

require_kvm()
host_profiles()
if os.geteuid() != 0:
    skip("network namespaces need root")
require_installed(shutil.which("ip"), "the ip command", "iproute2")
profile_a = os.path.join(HOSTS_DIR, "intel-cascadelake-sp-xeon-gold-5215.txt")
profile_b = os.path.join(HOSTS_DIR, "intel-icelake-sp-xeon-platinum-8351n.txt")
ns_a, ns_b = f"vmmt-a-{os.getpid()}", f"vmmt-b-{os.getpid()}"
veth_a, veth_b = f"vma{os.getpid() % 100000}", f"vmb{os.getpid() % 100000}"


def ip(*args, check_rc=True):
    p = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
    if check_rc and p.returncode != 0:
        fail(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p


procs = []
try:
    # Only the first step may be refused for a reason outside this project (a
    # container without CAP_SYS_ADMIN, a kernel without namespaces): a skip.
    # Once namespaces can be made, every later `ip` error is a failure.
    p = ip("netns", "add", ns_a, check_rc=False)
    if p.returncode != 0:
        skip(f"this machine refuses network namespaces: ip netns add: {p.stderr.strip()}")
    ip("netns", "add", ns_b)
    ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
    ip("link", "set", veth_a, "netns", ns_a)
    ip("link", "set", veth_b, "netns", ns_b)
    ip("-n", ns_a, "addr", "add", "192.0.2.1/30", "dev", veth_a)
    ip("-n", ns_b, "addr", "add", "192.0.2.2/30", "dev", veth_b)
    for ns, dev in ((ns_a, veth_a), (ns_b, veth_b)):
        ip("-n", ns, "link", "set", dev, "up")
        ip("-n", ns, "link", "set", "lo", "up")

    d = tmpdir()
    args = guest_args("dirty=32M rate=16M runtime=12 progress=500", memory="256M")
    src = Guest(args + ["--host-cpu-profile", profile_a, "--api-socket", os.path.join(d, "a.sock")],
                name="host A", prefix=["ip", "netns", "exec", ns_a])
    procs.append(src)
    src.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=30)
    dst = Guest(args + ["--host-cpu-profile", profile_b, "--incoming", "tcp:192.0.2.2:4444",
                        "--api-socket", os.path.join(d, "b.sock")],
                name="host B", prefix=["ip", "netns", "exec", ns_b])
    procs.append(dst)
    api_b = Api(os.path.join(d, "b.sock"))
    api_a = Api(os.path.join(d, "a.sock"))
    cpuid_a = api_a.cmd("query-cpuid")
    api_a.cmd("migrate", uri="tcp:192.0.2.2:4444")
    info = wait_migration(api_a)
    if info["status"] != "completed":
        fail(f"migration between namespaces {info['status']}: {info.get('error-desc')}")
    check(True, f"migrated host A -> host B over veth: {info['ram']['transferred']} bytes, "
          f"total {info['total-time']} ms, downtime {info['downtime']} ms")
    check(src.wait(timeout=15) == 0, "host A's vmm exits after the handover")
    check(api_b.cmd("query-cpuid") == cpuid_a,
          "the guest's CPUID (KVM_GET_CPUID2) is identical on both hosts")
    last = progress_lines(src.lines)[-1]
    m = dst.wait_line(r"progress vcpu=0 t=\d+ writes=(\d+) sweeps=\d+ errors=0", timeout=30)
    check(int(m.group(1)) > last[2],
          f"the guest continues on host B (writes {last[2]} -> {m.group(1)})")
    rc = dst.wait(timeout=40)
    check_no_verify_failures(src.lines, "host A")
    check_no_verify_failures(dst.lines, "host B")
    check(rc == 0 and any(l.startswith("final vcpu=0") and "errors=0" in l for l in dst.lines),
          "final verification on host B passes, guest exits 0")
finally:
    for p in procs:
        p.kill()
    ip("netns", "del", ns_a, check_rc=False)
    ip("netns", "del", ns_b, check_rc=False)
    ip("link", "del", veth_a, check_rc=False)  # if it never left this namespace

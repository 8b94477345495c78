"""Hugepage-backed guest RAM (--memory SIZE,hugepages=on): a guest on 2 MiB
hugetlb pages migrates to another hugepage vmm, and (host-side, not guest
ABI) from 4 KiB pages to hugepages and back; the guest's own verification
proves its memory each time; a same-host move passes a hugetlb memfd to a
4 KiB vmm. Never-touched memory is still skipped on a
hugetlb source (SEEK_DATA sees no holes there; the page cache is asked).
A pool too small is a clear error naming /proc/sys/vm/nr_hugepages. The
pages are reserved for the test and given back."""
import os

from vmmtest import (Api, Guest, check, check_no_verify_failures, fail, free_port, guest_args,
                     hugepages, meminfo, progress_lines, require_kvm, run, tmpdir,
                     wait_migration, TESTGUEST)

require_kvm()
d = tmpdir()
cmdline = "dirty=48M rate=16M runtime=10 progress=500"

# Too small a pool: a clear error, at start-up.
free = meminfo("HugePages_Free") - meminfo("HugePages_Rsvd")
want_mib = (free + 64) * 2
p = run(["--kernel", TESTGUEST, "--memory", f"{want_mib}M,hugepages=on", "--cmdline", "exit=0"],
        timeout=30)
check(p.returncode == 1 and "/proc/sys/vm/nr_hugepages" in p.stderr and "hugepages" in p.stderr,
      f"a pool too small is refused, naming the knob: {p.stderr.strip()}")


def move(src_huge, dst_huge, n, local=False):
    mem = lambda huge: "256M" + (",hugepages=on" if huge else "")
    src = Guest(guest_args(cmdline, memory=mem(src_huge))
                + ["--api-socket", os.path.join(d, f"s{n}.sock")], name=f"source {n}")
    src.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=60)
    uri = f"unix:{d}/m{n}.sock" if local else f"tcp:127.0.0.1:{free_port()}"
    dst = Guest(guest_args(cmdline, memory=mem(dst_huge))
                + ["--incoming", uri, "--api-socket", os.path.join(d, f"d{n}.sock")],
                name=f"destination {n}")
    Api(os.path.join(d, f"d{n}.sock")).close()
    api = Api(os.path.join(d, f"s{n}.sock"))
    if local:
        api.cmd("migrate", uri=uri, local=True)
    else:
        api.cmd("migrate", uri=uri)
    info = wait_migration(api)
    what = (f"{'2 MiB' if src_huge else '4 KiB'} -> {'2 MiB' if dst_huge else '4 KiB'} pages"
            + (", local" if local else ""))
    if info["status"] != "completed":
        fail(f"{what}: {info['status']}: {info.get('error-desc')}")
    ram = info["ram"]
    if local:
        check(ram["normal"] == 0, f"{what}: the hugetlb memfd was passed, no page copied")
    else:
        check(ram["untouched"] > (64 << 20) // 4096,
              f"{what}: never-touched memory skipped ({ram['untouched']} pages), total "
              f"{info['total-time']} ms, downtime {info['downtime-us']} us")
    check(src.wait(timeout=15) == 0, f"{what}: the source exits after the handover")
    last = progress_lines(src.lines)[-1]
    m = dst.wait_line(r"progress vcpu=0 t=\d+ writes=(\d+) sweeps=\d+ errors=0", timeout=30)
    check(int(m.group(1)) >= last[2], f"{what}: the guest continues")
    rc = dst.wait(timeout=40)
    check_no_verify_failures(src.lines + dst.lines, what)
    check(rc == 0 and any(l.startswith("final vcpu=0") and "errors=0" in l for l in dst.lines),
          f"{what}: final verification passes, the guest exits 0")


# Two 256 MiB hugepage guests at most at once: 256 pages, and a little slack.
with hugepages(260):
    move(True, True, 1)
    move(False, True, 2)
    move(True, False, 3)
    move(True, False, 4, local=True)  # a hugetlb memfd mapped where 4 KiB RAM was

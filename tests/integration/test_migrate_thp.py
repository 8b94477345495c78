"""Transparent hugepages on memfd RAM: vmm asks for them (MADV_HUGEPAGE), as
QEMU does for its RAM, and the host decides (its shmem_enabled). With it set
to advise for the test (restored after), a guest's RAM is on 2 MiB pages at
the source, stays so at the destination of a live migration, and the
guest's own verification proves its memory. Skipped (77), with the reason,
where the kernel gives shmem no transparent hugepages even when asked."""
import os

from vmmtest import (Api, Guest, check, check_no_verify_failures, fail, free_port, guest_args,
                     progress_lines, require_kvm, shmem_pmd_kib, thp_shmem, tmpdir,
                     wait_migration)

require_kvm()
d = tmpdir()
args = guest_args("dirty=48M rate=16M runtime=10 progress=500", memory="256M")
MIN_KIB = 16 << 10  # of the 48 MiB the guest writes

with thp_shmem("advise"):
    src = Guest(args + ["--api-socket", os.path.join(d, "s.sock")], name="source")
    src.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=60)
    kib = shmem_pmd_kib(src.proc.pid)
    check(kib >= MIN_KIB, f"the source's RAM is on 2 MiB pages ({kib} KiB mapped so)")
    port = free_port()
    dst = Guest(args + ["--incoming", f"tcp:127.0.0.1:{port}",
                        "--api-socket", os.path.join(d, "d.sock")], name="destination")
    Api(os.path.join(d, "d.sock")).close()
    api = Api(os.path.join(d, "s.sock"))
    api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    info = wait_migration(api)
    if info["status"] != "completed":
        fail(f"migration {info['status']}: {info.get('error-desc')}")
    kib = shmem_pmd_kib(dst.proc.pid)
    check(kib >= MIN_KIB, f"the destination's RAM is on 2 MiB pages ({kib} KiB mapped so), "
          f"total {info['total-time']} ms, downtime {info['downtime-us']} us")
    check(src.wait(timeout=15) == 0, "the source exits after the handover")
    last = progress_lines(src.lines)[-1]
    m = dst.wait_line(r"progress vcpu=0 t=\d+ writes=(\d+) sweeps=\d+ errors=0", timeout=30)
    check(int(m.group(1)) >= last[2], "the guest continues")
    rc = dst.wait(timeout=40)
    check_no_verify_failures(src.lines + dst.lines, "transparent hugepages")
    check(rc == 0 and any(l.startswith("final vcpu=0") and "errors=0" in l for l in dst.lines),
          "final verification passes, the guest exits 0")

"""Compression on worker threads, and the choice of it: with
compression=zstd every batch goes compressed (the guest writes fill=mixed
memory, ~2.4x) and the guest's verification proves it; with the default
compression=auto behind a slow link (max-bandwidth 24 MB/s) the measured
rates make zstd pay, and query-migrate says so and why."""
import os

from vmmtest import (Api, Guest, check, check_no_verify_failures, fail, free_port, guest_args,
                     progress_lines, require_kvm, tmpdir, wait_migration)

require_kvm()
d = tmpdir()
cmdline = "dirty=48M rate=8M fill=mixed runtime=10 progress=500"
args = guest_args(cmdline, memory="256M")


def move(n, params, expect):
    src = Guest(args + ["--api-socket", os.path.join(d, f"s{n}.sock")], name=f"source {n}")
    src.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=60)
    port = free_port()
    dst = Guest(args + ["--incoming", f"tcp:127.0.0.1:{port}",
                        "--api-socket", os.path.join(d, f"d{n}.sock")], name=f"destination {n}")
    Api(os.path.join(d, f"d{n}.sock")).close()
    api = Api(os.path.join(d, f"s{n}.sock"))
    api.cmd("migrate-set-parameters", **params)
    api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    info = wait_migration(api, 120)
    if info["status"] != "completed":
        fail(f"{expect}: {info['status']}: {info.get('error-desc')}")
    ram = info["ram"]
    print(f"{expect}: compression {info['compression']} ({info['compression-reason']}), "
          f"ratio {info['compression-ratio']:.2f}, {ram['compressed']} of {ram['normal']} pages "
          f"compressed, total {info['total-time']} ms")
    check(ram["compressed"] > ram["normal"] // 2 and info["compression-ratio"] > 1.6,
          f"{expect}: most pages went compressed, {info['compression-ratio']:.2f}x")
    check(src.wait(timeout=15) == 0, f"{expect}: the source exits after the handover")
    dst.wait_line(r"progress vcpu=0 .* errors=0", timeout=30)
    rc = dst.wait(timeout=40)
    check_no_verify_failures(src.lines + dst.lines, expect)
    check(rc == 0 and any(l.startswith("final vcpu=0") and "errors=0" in l for l in dst.lines),
          f"{expect}: final verification passes")
    return info


move(1, {"compression": "zstd"}, "compression=zstd")
info = move(2, {"max-bandwidth": 24 << 20}, "auto behind a 24 MB/s link")
check("zstd pays" in info["compression-reason"] or info["compression"].startswith("zstd"),
      f"auto chose zstd from the measured rates: {info['compression-reason']}")

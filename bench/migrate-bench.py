#!/usr/bin/env python3
"""Live-migration benchmark: vmm against QEMU, same guest, same machine, one run.

Migrates the bundled test guest over loopback TCP, first under vmm, then
under Debian's qemu-system-x86_64 (-enable-kvm, -kernel with the same PVH
ELF, same RAM size, same guest command line), and prints both sides' total
time, downtime and bytes sent, with ratios (vmm / QEMU: lower is better for
vmm). Scenarios: idle guests of 1 and 4 GiB, a guest dirtying memory at a
set rate, and a guest with 512 MiB touched, over plaintext and over TLS 1.3
with mutual x509 authentication (both VMMs with certificates made here by
certtool: vmm's --tls-creds / tls-creds, QEMU's tls-creds-x509 objects, the
same directory layout). Each scenario runs --repeat times per VMM; the table
shows the median, and for the TLS scenario its throughput against the same
guest in plaintext.

usage: bench/migrate-bench.py [--build DIR] [--repeat N] [--json] [--scenarios a,b,...]
                              [--guest-extra OPTS]
QEMU runs with max-bandwidth raised to 100 GB/s (its default cap would
otherwise decide the result) and the same 300 ms downtime limit as vmm.

A run counts only if the guest survived it: after every migration, under
both VMMs, the destination must still run the guest (its process alive,
a fresh console line from the guest: a heartbeat or a clean progress line),
and neither side's console may show VERIFY-FAIL or a progress line with
errors. Otherwise the benchmark stops with exit 1 and says which run failed.
--guest-extra appends test-guest options to every scenario's command line
(e.g. selftest-corrupt, to see that check fail).
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SCENARIOS = {
    "idle-1G": {"memory_mib": 1024, "cmdline": "", "settle": 1.0},
    "idle-4G": {"memory_mib": 4096, "cmdline": "", "settle": 1.0},
    "dirty-256M-64MBs": {"memory_mib": 1024, "cmdline": "dirty=256M rate=64M progress=1000",
                         "settle": 4.0},
    "touched-512M": {"memory_mib": 1024, "cmdline": "dirty=512M rate=1M progress=1000",
                     "settle": 6.0},
    "touched-512M-tls": {"memory_mib": 1024, "cmdline": "dirty=512M rate=1M progress=1000",
                         "settle": 6.0, "tls": True},
}
CREDS = None  # {role: dir}, made once per run when a TLS scenario runs


def tls_creds(tmp_root):
    global CREDS
    if CREDS is None:
        sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
        import tlscerts
        CREDS = tlscerts.make_all(tmp_root)
    return CREDS


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Json:
    """A JSON-lines control connection (vmm's API or QEMU's QMP)."""

    def __init__(self, path, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no control socket at {path}")
                time.sleep(0.02)
        self.f = self.s.makefile("rwb")
        json.loads(self.f.readline())  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "event" in r:
                continue
            if "error" in r:
                raise RuntimeError(f"{name}: {r['error']}")
            return r["return"]


def wait_status(api, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = api.cmd("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        time.sleep(0.01)
    raise RuntimeError("migration did not finish")


def wait_file_line(path, text, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, errors="replace") as f:
                if text in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{path}: no '{text}' within {timeout}s")


class GuestDied(RuntimeError):
    pass


def check_guest_survived(who, src_log, dst_log, dst_proc, timeout=20):
    """The guest runs on at the destination and its own verification held:
    a new line of its own (heartbeat every 5 s when idle, progress with
    errors=0 when dirtying) appears on the destination console, and neither
    console shows VERIFY-FAIL or a progress line reporting errors."""
    alive = re.compile(r"^(heartbeat t=\d+|progress vcpu=\d+ t=\d+ .* errors=0 )")
    deadline = time.monotonic() + timeout
    while True:
        text = open(dst_log, errors="replace").read() if os.path.exists(dst_log) else ""
        if any(alive.match(l) for l in text.splitlines()):
            break
        if dst_proc.poll() is not None:
            raise GuestDied(f"{who}: the destination exited ({dst_proc.returncode}) after the "
                            f"migration; its console:\n{text[-800:]}")
        if time.monotonic() > deadline:
            raise GuestDied(f"{who}: no sign of the guest at the destination within {timeout} s "
                            f"after the migration; its console:\n{text[-800:]}")
        time.sleep(0.1)
    for side, log in (("source", src_log), ("destination", dst_log)):
        bad = [l for l in open(log, errors="replace").read().splitlines()
               if "VERIFY-FAIL" in l or re.search(r"\berrors=[1-9]", l)]
        if bad:
            raise GuestDied(f"{who}: the guest's own verification failed at the {side}:\n"
                            + "\n".join(bad[:3]))


def check_source(who, src_log, src_proc):
    """Before migrating: the guest still runs at the source and verifies."""
    text = open(src_log, errors="replace").read()
    bad = [l for l in text.splitlines() if "VERIFY-FAIL" in l or re.search(r"\berrors=[1-9]", l)]
    if bad:
        raise GuestDied(f"{who}: the guest's own verification failed at the source before the "
                        "migration:\n" + "\n".join(bad[:3]))
    if src_proc.poll() is not None:
        raise GuestDied(f"{who}: the source exited ({src_proc.returncode}) before the "
                        f"migration; its console:\n{text[-800:]}")


def kill(*procs):
    for p in procs:
        if p and p.poll() is None:
            p.kill()
            p.wait()


def run_vmm(vmm, guest, sc, tmp):
    port = free_port()
    common = [vmm, "--kernel", guest, "--memory", f"{sc['memory_mib']}M", "--cpus", "1",
              "--cmdline", sc["cmdline"]]
    log = os.path.join(tmp, "vmm-src.log")
    src = subprocess.Popen(common + ["--serial", f"file:{log}", "--api-socket",
                                     os.path.join(tmp, "vmm-src.sock")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tls = ["--tls-creds", CREDS["dst"]] if sc.get("tls") else []
    dst = subprocess.Popen(common + ["--serial", f"file:{os.path.join(tmp, 'vmm-dst.log')}",
                                     "--incoming", f"tcp:127.0.0.1:{port}",
                                     "--api-socket", os.path.join(tmp, "vmm-dst.sock")] + tls,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_file_line(log, "testguest: ready")
        time.sleep(sc["settle"])
        check_source("vmm", log, src)
        Json(os.path.join(tmp, "vmm-dst.sock")).s.close()
        api = Json(os.path.join(tmp, "vmm-src.sock"))
        if sc.get("tls"):
            api.cmd("migrate-set-parameters", **{"tls-creds": CREDS["src"],
                                                 "tls-hostname": "localhost"})
        api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
        info = wait_status(api)
        if info["status"] != "completed":
            raise RuntimeError(f"vmm migration {info['status']}: {info.get('error-desc')}")
        check_guest_survived("vmm", log, os.path.join(tmp, "vmm-dst.log"), dst)
        if sc.get("tls") and not info.get("tls", {}).get("encrypted"):
            raise RuntimeError("vmm: the TLS scenario ran without TLS")
        return {"total_ms": info["total-time"], "downtime_ms": info["downtime-us"] / 1000.0,
                "bytes": info["ram"]["transferred"],
                "MB_per_s": info["ram"]["transferred"] / 1000.0 / max(info["total-time"], 1)}
    finally:
        kill(src, dst)


def run_qemu(qemu, guest, sc, tmp):
    port = free_port()
    common = [qemu, "-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", "pc",
              "-m", f"{sc['memory_mib']}M", "-smp", "1", "-display", "none", "-nodefaults",
              "-no-reboot", "-kernel", guest, "-append", sc["cmdline"] or " "]
    log = os.path.join(tmp, "qemu-src.log")
    tls = sc.get("tls")
    src_tls = ["-object", f"tls-creds-x509,id=tls0,dir={CREDS['src']},endpoint=client"] \
        if tls else []
    dst_tls = ["-object", f"tls-creds-x509,id=tls0,dir={CREDS['dst']},endpoint=server,"
               "verify-peer=on"] if tls else []
    src = subprocess.Popen(common + src_tls + [
                                     "-serial", f"file:{log}", "-qmp",
                                     f"unix:{os.path.join(tmp, 'qemu-src.sock')},server=on,wait=off"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dst = subprocess.Popen(common + dst_tls + [
                                     "-serial", f"file:{os.path.join(tmp, 'qemu-dst.log')}",
                                     "-incoming", "defer" if tls else f"tcp:127.0.0.1:{port}",
                                     "-qmp",
                                     f"unix:{os.path.join(tmp, 'qemu-dst.sock')},server=on,wait=off"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_file_line(log, "testguest: ready")
        time.sleep(sc["settle"])
        check_source("QEMU", log, src)
        dapi = Json(os.path.join(tmp, "qemu-dst.sock"))
        if tls:  # QEMU's TLS destination: parameters first, then listen
            dapi.cmd("migrate-set-parameters", **{"tls-creds": "tls0"})
            dapi.cmd("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
        dapi.s.close()
        api = Json(os.path.join(tmp, "qemu-src.sock"))
        api.cmd("migrate-set-parameters", **{"max-bandwidth": 100 * 1000 * 1000 * 1000,
                                             "downtime-limit": 300})
        if tls:
            api.cmd("migrate-set-parameters", **{"tls-creds": "tls0",
                                                 "tls-hostname": "localhost"})
        api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
        info = wait_status(api)
        if info["status"] != "completed":
            raise RuntimeError(f"QEMU migration {info['status']}: {info.get('error-desc')}")
        check_guest_survived("QEMU", log, os.path.join(tmp, "qemu-dst.log"), dst)
        return {"total_ms": info["total-time"], "downtime_ms": info["downtime"],
                "bytes": info["ram"]["transferred"],
                "MB_per_s": info["ram"]["transferred"] / 1000.0 / max(info["total-time"], 1)}
    finally:
        kill(src, dst)


def median_of(runs):
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--guest-extra", default="",
                    help="test-guest options appended to every scenario (e.g. selftest-corrupt)")
    a = ap.parse_args()
    vmm = os.path.join(a.build, "vmm", "vmm")
    guest = os.path.join(a.build, "guest", "testguest")
    qemu = shutil.which("qemu-system-x86_64")
    for what, path in (("vmm", vmm), ("test guest", guest)):
        if not os.path.exists(path):
            sys.exit(f"bench: {what} not built at {path} (run scripts/setup.sh)")
    if not qemu:
        sys.exit("bench: qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        sys.exit("bench: /dev/kvm is not usable here")

    results = {}
    creds_tmp = tempfile.TemporaryDirectory(prefix="vmm-bench-certs-")
    for name in a.scenarios.split(","):
        sc = dict(SCENARIOS[name])
        sc["cmdline"] = " ".join(x for x in (sc["cmdline"], a.guest_extra) if x)
        if sc.get("tls"):
            tls_creds(creds_tmp.name)
        runs = {"vmm": [], "qemu": []}
        for _ in range(a.repeat):
            for side, fn, exe in (("vmm", run_vmm, vmm), ("qemu", run_qemu, qemu)):
                with tempfile.TemporaryDirectory(prefix="vmm-bench-") as tmp:
                    runs[side].append(fn(exe, guest, sc, tmp))
        med = {side: median_of(r) for side, r in runs.items()}
        ratio = {k: (med["vmm"][k] / med["qemu"][k] if med["qemu"][k] else None)
                 for k in med["vmm"]}
        results[name] = {"vmm": med["vmm"], "qemu": med["qemu"], "ratio": ratio,
                         "runs": runs, "memory_mib": sc["memory_mib"],
                         "guest_cmdline": sc["cmdline"]}

    if a.json:
        print(json.dumps({"benchmark": "live-migration", "repeat": a.repeat,
                          "qemu": subprocess.run([qemu, "--version"], capture_output=True,
                                                 text=True).stdout.splitlines()[0],
                          "scenarios": results}, indent=2))
        return
    print(f"live migration over loopback TCP, median of {a.repeat} runs "
          f"(ratio = vmm / QEMU, lower is better for vmm)")
    print(f"{'scenario':<20} {'metric':<12} {'vmm':>12} {'QEMU':>12} {'ratio':>8}")
    for name, r in results.items():
        for k, label in (("total_ms", "total ms"), ("downtime_ms", "downtime ms"),
                         ("bytes", "bytes"), ("MB_per_s", "MB/s")):
            ratio = r["ratio"][k]
            shown = f"{ratio:>8.3f}" if ratio is not None else f"{'n/a':>8}"
            print(f"{name:<20} {label:<12} {r['vmm'][k]:>12.1f} {r['qemu'][k]:>12.1f} {shown}")


    if "touched-512M" in results and "touched-512M-tls" in results:
        for side, label in (("vmm", "vmm"), ("qemu", "QEMU")):
            plain = results["touched-512M"][side]["MB_per_s"]
            enc = results["touched-512M-tls"][side]["MB_per_s"]
            print(f"{label}: TLS throughput {enc:.0f} MB/s = {100 * enc / plain:.0f}% of plaintext "
                  f"({plain:.0f} MB/s)")


if __name__ == "__main__":
    try:
        main()
    except GuestDied as e:
        print(f"bench: FAILED: the guest did not survive: {e}", file=sys.stderr)
        sys.exit(1)
    except RuntimeError as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        sys.exit(1)

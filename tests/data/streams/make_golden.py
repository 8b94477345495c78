#!/usr/bin/env python3
"""Makes a golden migration stream with the current build: boots the test
guest as described in streams.json under NAME, lets it dirty memory, then
snapshots it with `migrate file:`. Run by hand when a stream format version
is released (never by the tests); commit the .vmmstream it writes. Existing
golden streams are never regenerated: they prove old streams still load.

usage: tests/data/streams/make_golden.py NAME [--build DIR]
"""
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))


def api(path):
    for _ in range(200):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            break
        except OSError:
            time.sleep(0.05)
    f = s.makefile("rwb")
    f.readline()

    def cmd(name, **args):
        f.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        f.flush()
        while True:
            r = json.loads(f.readline())
            if "event" not in r:
                if "error" in r:
                    sys.exit(f"{name}: {r['error']['desc']}")
                return r["return"]
    cmd("qmp_capabilities")
    return cmd


def main():
    name = sys.argv[1]
    build = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--build" else os.path.join(ROOT, "build")
    spec = json.load(open(os.path.join(HERE, "streams.json")))[name]
    out = os.path.join(HERE, name + ".vmmstream")
    if os.path.exists(out):
        sys.exit(f"{out} exists: golden streams are never regenerated")
    sock = f"/tmp/make-golden-{os.getpid()}.sock"
    vm = subprocess.Popen([os.path.join(build, "vmm", "vmm"), "--kernel",
                           os.path.join(build, "guest", "testguest")] + spec["source_args"] +
                          ["--api-socket", sock], stdout=subprocess.PIPE, text=True)
    for line in vm.stdout:
        if line.startswith(f"progress vcpu={spec['cpus'] - 1} ") and "sweeps=1" in line:
            break
    cmd = api(sock)
    cmd("migrate", uri=f"file:{out}")
    while cmd("query-migrate")["status"] not in ("completed", "failed"):
        time.sleep(0.05)
    print(cmd("query-migrate"))
    cmd("quit")
    vm.wait()


if __name__ == "__main__":
    main()

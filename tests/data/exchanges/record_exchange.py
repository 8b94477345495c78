#!/usr/bin/env python3
"""Records one live migration's conversation, both directions, made by a
given build: a source and a destination of BUILD migrate the test guest over
TCP through a relay that keeps every byte each side sent. The files let the
tests replay that format version's side of the conversation against today's
source and destination (tests/integration/test_release_compat.py). Run by
hand when a stream format version is released; never regenerate existing
recordings.

usage: record_exchange.py NAME --build DIR
  writes NAME.to-dest (source -> destination) and NAME.to-source, and the
  guest arguments into exchanges.json under NAME
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST = ["--machine", "microvm-1.1", "--memory", "32M", "--cpus", "1",
         "--cmdline", "dirty=1M rate=1M runtime=30 progress=500"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


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


def relay(src, dst, keep):
    while True:
        b = src.recv(1 << 20)
        if not b:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        keep.append(b)
        dst.sendall(b)


def main():
    name, build = sys.argv[1], sys.argv[3]
    vmm = os.path.join(build, "vmm", "vmm")
    kernel = os.path.join(build, "guest", "testguest")
    for ext in (".to-dest", ".to-source"):
        if os.path.exists(os.path.join(HERE, name + ext)):
            sys.exit(f"{name}{ext} exists: recordings are never regenerated")
    dport, rport = free_port(), free_port()
    dst = subprocess.Popen([vmm, "--kernel", kernel, "--incoming", f"tcp:127.0.0.1:{dport}",
                            "--serial", "none"] + GUEST)
    sock = f"/tmp/record-exchange-{os.getpid()}.sock"
    src = subprocess.Popen([vmm, "--kernel", kernel, "--api-socket", sock, "--serial", "stdio"]
                           + GUEST, stdout=subprocess.PIPE, text=True)
    for line in src.stdout:
        if line.startswith("progress vcpu=0 ") and "sweeps=1" in line:
            break
    listener = socket.socket()
    listener.bind(("127.0.0.1", rport))
    listener.listen(1)
    to_dest, to_source = [], []
    cmd = api(sock)
    cmd("migrate", uri=f"tcp:127.0.0.1:{rport}")
    a, _ = listener.accept()
    b = socket.create_connection(("127.0.0.1", dport))
    t1 = threading.Thread(target=relay, args=(a, b, to_dest))
    t2 = threading.Thread(target=relay, args=(b, a, to_source))
    t1.start(), t2.start()
    while cmd("query-migrate").get("status") not in ("completed", "failed", "cancelled"):
        time.sleep(0.05)
    status = cmd("query-migrate")["status"]
    t1.join(10), t2.join(10)
    src.kill(), dst.kill()
    if status != "completed":
        sys.exit(f"migration {status}")
    open(os.path.join(HERE, name + ".to-dest"), "wb").write(b"".join(to_dest))
    open(os.path.join(HERE, name + ".to-source"), "wb").write(b"".join(to_source))
    meta_path = os.path.join(HERE, "exchanges.json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    version = subprocess.run([vmm, "--version"], capture_output=True, text=True).stdout.strip()
    meta[name] = {"recorded_with": version, "guest_args": GUEST}
    json.dump(meta, open(meta_path, "w"), indent=2)
    print(f"{name}: {sum(map(len, to_dest))} bytes to the destination, "
          f"{sum(map(len, to_source))} to the source")


if __name__ == "__main__":
    main()

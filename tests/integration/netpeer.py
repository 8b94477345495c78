"""Host side of the network tests and bench (Python 3 stdlib, needs root for
AF_PACKET; run inside a namespace with `ip netns exec`).

  netpeer.py send --dev IF --guest MAC --rate N --seconds S [--size B]
      sends numbered frames (ethertype 0x88b5) to the guest at a steady rate
      and records every echo (the guest swaps the MACs); on SIGTERM or after
      S seconds it waits a moment for the last echoes and prints one JSON
      object: {"mac", "sent", "t0", "interval", "echoes": [[seq, t_recv], ...]}
  netpeer.py capture --dev IF --guest MAC --seconds S
      records RARP frames (ethertype 0x8035) from the guest's MAC seen on IF
      and prints {"rarp": [[t, op], ...]} on SIGTERM or after S seconds.
  netpeer.py flood --dev IF --guest MAC --seconds S --size B --window W
      the bench: keeps W frames in flight (a new one per echo), prints
      {"sent", "echoes", "bytes", "seconds"} after S seconds.

Times are CLOCK_MONOTONIC seconds (time.monotonic(): one clock for every
process and namespace of the machine), so the test can compare them with
its own."""
import argparse
import json
import select
import signal
import socket
import struct
import sys
import time

ETHERTYPE = 0x88B5  # IEEE local experimental
RARP = 0x8035
MAGIC = b"VMMNET01"
stop = False


def on_term(*_):
    global stop
    stop = True


def mac_bytes(s):
    return bytes(int(x, 16) for x in s.split(":"))


def open_sock(dev, proto):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    s.bind((dev, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.setblocking(False)
    return s, s.getsockname()[4]


def frame(guest, me, seq, size):
    body = MAGIC + struct.pack("<Qd", seq, time.monotonic())
    f = guest + me + struct.pack(">H", ETHERTYPE) + body
    return f + bytes(max(0, size - len(f)))


def echo_seq(pkt, me, guest):
    if len(pkt) < 38 or pkt[0:6] != me or pkt[6:12] != guest or pkt[14:22] != MAGIC:
        return None
    return struct.unpack_from("<Q", pkt, 22)[0]


def send(a):
    s, me = open_sock(a.dev, ETHERTYPE)
    guest = mac_bytes(a.guest)
    interval = 1.0 / a.rate
    t0 = time.monotonic()
    deadline, next_t, seq, echoes, drain_until = t0 + a.seconds, t0, 0, [], None
    while True:
        now = time.monotonic()
        if drain_until is None and (stop or now >= deadline):
            drain_until = now + 0.5  # the last echoes are on their way
        if drain_until is not None and now >= drain_until:
            break
        if drain_until is None and now >= next_t:
            try:
                s.send(frame(guest, me, seq, a.size))
            except OSError:
                pass  # a full queue is a lost frame, like any other
            seq += 1
            next_t = t0 + seq * interval  # steady: no catching up in bursts beyond this
            continue
        wait = (drain_until if drain_until is not None else next_t) - now
        if select.select([s], [], [], max(0.0, min(wait, 0.05)))[0]:
            while True:
                try:
                    pkt = s.recv(4096)
                except BlockingIOError:
                    break
                n = echo_seq(pkt, me, guest)
                if n is not None:
                    echoes.append([n, time.monotonic()])
    json.dump({"mac": ":".join(f"{b:02x}" for b in me), "sent": seq, "t0": t0,
               "interval": interval, "echoes": echoes}, sys.stdout)


def capture(a):
    s, _ = open_sock(a.dev, 0x0003)  # ETH_P_ALL
    guest = mac_bytes(a.guest)
    deadline, seen = time.monotonic() + a.seconds, []
    while not stop and time.monotonic() < deadline:
        if not select.select([s], [], [], 0.05)[0]:
            continue
        while True:
            try:
                pkt = s.recv(4096)
            except BlockingIOError:
                break
            if len(pkt) >= 42 and pkt[6:12] == guest and struct.unpack_from(">H", pkt, 12)[0] == RARP:
                seen.append([time.monotonic(), struct.unpack_from(">H", pkt, 20)[0]])
    json.dump({"rarp": seen}, sys.stdout)


def flood(a):
    s, me = open_sock(a.dev, ETHERTYPE)
    guest = mac_bytes(a.guest)
    seq = echoed = nbytes = 0
    # prime: wait for the guest to answer at all
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        s.send(frame(guest, me, seq, a.size))
        seq += 1
        if select.select([s], [], [], 0.05)[0]:
            break
    while True:  # forget the priming
        try:
            s.recv(65536)
        except BlockingIOError:
            break
    t0 = time.monotonic()
    end = t0 + a.seconds
    inflight = 0
    while time.monotonic() < end:
        while inflight < a.window:
            try:
                s.send(frame(guest, me, seq, a.size))
            except BlockingIOError:
                break
            seq += 1
            inflight += 1
        if not select.select([s], [], [], 0.1)[0]:
            inflight = 0  # lost frames: refill the window
            continue
        while True:
            try:
                pkt = s.recv(65536)
            except BlockingIOError:
                break
            if echo_seq(pkt, me, guest) is not None:
                echoed += 1
                nbytes += len(pkt)
                inflight -= 1
    json.dump({"sent": seq, "echoes": echoed, "bytes": nbytes,
               "seconds": time.monotonic() - t0}, sys.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["send", "capture", "flood"])
    ap.add_argument("--dev", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--size", type=int, default=60)
    ap.add_argument("--window", type=int, default=64)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    {"send": send, "capture": capture, "flood": flood}[a.mode](a)


if __name__ == "__main__":
    main()

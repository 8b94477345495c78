"""virtio-net across a live migration between two network-namespace hosts.

usage: test_net.py rarp     the guest does not negotiate GUEST_ANNOUNCE
                            (net-announce=off): the destination vmm sends
                            RARP frames for its MAC
       test_net.py guest    it does: the destination sets
                            VIRTIO_NET_S_ANNOUNCE and the guest sends them

Topology (all namespaces and interfaces made here, removed at the end, also
on failure; the taps are made by the test with `ip tuntap` and vmm attaches
to them):

    ns S (sender)        ns SW (switch)            ns A (host A)         ns B (host B)
    eth0 ---------------- swS   [br0]  swA -------- upA  [brA]  tapA      upB  [brB]  tapB
                                       swB ----------------------------- upB
                                                    migA 192.0.2.1 ---- migB 192.0.2.2

The echo guest (net=echo) runs on host A behind tapA; a sender in ns S sends
numbered frames to its MAC at a steady rate and records every echo. The
switch br0 learns the guest's MAC behind swA from the echoes. The guest
migrates to host B over the migA-migB link; then only an announcement for
its MAC (a RARP frame leaving host B) moves br0's entry to swB: without it
the echoes would not come back for minutes (the bridge's ageing time). The
sender starts while the destination already waits, so its first frames,
flooded before br0 knows the guest, also reach tapB's queue: the destination
must drop those at Go, never deliver them a second time.

Checked: no frame echoed twice; echoes resume at the destination; the gap
(frames lost around the switch-over, and how long) is reported; every frame
sent well before or well after the switch-over comes back; the announce
frames for the guest's MAC leave host B right after the switch-over (5
rounds); the destination's query-migrate reports them. Last, tapB is
deleted under the running guest: the card takes its link down, the guest
and vmm go on."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from vmmtest import (Api, Guest, check, fail, guest_args, require_installed, require_kvm, skip,
                     tmpdir, wait_migration)

HERE = os.path.dirname(os.path.abspath(__file__))
MAC = "52:54:00:0e:c4:01"
RATE = 500  # frames per second
ROUNDS = 5


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "rarp"
    if mode not in ("rarp", "guest"):
        fail(f"unknown mode {mode}")
    require_kvm()
    if os.geteuid() != 0:
        skip("network namespaces and taps need root")
    require_installed(shutil.which("ip"), "the ip command", "iproute2")
    if not os.path.exists("/dev/net/tun"):
        skip("/dev/net/tun is missing: no tap devices on this machine")
    pid = os.getpid()
    tag = f"{pid % 100000}"
    ns = {k: f"vmmn{k.lower()}-{pid}" for k in ("S", "SW", "A", "B")}
    made, procs, d = [], [], tmpdir()

    def ip(*args, check_rc=True):
        p = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
        if check_rc and p.returncode != 0:
            fail(f"ip {' '.join(args)}: {p.stderr.strip()}")
        return p

    def in_ns(n, *cmd, **kw):
        return subprocess.run(["ip", "netns", "exec", ns[n]] + list(cmd), capture_output=True,
                              text=True, **kw)

    try:
        p = ip("netns", "add", ns["S"], check_rc=False)
        if p.returncode != 0:
            skip(f"this machine refuses network namespaces: {p.stderr.strip()}")
        made.append(ns["S"])
        for k in ("SW", "A", "B"):
            ip("netns", "add", ns[k])
            made.append(ns[k])
        for k in ns:  # no IPv6 chatter on the test's links
            in_ns(k, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                  "net.ipv6.conf.default.disable_ipv6=1")
        p = ip("-n", ns["SW"], "link", "add", "br0", "type", "bridge", check_rc=False)
        if p.returncode != 0:
            skip(f"no Linux bridge here: {p.stderr.strip()}")
        for peer_ns, a, b in (("S", "eth0", "swS"), ("A", "upA", "swA"), ("B", "upB", "swB")):
            ip("link", "add", a + tag, "type", "veth", "peer", "name", b + tag)
            ip("link", "set", a + tag, "netns", ns[peer_ns], "name", a)
            ip("link", "set", b + tag, "netns", ns["SW"], "name", b)
            ip("-n", ns["SW"], "link", "set", b, "master", "br0", "up")
            ip("-n", ns[peer_ns], "link", "set", a, "up")
        ip("-n", ns["SW"], "link", "set", "br0", "up")
        for h in ("A", "B"):
            br, tap, up = f"br{h}", f"tap{h}", f"up{h}"
            ip("-n", ns[h], "link", "add", br, "type", "bridge")
            ip("-n", ns[h], "tuntap", "add", "dev", tap, "mode", "tap")
            for dev in (tap, up):
                ip("-n", ns[h], "link", "set", dev, "master", br, "up")
            ip("-n", ns[h], "link", "set", br, "up")
            ip("-n", ns[h], "link", "set", "lo", "up")
        ip("link", "add", "migA" + tag, "type", "veth", "peer", "name", "migB" + tag)
        for h, addr in (("A", "192.0.2.1/30"), ("B", "192.0.2.2/30")):
            ip("link", "set", f"mig{h}{tag}", "netns", ns[h], "name", f"mig{h}")
            ip("-n", ns[h], "addr", "add", addr, "dev", f"mig{h}")
            ip("-n", ns[h], "link", "set", f"mig{h}", "up")

        announce = "on" if mode == "guest" else "off"
        args = guest_args(f"net=echo net-announce={announce} progress=250", memory="64M")
        src = Guest(args + ["--net", f"tap=tapA,mac={MAC}",
                            "--api-socket", os.path.join(d, "a.sock")],
                    name="host A", prefix=["ip", "netns", "exec", ns["A"]])
        procs.append(src)
        m = src.wait_line(r"net mac=(\S+) features=(0x[0-9a-f]+)", timeout=30)
        feats = int(m.group(2), 16)
        check(m.group(1) == MAC and bool(feats >> 21 & 1) == (mode == "guest"),
              f"the guest drives its card: MAC {m.group(1)}, features {m.group(2)} "
              f"(GUEST_ANNOUNCE {'on' if feats >> 21 & 1 else 'off'})")
        dst = Guest(args + ["--net", f"tap=tapB,mac={MAC}", "--incoming", "tcp:192.0.2.2:4444",
                            "--api-socket", os.path.join(d, "b.sock")],
                    name="host B", prefix=["ip", "netns", "exec", ns["B"]])
        procs.append(dst)
        api_b = Api(os.path.join(d, "b.sock"))
        check(api_b.cmd("query-migrate")["status"] == "active",
              "the destination waits (its tap is open: set up before any migration)")

        peer = os.path.join(HERE, "netpeer.py")
        capture = subprocess.Popen(["ip", "netns", "exec", ns["B"], sys.executable, peer,
                                    "capture", "--dev", "upB", "--guest", MAC, "--seconds", "60"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sender = subprocess.Popen(["ip", "netns", "exec", ns["S"], sys.executable, peer, "send",
                                   "--dev", "eth0", "--guest", MAC, "--rate", str(RATE),
                                   "--seconds", "60"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs += [capture, sender]
        src.wait_line(r"net t=\d+ rx=([5-9]\d\d|\d{4,}) ", timeout=30)
        check(True, "the guest echoes the sender's frames on host A")

        api_a = Api(os.path.join(d, "a.sock"))
        t_start = time.monotonic()
        api_a.cmd("migrate", uri="tcp:192.0.2.2:4444")
        info = wait_migration(api_a)
        if info["status"] != "completed":
            fail(f"migration {info['status']}: {info.get('error-desc')}")
        t_switch = t_start + info["total-time"] / 1000.0  # Resumed arrived: the guest runs at B
        check(True, f"migrated host A -> host B while echoing: total {info['total-time']} ms, "
              f"downtime {info['downtime']} ms")
        n = len(dst.lines)
        dst.wait_line(r"net t=\d+ rx=\d+ ", timeout=30, start=n)
        time.sleep(3)  # echoes on host B for a while
        ann = {}
        for _ in range(100):  # the guest's acknowledgements may still come
            ann = api_b.cmd("query-migrate").get("announce", {})
            if ann.get("rounds") == ROUNDS:
                break
            time.sleep(0.05)
        for p in (sender, capture):
            p.send_signal(signal.SIGTERM)
        out = json.loads(sender.communicate(timeout=20)[0])
        rarp = json.loads(capture.communicate(timeout=20)[0])["rarp"]
        check(src.wait(timeout=15) == 0, "host A's vmm exits after the handover")

        # ---- the echoes ----
        echoes = out["echoes"]
        seqs = [e[0] for e in echoes]
        dups = len(seqs) - len(set(seqs))
        check(dups == 0, f"no frame came back twice ({len(seqs)} echoes of {out['sent']} frames)")
        t0, iv = out["t0"], out["interval"]
        sent_at = lambda s: t0 + s * iv  # noqa: E731
        after = [s for s, t in echoes if t >= t_switch]
        check(len(after) > RATE, f"echoes resume at the destination ({len(after)} after the "
              f"switch-over)")
        # measured: from a second after the sender started to shortly before it stopped
        last_sent = out["sent"] - 1
        measured = [s for s in range(out["sent"])
                    if t0 + 1.0 < sent_at(s) < sent_at(last_sent) - 0.3]
        echoed = set(seqs)
        lost = [s for s in measured if s not in echoed]
        window = (t_start - 0.1, t_switch + 1.0)
        check(all(window[0] <= sent_at(s) <= window[1] for s in lost),
              f"frames were lost only around the switch-over (lost: {lost[:10]}"
              f"{'...' if len(lost) > 10 else ''})")
        arrivals = sorted(t for _, t in echoes if window[0] <= t <= window[1])
        pause = max((b - a for a, b in zip(arrivals, arrivals[1:])), default=0) * 1000
        print(f"gap: {len(lost)} frames lost around the switch-over"
              f"{f' (frames {lost[0]}..{lost[-1]})' if lost else ''}, the longest pause between "
              f"two echoes {pause:.0f} ms (at {RATE} frames/s: {1000 / RATE:.0f} ms apart; "
              f"downtime {info['downtime']} ms)")
        check(len(lost) <= RATE, f"{len(lost)} frames lost: less than a second of traffic")

        # ---- the announcement ----
        after_go = [t for t, op in rarp if t >= t_start]
        check(len(after_go) >= ROUNDS,
              f"{len(after_go)} RARP frames for {MAC} left host B after the switch-over")
        first = after_go[0] - t_switch
        check(-0.5 < first < 1.0,
              f"the first one {first * 1000:.0f} ms after the switch-over, the rounds spread "
              f"over {(after_go[ROUNDS - 1] - after_go[0]) * 1000:.0f} ms")
        card = ann.get("cards", [{}])[0]
        if mode == "rarp":
            check(ann.get("rounds") == ROUNDS and ann.get("rarp-frames") == ROUNDS and
                  card.get("mode") == "rarp",
                  f"query-migrate on the destination: {ROUNDS} rounds of RARP by the VMM ({ann})")
        else:
            dst.wait_line(rf"net announce n={ROUNDS} ", timeout=10)
            lines = [l for l in dst.lines if l.startswith("net announce ")]
            check(ann.get("rounds") == ROUNDS and ann.get("guest-requests") == ROUNDS and
                  card.get("guest-acks") == ROUNDS and ann.get("rarp-frames") == 0 and
                  card.get("mode") == "guest",
                  f"query-migrate on the destination: {ROUNDS} rounds through the guest ({ann})")
            check(len(lines) == ROUNDS and all("ack=0" in l for l in lines),
                  f"the guest announced itself {len(lines)} times, each acknowledged")
        check(not any("VERIFY" in l or "testguest: net:" in l for l in src.lines + dst.lines),
              "the guest saw no bad chain ids")
        # the tap vanishes under the running guest: link down, vmm and guest go on
        ip("-n", ns["B"], "link", "del", "tapB")
        n = len(dst.lines)
        dst.wait_line(r"net t=\d+ ", timeout=10, start=n)
        check(api_b.cmd("query-status")["status"] == "running",
              "host B's tap deleted under the guest: vmm and the guest keep running")
        api_b.cmd("quit")
        dst.wait(timeout=15)
        check("tap tapB: read: File descriptor in bad state; the link is down" in dst.stderr,
              "the card noticed and took its link down")
        for who, g in (("host A", src), ("host B", dst)):  # the cards' own counts
            for l in g.stderr.splitlines():
                if "net0:" in l:
                    print(f"{who}: {l}")
    finally:
        for p in procs:
            try:
                if isinstance(p, Guest):
                    p.kill()
                elif p.poll() is None:
                    p.kill()
                    p.wait()
            except Exception:
                pass
        for n in made:
            ip("netns", "del", n, check_rc=False)
        shutil.rmtree(d, ignore_errors=True)


main()

"""TLS on the migration channel (issue 11), with certificates this test makes
(certtool): a TLS migration completes with the guest verified and both sides
report the channel; every wrong party is refused with a clear message on
both sides while the source guest keeps running; strangers before the real
source (garbage, a silent connection, a replayed TLS session) neither stop
nor hijack it; PSK works without a CA, also with a TLS data connection."""
import os
import re
import socket
import threading
import time

import tlscerts
from vmmtest import (Api, Guest, check, check_no_verify_failures, free_port, guest_args,
                     progress_lines, require_kvm, skip, tmpdir, wait_dropped, wait_migration)

require_kvm()
if not tlscerts.have_certtool():
    skip("certtool (Debian package gnutls-bin) is missing: the test makes its certificates with it")
d = tmpdir()
creds = tlscerts.make_all(d)
authz = os.path.join(d, "authz")
with open(authz, "w") as f:
    f.write("# the sources allowed in\nCN=vmm-source,O=vmm-test\n")

args = guest_args("dirty=16M rate=16M progress=500", memory="128M")
src = Guest(args + ["--api-socket", os.path.join(d, "src.sock")], name="source")
src.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=60)
api = Api(os.path.join(d, "src.sock"))


def source_still_verifies(what):
    base = progress_lines(src.lines)[-1]
    src.wait_line(rf"progress vcpu=0 .* sweeps=({base[3] + 1}|{base[3] + 2}|[1-9]\d{{2,}})",
                  timeout=60, start=len(src.lines))
    check_no_verify_failures(src.lines, "source")
    check(api.cmd("query-status")["status"] == "running", f"{what}: the source guest runs on")


def start_dest(extra, name):
    port = free_port()
    sock = os.path.join(d, name + ".sock")
    g = Guest(args + ["--incoming", f"tcp:127.0.0.1:{port}", "--api-socket", sock] + extra,
              name=name)
    return g, port, Api(sock)


def set_tls(**kw):
    params = {"tls_creds": "", "tls_psk": "", "tls_hostname": "", "tls_priority": ""}
    params.update(kw)
    api.cmd("migrate-set-parameters", **params)


def migrate(port):
    api.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    return wait_migration(api, timeout=120)


def refused(extra, params, src_pattern, dst_pattern, what):
    dst, port, dapi = start_dest(extra, "dst-" + re.sub(r"\W", "", what)[:20])
    set_tls(**params)
    info = migrate(port)
    desc = info.get("error-desc", "")
    check(info["status"] == "failed" and re.search(src_pattern, desc),
          f"{what}: the source says why: {desc}")
    inc = wait_dropped(dapi, 1)
    check(inc["dropped-connections"] == 1 and re.search(dst_pattern, inc.get("last-dropped", "")),
          f"{what}: the destination says why and waits on: {inc.get('last-dropped')}")
    check(dapi.cmd("query-status")["status"] == "inmigrate", f"{what}: nothing started there")
    source_still_verifies(what)
    dst.kill()


refused(["--tls-creds", creds["dst"], "--tls-authz", authz], {"tls_creds": creds["src_other_ca"]},
        r"Certificate is required|certificate", r"refused: .*[Cc]ertificate",
        "a client certificate from another CA")
refused(["--tls-creds", creds["dst"], "--tls-authz", authz], {"tls_creds": creds["src_intruder"]},
        r"alert \"Access was denied\"|[Aa]ccess", r"CN=intruder,O=vmm-test\) is not on the tls-authz list",
        "an unexpected client name")
refused(["--tls-creds", creds["dst"]], {},
        r"destination refused: this destination requires TLS",
        r"a plaintext stream arrived, but this destination requires TLS", "a plaintext source")
refused([], {"tls_creds": creds["src"]},
        r"the destination answered in plaintext \(it does not use TLS\)",
        r"a TLS ClientHello arrived, but this destination has no --tls-creds", "a TLS source")
refused(["--tls-creds", creds["dst"]], {"tls_creds": creds["src"], "tls_hostname": "other.example"},
        r"is not trusted \(expected name \"other.example\"\)", r"TLS handshake",
        "a destination with another name")
refused(["--tls-psk", creds["psk"]], {"tls_psk": creds["psk_wrong"]},
        r"TLS handshake .*alert|TLS", r"TLS handshake", "a wrong pre-shared key")


class Relay(threading.Thread):
    """Forwards one connection from a local port to `port`, keeping what the
    client sent (the recording a stranger would replay)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.target = port
        self.sent = bytearray()

    def run(self):
        a, _ = self.lsock.accept()
        b = socket.create_connection(("127.0.0.1", self.target))
        for s in (a, b):
            s.settimeout(120)

        def back():
            try:
                while (chunk := b.recv(65536)):
                    a.sendall(chunk)
            except OSError:
                pass
            a.close()
        t = threading.Thread(target=back, daemon=True)
        t.start()
        try:
            while (chunk := a.recv(65536)):
                self.sent += chunk
                b.sendall(chunk)
        except OSError:
            pass
        b.shutdown(socket.SHUT_WR)
        t.join(60)


# A TLS migration through a relay that records the source's bytes: it
# completes, the guest runs verified at the destination, both sides report
# the channel.
dst, port, dapi = start_dest(["--tls-creds", creds["dst"], "--tls-authz", authz], "dst-ok")
relay = Relay(port)
relay.start()
set_tls(tls_creds=creds["src"], tls_hostname="localhost")
info = migrate(relay.port)
check(info["status"] == "completed", f"TLS migration completed ({info.get('error-desc')})")
tls = info.get("tls", {})
check(tls.get("encrypted") and tls.get("protocol") == "TLS1.3" and "GCM" in tls.get("cipher", "")
      and tls.get("peer") == "CN=localhost,O=vmm-test",
      f"the source reports TLS 1.3, AES-GCM and the destination's name: {tls}")
inc = dapi.cmd("query-migrate")["incoming"]
check(inc["tls"].get("peer") == "CN=vmm-source,O=vmm-test" and inc["tls-required"],
      f"the destination reports the source's name: {inc['tls']}")
check(src.wait(timeout=30) == 0, "the source exits after the handover")
dst.wait_line(r"progress vcpu=0 .* errors=0", timeout=60, start=len(dst.lines))
check_no_verify_failures(dst.lines, "destination")
recording = bytes(relay.sent)
check(len(recording) > 1 << 20, f"{len(recording)} bytes of TLS recorded")
dapi.cmd("quit")
dst.wait(timeout=30)

# The guest lives on the destination now: it becomes the next source.
src = Guest(args + ["--api-socket", os.path.join(d, "src2.sock")], name="source2")
src.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=60)
api = Api(os.path.join(d, "src2.sock"))

# Strangers first: garbage, a replay of the recorded TLS session, a
# silent connection; then the real source, which must get through at once
# (connections are screened side by side: the silent one is closed when the
# source's stream is accepted).
dst, port, dapi = start_dest(["--tls-creds", creds["dst"], "--tls-authz", authz], "dst-strangers")
strangers = []
for payload in (b"GET / HTTP/1.0\r\n\r\n", recording, None):
    s = socket.create_connection(("127.0.0.1", port))
    if payload:
        try:
            s.sendall(payload)
        except OSError:
            pass  # dropped while sending: as it should
    strangers.append(s)
t0 = time.monotonic()
set_tls(tls_creds=creds["src"])
info = migrate(port)
took = time.monotonic() - t0
check(info["status"] == "completed" and took < 5,
      f"the real source got through beside the strangers ({info.get('error-desc')}) in "
      f"{took:.1f} s, not after the silent one's 10 s")
inc = dapi.cmd("query-migrate")["incoming"]
check(inc["dropped-connections"] == 3 and inc["tls"].get("peer") == "CN=vmm-source,O=vmm-test",
      f"three strangers dropped, the real source loaded: {inc}")
check(src.wait(timeout=30) == 0, "the source exits after the handover")
dst.wait_line(r"progress vcpu=0 .* errors=0", timeout=60, start=len(dst.lines))
check_no_verify_failures(dst.lines, "destination after strangers")
dapi.cmd("quit")
dst.wait(timeout=30)
for pat in (r"dropped .*neither a TLS handshake nor a vmm stream",
            r"dropped .*TLS handshake .*failed",
            r"dropped .*the source's stream was accepted on another connection"):
    check(re.search(pat, dst.stderr), f"destination log: {pat}")
for s in strangers:
    s.close()

# PSK, no CA, over 2 connections (the data connection makes its own TLS
# handshake): the guest goes on to one more place.
src = Guest(args + ["--api-socket", os.path.join(d, "src3.sock")], name="source3")
src.wait_line(r"progress vcpu=0 .* sweeps=[1-9]", timeout=60)
api = Api(os.path.join(d, "src3.sock"))
dst, port, dapi = start_dest(["--tls-psk", creds["psk"]], "dst-psk")
set_tls(tls_psk=creds["psk"])
api.cmd("migrate-set-parameters", connections=2)
info = migrate(port)
check(info["status"] == "completed" and info["tls"].get("auth") == "psk"
      and info["tls"].get("peer") == "psk:vmm-migration",
      f"PSK migration: {info['status']} {info.get('error-desc')} {info.get('tls')}")
check(info.get("connections") == 2, f"over 2 TLS connections: {info.get('connections')}")
check(src.wait(timeout=30) == 0, "the source exits after the handover")
dst.wait_line(r"progress vcpu=0 .* errors=0", timeout=60, start=len(dst.lines))
check_no_verify_failures(dst.lines, "destination (psk)")
dapi.cmd("quit")
dst.wait(timeout=30)

#!/usr/bin/env python3
"""Makes the fuzz seed corpora from real streams (README "Fuzzing").

    tests/fuzz/make_corpus.py STREAM...

Each STREAM is a file written by a real migration to file:PATH (a snapshot:
the same bytes a socket carries). Its records are split out: every record
alone behind the preamble, the stream without its large RAM records (for
stream_records), every Header payload (stream_header), every DeviceState
payload (device_state). Return-path records, API lines, the CPU-model data
files and four host profiles are added as they are. Writes
tests/fuzz/corpus/<target>/ (files named by content hash: reruns add nothing twice).
"""
import glob
import hashlib
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import streamcraft as sc  # noqa: E402

MAX_SEED = 64 << 10


def put(target, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pb_string(field, s):
    b = s.encode()
    return bytes([field << 3 | 2]) + sc.varint(len(b)) + b


def pb_varint(field, v):
    return bytes([field << 3]) + sc.varint(v)


def from_stream(path):
    data = open(path, "rb").read()
    recs = sc.split_records(data)
    pre = recs[0][2]
    small = pre
    for off, rtype, raw in recs[1:]:
        payload = raw[8:]
        if len(raw) <= MAX_SEED:
            put("stream_records", b"\x01" + pre + raw)
            small += raw
        if rtype == sc.REC_HEADER:
            put("stream_header", payload)
        if rtype == 7:  # device
            put("device_state", payload)
    put("stream_records", b"\x01" + small)


def fixed():
    # The return path: records without a preamble (first byte 0).
    rp = [sc.record(20, pb_varint(1, 1000) + pb_varint(2, 1) + pb_varint(3, 1)
                    + pb_string(4, "0.2.0") + pb_string(5, "accepted") + pb_string(5, "go-paused")),
          sc.record(16, pb_varint(1, 12345)),
          sc.record(17, pb_string(1, "CPUID mismatch: sse2")),
          sc.record(19, pb_varint(1, 1 << 60))]
    put("stream_records", b"\x00" + b"".join(rp))
    put("stream_records", b"\x01" + sc.preamble() + sc.record(18, pb_varint(1, 5) + pb_varint(2, 1)))
    lines = [
        '{"execute":"qmp_capabilities"}',
        '{"execute":"query-status","id":1}',
        '{"execute":"query-migrate"}',
        '{"execute":"migrate-set-parameters","arguments":{"downtime-limit":100,"max-bandwidth":1048576,'
        '"compress-level":3,"auto-converge":false,"switchover-timeout":2000}}',
        '{"execute":"migrate-set-parameters","arguments":{"tls-creds":"/etc/pki/vmm","tls-hostname":"dst",'
        '"tls-priority":"NORMAL:-VERS-ALL:+VERS-TLS1.3"}}',
        '{"execute":"query-migrate-parameters"}',
        '{"execute":"migrate","arguments":{"uri":"tcp:127.0.0.1:4444"}}',
        '{"execute":"migrate-cancel"}',
        '{"execute":"stop"}',
        '{"execute":"cont"}',
        '{"execute":"query-cpuid"}',
        '{"execute":"query-machine"}',
        '{"execute":"query-commands"}',
        '{"execute":"query-version"}',
        '{"execute":"nosuch","arguments":[1,2]}',
        '[1,2,3]',
        '{"execute":7}',
    ]
    for l in lines:
        put("api_line", l.encode())
    for f in sorted(glob.glob(os.path.join(ROOT, "cpumodels", "data", "*.cpumodel"))):
        put("cpumodel_data", open(f, "rb").read())
    hosts = os.path.join(os.path.dirname(ROOT), "shared", "cpuid-hosts")
    for name in ("intel-skylake-sp-xeon-platinum-8180.txt", "amd-zen3-milan-epyc-7763.txt",
                 "intel-sapphirerapids-xeon-w9-3475x.txt", "amd-bulldozer-opteron-6238.txt"):
        p = os.path.join(hosts, name)
        if os.path.exists(p):
            put("host_profile", open(p, "rb").read())


if __name__ == "__main__":
    for s in sys.argv[1:]:
        from_stream(s)
    fixed()

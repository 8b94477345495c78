#!/usr/bin/env python3
"""Writes the seed corpus of the virtq target (tests/fuzz/corpus/virtq/): one
file per kind of chain, valid and malformed. Input layout: 8 bytes choosing
the queue (see virtq.c), then guest RAM from address 0."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "virtq")
NEXT, WRITE, INDIRECT = 1, 2, 4
DESC, AVAIL, USED = 0x100, 0x300, 0x400


def seed(name, descs, heads, avail_idx=None, flags=3, log2num=3, extra=()):
    ram = bytearray(0x3000)
    for i, (addr, ln, fl, nxt) in enumerate(descs):
        struct.pack_into("<QIHH", ram, DESC + 16 * i, addr, ln, fl, nxt)
    for table, entries in extra:  # indirect tables
        for i, (addr, ln, fl, nxt) in enumerate(entries):
            struct.pack_into("<QIHH", ram, table + 16 * i, addr, ln, fl, nxt)
    for i, h in enumerate(heads):
        struct.pack_into("<H", ram, AVAIL + 4 + 2 * i, h)
    struct.pack_into("<H", ram, AVAIL + 2, len(heads) if avail_idx is None else avail_idx)
    prefix = bytes([log2num, flags, DESC >> 8, AVAIL >> 8, USED >> 8, 0, 0, 0])
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(prefix + bytes(ram))


os.makedirs(OUT, exist_ok=True)
seed("valid-direct", [(0x1000, 16, NEXT, 1), (0x2000, 512, NEXT | WRITE, 2), (0x2800, 1, WRITE, 0)], [0])
seed("two-chains", [(0x1000, 16, 0, 0), (0x2000, 64, WRITE, 0)], [0, 1])
seed("loop", [(0x1000, 16, NEXT, 1), (0x1000, 16, NEXT, 0)], [0])
seed("outside-ram", [(0xfff0, 0x100, 0, 0)], [0])
seed("huge-length", [(0x1000, 0xffffffff, WRITE, 0)], [0])
seed("avail-ahead", [(0x1000, 16, 0, 0)], [0], avail_idx=40)
seed("head-beyond", [], [9])
seed("indirect-valid", [(0x2000, 48, INDIRECT, 0)], [0],
     extra=[(0x2000, [(0x1000, 16, NEXT, 1), (0x1100, 512, NEXT | WRITE, 2), (0x1400, 1, WRITE, 0)])])
seed("indirect-nested", [(0x2000, 32, INDIRECT, 0)], [0],
     extra=[(0x2000, [(0x2100, 16, INDIRECT, 0), (0x1000, 16, 0, 0)])])
seed("indirect-loop", [(0x2000, 32, INDIRECT, 0)], [0],
     extra=[(0x2000, [(0x1000, 16, NEXT, 1), (0x1000, 16, NEXT, 0)])])
seed("indirect-not-negotiated", [(0x2000, 16, INDIRECT, 0)], [0], flags=2)
seed("write-then-read", [(0x1000, 16, NEXT | WRITE, 1), (0x1000, 16, 0, 0)], [0])

#!/usr/bin/env python3
"""Writes the seed corpus of the virtio_net target (tests/fuzz/corpus/virtio_net/):
one file per kind of traffic, valid and malformed. Input layout (see
virtio_net.c): 16 bytes of set-up (driver features, queue sizes, ring
pages of the receive, transmit and control queues, frames to inject and
their sizes, a switch-over), then guest RAM from address 0."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "virtio_net")
NEXT, WRITE, INDIRECT = 1, 2, 4
# rings of queue q: desc, avail, used pages
RINGS = [(0x01, 0x02, 0x03), (0x04, 0x05, 0x06), (0x07, 0x08, 0x09)]
MAC, MRG, STATUS, CTRL_VQ, ANNOUNCE = 1 << 5, 1 << 15, 1 << 16, 1 << 17, 1 << 21
CSUM, GUEST_CSUM, GUEST_TSO4, HOST_TSO4 = 1 << 0, 1 << 1, 1 << 7, 1 << 11
INDIRECT_F, EVENT_IDX = 1 << 28, 1 << 29
BASIC = MAC | STATUS | MRG | CTRL_VQ | ANNOUNCE
SIZES = [0, 5, 26, 60, 1514, 4000, 65000, 70000]


def seed(name, features, queues, frames=0, size_seed=3, switchover=False, extra=()):
    """queues: {q: (descs, heads)}; extra: (addr, bytes) written into RAM."""
    ram = bytearray(0x8000)
    for q, (descs, heads) in queues.items():
        d, a, _ = (p << 8 for p in RINGS[q])
        for i, (addr, ln, fl, nxt) in enumerate(descs):
            struct.pack_into("<QIHH", ram, d + 16 * i, addr, ln, fl, nxt)
        for i, h in enumerate(heads):
            struct.pack_into("<H", ram, a + 4 + 2 * i, h)
        struct.pack_into("<H", ram, a + 2, len(heads))
    for addr, data in extra:
        ram[addr:addr + len(data)] = data
    pages = bytes(p for r in RINGS for p in r)
    prefix = struct.pack("<I", features & 0xffffffff) + bytes([0x15]) + pages + \
        bytes([frames | (8 if switchover else 0), size_seed])
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(prefix + bytes(ram))


def rx_buffers(n, size):
    return ([(0x1000 + 0x800 * i, size, WRITE, 0) for i in range(n)], list(range(n)))


ETH = bytes(12) + b"\x52\x54\x00\x12\x34\x56" + b"\x02\x00\x00\x00\x00\x01\x88\xb5" + bytes(46)

os.makedirs(OUT, exist_ok=True)
for old in os.listdir(OUT):
    os.unlink(os.path.join(OUT, old))
seed("tx-valid", BASIC, {1: ([(0x4000, 12, NEXT, 1), (0x4100, 60, 0, 0)], [0])},
     extra=[(0x4000, bytes(12)), (0x4100, ETH[12:])])
seed("tx-one-descriptor", BASIC, {1: ([(0x4000, 72, 0, 0)], [0])}, extra=[(0x4000, ETH)])
seed("tx-indirect", BASIC | INDIRECT_F,
     {1: ([(0x4800, 32, INDIRECT, 0)], [0])},
     extra=[(0x4800, struct.pack("<QIHHQIHH", 0x4000, 12, NEXT, 1, 0x4100, 60, 0, 0))])
seed("tx-gso-not-negotiated", BASIC, {1: ([(0x4000, 72, 0, 0)], [0])},
     extra=[(0x4000, bytes([1, 1, 54, 0, 0x5a, 5, 34, 0, 16, 0, 0, 0]) + ETH[12:])])
seed("tx-gso-negotiated", BASIC | CSUM | HOST_TSO4, {1: ([(0x4000, 72, 0, 0)], [0])},
     extra=[(0x4000, bytes([1, 1, 54, 0, 0x5a, 5, 34, 0, 16, 0, 0, 0]) + ETH[12:])])
seed("tx-no-header", BASIC, {1: ([(0x4000, 8, 0, 0)], [0])})
seed("tx-loop", BASIC, {1: ([(0x4000, 12, NEXT, 1), (0x4100, 60, NEXT, 0)], [0])})
seed("rx-mergeable", BASIC, {0: rx_buffers(8, 0x800)}, frames=4, size_seed=2)
seed("rx-big-mergeable", BASIC, {0: rx_buffers(8, 0x800)}, frames=2, size_seed=5)
seed("rx-no-mrg-small-buffer", BASIC & ~MRG, {0: rx_buffers(4, 256)}, frames=3, size_seed=3)
seed("rx-offloads", BASIC | GUEST_CSUM | GUEST_TSO4, {0: rx_buffers(8, 0x800)}, frames=3,
     size_seed=3, extra=[(1024, bytes([1, 1, 54, 0, 0x5a, 5, 34, 0, 16, 0, 0, 0]))])
seed("rx-readable-buffer", BASIC, {0: ([(0x1000, 0x800, 0, 0)], [0])}, frames=1, size_seed=3)
seed("rx-loop", BASIC, {0: ([(0x1000, 16, WRITE | NEXT, 1), (0x1100, 16, WRITE | NEXT, 0)], [0])},
     frames=1, size_seed=3)
seed("rx-buffer-over-ring", BASIC, {0: ([(0x100, 0x800, WRITE, 0)], [0])}, frames=1, size_seed=4)
seed("rx-waits-switchover", BASIC, {0: rx_buffers(1, 0x800)}, frames=2, size_seed=5,
     switchover=True)
seed("ctrl-announce-ack", BASIC, {2: ([(0x6000, 2, NEXT, 1), (0x6100, 1, WRITE, 0)], [0])},
     extra=[(0x6000, b"\x03\x00")])
seed("ctrl-unknown", BASIC, {2: ([(0x6000, 2, NEXT, 1), (0x6100, 1, WRITE, 0)], [0])},
     extra=[(0x6000, b"\x09\x09")])
seed("ctrl-no-answer", BASIC, {2: ([(0x6000, 2, 0, 0)], [0])}, extra=[(0x6000, b"\x03\x00")])
seed("all-queues", BASIC | EVENT_IDX,
     {0: rx_buffers(4, 0x800), 1: ([(0x4000, 72, 0, 0)], [0]),
      2: ([(0x6000, 2, NEXT, 1), (0x6100, 1, WRITE, 0)], [0])},
     frames=5, size_seed=1, extra=[(0x4000, ETH), (0x6000, b"\x03\x00")])

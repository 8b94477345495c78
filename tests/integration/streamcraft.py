"""Hand-made migration streams for the stranger and amplification tests
(the wire format of migration/STREAM.md, written independently of vmm)."""
import struct

MAGIC = b"VMMSTRM\0"
REC_HEADER, REC_RAM, REC_END, REC_GO = 1, 2, 8, 18
REQUIRED = 0x01


def preamble(major=1, minor=1):
    return MAGIC + struct.pack("<HHI", major, minor, 0)


def record(rtype, payload, version=1, flags=REQUIRED):
    return struct.pack("<IHBB", len(payload), rtype, version, flags) + payload


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def header_of_empty_cpuid(size):
    """A Header whose `cpuid` (field 7) holds empty sub-messages: 2 bytes
    each on the wire, a whole allocation each in a naive unpacker."""
    return record(REC_HEADER, b"\x3a\x00" * (size // 2))


def ram_batch_of_tiny_pages(size):
    """A RamBatch whose packed `pages` (field 1) are one-byte varints:
    1 byte each on the wire, 8 bytes each unpacked."""
    body_len = size - 1 - len(varint(size))
    body_len = size - 1 - len(varint(body_len))
    return record(REC_RAM, b"\x0a" + varint(body_len) + b"\x01" * body_len)


def split_records(data):
    """[(offset, type, raw bytes)] of a stream: the preamble first (type 0)."""
    out = [(0, 0, data[:16])]
    off = 16
    while off + 8 <= len(data):
        ln, rtype = struct.unpack_from("<IH", data, off)
        out.append((off, rtype, data[off:off + 8 + ln]))
        off += 8 + ln
    return out

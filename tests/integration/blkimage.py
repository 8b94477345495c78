"""The test guest's disk pattern (guest/u_blk.c), checked from the host.

Block b (4 KiB) of generation g >= 1: u64 words, little-endian; word 0 = b,
word 1 = g, word w (2..511) = mix64(seed + w * GOLD) with seed =
mix64(b * GOLD ^ mix64(g + SALT)); mix64 is splitmix64's finaliser."""
import struct

BLOCK = 4096
M64 = (1 << 64) - 1
GOLD, SALT = 0x9e3779b97f4a7c15, 0x632be59bd9b4e019


def mix64(x):
    x ^= x >> 30
    x = (x * 0xbf58476d1ce4e5b9) & M64
    x ^= x >> 27
    x = (x * 0x94d049bb133111eb) & M64
    return x ^ (x >> 31)


def bad_blocks(path, nbytes):
    """([problems], (lowest, highest generation)) for the first nbytes of an image."""
    bad, gens = [], set()
    with open(path, "rb") as f:
        data = f.read(nbytes)
    if len(data) < nbytes:
        return [f"image has only {len(data)} bytes"], (0, 0)
    for b in range(nbytes // BLOCK):
        w = struct.unpack_from("<512Q", data, b * BLOCK)
        if w[0] != b or w[1] < 1:
            bad.append(f"block {b}: number {w[0]} generation {w[1]}")
            continue
        seed = mix64(((b * GOLD) & M64) ^ mix64((w[1] + SALT) & M64))
        if any(w[i] != mix64((seed + i * GOLD) & M64) for i in range(2, 512)):
            bad.append(f"block {b}: pattern does not follow from ({b}, {w[1]})")
        gens.add(w[1])
    return bad, (min(gens), max(gens)) if gens else (0, 0)

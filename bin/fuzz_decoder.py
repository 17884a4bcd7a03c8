#!/usr/bin/env python3
"""Seeded fuzzing of the .lsq decoder: truncations, bit flips, splices, header edits with a recomputed CRC (to reach
the code behind the checksum), and random bytes. Each case must decode or raise a clean ValueError.

    bin/fuzz_decoder.py [--cases 10000] [--seed 0]

The seeds are files of the default model in every format version it can write; each must decode unchanged. Exit
status 1 when a seed does not decode or a case raised anything but a ValueError (tests/test_fuzz.py runs it).
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch or leechcodec

# isort: split

import argparse
import random
import signal
import struct
import sys
import time
import zlib


def mutate(data: bytes, other: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    b = bytearray(data)
    if kind == 0:  # truncation
        return bytes(b[: rng.randrange(len(b))])
    if kind == 1:  # bit flips
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == 2:  # splice two files
        i, j = rng.randrange(len(b)), rng.randrange(len(other))
        return bytes(b[:i] + other[j:])
    if kind == 3:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    # header or payload edits with a valid CRC, so the checks behind the checksum are exercised
    body = b[:-4]
    if kind == 4:
        i = rng.randrange(min(len(body), 40))
        body[i] = rng.randrange(256)
    else:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(body))
            body[i] = rng.randrange(256)
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


class Timeout(Exception):
    pass


def fuzz(seeds: list[bytes], cases: int, seed: int = 0, time_limit: float = 20.0) -> dict:
    from leechcodec import decompress

    for data in seeds:
        decompress(data)  # every seed decodes as it is: else the mutations would only test the error path
    rng = random.Random(seed)
    stats = {"cases": 0, "decoded": 0, "clean_error": 0, "crash": 0, "examples": []}

    def on_alarm(*_):
        raise Timeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        for _ in range(cases):
            data = mutate(rng.choice(seeds), rng.choice(seeds), rng)
            signal.setitimer(signal.ITIMER_REAL, time_limit)
            try:
                decompress(data)
                stats["decoded"] += 1
            except ValueError:
                stats["clean_error"] += 1
            except Exception as e:  # noqa: BLE001 - anything else is a finding
                stats["crash"] += 1
                if len(stats["examples"]) < 5:
                    stats["examples"].append(f"{type(e).__name__}: {e} (input {data[:48].hex()}...)")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            stats["cases"] += 1
    finally:
        signal.signal(signal.SIGALRM, old)
    return stats


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import numpy as np

    import leechcodec

    rng = np.random.default_rng(args.seed)
    base = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    # seeds in every format version: conditional prior (version 2, when the model has one), static (version 1), and
    # per-position token counts (version 3, on a gain–shape model with a conditional prior)
    seeds = [leechcodec.compress(base, quality=q, prior=pr) for q in (1, 2, 3) for pr in ("auto", "static")]
    try:
        seeds.append(leechcodec.compress(base, quality=6, allocation="adaptive"))
    except ValueError:  # the default model cannot write version 3
        pass
    print(f"{len(seeds)} seeds in format versions {sorted({s[4] for s in seeds})}")
    t0 = time.time()
    try:
        stats = fuzz(seeds, args.cases, args.seed)
    except Exception as e:  # noqa: BLE001 - a seed that does not decode
        sys.exit(f"fuzz_decoder.py: error: a seed does not decode: {type(e).__name__}: {e}")
    print(f"{stats['cases']} cases in {time.time() - t0:.0f} s: {stats['decoded']} decoded, "
          f"{stats['clean_error']} clean errors, {stats['crash']} other exceptions")
    for e in stats["examples"]:
        print("  " + e)
    sys.exit(1 if stats["crash"] else 0)


if __name__ == "__main__":
    main()

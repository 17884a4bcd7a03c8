#!/usr/bin/env python3
"""Leech quantizer throughput on this machine: brute force vs the structured search, side by side.

    bin/bench_quantizer.py [--n 200000] [--n-brute 4000] [--threads 0]

Brute force = chunked float32 matmul against the 196,560 x 24 table + argmax (numpy/BLAS, all cores). Both run on
the same seeded Gaussian vectors (brute force on a prefix, as it is slow); the script checks that they agree there.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch or leechcodec

# isort: split

import argparse
import time

import numba
import numpy as np

from leechcodec import lattice


def rate(fn, n: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--n-brute", type=int, default=4_000)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
    x = np.random.default_rng(0).standard_normal((args.n, 24)).astype(np.float32)
    lattice.quantize(x[:64])  # compile / load the cached kernels
    table = lattice.codebook().astype(np.float32)

    def brute():
        return np.concatenate([np.argmax(c @ table.T, axis=1) for c in np.array_split(x[:args.n_brute], 8)])

    fast_rate = rate(lambda: lattice.quantize(x), args.n)
    brute_rate = rate(brute, args.n_brute, repeat=1)
    agree = (lattice.quantize(x[:args.n_brute]) == brute()).mean()
    idx = np.random.default_rng(1).integers(0, lattice.NUM_POINTS, 2_000_000)
    vec = lattice.index_to_vector(idx)
    i2v = rate(lambda: lattice.index_to_vector(idx), len(idx))
    v2i = rate(lambda: lattice.vector_to_index(vec), len(idx))
    print(f"threads: {numba.get_num_threads()}")
    print(f"{'method':<34}{'vectors/s':>14}")
    print(f"{'brute force (float32 matmul+argmax)':<34}{brute_rate:>14,.0f}")
    print(f"{'structured exact search':<34}{fast_rate:>14,.0f}")
    print(f"{'speed-up':<34}{fast_rate / brute_rate:>13.1f}x")
    print(f"{'index -> vector':<34}{i2v:>14,.0f}")
    print(f"{'vector -> index':<34}{v2i:>14,.0f}")
    print(f"agreement with brute force on {args.n_brute} vectors: {agree:.4%}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Check the training rate proxy (leechcodec.rate_proxy) against real code entropies, per concentration κ.

For each κ it draws vMF samples on S^23, snaps them to their Leech codes, and prints the plug-in entropy of the codes
beside the mean proxy bits of the samples, bare (the density itself) and as the proxy prices them (with the cells'
blur, CELL_KAPPA). This is how CELL_KAPPA was chosen:

    bin/calibrate_rate_proxy.py --samples 400000 --kappas 10,17,25,40,80
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch

# isort: split

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import vonmises_fisher

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leechcodec import lattice
from leechcodec.rate_proxy import CELL_KAPPA, LOG2_CELL_AREA, DirectionRateProxy, log_vmf_normalizer


def calibrate(kappa: float, samples: int, rng: np.random.Generator) -> tuple[int, float, float, float]:
    """vMF(κ) samples on S^23 → (codes they use, the plug-in entropy of those codes, mean proxy bits, mean bits of
    the bare density), bits per token."""
    mu = np.zeros(lattice.DIM)
    mu[0] = 1.0
    u = vonmises_fisher(mu, kappa).rvs(samples, random_state=rng).astype(np.float32)
    _, counts = np.unique(lattice.quantize(u), return_counts=True)
    freq = counts / counts.sum()
    proxy = DirectionRateProxy(groups=1, components=1, kappa_init=kappa)
    with torch.no_grad():
        proxy.mean_dirs.zero_()
        proxy.mean_dirs[0, 0, 0] = 1.0
        bits = float(proxy.bits(torch.from_numpy(u)[:, None]).mean())
        k = torch.tensor(kappa, dtype=torch.float64)
        bare = float((-(log_vmf_normalizer(k) + k * torch.from_numpy(u[:, 0]).double()) / math.log(2)).mean()
                     - LOG2_CELL_AREA)
    return len(counts), float(-(freq * np.log2(freq)).sum()), bits, bare


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=400_000)
    p.add_argument("--kappas", default="10,17,25,40,80")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"CELL_KAPPA = {CELL_KAPPA:g}; bits per token, mean over {args.samples:,} samples")
    print("| κ | codes used | code entropy | proxy | bare density |\n|---|---|---|---|---|")
    for kappa in (float(k) for k in args.kappas.split(",")):
        used, entropy, bits, bare = calibrate(kappa, args.samples, rng)
        print(f"| {kappa:g} | {used:,} | {entropy:.2f} | {bits:.2f} | {bare:.2f} |", flush=True)


if __name__ == "__main__":
    main()

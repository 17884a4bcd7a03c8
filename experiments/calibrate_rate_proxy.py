"""Check the training rate proxy (leechcodec.rate_proxy) against real code entropies, per concentration κ.

For each κ it draws vMF samples on S^23, snaps them to their Leech codes, and prints the plug-in entropy of the codes
beside the mean proxy bits of the samples, bare (the density itself) and as the proxy prices them (with the cells'
blur, CELL_KAPPA; leechcodec.training.calibration). This is how CELL_KAPPA was chosen:

    .venv/bin/python experiments/calibrate_rate_proxy.py --samples 400000 --kappas 10,17,25,40,80
"""

from __future__ import annotations

import argparse

import numpy as np

from leechcodec.rate_proxy import CELL_KAPPA
from leechcodec.training.calibration import calibrate


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

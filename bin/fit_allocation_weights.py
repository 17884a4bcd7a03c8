#!/usr/bin/env python3
"""Fit a shipped model's allocation weights (the decoder's per-channel sensitivity) and store them in its registry
entry; the default encoder's adaptive allocation then weighs each channel's latent error by them.

    bin/fit_allocation_weights.py MODEL [--images 64] [--crop 256] [--probes 4] [--seed 0] [--data DIR]

The images are the first N of the training split (never the validation split, never Kodak), centre crops; the tokens
are those of the model's default quality. The work is done by leechcodec.training.sensitivity.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch or leechcodec

# isort: split

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from leechcodec.lattice import DIM
from leechcodec.training.data import DEFAULT_DATA, load_images
from leechcodec.training.sensitivity import channel_weights
from leechcodec.zoo import ModelError, load_model, record_allocation_weights


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--probes", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        model = load_model(args.model)
    except (ModelError, ValueError) as e:
        sys.exit(f"fit_allocation_weights: error: {e}")
    if not model.config.gain_levels:
        sys.exit(f"fit_allocation_weights: error: {args.model} has no adaptive allocation (no gain levels)")
    train, _ = load_images(args.data, args.crop, limit=args.images)
    if not train:
        sys.exit(f"fit_allocation_weights: error: no training images of at least {args.crop} px in {args.data}")
    k = model.groups_for(None)
    w = channel_weights(model.net, train, k, args.crop, args.probes, args.seed)
    how = "bin/fit_allocation_weights.py " + shlex.join([args.model, "--images", str(args.images), "--crop",
                                                         str(args.crop), "--probes", str(args.probes), "--seed",
                                                         str(args.seed)])
    record_allocation_weights(args.model, w, how)
    per_subspace = w.reshape(-1, DIM).mean(axis=1)
    print(f"{args.model}: weights of {len(w)} channels from {len(train)} images at {k} tokens; "
          f"per subspace {np.array2string(per_subspace, precision=3)}, range {w.min():.3f}–{w.max():.3f}")


if __name__ == "__main__":
    main()

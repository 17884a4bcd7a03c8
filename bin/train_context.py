#!/usr/bin/env python3
"""Fit the conditional entropy model (entropy model v2) of a shipped model, with its autoencoder frozen.

    bin/train_context.py leech-gdn-s16g12 [--images 600] [--steps 400] [--work runs/ctx]

Encodes training images (never Kodak) with the frozen model (indices cached in --work), fits the context weights
group by group and pass by pass, writes ``models/<id>-ctx-<sha8>.pt`` and records it in the model's registry entry,
then prints the held-out code length under the static and the conditional prior. The shipped conditional priors
came from, e.g.:

    bin/train_context.py leech-gdn-s16g12 --images 500 --steps 250 --batch 1024 --lr 5e-3

A decoder-only fine-tune (bin/train.py --freeze-analysis) makes the tokens of the model it came from; it takes that
model's conditional prior unchanged, after a check that the encoders and priors are identical:

    bin/train_context.py NEW_ID --same-encoder-as SOURCE_ID

The work is done by leechcodec.training.context_fit.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch or leechcodec

# isort: split

import argparse
import sys
from pathlib import Path

from leechcodec.training import TrainingError
from leechcodec.training.context_fit import fit_context_prior, reuse_context_prior
from leechcodec.training.data import DEFAULT_DATA

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_id")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--images", type=int, default=600)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "ctx")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--same-encoder-as", metavar="SOURCE_ID",
                   help="reuse this model's conditional prior (the model must make exactly its tokens)")
    args = p.parse_args(argv)
    try:
        if args.same_encoder_as:
            reuse_context_prior(args.model_id, args.same_encoder_as, command=["bin/train_context.py", *argv])
            return
        fit_context_prior(args.model_id, data=args.data, images=args.images, steps=args.steps, batch=args.batch,
                          lr=args.lr, work=args.work, seed=args.seed, command=["bin/train_context.py", *argv])
    except TrainingError as e:
        sys.exit(f"train_context.py: error: {e}")


if __name__ == "__main__":
    main()

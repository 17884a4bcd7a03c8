#!/usr/bin/env python3
"""Freeze a training checkpoint into a shipped model: fit the static prior (and gain prior), hash, name, register.

    bin/export_model.py runs/g12/checkpoint.pt --id leech-gdn-s16g12 [--images 600] [--default] [--fp16-kernels]

Writes ``models/<id>-<sha8>.pt`` (sha8: the first 8 hex digits of the SHA-256 of its bytes; it loads with
``torch.load(weights_only=True)``) and gives the model its entry in ``models/zoo.json``. The file's ``meta`` keeps
the training recipe: the model config, the run's options, and the command lines of the training run and of this
export. ``--fp16-kernels`` stores every convolution kernel as float16 (rounded before the prior is fitted; the export
prints the held-out validation PSNR before and after). A file over 20 MB is refused. The work is done by
leechcodec.training.export.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch or leechcodec

# isort: split

import argparse
import sys
from pathlib import Path

from leechcodec.training import TrainingError
from leechcodec.training.data import DEFAULT_DATA
from leechcodec.training.export import export_model


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--id", required=True, help="model id, e.g. leech-gdn-s16g12")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--images", type=int, default=600, help="training images used to fit the prior")
    p.add_argument("--default-quality", type=int, default=4)
    p.add_argument("--default", action="store_true", help="make this the registry's default model")
    p.add_argument("--fp16-kernels", action="store_true",
                   help="store convolution kernels as float16 (rounded before the prior is fitted)")
    args = p.parse_args(argv)
    try:
        export_model(args.checkpoint, args.id, data=args.data, images=args.images,
                     default_quality=args.default_quality, make_default=args.default, fp16_kernels=args.fp16_kernels,
                     command=["bin/export_model.py", *argv])
    except TrainingError as e:
        sys.exit(f"export_model.py: error: {e}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write the held-out training images (the training's validation split, never Kodak) as PNG centre crops, so that
model choices can be measured with real files without touching the test set:

    bin/heldout_images.py runs/heldout
    bin/leechcodec eval runs/heldout -m <model> --prior static --compare "" --json runs/heldout_<model>.json
    bin/rd_table.py runs/heldout_<new>.json --against runs/heldout_<old>.json

Each crop is the centre min(H, 512) × min(W, 768) of the image as training loads it (sunhays_* photos halved),
cut to multiples of 16 (leechcodec.training.data.write_heldout_crops).
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch or leechcodec

# isort: split

import argparse
import sys
from pathlib import Path

from leechcodec.training.data import DEFAULT_DATA, write_heldout_crops


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="folder for the PNGs (created)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = p.parse_args(argv)
    try:
        n = write_heldout_crops(args.data, args.out)
    except ValueError as e:
        sys.exit(f"heldout_images.py: error: {e}")
    print(f"{n} held-out crops written to {args.out}")


if __name__ == "__main__":
    main()

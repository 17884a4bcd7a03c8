#!/usr/bin/env python3
"""Write the held-out training images (bin/train.py's validation split, never Kodak) as PNG centre crops, so that
model choices can be measured with real files without touching the test set:

    bin/heldout_images.py runs/heldout
    bin/leechcodec eval runs/heldout -m <model> --prior static --compare "" --json runs/heldout_<model>.json
    bin/rd_table.py runs/heldout_<new>.json --against runs/heldout_<old>.json

Each crop is the centre min(H, 512) × min(W, 768) of the image as training loads it (sunhays_* photos halved),
cut to multiples of 16.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch

# isort: split

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train


def centre_crop(rgb, height: int = 512, width: int = 768):
    h, w = rgb.shape[:2]
    ch, cw = min(h, height) // 16 * 16, min(w, width) // 16 * 16
    y, x = (h - ch) // 2, (w - cw) // 2
    return rgb[y:y + ch, x:x + cw]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="folder for the PNGs (created)")
    p.add_argument("--data", type=Path, default=train.DEFAULT_DATA)
    args = p.parse_args(argv)
    held_out = sorted(path for path in args.data.glob("*.jp*g") if train.is_validation(path.name))
    if not held_out:
        raise SystemExit(f"no held-out images in {args.data}")
    args.out.mkdir(parents=True, exist_ok=True)
    for path in held_out:
        rgb = np.asarray(train.load_image(path))
        Image.fromarray(np.ascontiguousarray(centre_crop(rgb))).save(args.out / f"{path.stem}.png")
    print(f"{len(held_out)} held-out crops written to {args.out}")


if __name__ == "__main__":
    main()

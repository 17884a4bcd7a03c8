"""Choose the refinement settings (leechcodec/refine.py) on held-out training images — never Kodak.

    .venv/bin/python experiments/tune_refine.py [--images 5] [-q 2,4,6] [--settings 0:0,25:0.01,25:0.02,25:0.04] \\
        [-m MODEL]

Each setting is STEPS:STEP_SIZE. For every held-out image (the training's name-hashed validation split, shorter
side ≥ 320 px) and quality, encodes a real file with each setting and prints the mean bpp, PSNR and encode time per
(quality, setting), with the change against the plain encoder (setting 0:0).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from leechcodec.training.data import DEFAULT_DATA


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=5)
    p.add_argument("-q", "--qualities", default="2,4,6")
    p.add_argument("--settings", default="0:0,25:0.01,25:0.02,25:0.04")
    p.add_argument("-m", "--model", default=None)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = p.parse_args(argv)

    from PIL import Image
    from leechcodec.container import decode_indices, encode_indices
    from leechcodec.pixels import image_to_tensor
    from leechcodec.metrics import psnr
    from leechcodec.refine import refine_tokens
    from leechcodec.training.data import is_validation
    from leechcodec.zoo import load_model

    model = load_model(args.model)
    files = [f for f in sorted(args.data.iterdir()) if is_validation(f.name) and f.suffix.lower() in
             (".png", ".jpg", ".jpeg")]
    files = [f for f in files if min(Image.open(f).size) >= 320][: args.images]
    settings = [(int(a), float(b)) for a, b in (s.split(":") for s in args.settings.split(","))]
    rows: dict[tuple, list] = {}
    for f in files:
        rgb = np.asarray(Image.open(f).convert("RGB"))
        x = image_to_tensor(rgb, model.config.stride, "cpu")
        for q in (int(v) for v in args.qualities.split(",")):
            for steps, lr in settings:
                t0 = time.perf_counter()
                r = refine_tokens(model.net, x, model.groups_for(q), steps, lr or 0.01)
                indices, gains = r.indices[0].numpy(), None if r.gains is None else r.gains[0].numpy()
                enc = encode_indices(model, indices, *rgb.shape[:2], prior="auto", gains=gains)
                seconds = time.perf_counter() - t0
                decoded = decode_indices(model, indices, *rgb.shape[:2], gains)
                rows.setdefault((q, steps, lr), []).append((enc.bpp, psnr(rgb, decoded), seconds))
    print(f"model {model.model_id}, {len(files)} held-out images: {', '.join(f.name for f in files)}")
    print(f"{'q':>2} {'steps':>5} {'size':>6} {'bpp':>8} {'PSNR':>7} {'encode s':>9} {'rate':>7} {'dB':>6}")
    for (q, steps, lr), v in sorted(rows.items()):
        bpp, db, sec = np.mean(v, axis=0)
        base_bpp, base_db, _ = np.mean(rows[(q, 0, 0.0)], axis=0) if (q, 0, 0.0) in rows else (bpp, db, 0)
        print(f"{q:>2} {steps:>5} {lr:>6} {bpp:8.4f} {db:7.2f} {sec:9.2f} {100 * (bpp / base_bpp - 1):+6.1f}% "
              f"{db - base_db:+6.2f}")


if __name__ == "__main__":
    main()

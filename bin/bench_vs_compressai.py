#!/usr/bin/env python3
"""leechcodec's speed beside CompressAI's bmshj2018-hyperprior, in one run (the ratios are what count: these machines
are shared and noisy), and the batch CLI's time beside its parts.

    bin/bench_vs_compressai.py [IMAGE] [--runs 5] [--batch 6]

1. In-process encode (image → file bytes) and decode (file bytes → image) of IMAGE (default Kodak kodim01) with the
   default model at its default quality, interleaved run by run with CompressAI's bmshj2018-hyperprior at quality 3
   (random weights: its speed does not depend on them) compress/decompress; medians and ratios (ours / theirs).
2. Encoder-side refinement: median seconds per step (``--refine`` steps, plain encoder subtracted).
3. With --batch N (default 6; 0 to skip): one `leechcodec encode` call on N Kodak images, against the time of a bare
   `import torch` process plus N in-process encodes; the ratio should stay below 1.3.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch or leechcodec

# isort: split

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from leechcodec.container import decode_indices, parse
from leechcodec.encoder import encode_image
from leechcodec.pixels import image_to_tensor
from leechcodec.zoo import load_model

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def codec_ratios(rgb: np.ndarray, runs: int) -> None:
    from compressai.zoo import bmshj2018_hyperprior

    ours = load_model()
    theirs = bmshj2018_hyperprior(quality=3, pretrained=False).eval()
    theirs.update(force=True)
    x = image_to_tensor(rgb, 64)
    t = {"enc": [], "dec": [], "cai_enc": [], "cai_dec": []}
    with torch.no_grad():
        for _ in range(runs + 1):  # the first round warms up and is dropped
            dt, enc = timed(lambda: encode_image(ours, rgb))
            t["enc"].append(dt)
            t["dec"].append(timed(lambda: decode_indices(*_parsed(enc.data)))[0])
            dt, out = timed(lambda: theirs.compress(x))
            t["cai_enc"].append(dt)
            t["cai_dec"].append(timed(lambda: theirs.decompress(out["strings"], out["shape"]))[0])
    med = {k: statistics.median(v[1:]) for k, v in t.items()}
    print(f"encode: leechcodec {med['enc']:.3f} s, bmshj2018-hyperprior {med['cai_enc']:.3f} s, "
          f"ratio {med['enc'] / med['cai_enc']:.2f}")
    print(f"decode: leechcodec {med['dec']:.3f} s, bmshj2018-hyperprior {med['cai_dec']:.3f} s, "
          f"ratio {med['dec'] / med['cai_dec']:.2f}")


def _parsed(data: bytes):
    header, model, indices, gains = parse(data)
    return model, indices, header.height, header.width, gains


def refine_step_time(rgb: np.ndarray, steps: int = 5) -> None:
    model = load_model()
    plain = statistics.median(timed(lambda: encode_image(model, rgb))[0] for _ in range(3))
    refined = statistics.median(timed(lambda: encode_image(model, rgb, refine=steps))[0] for _ in range(2))
    print(f"refinement: {(refined - plain) / steps:.3f} s per step")


def batch_ratio(n: int) -> None:
    images = sorted(KODAK.glob("kodim*.png"))[:n]
    model = load_model()
    with tempfile.TemporaryDirectory() as tmp:
        cli = [str(Path(sys.executable).with_name("leechcodec")), "encode", *map(str, images), "-o", tmp]
        batch = timed(lambda: subprocess.run(cli, check=True, capture_output=True))[0]
        bare = timed(lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True))[0]
        encodes = sum(timed(lambda: encode_image(model, np.asarray(Image.open(p).convert("RGB"))))[0] for p in images)
    print(f"batch: one encode call on {n} images {batch:.2f} s; import torch {bare:.2f} s + {n} in-process encodes "
          f"{encodes:.2f} s = {bare + encodes:.2f} s; ratio {batch / (bare + encodes):.2f} (limit 1.30)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", nargs="?", type=Path, default=KODAK / "kodim01.png")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--batch", type=int, default=6)
    p.add_argument("--no-refine", action="store_true", help="skip the refinement step timing")
    args = p.parse_args()
    rgb = np.asarray(Image.open(args.image).convert("RGB"))
    print(f"{args.image.name} {rgb.shape[1]}x{rgb.shape[0]}, {torch.get_num_threads()} threads")
    codec_ratios(rgb, args.runs)
    if not args.no_refine:
        refine_step_time(rgb)
    if args.batch:
        batch_ratio(args.batch)


if __name__ == "__main__":
    main()

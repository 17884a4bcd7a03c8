#!/usr/bin/env python3
"""leechcodec's speed beside CompressAI's bmshj2018-hyperprior, in one run (the ratios are what count: these machines
are shared and noisy), and the batch CLI's time beside its parts.

    bin/bench_vs_compressai.py [IMAGE] [--runs 5] [--batch 6]

1. In-process encode (image → file bytes) and decode (file bytes → image) of IMAGE (default Kodak kodim01) with the
   default model at its default quality, interleaved run by run with CompressAI's bmshj2018-hyperprior at quality 3
   (random weights: its speed does not depend on them) compress/decompress; medians and ratios (ours / theirs).
2. Encoder-side refinement: seconds per step (the difference of two step counts, so the setup cancels), with the
   transforms in PyTorch's default layout and in channels_last (what ``zoo`` loads), and their ratio.
3. With --batch N (default 6; 0 to skip): one `leechcodec encode` call on N Kodak images, against the time of a bare
   `import torch` process plus N in-process encodes (medians of --batch-runs interleaved rounds); the ratio should
   stay below 1.3.
4. With --layout-check: mean bpp and PSNR over all Kodak images at the default quality, encoded and decoded with
   the transforms in the default layout and in channels_last (the PSNR should move by at most 0.01 dB).
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


def _layouts(model):
    """(name, memory format) of the two layouts, leaving the model in the second, its shipped channels_last."""
    for name, fmt in (("default layout", torch.contiguous_format), ("channels_last", torch.channels_last)):
        model.net.use_memory_format(fmt)
        yield name, fmt


def refine_step_time(rgb: np.ndarray) -> None:
    from leechcodec.refine import refine_tokens

    model = load_model()
    x = image_to_tensor(rgb, model.config.stride)
    groups = model.groups_for(None)
    per_step = {}
    for name, _ in _layouts(model):
        refine_tokens(model.net, x, groups, 1)  # warm-up
        short = min(timed(lambda: refine_tokens(model.net, x, groups, 2))[0] for _ in range(2))
        long = min(timed(lambda: refine_tokens(model.net, x, groups, 6))[0] for _ in range(2))
        per_step[name] = (long - short) / 4
    a, b = per_step.values()
    print(f"refinement: {a:.3f} s per step in the default layout, {b:.3f} s in channels_last, ratio {b / a:.2f}")


def layout_check() -> None:
    from leechcodec.metrics import psnr

    model = load_model()
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(KODAK.glob("kodim*.png"))]
    for name, _ in _layouts(model):
        bpp, quality = [], []
        for rgb in images:
            enc = encode_image(model, rgb)
            bpp.append(enc.bpp)
            quality.append(psnr(rgb, decode_indices(*_parsed(enc.data))))
        print(f"kodak ({len(images)} images), {name}: {np.mean(bpp):.4f} bpp, {np.mean(quality):.4f} dB")


def batch_ratio(n: int, runs: int) -> None:
    images = sorted(KODAK.glob("kodim*.png"))[:n]
    model = load_model()
    rgbs = [np.asarray(Image.open(p).convert("RGB")) for p in images]
    t = {"batch": [], "bare": [], "encodes": []}
    with tempfile.TemporaryDirectory() as tmp:
        cli = [str(Path(sys.executable).with_name("leechcodec")), "encode", *map(str, images), "-o", tmp, "-f"]
        for _ in range(runs):
            t["batch"].append(timed(lambda: subprocess.run(cli, check=True, capture_output=True))[0])
            t["bare"].append(timed(lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True))[0])
            t["encodes"].append(sum(timed(lambda: encode_image(model, rgb))[0] for rgb in rgbs))
    batch, bare, encodes = (statistics.median(v) for v in t.values())
    print(f"batch: one encode call on {n} images {batch:.2f} s; import torch {bare:.2f} s + {n} in-process encodes "
          f"{encodes:.2f} s = {bare + encodes:.2f} s; ratio {batch / (bare + encodes):.2f} (limit 1.30; medians of "
          f"{runs} rounds)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", nargs="?", type=Path, default=KODAK / "kodim01.png")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--batch", type=int, default=6)
    p.add_argument("--batch-runs", type=int, default=3)
    p.add_argument("--no-refine", action="store_true", help="skip the refinement step timing")
    p.add_argument("--layout-check", action="store_true", help="Kodak bpp and PSNR in both layouts")
    args = p.parse_args()
    rgb = np.asarray(Image.open(args.image).convert("RGB"))
    print(f"{args.image.name} {rgb.shape[1]}x{rgb.shape[0]}, {torch.get_num_threads()} threads")
    codec_ratios(rgb, args.runs)
    if not args.no_refine:
        refine_step_time(rgb)
    if args.batch:
        batch_ratio(args.batch, args.batch_runs)
    if args.layout_check:
        layout_check()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Encode/decode speed and peak memory of the default model on one image, CPU.

    bin/bench_codec.py [IMAGE] [-q QUALITY] [--runs 5] [--threads 0] [--resize 4000x3000]

IMAGE defaults to ../shared/data/kodak/kodim01.png (768x512). Prints model load time separately, the median encode
and decode times over the runs, and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", nargs="?", type=Path, default=ROOT.parent / "shared/data/kodak/kodim01.png")
    p.add_argument("-q", "--quality", type=int, default=None)
    p.add_argument("-m", "--model", default=None)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--resize", default=None, help="WxH: resize the image first (e.g. 4000x3000 for the memory check)")
    args = p.parse_args()

    t0 = time.perf_counter()
    import torch

    from leechcodec.codec import decode_indices, encode_image, parse
    from leechcodec.imageio import read_image
    from leechcodec.zoo import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = load_model(args.model)
    t_load = time.perf_counter() - t0
    rgb = read_image(args.image)
    if args.resize:
        import numpy as np
        from PIL import Image

        w, h = (int(v) for v in args.resize.split("x"))
        rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BICUBIC))
    enc = encode_image(model, rgb, args.quality)  # warm-up (kernel caches)
    decode_indices(model, *parse(enc.data)[2:], rgb.shape[0], rgb.shape[1])
    enc_t, dec_t = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        enc = encode_image(model, rgb, args.quality)
        enc_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        header, m, idx = parse(enc.data)
        decode_indices(m, idx, header.height, header.width)
        dec_t.append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"image {args.image.name} {rgb.shape[1]}x{rgb.shape[0]}, model {model.model_id}, "
          f"{len(enc.data)} bytes = {enc.bpp:.4f} bpp, torch threads {torch.get_num_threads()}")
    print(f"import {t_import:.2f} s, model load {t_load:.2f} s")
    print(f"encode median {statistics.median(enc_t):.3f} s  (runs: {', '.join(f'{t:.3f}' for t in enc_t)})")
    print(f"decode median {statistics.median(dec_t):.3f} s  (runs: {', '.join(f'{t:.3f}' for t in dec_t)})")
    print(f"peak resident memory {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()

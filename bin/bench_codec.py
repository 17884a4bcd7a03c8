#!/usr/bin/env python3
"""Encode/decode speed and peak memory of the default model on one image, CPU.

    bin/bench_codec.py [IMAGE] [-q QUALITY] [--runs 5] [--threads 0] [--resize 4000x3000] [--refine N] [--adaptive]

IMAGE defaults to ../shared/data/kodak/kodim01.png (768x512). Prints model load time separately, the median encode
and decode times over the runs (whole pipeline: image → file → image), and the process's peak resident memory.
For a model with a conditional prior both entropy models are timed side by side, interleaved run by run, with the
ratio conditional / static. With --refine N the plain encoder and N steps of encoder-side refinement are timed side
by side instead (the model's default prior), with the PSNR each reaches. With --adaptive, uniform and adaptive
allocation (format 3) are timed side by side (each with --refine N steps when given).
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch or leechcodec

# isort: split

import argparse
import resource
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", nargs="?", type=Path, default=ROOT.parent / "shared/data/kodak/kodim01.png")
    p.add_argument("-q", "--quality", type=int, default=None)
    p.add_argument("-m", "--model", default=None)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--resize", default=None, help="WxH: resize the image first (e.g. 4000x3000 for the memory check)")
    p.add_argument("--refine", type=int, default=0, help="compare the plain encoder with N steps of refinement")
    p.add_argument("--adaptive", action="store_true", help="compare uniform with adaptive allocation")
    args = p.parse_args()

    t0 = time.perf_counter()
    import torch

    from leechcodec.codec import decode_indices, encode_image, parse
    from leechcodec.imageio import read_image
    from leechcodec.metrics import psnr
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
    # each setting: (label, prior, refinement steps, allocation)
    if args.adaptive:
        settings = [("uniform", "auto", args.refine, "uniform"), ("adaptive", "auto", args.refine, "adaptive")]
    elif args.refine:
        settings = [("plain", "auto", 0, "uniform"), (f"refine {args.refine}", "auto", args.refine, "uniform")]
    else:
        settings = [(pr, pr, 0, "uniform")
                    for pr in (["static", "conditional"] if model.context is not None else ["static"])]
    labels = [label for label, *_ in settings]
    times = {label: ([], []) for label in labels}
    sizes, quality = {}, {}
    for run in range(args.runs + 1):  # run 0 is a warm-up (kernel caches)
        for label, pr, steps, allocation in settings:
            t0 = time.perf_counter()
            enc = encode_image(model, rgb, args.quality, pr, steps, allocation)
            t1 = time.perf_counter()
            header, m, idx, gains = parse(enc.data)
            decoded = decode_indices(m, idx, header.height, header.width, gains)
            t2 = time.perf_counter()
            sizes[label], quality[label] = enc, psnr(rgb, decoded)
            if run:
                times[label][0].append(t1 - t0)
                times[label][1].append(t2 - t1)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"image {args.image.name} {rgb.shape[1]}x{rgb.shape[0]}, model {model.model_id}, "
          f"quality {args.quality or model.meta.get('default_quality')}, torch threads {torch.get_num_threads()}")
    print(f"import {t_import:.2f} s, model load {t_load:.2f} s")
    med = {label: (statistics.median(e), statistics.median(d)) for label, (e, d) in times.items()}
    print(f"{'setting':<12} {'bytes':>8} {'bpp':>8} {'PSNR dB':>8} {'encode s':>9} {'decode s':>9}   "
          f"(medians of {args.runs} runs)")
    for lb in labels:
        print(f"{lb:<12} {len(sizes[lb].data):>8} {sizes[lb].bpp:8.4f} {quality[lb]:8.2f} {med[lb][0]:9.3f} "
              f"{med[lb][1]:9.3f}")
    if args.adaptive:
        (eu, du), (ea, da) = med["uniform"], med["adaptive"]
        print(f"adaptive / uniform: size {len(sizes['adaptive'].data) / len(sizes['uniform'].data):.3f}, PSNR "
              f"{quality['adaptive'] - quality['uniform']:+.2f} dB, encode time {ea / eu:.2f}x, decode time "
              f"{da / du:.2f}x")
    elif args.refine:
        plain, refined = labels
        (ep, dp), (er, dr) = med[plain], med[refined]
        print(f"refined / plain: size {len(sizes[refined].data) / len(sizes[plain].data):.3f}, PSNR "
              f"{quality[refined] - quality[plain]:+.2f} dB, encode time {er / ep:.1f}x, decode time "
              f"{dr / dp:.2f}x")
    elif len(labels) == 2:
        (es, ds), (ec, dc) = med["static"], med["conditional"]
        print(f"conditional / static: size {len(sizes['conditional'].data) / len(sizes['static'].data):.3f}, "
              f"encode time {ec / es:.2f}x, decode time {dc / ds:.2f}x")
    print(f"peak resident memory {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()

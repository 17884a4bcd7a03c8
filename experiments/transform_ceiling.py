"""How much of a model's distortion is its transform's and how much its quantizer's: the PSNR of each image decoded
from its *unquantized* latent (g_s(y/√24), what the training's straight-through estimator stands for), beside the
PSNR of the first k tokens at every position (uniform allocation, quantized exactly as the encoder does; no entropy
coding, so no bits). No quantizer or entropy model can bring the encoder's latent above the first column.

With --optimize STEPS, also the decoder's own ceiling: STEPS steps of Adam on the continuous latent through the
frozen synthesis, from y/√24, minimizing squared error, with no quantization at all (the step size decays from 0.01
as in encoder-side refinement, leechcodec/refine.py). Refined tokens (``--refine``) search the same space under
quantization, so this shows how far refinement could go (a local search, not a proven bound).

    .venv/bin/python experiments/transform_ceiling.py ../shared/data/kodak -m leech-rs4a-s16g12 [--tokens 4,8,12] \\
        [--optimize 50] [--json OUT]

Images are padded to the stride by edge replication and cropped back, as the codec does; PSNR on 8-bit RGB.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from leechcodec.pixels import image_to_tensor, tensor_to_rgb8
from leechcodec.evaluate import find_images
from leechcodec.metrics import psnr
from leechcodec.lattice import DIM
from leechcodec.refine import frozen_weights
from leechcodec.zoo import load_model


def optimized_latent(net, x: torch.Tensor, start: torch.Tensor, steps: int, lr: float = 0.01) -> torch.Tensor:
    """The decoder input that Adam finds in ``steps`` steps from ``start`` (cosine-decaying step size), minimizing
    the squared error of the clamped output to x; the network is not changed."""
    z = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    with frozen_weights(net):
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            opt.zero_grad(set_to_none=True)
            torch.sum((net.synthesis(z).clamp(0, 1) - x) ** 2).backward()
            opt.step()
    return z.detach()


def ceiling_row(net, rgb: np.ndarray, tokens: list[int], optimize: int = 0) -> dict[str, float]:
    """One image → {"unquantized": PSNR, ["optimized": PSNR,] "k=<n>": PSNR of the first n tokens everywhere, ...}."""
    h, w = rgb.shape[:2]
    x = image_to_tensor(rgb, net.stride, "cpu")
    with torch.no_grad():
        y = net.analysis(x).float()
        row = {"unquantized": psnr(rgb, tensor_to_rgb8(net.synthesis(y / math.sqrt(DIM)), h, w))}
    if optimize:
        z = optimized_latent(net, x, y / math.sqrt(DIM), optimize)
        with torch.no_grad():
            row["optimized"] = psnr(rgb, tensor_to_rgb8(net.synthesis(z), h, w))
    with torch.no_grad():
        _, _, vectors = net.quantize_tokens(y, max(tokens))  # stage-major: a prefix of k tokens is the k-token file
        for k in tokens:
            row[f"k={k}"] = psnr(rgb, tensor_to_rgb8(net.synthesis(net.assemble(vectors[:, : DIM * k])), h, w))
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="a folder of images")
    p.add_argument("-m", "--model", help="model id (default: the default model)")
    p.add_argument("--tokens", default="4,8,12", help="token counts per position to measure (comma-separated)")
    p.add_argument("--optimize", type=int, default=0, metavar="STEPS",
                   help="also optimize the continuous latent through the decoder for STEPS steps (default 0: off)")
    p.add_argument("--json", type=Path, help="also write the per-image and mean PSNRs here")
    args = p.parse_args(argv)
    try:
        model = load_model(args.model)
        tokens = [int(t) for t in args.tokens.split(",")]
        if args.optimize < 0:
            raise ValueError("--optimize must be ≥ 0")
        if not all(1 <= k <= model.config.groups for k in tokens) or not model.config.gain_levels:
            raise ValueError(f"--tokens must lie in 1..{model.config.groups} on a gain–shape model")
        images = find_images(args.folder)
    except ValueError as e:
        sys.exit(f"transform_ceiling.py: error: {e}")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    rows = {}
    for name, rgb in images:
        rows[name] = ceiling_row(model.net, rgb, tokens, args.optimize)
        print(name, " ".join(f"{k} {v:.3f}" for k, v in rows[name].items()), flush=True)
    mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in next(iter(rows.values()))}
    print(f"mean over {len(rows)} images ({model.model_id}):", " ".join(f"{k} {v:.3f}" for k, v in mean.items()))
    if args.json:
        args.json.write_text(json.dumps({"model": model.model_id, "folder": str(args.folder),
                                         "optimize_steps": args.optimize, "mean": mean,
                                         "per_image": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()

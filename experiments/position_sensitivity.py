"""Would the adaptive allocator gain from weighting latent error per position as well as per channel? A probe.

The shipped allocator weighs each latent channel's squared error by the decoder's mean sensitivity to that channel
(``LoadedModel.allocation_weights``). The synthesis is not linear, so the sensitivity also varies with position and
content. Here it is estimated per image, per position and channel, by Hutchinson's estimator at the decoder input of
all the image's tokens (``leechcodec.training.sensitivity.hutchinson_elements``: P Gaussian probes in pixel space,
one backward pass of the synthesis each), and the allocation is re-run with it. Modes:

    channel      the shipped per-channel weights
    element      the per-position, per-channel estimate itself
    subspace     the shipped weights × a per-position, per-subspace scale (the estimate averaged over the subspace's
                 24 channels, relative to the shipped weights): less noise from few probes

Every mode allocates the same static-prior budget, writes real files and decodes them; BD-rate against "channel".

    .venv/bin/python experiments/position_sensitivity.py /tmp/heldout --images 8 --probes 2,16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from leechcodec import allocation as alloc
from leechcodec import token_counts
from leechcodec.container import decode_indices, encode_indices
from leechcodec.evaluate import find_images
from leechcodec.lattice import DIM
from leechcodec.metrics import bd_rate, psnr
from leechcodec.model import ENCODE_MARGIN, ENCODE_TILE, tiled
from leechcodec.pixels import image_to_tensor
from leechcodec.refine import frozen_weights
from leechcodec.training.sensitivity import hutchinson_elements
from leechcodec.zoo import load_model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("-m", "--model", default=None)
    ap.add_argument("--images", type=int, default=8, help="the first N images of the folder (sorted by name)")
    ap.add_argument("-q", "--qualities", default="2,4,6,8")
    ap.add_argument("--probes", default="2,16", help="probe counts to try")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    model = load_model(args.model)
    net, qualities = model.net, [int(q) for q in args.qualities.split(",")]
    s_count = net.cfg.subspaces
    w = model.allocation_weights.double()
    modes = ["channel"] + [f"{kind}-{p}" for p in map(int, args.probes.split(",")) for kind in ("element", "subspace")]
    sums = {mode: np.zeros((len(qualities), 2)) for mode in modes}
    gen = torch.Generator().manual_seed(args.seed)
    images = find_images(args.folder)[: args.images]
    for name, rgb in images:
        height, width = rgb.shape[:2]
        x = image_to_tensor(rgb, net.stride, "cpu")
        with torch.no_grad():
            y = tiled(net.analysis, x, 1 / net.stride, ENCODE_TILE, ENCODE_MARGIN).float()
            idx, sym, vectors = net.quantize_stages(y, net.cfg.groups)
        idx, sym = idx[0].numpy(), sym[0].numpy()
        costs = alloc.prefix_costs(model.prior, model.gains, idx, sym)
        weights = {"channel": w.view(-1, 1, 1)}
        with frozen_weights(net):
            for mode in modes[1:]:
                kind, probes = mode.split("-")
                d = hutchinson_elements(net.synthesis, net.assemble(vectors), int(probes), gen)  # [C, h, w]
                if kind == "element":
                    weights[mode] = d
                else:
                    ratio = (d / w.view(-1, 1, 1)).view(s_count, DIM, *d.shape[1:]).mean(dim=1)  # [S, h, w]
                    weights[mode] = w.view(-1, 1, 1) * ratio.repeat_interleave(DIM, dim=0)
        target = y.double() / DIM ** 0.5
        for mode in modes:
            errors = [(weights[mode] * target[0].square()).sum(0)]
            for n in range(1, net.cfg.groups + 1):
                rest = target[0] - net.assemble(vectors[:, : DIM * n])[0].double()
                errors.append((weights[mode] * rest.square()).sum(0))
            errors = torch.stack(errors).numpy()
            for qi, q in enumerate(qualities):
                counts = alloc.allocate(errors, costs, costs[model.groups_for(q)].sum())
                i, g = token_counts.keep_counts(idx, counts), token_counts.keep_counts(sym, counts)
                enc = encode_indices(model, i, height, width, gains=g)
                sums[mode][qi] += (8 * len(enc.data) / (height * width),
                                   psnr(rgb, decode_indices(model, i, height, width, g)))
        print(f"{name} done", file=sys.stderr)
    base = sums["channel"] / len(images)
    for mode in modes:
        mean = sums[mode] / len(images)
        points = "  ".join(f"q{q} {r:.4f}/{p:.3f}" for q, (r, p) in zip(qualities, mean))
        bd = "" if mode == "channel" else f"  BD-rate {bd_rate(base[:, 0], base[:, 1], mean[:, 0], mean[:, 1]):+.1f}%"
        print(f"{mode:12s} {points}{bd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

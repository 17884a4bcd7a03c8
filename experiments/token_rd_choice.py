"""Would a per-token rate–distortion choice in the latent domain make better files? A probe, not part of the encoder.

The plain encoder snaps every token to the nearest Leech direction and the nearest gain level of its residual's norm.
Here, after the adaptive allocation has chosen each position's token count, the last token of every subspace at every
position (the one no later stage corrects) is chosen again among the K directions nearest its residual and all gain
levels, by the allocation's own cost: latent error weighted by the model's allocation weights + λ · static bits
(index and gain), λ being the allocation's exchange rate at the quality level's budget. Modes:

    plain    the default encoder's tokens
    joint    direction and gain chosen together by the cost above
    dir      direction chosen by the cost, gain symbol as the plain encoder's (of the residual's norm)
    gain     direction as the plain encoder's, gain level chosen by the cost
    …0       the same with λ = 0 (the weighted error alone)

Every mode writes real files (conditional prior) and decodes them; BD-rate against the plain curve.

    .venv/bin/python experiments/token_rd_choice.py /tmp/heldout --images 3 --modes plain,joint,dir,dir0,gain,gain0
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from leechcodec import allocation as alloc
from leechcodec import lattice, token_counts
from leechcodec.container import decode_indices, encode_indices
from leechcodec.evaluate import find_images
from leechcodec.lattice import DIM
from leechcodec.metrics import bd_rate, psnr
from leechcodec.model import ENCODE_MARGIN, ENCODE_TILE, tiled
from leechcodec.pixels import image_to_tensor
from leechcodec.zoo import load_model

MODES = ("plain", "joint", "dir", "gain", "joint0", "dir0", "gain0")


def rechoose(model, residuals, indices, gains, counts, lam, mode, k_nearest, codebook):
    """The final tokens of every position re-chosen by ``mode`` (see the module docstring) → (indices, gains)."""
    net = model.net
    s_count, levels = net.cfg.subspaces, net.cfg.gain_levels
    weights = model.allocation_weights.float()
    level_gains = net.gain_values(torch.arange(levels)[None, :, None, None])[0, ::DIM, 0, 0]  # [L]
    gain_probs = model.gains.freqs.astype(np.float64)
    gain_probs /= gain_probs.sum(axis=-1, keepdims=True)
    lm = 0.0 if mode.endswith("0") else lam
    indices, gains = indices.copy(), gains.copy()
    for j in range(indices.shape[0]):
        final = ((counts > j) & (counts <= j + s_count)).ravel()  # token j is its subspace's last here
        if not final.any():
            continue
        where = np.nonzero(final)[0]
        e = residuals[j].reshape(DIM, -1)[:, where].T  # [N, 24], decoder scale
        w = weights[DIM * (j % s_count):DIM * (j % s_count + 1)]
        top = (e @ codebook.T).topk(k_nearest, dim=1).indices  # [N, K], nearest first
        c = codebook[top]
        err = ((w * e * e).sum(-1)[:, None, None] - 2 * level_gains * (w * e[:, None] * c).sum(-1)[..., None]
               + level_gains ** 2 * (w * c * c).sum(-1)[..., None]).double().numpy()  # [N, K, L]
        ctx_group = j - s_count if j >= s_count else -1
        ctx = gains[ctx_group].ravel()[where] if ctx_group >= 0 else np.full(len(where), levels)
        bits = (-np.log2(model.prior.probabilities(j)[top.numpy()])[:, :, None]
                - np.log2(gain_probs[j, ctx])[:, None, :])
        cost = err + lm * bits
        if mode.startswith("dir"):
            keep = np.full(cost.shape, np.inf)
            keep[np.arange(len(where)), :, gains[j].ravel()[where]] = 0
            cost += keep
        elif mode.startswith("gain"):
            cost[:, 1:] = np.inf
        best = cost.reshape(len(where), -1).argmin(axis=1)
        indices[j].ravel()[where] = top.numpy()[np.arange(len(where)), best // levels]
        gains[j].ravel()[where] = best % levels
    return indices, gains


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("-m", "--model", default=None)
    ap.add_argument("--images", type=int, default=3, help="the first N images of the folder (sorted by name)")
    ap.add_argument("-q", "--qualities", default="2,4,6,8")
    ap.add_argument("--modes", default="plain,joint,dir,gain")
    ap.add_argument("--nearest", type=int, default=16, help="K: candidate directions per token")
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    if "plain" not in modes or not set(modes) <= set(MODES):
        ap.error(f"modes are {', '.join(MODES)}, plain among them")
    torch.set_grad_enabled(False)
    model = load_model(args.model)
    net, qualities = model.net, [int(q) for q in args.qualities.split(",")]
    codebook = torch.from_numpy(lattice.codebook().astype(np.float32) / math.sqrt(lattice.NORM2))
    images = find_images(args.folder)[: args.images]
    sums = {mode: np.zeros((len(qualities), 2)) for mode in modes}
    for name, rgb in images:
        height, width = rgb.shape[:2]
        x = image_to_tensor(rgb, net.stride, "cpu")
        y = tiled(net.analysis, x, 1 / net.stride, ENCODE_TILE, ENCODE_MARGIN).float()
        idx, sym, vectors = net.quantize_stages(y, net.cfg.groups)
        errors = net.prefix_errors(y, vectors, model.allocation_weights)[0].numpy()
        idx, sym = idx[0].numpy(), sym[0].numpy()
        costs = alloc.prefix_costs(model.prior, model.gains, idx, sym)
        residuals, decoded = [], torch.zeros_like(y[0])  # what enters token j: its subspace's target − earlier stages
        for j in range(net.cfg.groups):
            ch = slice(DIM * (j % net.cfg.subspaces), DIM * (j % net.cfg.subspaces + 1))
            residuals.append(y[0, ch] / math.sqrt(DIM) - decoded[ch])
            decoded[ch] += vectors[0, DIM * j:DIM * (j + 1)]
        for qi, q in enumerate(qualities):
            budget = costs[model.groups_for(q)].sum()
            counts = alloc.allocate(errors, costs, budget)
            lam = alloc.exchange_rate(errors, costs, budget)
            for mode in modes:
                i, g = (idx, sym) if mode == "plain" else rechoose(model, residuals, idx, sym, counts, lam, mode,
                                                                   args.nearest, codebook)
                i, g = token_counts.keep_counts(i, counts), token_counts.keep_counts(g, counts)
                enc = encode_indices(model, i, height, width, gains=g)
                sums[mode][qi] += (8 * len(enc.data) / (height * width),
                                   psnr(rgb, decode_indices(model, i, height, width, g)))
        print(f"{name} done", file=sys.stderr)
    plain = sums["plain"] / len(images)
    for mode in modes:
        mean = sums[mode] / len(images)
        points = "  ".join(f"q{q} {r:.4f}/{p:.3f}" for q, (r, p) in zip(qualities, mean))
        bd = "" if mode == "plain" else f"  BD-rate {bd_rate(plain[:, 0], plain[:, 1], mean[:, 0], mean[:, 1]):+.1f}%"
        print(f"{mode:7s} {points}{bd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

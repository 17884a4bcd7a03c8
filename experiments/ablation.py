"""Quantizer ablation: Λ24-SQ vs BSQ vs scalar rounding with a factorized prior, everything else equal.

Each arm trains the same transforms (``--arch``/``--widths``, stride 16) on the same data stream (same seed, same
crops), for the same number of steps, batch and learning-rate schedule, at one rate point:

- ``leech``: ``--leech-groups`` Λ24 tokens per 16×16 patch (17.58 bits raw each), loss = log10 MSE;
- ``bsq``: ``--bsq-groups`` 24-bit BSQ tokens per patch (24 bits raw each; 3 BSQ ≈ 4 Λ24 tokens in raw bits), loss =
  log10 MSE + the BSQ entropy regularizer (per-sample bit entropy minus codebook bit entropy, factorized over bits);
- ``scalar``: a ``24·leech-groups``-channel latent, rounding with compressai's ``EntropyBottleneck``, loss =
  log10 MSE + λ·bpp, with λ steered during training so that the rate lands near ``--target-bpp``.

Then every arm is measured on Kodak (all 24 images, padded to a multiple of 16 by edge replication, PSNR on 8-bit
output) with the rate as the information content under a static prior fitted on training images (never Kodak):
per-group index histograms (Λ24), per-bit Bernoulli priors (BSQ), the EntropyBottleneck's own factorized model
(scalar). Results go to ``--out`` as JSON and a Markdown table.

    .venv/bin/python experiments/ablation.py --steps 1200 --out docs/ablation.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from leechcodec.lattice import DIM
from leechcodec.metrics import psnr
from leechcodec.model import LeechAutoencoder, ModelConfig
from leechcodec.pixels import image_to_tensor as to_tensor  # the codec's own padding and rounding
from leechcodec.pixels import tensor_to_rgb8 as to_rgb8
from leechcodec.quantizer import unit_vectors
from leechcodec.training.data import DEFAULT_DATA, load_images, random_batch
from leechcodec.training.export import count_indices
from leechcodec.training.loop import lr_at

ROOT = Path(__file__).resolve().parents[1]

KODAK = ROOT.parent / "shared" / "data" / "kodak"


def bsq_entropy_loss(y: torch.Tensor, tau: float = 10.0, gamma: float = 1.0) -> torch.Tensor:
    """BSQ's entropy regularizer, factorized over the 24 bits of each token: mean per-token bit entropy (push codes
    to be confident) minus γ · entropy of the batch-mean bit probabilities (spread the codebook's usage)."""
    b, c, h, w = y.shape
    u = unit_vectors(y).reshape(b, c // DIM, DIM, h, w)
    p = torch.sigmoid(2 * tau * u)  # q(bit = +) under the soft assignment

    def h2(q):
        return -(q * torch.log2(q.clamp_min(1e-12)) + (1 - q) * torch.log2((1 - q).clamp_min(1e-12)))

    return h2(p).sum(2).mean() - gamma * h2(p.mean(dim=(0, 3, 4))).sum(1).mean()


class ScalarArm(torch.nn.Module):
    """The same transforms around scalar rounding with compressai's EntropyBottleneck (Ballé's factorized prior)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        from compressai.entropy_models import EntropyBottleneck

        base = LeechAutoencoder(cfg)
        self.g_a, self.g_s = base.g_a, base.g_s
        self.entropy_bottleneck = EntropyBottleneck(DIM * cfg.groups)

    def forward(self, x):
        y_hat, lik = self.entropy_bottleneck(self.g_a(x - 0.5))
        return self.g_s(y_hat) + 0.5, lik


def make_arm(arm: str, args) -> torch.nn.Module:
    groups = {"leech": args.leech_groups, "bsq": args.bsq_groups, "scalar": args.leech_groups}[arm]
    widths = tuple(int(w) for w in args.widths.split(","))
    cfg = ModelConfig(stride=16, groups=groups, widths=widths, arch=args.arch,
                      quantizer="bsq" if arm == "bsq" else "leech", groups_for_quality=(groups,))
    return ScalarArm(cfg) if arm == "scalar" else LeechAutoencoder(cfg)


def train_arm(arm: str, args, images) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(args.seed)
    net = make_arm(arm, args)
    main_params = [p for n, p in net.named_parameters() if not n.endswith("quantiles")]
    opt = torch.optim.Adam(main_params, lr=args.lr)
    aux_opt = None
    if arm == "scalar":
        aux_opt = torch.optim.Adam([p for n, p in net.named_parameters() if n.endswith("quantiles")], lr=1e-3)
    rng = random.Random(args.seed)
    lam = args.lambda_init
    net.train()
    t0 = time.time()
    log = []
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr)
        x = random_batch(images, args.batch, args.crop, rng)
        extra = torch.zeros(())
        if arm == "scalar":
            x_hat, lik = net(x)
            bpp = -torch.log2(lik).sum() / (x.shape[0] * x.shape[2] * x.shape[3])
            extra = lam * bpp
            # steer λ towards the target rate: multiplicative update, at most ±1% per step (the untrained entropy
            # model starts at several bpp; an unclipped update would let the rate term swamp the distortion)
            lam *= math.exp(0.01 * max(-1.0, min(1.0, (bpp.item() - args.target_bpp) / args.target_bpp)))
        else:
            out = net(x, blend=min(1.0, step / args.blend_steps))
            x_hat = out["x_hat"]
            if arm == "bsq":
                extra = args.bsq_entropy_weight * bsq_entropy_loss(out["y"])
        mse = ((x_hat - x) ** 2).mean(dim=(1, 2, 3))
        loss = torch.log10(mse.clamp_min(1e-10)).mean() + extra
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if aux_opt is not None:
            aux_opt.zero_grad(set_to_none=True)
            net.entropy_bottleneck.loss().backward()
            aux_opt.step()
        if (step + 1) % 100 == 0:
            p = float((10 * torch.log10(1 / mse.detach())).mean())
            log.append({"step": step + 1, "train_psnr": round(p, 2), "lambda": round(lam, 4)})
            print(f"[{arm}] step {step + 1} psnr {p:.2f} lambda {lam:.4f} {time.time() - t0:.0f}s", flush=True)
    return net.eval(), {"train_seconds": round(time.time() - t0, 1), "log": log}


@torch.no_grad()
def fit_prior(arm: str, net, images, n: int = 400) -> np.ndarray | None:
    """Static prior from centre crops (≤ 512 px) of n training images: the index histograms the export fits
    (Λ24), or per-bit frequencies (BSQ)."""
    if arm == "scalar":
        net.entropy_bottleneck.update(force=True)
        return None
    if arm == "leech":
        counts = count_indices(net, images[:n])
    else:
        counts = 0
        for img in images[:n]:
            h, w = (min(512, d) // 16 * 16 for d in img.shape[:2])
            y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
            idx = net.encode(to_tensor(img[y0:y0 + h, x0:x0 + w], 16, "cpu"))[0][0].reshape(net.cfg.groups, -1)
            bits = (idx[..., None] >> torch.arange(DIM)) & 1  # [G, n, 24]
            counts = counts + np.stack([bits.sum(1).numpy(), (1 - bits).sum(1).numpy()], -1)  # [G, 24, 2]
    counts = counts + 0.5
    return counts / counts.sum(-1, keepdims=True)


@torch.no_grad()
def measure(arm: str, net, prior, kodak: list[Path]) -> dict:
    bpps, psnrs = [], []
    for path in kodak:
        img = np.asarray(Image.open(path).convert("RGB"))
        x = to_tensor(img, 16, "cpu")
        if arm == "scalar":
            y = net.g_a(x - 0.5)
            y_hat, lik = net.entropy_bottleneck(y, training=False)
            bits = float(-torch.log2(lik).sum())
            x_hat = net.g_s(y_hat) + 0.5
        else:
            y_hat, idx = net.quantizer(net.analysis(x))
            x_hat = net.synthesis(y_hat)
            idx = idx[0].reshape(idx.shape[1], -1).numpy()
            if arm == "leech":
                bits = float(-sum(np.log2(prior[g][idx[g]]).sum() for g in range(idx.shape[0])))
            else:
                b = (idx[..., None] >> np.arange(DIM)) & 1
                p1 = prior[:, None, :, 0]
                bits = float(-(np.log2(np.where(b == 1, p1, 1 - p1))).sum())
        psnrs.append(psnr(img, to_rgb8(x_hat, *img.shape[:2])))
        bpps.append(bits / (img.shape[0] * img.shape[1]))
    return {"bpp": round(float(np.mean(bpps)), 4), "psnr": round(float(np.mean(psnrs)), 3)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="JSON results; a .md table is written beside it")
    p.add_argument("--arms", default="leech,bsq,scalar")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--arch", default="gdn")
    p.add_argument("--widths", default="64,64,64")
    p.add_argument("--leech-groups", type=int, default=4)
    p.add_argument("--bsq-groups", type=int, default=3)
    p.add_argument("--bsq-entropy-weight", type=float, default=0.1)
    p.add_argument("--target-bpp", type=float, default=0.22)
    p.add_argument("--lambda-init", type=float, default=1.0)
    p.add_argument("--blend-steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--kodak", type=Path, default=KODAK)
    args = p.parse_args(argv)

    images, _ = load_images(args.data, args.crop)
    kodak = sorted(args.kodak.glob("*.png"))
    results = {"command": "experiments/ablation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "arms": {}}
    for arm in args.arms.split(","):
        net, info = train_arm(arm, args, images)
        prior = fit_prior(arm, net, images)
        info |= measure(arm, net, prior, kodak)
        results["arms"][arm] = info
        print(f"[{arm}] Kodak: {info['bpp']} bpp, {info['psnr']} dB", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    rows = ["| arm | tokens per 16×16 patch | Kodak bpp (static-prior information content) | Kodak PSNR dB | train s |",
            "|---|---|---|---|---|"]
    for arm, r in results["arms"].items():
        tokens = {"leech": f"{args.leech_groups} Λ24", "bsq": f"{args.bsq_groups} BSQ",
                  "scalar": f"{DIM * args.leech_groups} scalars"}[arm]
        rows.append(f"| {arm} | {tokens} | {r['bpp']} | {r['psnr']} | {r['train_seconds']} |")
    args.out.with_suffix(".md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

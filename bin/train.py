#!/usr/bin/env python3
"""Train a Λ24-SQ autoencoder on ../shared/data/train (never Kodak).

One run trains one variable-rate model: each sample keeps the leading token groups of a randomly drawn quality level
(ordered groups), so one set of weights serves every quality level. Loss = mean over the batch of log10(MSE) on
[0, 255] RGB, i.e. minus the mean PSNR / 10, which weighs every rate point alike. The rate of a static prior is not
differentiable through the arg-max quantizer; the prior is fitted afterwards by bin/export_model.py. --rate-weight λ
adds λ × a differentiable stand-in for it, the mean proxy bits of a kept token (leechcodec.rate_proxy: a vMF mixture
per token group, fitted alongside), so that the encoder learns what its tokens cost.

The shipped models came from (2-core CPUs; fp32 unless --bf16 is shown). leech-rs4a-s16g12 (the default): the
shipped leech-rs3z-s16g12 trained 22,000 steps more with a warm restart (Adam 1e-4) and bfloat16 autocast, one
uninterrupted run on a 2-core Xeon with AVX-512 bf16 and AMX; exported with float16 convolution kernels:

    bin/train.py --out runs/w288d --arch gdn --widths 96,192,288 --groups 12 --stages 3 --steps 22000 --lr 1e-4 \
        --seed 17 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from models/leech-rs3z-s16g12-ca7acbac.pt --blend-steps 0 --val-every 5500 --bf16 --max-minutes 88
    bin/export_model.py runs/w288d/checkpoint.pt --id leech-rs4a-s16g12 --images 600 --default-quality 5 \
        --fp16-kernels

leech-rs3z-s16g12: the shipped leech-rs3y-s16g12 trained 22,000 steps more with a warm restart (Adam 1.2e-4) and
bfloat16 autocast, one uninterrupted run on the same Xeon; exported with float16 convolution kernels:

    bin/train.py --out runs/w288c --arch gdn --widths 96,192,288 --groups 12 --stages 3 --steps 22000 --lr 1.2e-4 \
        --seed 16 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from models/leech-rs3y-s16g12-44aa20cb.pt --blend-steps 0 --val-every 5500 --bf16 --max-minutes 88
    bin/export_model.py runs/w288c/checkpoint.pt --id leech-rs3z-s16g12 --images 600 --default-quality 5 \
        --fp16-kernels

leech-rs3y-s16g12: the shipped leech-rs3x-s16g12 trained 22,000 steps more with a warm restart (Adam 1.5e-4) and
bfloat16 autocast, one uninterrupted run on the same Xeon; exported with float16 convolution kernels:

    bin/train.py --out runs/w288b --arch gdn --widths 96,192,288 --groups 12 --stages 3 --steps 22000 --lr 1.5e-4 \
        --seed 15 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from models/leech-rs3x-s16g12-8b7c7024.pt --blend-steps 0 --val-every 5500 --bf16 --max-minutes 88
    bin/export_model.py runs/w288b/checkpoint.pt --id leech-rs3y-s16g12 --images 600 --default-quality 5 \
        --fp16-kernels

leech-rs3x-s16g12: the shipped leech-rs3wj-s16g12 widened to hidden widths 96/192/288 (--init-from fits it
function-preservingly: fit_weights) and trained 22,000 steps more with a warm restart (Adam 2e-4) and bfloat16
autocast, one uninterrupted run on the same Xeon; exported with float16 convolution kernels:

    bin/train.py --out runs/w288a --arch gdn --widths 96,192,288 --groups 12 --stages 3 --steps 22000 --lr 2e-4 \
        --seed 14 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from models/leech-rs3wj-s16g12-61f89dc6.pt --blend-steps 0 --val-every 5500 --bf16 --max-minutes 88
    bin/export_model.py runs/w288a/checkpoint.pt --id leech-rs3x-s16g12 --images 600 --default-quality 5 \
        --fp16-kernels

leech-rs3wj-s16g12: the shipped leech-rs3wi-s16g12 trained 33,000 steps more with a warm restart (Adam 1.5e-4) and
bfloat16 autocast, one uninterrupted run on the same Xeon:

    bin/train.py --out runs/w192l --arch gdn --widths 64,128,192 --groups 12 --stages 3 --steps 33000 --lr 1.5e-4 \
        --seed 13 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from models/leech-rs3wi-s16g12-ee1a21bd.pt --blend-steps 0 --val-every 5500 --bf16
    bin/export_model.py runs/w192l/checkpoint.pt --id leech-rs3wj-s16g12 --images 600 --default-quality 5

leech-rs3wi-s16g12 (2-core AVX2 CPU, fp32, as all below): the shipped
leech-rs3wh-s16g12 trained 7,000 steps more with a warm restart (Adam 1.5e-4), one uninterrupted run:

    bin/train.py --out runs/w192k --arch gdn --widths 64,128,192 --groups 12 --stages 3 --steps 7000 --lr 1.5e-4 \
        --seed 12 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from models/leech-rs3wh-s16g12-eac8b03e.pt --blend-steps 0 --val-every 3500
    bin/export_model.py runs/w192k/checkpoint.pt --id leech-rs3wi-s16g12 --images 600 --default-quality 5

leech-rs3wh-s16g12: the shipped
leech-rs3wg-s16g12 trained 7,000 steps more with a warm restart (Adam 1.5e-4), one uninterrupted run:

    bin/train.py --out runs/w192j --arch gdn --widths 64,128,192 --groups 12 --stages 3 --steps 7000 --lr 1.5e-4 \
        --seed 11 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from models/leech-rs3wg-s16g12-505d0f55.pt --blend-steps 0 --val-every 3500
    bin/export_model.py runs/w192j/checkpoint.pt --id leech-rs3wh-s16g12 --images 600 --default-quality 5

leech-rs3wg-s16g12: the shipped
leech-rs3wf-s16g12 trained 7,000 steps more with a warm restart (Adam 1.5e-4), one uninterrupted run:

    bin/train.py --out runs/w192i --arch gdn --widths 64,128,192 --groups 12 --stages 3 --steps 7000 --lr 1.5e-4 \
        --seed 10 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from models/leech-rs3wf-s16g12-95a48a42.pt --blend-steps 0 --val-every 3500
    bin/export_model.py runs/w192i/checkpoint.pt --id leech-rs3wg-s16g12 --images 600 --default-quality 5

leech-rs3wf-s16g12: the shipped
leech-rs3we-s16g12 trained 7,000 steps more with a warm restart (Adam 1.5e-4), one uninterrupted run:

    bin/train.py --out runs/w192h --arch gdn --widths 64,128,192 --groups 12 --stages 3 --steps 7000 --lr 1.5e-4 \
        --seed 9 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from models/leech-rs3we-s16g12-9a79adb3.pt --blend-steps 0 --val-every 3500
    bin/export_model.py runs/w192h/checkpoint.pt --id leech-rs3wf-s16g12 --images 600 --default-quality 5

leech-rs3we-s16g12: the shipped
leech-rs3wd-s16g12 trained 7,000 steps more with a warm restart (Adam 1.5e-4), one uninterrupted run:

    bin/train.py --out runs/w192g --arch gdn --widths 64,128,192 --groups 12 --stages 3 --steps 7000 --lr 1.5e-4 \
        --seed 8 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from models/leech-rs3wd-s16g12-7e013a1e.pt --blend-steps 0 --val-every 3500
    bin/export_model.py runs/w192g/checkpoint.pt --id leech-rs3we-s16g12 --images 600 --default-quality 5

leech-rs3wd-s16g12: the shipped leech-rs3wc-s16g12 (its weights
file: the run folder it came from was gone) trained 7,500 steps more with a warm restart (Adam 1.5e-4). One run,
started with --steps 9000 --val-every 4500 and resumed at step 1,250 as below, to fit the session (the cosine schedule
follows the current --steps):

    bin/train.py --out runs/w192f --arch gdn --widths 64,128,192 --groups 12 --stages 3 --steps 7500 --lr 1.5e-4 \
        --seed 7 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from models/leech-rs3wc-s16g12-803c1c99.pt --blend-steps 0 --val-every 3750
    bin/export_model.py runs/w192f/checkpoint.pt --id leech-rs3wd-s16g12 --images 600 --default-quality 5

leech-rs3wc-s16g12: leech-rs3wb-s16g12's network (its final
checkpoint, step 7,500) trained 6,500 steps more with a warm restart (Adam 1.5e-4), one uninterrupted run:

    bin/train.py --out runs/w192d --arch gdn --widths 64,128,192 --groups 12 --stages 3 --steps 6500 --lr 1.5e-4 \
        --seed 6 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from runs/w192c/checkpoint.pt --blend-steps 0 --val-every 3250
    bin/export_model.py runs/w192d/checkpoint.pt --id leech-rs3wc-s16g12 --images 600 --default-quality 5

leech-rs3wb-s16g12: leech-rs3w-s16g12's network (its final
checkpoint, step 10,000) trained 7,500 steps more with a warm restart (Adam 2e-4). One run, stopped and resumed
twice with a new --steps (the cosine schedule follows the current --steps): started with --steps 9000 --val-every
3000, resumed at step 1,000 with --steps 6000 and at step 1,250 as below, to fit the session beside other CPU work:

    bin/train.py --out runs/w192c --arch gdn --widths 64,128,192 --groups 12 --stages 3 --steps 7500 --lr 2e-4 \
        --seed 5 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from runs/w192/checkpoint.pt --blend-steps 0 --val-every 2500
    bin/export_model.py runs/w192c/checkpoint.pt --id leech-rs3wb-s16g12 --images 600 --default-quality 5

leech-rs3w-s16g12: leech-rs3b-s16g12's network
(its final checkpoint) widened to hidden widths 64/128/192 (--init-from fits it function-preservingly: fit_weights)
and trained 10,000 steps more, one uninterrupted run:

    bin/train.py --out runs/w192 --arch gdn --widths 64,128,192 --groups 12 --stages 3 --steps 10000 --lr 3e-4 \
        --seed 4 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \
        --init-from runs/rs3q9/checkpoint.pt --blend-steps 0 --val-every 2000
    bin/export_model.py runs/w192/checkpoint.pt --id leech-rs3w-s16g12 --images 600 --default-quality 5

leech-rs3b-s16g12: leech-rs3-s16g12's network
(its final checkpoint, step 16,000) trained 7,000 steps more with a warm restart (Adam 3e-4) and a quality level at
5 tokens. One run, stopped and resumed twice with a smaller --steps: at step 500 (one thread, beside refinement
probes) and at step 1,500 (the cosine schedule follows the current --steps):

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 bin/train.py --out runs/rs3q9 --arch gdn --widths 64,64,64 --groups 12 \
        --stages 3 --steps 14000 --lr 3e-4 --seed 3 --gain-levels 11 --gain-log2-min -4.5 \
        --qualities 1,2,3,4,5,6,8,10,12 --init-from runs/s4t3/checkpoint.pt --blend-steps 0 --threads 1 \
        --val-every 2000                                                                              # to 500
    bin/train.py --out runs/rs3q9 … the same flags, without the thread settings, --steps 9000 --val-every 1500  # to 1500
    bin/train.py --out runs/rs3q9 … the same flags, without the thread settings, --steps 7000 --val-every 1500
    bin/export_model.py runs/rs3q9/checkpoint.pt --id leech-rs3b-s16g12 --images 600 --default-quality 5

leech-rs3-s16g12 (the default before it): residual stages — 4 subspaces ×
3 stages of gain–shape tokens, 11 gain levels from 2^-4.5 — started from leech-gs-s16g12's final checkpoint (its
first 4 subspaces: leading slices). Steps to 1,750 ran on one thread beside a 6 × 2 pilot (``--stages 2``, stopped
there: lower validation PSNR from q5 up at steps 1,000 and 1,500), then it resumed on two threads:

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 bin/train.py --out runs/s4t3 --arch gdn --widths 64,64,64 --groups 12 \
        --stages 3 --steps 15000 --lr 5e-4 --seed 2 --gain-levels 11 --gain-log2-min -4.5 \
        --init-from runs/g12gain/checkpoint.pt --blend-steps 0 --threads 1 --val-every 500            # to 1750
    bin/train.py --out runs/s4t3 --arch gdn --widths 64,64,64 --groups 12 --stages 3 --steps 16000 --lr 5e-4 \
        --seed 2 --gain-levels 11 --gain-log2-min -4.5 --init-from runs/g12gain/checkpoint.pt --blend-steps 0 \
        --val-every 2000
    bin/export_model.py runs/s4t3/checkpoint.pt --id leech-rs3-s16g12 --images 600 --default-quality 5 --default

leech-gs-s16g12: gain–shape tokens with 8 gain
levels, started from the network of leech-gdn-s16g12's run (its final checkpoint, step 15,000) — one run, stopped
and resumed twice: at step 4,500 with a shorter --steps and one thread (beside bin/ablation.py), at step 8,500
with two threads again:

    bin/train.py --out runs/g12gain --arch gdn --widths 64,64,64 --groups 12 --steps 14000 --lr 5e-4 --seed 1 \
        --gain-levels 8 --init-from runs/g12/checkpoint.pt --blend-steps 0                         # to 4500
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 bin/train.py --out runs/g12gain --arch gdn --widths 64,64,64 --groups 12 \
        --steps 12000 --lr 5e-4 --seed 1 --gain-levels 8 --init-from runs/g12/checkpoint.pt --blend-steps 0 \
        --threads 1                                                                                 # to 8500
    bin/train.py --out runs/g12gain --arch gdn --widths 64,64,64 --groups 12 --steps 12000 --lr 5e-4 --seed 1 \
        --gain-levels 8 --init-from runs/g12/checkpoint.pt --blend-steps 0
    bin/export_model.py runs/g12gain/checkpoint.pt --id leech-gs-s16g12 --images 600 --default-quality 5

leech-gdn-s16g12 — one run, stopped and resumed from its checkpoint with a new --steps (the cosine schedule follows
the current --steps; the data stream is the same, its state lives in the checkpoint):

    bin/train.py --out runs/g12 --arch gdn --widths 64,64,64 --groups 12 --steps 20000 --lr 1e-3 --seed 0  # to 250
    bin/train.py --out runs/g12 --arch gdn --widths 64,64,64 --groups 12 --steps 17000 --lr 1e-3 --seed 0  # to 1750
    bin/train.py --out runs/g12 --arch gdn --widths 64,64,64 --groups 12 --steps 15000 --lr 1e-3 --seed 0
    bin/export_model.py runs/g12/checkpoint.pt --id leech-gdn-s16g12 --default --images 600

leech-s16g8 (the first model):

    bin/train.py --out runs/l16g8 --steps 7000 --groups 8 --widths 32,64,96,128 --batch 8 --crop 128 --seed 0 \
        --arch residual --keep-draw groups --lr 5e-4
    bin/export_model.py runs/l16g8/checkpoint.pt --id leech-s16g8

Progress goes to stdout and ``<out>/log.csv``; ``<out>/checkpoint.pt`` is written every ``--ckpt-every`` steps and
a run resumes from it when started again with the same ``--out``. Runs unchanged on CUDA (``--device cuda``;
bin/gpu_carry.py and bin/gpu_run.sh prepare and run it on a lent GPU machine). A weights file named by ``--init-from``
above that is no longer in models/ was retired (models/README.md): ``git checkout 0ffcd15558 -- models/<file>``
restores it (``f31dab2980`` for leech-rs3wi-s16g12's, ``db5bb9d07b`` for leech-rs3wj-s16g12's, ``6ca5763e17`` for
leech-rs3x-s16g12's, ``9f58a06c6c`` for leech-rs3y-s16g12's, ``7ad0e21b53`` for leech-rs3z-s16g12's).
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch

# isort: split

import argparse
import csv
import hashlib
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leechcodec.model import LeechAutoencoder, ModelConfig
from leechcodec.lattice import DIM
from leechcodec.rate_proxy import DirectionRateProxy

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"


def is_validation(name: str, fraction: float = 0.015) -> bool:
    """A fixed, name-hashed ~1.5% of the training images is held aside for validation."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) < fraction * 2**32


def load_image(path: Path) -> Image.Image:
    """One training photo as training sees it: RGB, sunhays_* photos halved to hide JPEG artefacts."""
    img = Image.open(path).convert("RGB")
    if path.name.startswith("sunhays_"):
        img = img.resize((img.width // 2, img.height // 2), Image.BICUBIC)
    return img


def load_images(folder: Path, min_side: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Decode every image once into uint8 HWC arrays (load_image), split into (training, validation)."""
    train, val = [], []
    for path in sorted(folder.glob("*.jp*g")):
        img = load_image(path)
        if min(img.size) < min_side:
            continue
        (val if is_validation(path.name) else train).append(np.asarray(img))
    return train, val


def random_batch(images: list[np.ndarray], batch: int, crop: int, rng: random.Random) -> torch.Tensor:
    out = np.empty((batch, crop, crop, 3), np.uint8)
    for i in range(batch):
        img = images[rng.randrange(len(images))]
        y = rng.randrange(img.shape[0] - crop + 1)
        x = rng.randrange(img.shape[1] - crop + 1)
        patch = img[y:y + crop, x:x + crop]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        if rng.random() < 0.5:
            patch = patch[::-1]
        out[i] = patch
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """mse on [0, 1] → PSNR in dB on the 8-bit scale."""
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


@torch.no_grad()
def validate(model: LeechAutoencoder, images: list[np.ndarray], device: torch.device, crop: int = 256) -> dict:
    """PSNR per quality level on centre crops of the held-out images (eval mode: running statistics)."""
    model.eval()
    xs = []
    for img in images:
        h, w = img.shape[:2]
        c = min(crop, h, w) // model.stride * model.stride
        y0, x0 = (h - c) // 2, (w - c) // 2
        xs.append(torch.from_numpy(img[y0:y0 + c, x0:x0 + c].copy()).permute(2, 0, 1).float().div(255))
    result = {}
    for q, k in enumerate(model.cfg.groups_for_quality, start=1):
        psnrs = []
        for x in xs:
            x = x[None].to(device)
            x_hat = model(x, keep=torch.tensor([k], device=device))["x_hat"].clamp(0, 1)
            x_hat = (x_hat * 255).round() / 255
            psnrs.append(psnr_from_mse(((x_hat - x) ** 2).mean()).item())
        result[f"val_psnr_q{q}"] = float(np.mean(psnrs))
    model.train()
    return result


def fit_weights(source: dict, model: torch.nn.Module) -> dict:
    """Fit another run's weights to this model, tensor by tensor:

    - a tensor that shrank keeps its leading slice along every axis (a model with fewer latent subspaces takes the
      first subspaces' channels — the ones the ordered groups made most important);
    - a tensor that grew (wider hidden layers) holds the source in its leading slice and this model's fresh
      initialization elsewhere, except that every conv weight reading a new channel into an old one is zero. The
      widened network therefore starts out computing exactly the source's function (GDN's fresh γ has no
      cross-channel terms, so new channels do not enter the old ones' normalization either), while the new channels,
      whose outgoing weights get nonzero gradients, start learning;
    - any other mismatch is an error: an axis grew and another shrank, the latent grew, or a layer of the residual
      family grew (its pixel (un)shuffles interleave channels, so a leading slice is not the old layer)."""
    target = model.state_dict()
    input_axis = {}  # conv weight name → the axis of its input channels
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ConvTranspose2d):
            input_axis[f"{name}.weight"] = 0
        elif isinstance(module, torch.nn.Conv2d):
            input_axis[f"{name}.weight"] = 1
    fitted = {}
    for name, want in target.items():
        have = source[name]
        if have.shape == want.shape:
            fitted[name] = have
            continue
        grew = any(a < b for a, b in zip(have.shape, want.shape, strict=False))
        shrank = any(a > b for a, b in zip(have.shape, want.shape, strict=False))
        if have.dim() != want.dim() or (grew and (shrank or name.startswith("standardize.")
                                                  or model.cfg.arch != "gdn")):
            raise SystemExit(f"--init-from: {name} has shape {tuple(have.shape)}, this model needs "
                             f"{tuple(want.shape)}")
        if not grew:
            fitted[name] = have[tuple(slice(0, n) for n in want.shape)]
            continue
        grown = want.clone()
        grown[tuple(slice(0, n) for n in have.shape)] = have
        if name in input_axis:
            i = input_axis[name]
            block = [slice(None)] * want.dim()
            block[1 - i] = slice(0, have.shape[1 - i])  # old output channels …
            block[i] = slice(have.shape[i], None)  # … reading new input channels
            grown[tuple(block)] = 0
        fitted[name] = grown
    return fitted


def init_weights(path: Path, device: torch.device) -> tuple[dict, str]:
    """The network weights held by `path` → (state dict, where they stand). `path` is either a run's checkpoint
    (bin/train.py) or a shipped weights file (bin/export_model.py, models/), so a run can continue a shipped model
    without the run folder it came from; both hold the same network state dict (a shipped file's float16 kernels,
    from ``export_model.py --fp16-kernels``, come back as float32)."""
    blob = torch.load(path, map_location=device, weights_only=False)
    if "model" in blob and "step" in blob:
        return blob["model"], f"step {blob['step']} of that run"
    if "state_dict" in blob and "meta" in blob:
        state = {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
        return state, (f"shipped model {blob.get('model_id', '?')}, "
                       f"{blob['meta'].get('training_steps', '?')} steps in its last run")
    raise SystemExit(f"--init-from: {path} is neither a training checkpoint nor a shipped weights file")


def forward_mse(model: LeechAutoencoder, x: torch.Tensor, keep: torch.Tensor, blend: float,
                bf16: bool) -> tuple[dict, torch.Tensor]:
    """The model's outputs and the per-sample MSE. With bf16 the transforms run under bfloat16 autocast (the quantizer
    turns it off for itself); the MSE is always taken in float32."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(x, keep=keep, blend=blend)
    return out, ((out["x_hat"].float() - x) ** 2).mean(dim=(1, 2, 3))


def token_directions(model: LeechAutoencoder, out: dict, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit direction every token quantized, with a gradient to the encoder, and which tokens a sample keeps:
    (u [N, G, 24] float32, kept [N, G] float, N = B·h·w positions). A residual stage's direction is that of what
    the earlier stages left (their quantized vectors held fixed), as in ``LeechAutoencoder._quantize_stages``."""
    cfg = model.cfg
    y = out["y"].float()
    if cfg.stages > 1:
        vectors = model.quantizer.indices_to_codes(out["indices"]) * model.gain_values(out["gain_symbols"])
        width, parts, residual = DIM * cfg.subspaces, [], y
        for t in range(cfg.stages):
            parts.append(residual)
            residual = residual - math.sqrt(DIM) * vectors[:, t * width:(t + 1) * width]
        y = torch.cat(parts, dim=1)  # stage-major, as the tokens are ordered
    b, _, h, w = y.shape
    v = y.reshape(b, cfg.groups, DIM, h, w).permute(0, 3, 4, 1, 2).reshape(-1, cfg.groups, DIM)
    u = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    kept = (torch.arange(cfg.groups, device=keep.device)[None, :] < keep[:, None]).float()
    return u, kept.repeat_interleave(h * w, dim=0)


def lr_at(step: int, total: int, base: float, warmup: int = 200) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, log.csv)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--stride", type=int, default=16)
    p.add_argument("--groups", type=int, default=12)
    p.add_argument("--widths", type=str, default="64,64,64")
    p.add_argument("--quantizer", choices=["leech", "bsq"], default="leech")
    p.add_argument("--arch", choices=["gdn", "residual"], default="gdn", help="transform family (model.py)")
    p.add_argument("--min-keep", type=int, default=1, help="fewest token groups kept in a training sample")
    p.add_argument("--keep-draw", choices=["qualities", "groups"], default="qualities",
                   help="draw the groups kept per sample uniformly from the quality levels' group counts, or from "
                        "1..G (how leech-s16g8 was trained)")
    p.add_argument("--gain-levels", type=int, default=0,
                   help="gain–shape tokens with this many log-uniform gain levels (0: direction only)")
    p.add_argument("--gain-log2-min", type=float, default=-2.5, help="log2 of the smallest gain level")
    p.add_argument("--stages", type=int, default=1,
                   help="residual quantization stages per 24-d subspace (groups = stages × subspaces; model.py)")
    p.add_argument("--qualities", type=str, default="1,2,3,4,6,8,10,12,16",
                   help="token groups kept at each quality level, ascending (those above --groups are dropped)")
    p.add_argument("--init-from", type=Path,
                   help="start a new run from the network weights of another run's checkpoint or of a shipped weights "
                        "file (same transform family; fewer latent subspaces or wider hidden layers are fitted: "
                        "fit_weights)")
    p.add_argument("--blend-steps", type=int, default=500, help="steps over which quantization is blended in")
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--val-every", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate-weight", type=float, default=0.0,
                   help="λ: add λ × the mean proxy bits of a kept token (rate_proxy: a vMF mixture per token group, "
                        "fitted alongside) to the loss, so the encoder learns what its tokens cost (0: distortion only)")
    p.add_argument("--rate-components", type=int, default=256, help="vMF components per token group in the proxy")
    p.add_argument("--rate-ramp", type=int, default=500, help="steps over which --rate-weight ramps up from 0")
    p.add_argument("--rate-lr", type=float, default=3e-3, help="Adam learning rate of the proxy's mixtures")
    p.add_argument("--freeze-synthesis", action="store_true",
                   help="train the analysis transform only: the decoder's weights stay those of --init-from or the"
                        " checkpoint (it still passes gradients back to the latent)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast and channels_last for the transforms (quantization and the loss stay"
                        " float32); about twice the steps/s on CPUs with AVX-512 bf16 or AMX")
    p.add_argument("--max-minutes", type=float, default=0,
                   help="stop after this much wall time in this invocation, validated and checkpointed, even before"
                        " --steps (0: no limit); a later run with the same --out resumes, the schedule following --steps")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.out / "checkpoint.pt"

    qualities = tuple(k for k in (int(q) for q in args.qualities.split(",")) if k <= args.groups)
    cfg = ModelConfig(stride=args.stride, groups=args.groups, widths=tuple(int(w) for w in args.widths.split(",")),
                      quantizer=args.quantizer, arch=args.arch, groups_for_quality=qualities,
                      gain_levels=args.gain_levels, gain_log2_min=args.gain_log2_min, stages=args.stages)
    torch.manual_seed(args.seed)
    model = LeechAutoencoder(cfg).to(device)
    if args.bf16:
        model = model.to(memory_format=torch.channels_last)
    if args.freeze_synthesis:
        model.g_s.requires_grad_(False)
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=args.lr)
    # the rate proxy is fitted by maximum likelihood to the directions, on its own optimizer and constant rate
    proxy = DirectionRateProxy(cfg.groups, args.rate_components, seed=args.seed).to(device) if args.rate_weight else None
    proxy_opt = torch.optim.Adam(proxy.parameters(), lr=args.rate_lr) if proxy else None
    step, elapsed = 0, 0.0
    rng = random.Random(args.seed)
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ModelConfig.from_dict(ckpt["config"]) != cfg:
            raise SystemExit(f"{ckpt_path} was trained with another config; use another --out")
        if ckpt["args"].get("freeze_synthesis", False) != args.freeze_synthesis:
            raise SystemExit(f"{ckpt_path} was trained {'without' if args.freeze_synthesis else 'with'}"
                             " --freeze-synthesis; use another --out")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, elapsed = ckpt["step"], ckpt["elapsed"]
        if proxy is not None:
            if "rate_proxy" not in ckpt:
                raise SystemExit(f"{ckpt_path} was trained without --rate-weight; use another --out")
            proxy.load_state_dict(ckpt["rate_proxy"])
            proxy_opt.load_state_dict(ckpt["rate_optimizer"])
        rng.setstate(ckpt["rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        print(f"resumed from {ckpt_path} at step {step}")
    elif args.init_from:
        # Only the network weights travel (the gain levels add no parameters); optimizer, step and data stream start
        # afresh under this run's seed and schedule.
        weights, origin = init_weights(args.init_from, device)
        model.load_state_dict(fit_weights(weights, model))
        print(f"initialized from {args.init_from} ({origin})")

    t0 = time.time()
    train_imgs, val_imgs = load_images(args.data, args.crop)
    print(f"{len(train_imgs)} training and {len(val_imgs)} validation images loaded in {time.time() - t0:.0f} s;"
          f" {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")

    log_path = args.out / "log.csv"
    new_log = not log_path.exists()
    log = open(log_path, "a", newline="")  # noqa: SIM115 - open for the whole run, closed at the end
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "elapsed_s", "lr", "loss", "psnr", "distinct_codes", "code_entropy_bits"] +
                        [f"val_psnr_q{q}" for q in range(1, len(qualities) + 1)] + ["proxy_bits"])

    def save() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        extra = {"rate_proxy": proxy.state_dict(), "rate_optimizer": proxy_opt.state_dict()} if proxy else {}
        torch.save(extra | {"config": cfg.to_dict(), "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "step": step, "elapsed": elapsed, "rng": rng.getstate(), "torch_rng": torch.get_rng_state(),
                    "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}, tmp)
        tmp.replace(ckpt_path)

    # By default each sample keeps the groups of one quality level, drawn uniformly, so every shipped rate point gets
    # the same share of training (drawing k uniformly from 1..G starves the low qualities when G is large).
    draw_from = qualities if args.keep_draw == "qualities" else range(1, cfg.groups + 1)
    keep_choices = torch.tensor([k for k in draw_from if k >= args.min_keep])
    model.train()
    t_last, psnr_acc, loss_acc, bits_acc, n_acc = time.time(), 0.0, 0.0, 0.0, 0
    deadline = time.time() + args.max_minutes * 60 if args.max_minutes > 0 else math.inf
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr)
        x = random_batch(train_imgs, args.batch, args.crop, rng).to(device)
        if args.bf16:
            x = x.contiguous(memory_format=torch.channels_last)
        keep = keep_choices[torch.randint(len(keep_choices), (args.batch,))].to(device)
        blend = min(1.0, step / args.blend_steps) if args.blend_steps else 1.0
        out, mse = forward_mse(model, x, keep, blend, args.bf16)
        loss = torch.log10(mse.clamp_min(1e-10)).mean()
        if proxy is not None:
            u, kept = token_directions(model, out, keep)
            token_bits = proxy.bits(u, detach_params=True)  # gradient to the encoder only
            rate = (token_bits * kept).sum() / kept.sum()
            loss = loss + args.rate_weight * min(1.0, (step + 1) / max(1, args.rate_ramp)) * rate
            fit = proxy.bits(u.detach()).mean()  # gradient to the mixtures only
            proxy_opt.zero_grad(set_to_none=True)
            fit.backward()
            proxy_opt.step()
            bits_acc += rate.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        psnr_acc += psnr_from_mse(mse.detach()).mean().item()
        loss_acc += loss.item()
        n_acc += 1
        # a lent machine's minutes are counted: past the deadline, this step is logged, validated and checkpointed
        out_of_time = time.time() > deadline
        if step % 50 == 0 or step == args.steps or out_of_time:
            now = time.time()
            elapsed += now - t_last
            idx = out["indices"].flatten()
            counts = torch.bincount(idx, minlength=1).float()
            counts = counts[counts > 0] / idx.numel()
            entropy = float(-(counts * counts.log2()).sum())
            row = {"step": step, "elapsed_s": round(elapsed, 1), "lr": f"{opt.param_groups[0]['lr']:.2e}",
                   "loss": round(loss_acc / n_acc, 4), "psnr": round(psnr_acc / n_acc, 3),
                   "distinct_codes": len(counts), "code_entropy_bits": round(entropy, 2)}
            if proxy is not None:
                row["proxy_bits"] = round(bits_acc / n_acc, 3)
            if step % args.val_every == 0 or step == args.steps or out_of_time:
                row |= {k: round(v, 3) for k, v in validate(model, val_imgs, device).items()}
            print(" ".join(f"{k}={v}" for k, v in row.items()) + f" steps/s={n_acc / (now - t_last):.2f}", flush=True)
            writer.writerow([row.get(k, "") for k in ["step", "elapsed_s", "lr", "loss", "psnr", "distinct_codes",
                                                      "code_entropy_bits"]] +
                            [row.get(f"val_psnr_q{q}", "") for q in range(1, len(qualities) + 1)] +
                            [row.get("proxy_bits", "")])
            log.flush()
            t_last, psnr_acc, loss_acc, bits_acc, n_acc = now, 0.0, 0.0, 0.0, 0
        if step % args.ckpt_every == 0 or step == args.steps or out_of_time:
            save()
        if out_of_time:
            print(f"stopped at step {step} of {args.steps}: --max-minutes {args.max_minutes:g} reached")
            break
    log.close()
    print(f"done: {step} steps in {elapsed / 60:.1f} min; checkpoint {ckpt_path}")


if __name__ == "__main__":
    main()

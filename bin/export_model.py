#!/usr/bin/env python3
"""Freeze a training checkpoint into a shipped model: fit the static prior (and gain prior), hash, name, register.

    bin/export_model.py runs/g12/checkpoint.pt --id leech-gdn-s16g12 [--images 600] [--default] [--fp16-kernels]

The prior per token group is the Laplace-smoothed histogram of the indices the trained encoder produces on training
images (never Kodak) — the closed-form minimizer of the rate term −log2 p(index). It is stored as uint16
frequencies. A gain–shape model also gets its gain prior (``leechcodec.gains``), fitted the same way. The file
``models/<id>-<sha8>.pt`` loads with ``torch.load(weights_only=True)``; sha8 is the first 8 hex digits of the SHA-256
of its bytes. ``models/zoo.json`` gets (or replaces) the model's entry.

``--fp16-kernels`` stores every convolution kernel as float16 (half the bytes; the rest stays float32), so wider
networks fit the 20 MB a shipped file may have. The kernels are rounded *before* the prior is fitted, so the prior
sees exactly the network that ships; loading casts them back to float32. The export prints the held-out validation
PSNR per quality before and after the rounding. A file over 20 MB is refused.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch

# isort: split

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bin"))
from train import DEFAULT_DATA, load_images, validate

from leechcodec import lattice
from leechcodec.entropy import NUM_SYMBOLS, frequencies_from_counts
from leechcodec.gains import GainPrior, gain_frequencies
from leechcodec.model import LeechAutoencoder, ModelConfig
from leechcodec.zoo import WEIGHTS_FILE_VERSION, FileTooLargeError, models_dir, save_hashed


def round_kernels_to_fp16(net: torch.nn.Module) -> dict:
    """Round every convolution kernel (the 4-d weights) of ``net`` to float16 in place → the state dict to ship,
    with those kernels stored as float16. The invariant: ``net`` (float32) now computes exactly what a model loaded
    from the returned dict computes, since float16 → float32 is exact."""
    state = {}
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point() and t.dim() == 4:
                half = t.to(torch.float16)
                t.copy_(half.float())
                state[name] = half
            else:
                state[name] = t
    return state


def count_indices(net: LeechAutoencoder, images: list[np.ndarray], crop: int = 512,
                  gains: list | None = None) -> np.ndarray:
    """Index histogram per group [G, 196560] over centre crops of the images; a gain–shape model's gain symbols
    [G, h, w] are appended to ``gains`` when given."""
    counts = np.zeros((net.cfg.groups, NUM_SYMBOLS), np.int64)
    s = net.stride
    for img in images:
        h, w = (min(crop, d) // s * s for d in img.shape[:2])
        y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        x = torch.from_numpy(img[y0:y0 + h, x0:x0 + w].copy()).permute(2, 0, 1)[None].float().div(255)
        idx, gain_symbols = net.encode(x)
        idx = idx[0].numpy()
        if gains is not None and gain_symbols is not None:
            gains.append(gain_symbols[0].numpy())
        for g in range(idx.shape[0]):
            counts[g] += np.bincount(idx[g].ravel(), minlength=NUM_SYMBOLS)
    return counts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--id", required=True, help="model id, e.g. leech-gdn-s16g12")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--images", type=int, default=600, help="training images used to fit the prior")
    p.add_argument("--default-quality", type=int, default=4)
    p.add_argument("--default", action="store_true", help="make this the registry's default model")
    p.add_argument("--fp16-kernels", action="store_true",
                   help="store convolution kernels as float16 (rounded before the prior is fitted)")
    args = p.parse_args(argv)

    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    cfg = ModelConfig.from_dict(ckpt["config"])
    net = LeechAutoencoder(cfg)
    net.load_state_dict(ckpt["model"])
    net.eval()

    t0 = time.time()
    train_imgs, val_imgs = load_images(args.data, 0)
    state = net.state_dict()
    if args.fp16_kernels:
        before = validate(net, val_imgs, torch.device("cpu")) if val_imgs else {}
        state = round_kernels_to_fp16(net)
        after = validate(net, val_imgs, torch.device("cpu")) if val_imgs else {}
        net.eval()  # validate() leaves the model in training mode
        print("fp16 kernels: held-out validation PSNR per quality, float32 → float16 kernels: "
              + " ".join(f"q{k[len('val_psnr_q'):]} {before[k]:.3f}→{after[k]:.3f}" for k in before))
    rng = np.random.default_rng(0)
    chosen = [train_imgs[i] for i in sorted(rng.choice(len(train_imgs), min(args.images, len(train_imgs)),
                                                        replace=False))]
    gain_symbols: list[np.ndarray] = []
    counts = count_indices(net, chosen, gains=gain_symbols)
    freqs = frequencies_from_counts(counts)
    used = (counts > 0).sum(1)
    print(f"prior fitted on {len(chosen)} images in {time.time() - t0:.0f} s; distinct indices per group: "
          f"{used.tolist()}")
    extra = {}
    if cfg.gain_levels:
        gain_freqs = gain_frequencies(gain_symbols, cfg.gain_levels, subspaces=cfg.subspaces)
        gain_prior = GainPrior(gain_freqs, cfg.subspaces)
        bits = sum(gain_prior.information_bits(s) for s in gain_symbols) / sum(s.size for s in gain_symbols)
        print(f"gain prior ({cfg.gain_levels} levels): {bits:.3f} bits per gain on the same images")
        extra["gain_freqs"] = torch.from_numpy(gain_freqs.view(np.int16))

    # paths become strings: the shipped file must load with torch.load(weights_only=True)
    training_args = {k: str(v) if isinstance(v, Path) else v for k, v in ckpt.get("args", {}).items()}
    meta = {"training_steps": ckpt["step"],
            "training_seconds": round(ckpt["elapsed"]), "training_args": training_args,
            "prior_images": len(chosen), "parameters": sum(t.numel() for t in net.parameters()),
            "kernel_dtype": "float16" if args.fp16_kernels else "float32"}
    blob = {"format": WEIGHTS_FILE_VERSION, "model_id": args.id, "config": cfg.to_dict(),
            "state_dict": state, "prior_freqs": torch.from_numpy(freqs.view(np.int16)),
            "codebook_sha256": lattice.CODEBOOK_SHA256, "meta": meta} | extra
    try:
        path, sha = save_hashed(blob, args.id)
    except FileTooLargeError as e:
        hint = "" if args.fp16_kernels else " (try --fp16-kernels)"
        raise SystemExit(f"export: the weights file would be {e.size / 1e6:.1f} MB, over the "
                         f"{e.max_bytes / 1e6:.0f} MB a shipped file may have{hint}") from None
    out_dir = models_dir()
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")

    reg_path = out_dir / "zoo.json"
    reg = json.loads(reg_path.read_text()) if reg_path.exists() else {"default": args.id, "models": {}}
    old = reg["models"].get(args.id, {})
    if old.get("file") and old["file"] != path.name:
        (out_dir / old["file"]).unlink(missing_ok=True)
    reg["models"][args.id] = {"file": path.name, "sha256": sha, "qualities": len(cfg.groups_for_quality),
                              "groups_for_quality": list(cfg.groups_for_quality),
                              "default_quality": args.default_quality, "stride": cfg.stride,
                              "quantizer": cfg.quantizer, "arch": cfg.arch, "stages": cfg.stages,
                              "parameters": meta["parameters"],
                              "training_steps": meta["training_steps"], "kodak": []}
    if args.default or len(reg["models"]) == 1:
        reg["default"] = args.id
    reg_path.write_text(json.dumps(reg, indent=2) + "\n")
    print(f"registered {args.id} in {reg_path}")


if __name__ == "__main__":
    main()

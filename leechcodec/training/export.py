"""Freezing a training checkpoint into a shipped model (bin/export_model.py): the static prior per token group (and the
gain prior) fitted on training images, optional float16 convolution kernels, the hashed weights file with its
training recipe in ``meta``, and the model's entry in ``models/zoo.json``.

The prior per token group is the Laplace-smoothed histogram of the indices the trained encoder produces on training
images (never Kodak) — the closed-form minimizer of the rate term −log2 p(index), stored as uint16 frequencies.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from leechcodec import lattice
from leechcodec.entropy import NUM_SYMBOLS, frequencies_from_counts
from leechcodec.gains import GainPrior, gain_frequencies
from leechcodec.model import LeechAutoencoder, ModelConfig
from leechcodec.training import TrainingError
from leechcodec.training.data import DEFAULT_DATA, load_images
from leechcodec.training.loop import validate
from leechcodec.zoo import WEIGHTS_FILE_VERSION, FileTooLargeError, models_dir, packed_static_prior, save_hashed


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


def load_checkpoint(path: Path) -> tuple[dict, LeechAutoencoder]:
    """A training checkpoint (or the optimizer-free one a lent GPU returns) → (the checkpoint, its network in eval
    mode)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    net = LeechAutoencoder(ModelConfig.from_dict(ckpt["config"]))
    net.load_state_dict(ckpt["model"])
    return ckpt, net.eval()


def fit_priors(net: LeechAutoencoder, images: list[np.ndarray]) -> dict:
    """The entropy tables of the blob, fitted on ``images``: the static prior [G, 196560] (compressed,
    ``packed_static_prior``) and, for a gain–shape model, ``gain_freqs`` (uint16 frequencies stored as int16); prints
    what they cost there."""
    gain_symbols: list[np.ndarray] = []
    counts = count_indices(net, images, gains=gain_symbols)
    tables = packed_static_prior(frequencies_from_counts(counts))
    print(f"prior fitted on {len(images)} images; distinct indices per group: {(counts > 0).sum(1).tolist()}")
    cfg = net.cfg
    if cfg.gain_levels:
        gain_freqs = gain_frequencies(gain_symbols, cfg.gain_levels, subspaces=cfg.block_subspaces,
                                      block_groups=cfg.block_groups)
        gain_prior = GainPrior(gain_freqs, cfg.block_subspaces, cfg.block_groups)
        bits = sum(gain_prior.information_bits(s) for s in gain_symbols) / sum(s.size for s in gain_symbols)
        print(f"gain prior ({cfg.gain_levels} levels): {bits:.3f} bits per gain on the same images")
        tables["gain_freqs"] = torch.from_numpy(gain_freqs.view(np.int16))
    return tables


def training_meta(ckpt: dict, net: LeechAutoencoder, prior_images: int, fp16_kernels: bool,
                  command: list[str] | None) -> dict:
    """The weights file's ``meta``: the training recipe — the model config, the run's options, the command lines of
    the training invocations and of this export — and what the run and the export did. Plain values only, so that
    the file loads with ``torch.load(weights_only=True)``."""
    training_args = {k: str(v) if isinstance(v, Path) else v for k, v in ckpt.get("args", {}).items()}
    return {"config": net.cfg.to_dict(), "training_steps": ckpt["step"], "training_seconds": round(ckpt["elapsed"]),
            "training_args": training_args,
            "training_commands": [[str(a) for a in c] for c in ckpt.get("commands", [])],
            "export_command": [str(a) for a in command] if command is not None else None,
            "prior_images": prior_images, "parameters": sum(t.numel() for t in net.parameters()),
            "kernel_dtype": "float16" if fp16_kernels else "float32"}


def register(model_id: str, path: Path, sha: str, cfg: ModelConfig, meta: dict, default_quality: int,
             make_default: bool) -> Path:
    """Add (or replace) the model's entry in ``models/zoo.json`` (removing a replaced weights file) → its path."""
    out_dir = models_dir()
    reg_path = out_dir / "zoo.json"
    reg = json.loads(reg_path.read_text()) if reg_path.exists() else {"default": model_id, "models": {}}
    old = reg["models"].get(model_id, {})
    if old.get("file") and old["file"] != path.name:
        (out_dir / old["file"]).unlink(missing_ok=True)
    reg["models"][model_id] = {"file": path.name, "sha256": sha, "qualities": len(cfg.groups_for_quality),
                               "groups_for_quality": list(cfg.groups_for_quality),
                               "default_quality": default_quality, "stride": cfg.stride,
                               "quantizer": cfg.quantizer, "arch": cfg.arch, "stages": cfg.stages,
                               "parameters": meta["parameters"],
                               "training_steps": meta["training_steps"], "kodak": []}
    if cfg.blocks > 1:
        reg["models"][model_id]["blocks"] = cfg.blocks
    if make_default or len(reg["models"]) == 1:
        reg["default"] = model_id
    reg_path.write_text(json.dumps(reg, indent=2) + "\n")
    return reg_path


def export_model(checkpoint: Path, model_id: str, *, data: Path = DEFAULT_DATA, images: int = 600,
                 default_quality: int = 4, make_default: bool = False, fp16_kernels: bool = False,
                 command: list[str] | None = None) -> Path:
    """Write ``models/<model_id>-<sha8>.pt`` from a checkpoint and register it → the file's path. The prior is fitted
    on ``images`` training images of ``data`` (seeded choice); with ``fp16_kernels`` the kernels are rounded first, so
    the prior sees exactly the network that ships. ``command`` is the export's command line, kept in ``meta``. A file
    over the size limit raises TrainingError, and nothing is written."""
    ckpt, net = load_checkpoint(checkpoint)
    t0 = time.time()
    train_imgs, val_imgs = load_images(data, 0)
    state = net.state_dict()
    if fp16_kernels:
        before = validate(net, val_imgs, torch.device("cpu")) if val_imgs else {}
        state = round_kernels_to_fp16(net)
        after = validate(net, val_imgs, torch.device("cpu")) if val_imgs else {}
        net.eval()  # validate() leaves the model in training mode
        print("fp16 kernels: held-out validation PSNR per quality, float32 → float16 kernels: "
              + " ".join(f"q{k[len('val_psnr_q'):]} {before[k]:.3f}→{after[k]:.3f}" for k in before))
    rng = np.random.default_rng(0)
    chosen = [train_imgs[i] for i in sorted(rng.choice(len(train_imgs), min(images, len(train_imgs)),
                                                        replace=False))]
    tables = fit_priors(net, chosen)
    print(f"priors fitted in {time.time() - t0:.0f} s")
    meta = training_meta(ckpt, net, len(chosen), fp16_kernels, command)
    blob = {"format": WEIGHTS_FILE_VERSION, "model_id": model_id, "config": net.cfg.to_dict(), "state_dict": state,
            "codebook_sha256": lattice.CODEBOOK_SHA256,
            "meta": meta} | tables
    try:
        path, sha = save_hashed(blob, model_id)
    except FileTooLargeError as e:
        hint = "" if fp16_kernels else " (try --fp16-kernels)"
        raise TrainingError(f"the weights file would be {e.size / 1e6:.1f} MB, over the "
                            f"{e.max_bytes / 1e6:.0f} MB a shipped file may have{hint}") from None
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    reg_path = register(model_id, path, sha, net.cfg, meta, default_quality, make_default)
    print(f"registered {model_id} in {reg_path}")
    return path

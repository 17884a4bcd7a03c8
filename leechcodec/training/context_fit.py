"""Fitting the conditional entropy model (entropy model v2) of a shipped model, its autoencoder frozen
(bin/train_context.py):

1. encode centre crops (at most 768×768) of training images (never Kodak; the validation split is held out) with the
   frozen model, caching the indices in a work folder;
2. for each group and pass (``leechcodec.context``) fit the linear map from context features to tilts by minimizing
   the exact code length of the factorized model (``leechcodec.conditional``) with Adam, from zero tilts (= the
   static prior);
3. round the weights to integers, write ``models/<id>-ctx-<sha8>.pt``, record it in the model's registry entry, and
   print the code length of the held-out images under the static and the conditional prior (the real coder).

A model whose encoder is another's (a decoder-only fine-tune, ``--freeze-analysis``) makes the very same tokens, so
it takes that model's conditional prior as it is (``reuse_context_prior``) once ``encoder_differences`` finds
nothing: the same config, analysis weights, latent statistics, static and gain priors.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from leechcodec import conditional, context, lattice
from leechcodec.training import TrainingError
from leechcodec.training.data import DEFAULT_DATA, load_images
from leechcodec.zoo import (PRIOR_FILE_VERSION, FileTooLargeError, LoadedModel, file_sha256, load_model, models_dir,
                            registry, save_hashed)

LN2 = math.log(2)


def extract(model, images: list[np.ndarray], crop: int = 768) -> list[np.ndarray]:
    """Indices [G, h, w] of centre crops (sides multiples of the stride)."""
    s = model.config.stride
    out = []
    for img in images:
        h, w = (min(crop, d) // s * s for d in img.shape[:2])
        y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        x = torch.from_numpy(img[y0:y0 + h, x0:x0 + w].copy()).permute(2, 0, 1)[None].float().div(255)
        out.append(model.net.encode(x)[0][0].numpy().astype(np.int32))
    return out


def dataset(indices: list[np.ndarray], g: int, p: int, subspaces: int, block_groups: int | None = None
            ) -> tuple[torch.Tensor, np.ndarray]:
    """(features [N, F] float32, indices [N]) of every token of group g, pass p (a model with that many subspaces,
    per token block of ``block_groups`` tokens: ``context.slot_sources``)."""
    feats, targets = [], []
    for idx in indices:
        vec = lattice.index_to_vector(idx[: g + 1])
        ys, xs = context.pass_positions(*idx.shape[1:], p)
        feats.append(context.features(vec, g, p, subspaces, block_groups))
        targets.append(idx[g, ys, xs])
    return torch.from_numpy(np.concatenate(feats).astype(np.float32)), np.concatenate(targets).astype(np.int64)


class StepTables:
    """The code vectors of each step as float tensors (for the differentiable tilts)."""

    def __init__(self):
        cb = torch.from_numpy(lattice.codebook().astype(np.float32))
        self.a = cb[: lattice.OFFSET_B]  # [1104, 24]
        self.signs = cb[lattice.OFFSET_B: lattice.OFFSET_C].view(759, 128, 24)
        self.octad_mask = (self.signs[:, 0] != 0).float()  # [759, 24]
        bits = (lattice.CODEWORDS[:, None] >> np.arange(24)) & 1  # [4096, 24], codeword of message m
        self.codeword = torch.from_numpy(1 - 2 * bits).float()  # (−1)^c


def log2_static(st: conditional.StaticTables) -> dict:
    return {k: torch.from_numpy(np.log2(getattr(st, k))).float()
            for k in ("cls", "a", "octad", "signs", "codeword", "position")}


def code_length(t: torch.Tensor, targets: np.ndarray, ls: dict, tab: StepTables) -> torch.Tensor:
    """Total bits of the tokens under tilts t [N, OUTPUTS] (in bits), the factorized model of ``conditional``."""
    cls, a, octad, signs, msg, pos = (torch.from_numpy(v) for v in conditional.split_index(targets))
    mu, nu, rho = t[:, 3:27], t[:, 27:51], t[:, 51:75]
    ce = lambda logits, y: torch.nn.functional.cross_entropy(logits * LN2, y, reduction="sum") / LN2
    bits = ce(ls["cls"] + t[:, :3], cls)
    sa, sb, sc = cls == 0, cls == 1, cls == 2
    if sa.any():
        bits = bits + ce(ls["a"] + mu[sa] @ tab.a.T, a[sa])
    if sb.any():
        o = octad[sb]
        bits = bits + ce(ls["octad"] + nu[sb] @ tab.octad_mask.T, o)
        bits = bits + ce(ls["signs"][o] + torch.einsum("nbd,nd->nb", tab.signs[o], mu[sb]), signs[sb])
    if sc.any():
        m = msg[sc]
        bits = bits + ce(ls["codeword"] + mu[sc] @ tab.codeword.T, m)
        bits = bits + ce(ls["position"][m] - 4 * tab.codeword[m] * mu[sc] + rho[sc], pos[sc])
    return bits


def fit(feats: torch.Tensor, targets: np.ndarray, ls: dict, tab: StepTables, steps: int, batch: int,
        lr: float, seed: int) -> np.ndarray:
    """Adam on the mean code length; returns the float weights [OUTPUTS, F] in bits per unit feature."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.zeros(conditional.OUTPUTS, feats.shape[1], requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        b = torch.randint(0, len(targets), (min(batch, len(targets)),), generator=gen)
        loss = code_length(feats[b] @ w.T, targets[b.numpy()], ls, tab) / len(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach().numpy()


def cached_indices(model, model_id: str, data: Path, images: int, work: Path,
                   seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The indices of ``images`` training images (seeded choice) and of every held-out image of ``data``, from the
    cache in ``work`` when it has them, else encoded (and cached) → (training, held-out)."""
    work.mkdir(parents=True, exist_ok=True)
    cache = work / f"indices-{model_id}-{images}.npz"
    if cache.exists():
        z = np.load(cache)
        return [z[f"t{i}"] for i in range(int(z["n_train"]))], [z[f"v{i}"] for i in range(int(z["n_val"]))]
    train_imgs, val_imgs = load_images(data, 0)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(train_imgs), min(images, len(train_imgs)), replace=False))
    with torch.no_grad():
        train_idx = extract(model, [train_imgs[i] for i in chosen])
        val_idx = extract(model, val_imgs)
    np.savez(cache, n_train=len(train_idx), n_val=len(val_idx), **{f"t{i}": v for i, v in enumerate(train_idx)},
             **{f"v{i}": v for i, v in enumerate(val_idx)})
    return train_idx, val_idx


def fit_context_weights(model, train_idx: list[np.ndarray], steps: int, batch: int, lr: float,
                        seed: int) -> np.ndarray:
    """The integer weights [G, passes, OUTPUTS, NUM_FEATURES] int16 of the conditional prior, fitted group by group
    and pass by pass on ``train_idx``; prints the training bits per token before and after."""
    freqs = model.prior.freqs
    groups = freqs.shape[0]
    tab = StepTables()
    unit = conditional.LOG_UNIT * 2 ** conditional.SHIFT
    weights = np.zeros((groups, len(context.PASSES), conditional.OUTPUTS, context.NUM_FEATURES), np.int16)
    for g in range(groups):
        ls = log2_static(conditional.StaticTables.from_freqs(freqs[g]))
        for ps in range(len(context.PASSES)):
            t1 = time.time()
            feats, targets = dataset(train_idx, g, ps, model.config.block_subspaces, model.config.block_groups)
            w = fit(feats, targets, ls, tab, steps, batch, lr, seed + 31 * g + ps)
            wq = np.rint(w * unit)
            weights[g, ps] = np.clip(wq, -32767, 32767)  # int16 storage; clipping is reported, and rare
            clipped = int((np.abs(wq) > 32767).sum())
            with torch.no_grad():
                zero = code_length(torch.zeros(len(targets), conditional.OUTPUTS), targets, ls, tab) / len(targets)
                wf = torch.from_numpy(weights[g, ps].astype(np.float32)) / unit
                fitted = code_length(feats @ wf.T, targets, ls, tab) / len(targets)
            print(f"group {g} pass {ps}: {len(targets)} tokens, training bits/token {zero:.3f} -> {fitted:.3f} "
                  f"({time.time() - t1:.0f} s{f', {clipped} weights clipped' if clipped else ''})", flush=True)
    return weights


def write_context_prior(model_id: str, weights: np.ndarray, meta: dict) -> Path:
    """Write ``models/<model_id>-ctx-<sha8>.pt`` and record it in the model's registry entry (removing a replaced
    file) → its path. Over the size limit: TrainingError, and nothing is written."""
    base = models_dir() / json.loads((models_dir() / "zoo.json").read_text())["models"][model_id]["file"]
    blob = {"format": PRIOR_FILE_VERSION, "model_id": model_id, "base_sha256": file_sha256(base),
            "weights": torch.from_numpy(weights), "meta": meta}
    try:
        path, sha = save_hashed(blob, f"{model_id}-ctx")
    except FileTooLargeError as e:
        raise TrainingError(f"the context prior file would be {e.size / 1e6:.1f} MB, over the "
                            f"{e.max_bytes / 1e6:.0f} MB a shipped file may have") from None
    reg_path = models_dir() / "zoo.json"
    reg = json.loads(reg_path.read_text())
    entry = reg["models"][model_id]
    old = entry.get("context_prior", {}).get("file")
    if old and old != path.name:
        (models_dir() / old).unlink(missing_ok=True)
    entry["context_prior"] = {"file": path.name, "sha256": sha}
    reg_path.write_text(json.dumps(reg, indent=2) + "\n")
    return path


def fit_context_prior(model_id: str, *, data: Path = DEFAULT_DATA, images: int = 600, steps: int = 400,
                      batch: int = 2048, lr: float = 2e-3, work: Path, seed: int = 0,
                      command: list[str] | None = None) -> Path:
    """Fit, write and register the conditional prior of the registered model ``model_id`` → the file's path; then
    print the held-out code length under the static and the conditional prior. ``command`` goes into its ``meta``."""
    torch.manual_seed(seed)
    model = load_model(model_id)
    t0 = time.time()
    train_idx, val_idx = cached_indices(model, model_id, data, images, work, seed)
    print(f"indices of {len(train_idx)} training and {len(val_idx)} held-out images ready in {time.time() - t0:.0f} s",
          flush=True)
    weights = fit_context_weights(model, train_idx, steps, batch, lr, seed)
    meta = {"training_images": len(train_idx), "steps": steps, "batch": batch, "lr": lr,
            "seconds": round(time.time() - t0), "command": [str(a) for a in command] if command else None}
    path = write_context_prior(model_id, weights, meta)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and registered it", flush=True)

    prior = conditional.ConditionalPrior(weights, model.prior.freqs, model.config.block_subspaces,
                                         model.config.block_groups)
    static_bits = sum(model.prior.information_bits(i) for i in val_idx)
    ctx_bits = sum(prior.information_bits(i) for i in val_idx)
    tokens = sum(i.size for i in val_idx)
    print(f"held-out ({len(val_idx)} images, all {weights.shape[0]} groups): static {static_bits / tokens:.3f} "
          f"bits/token, conditional {ctx_bits / tokens:.3f} ({ctx_bits / static_bits - 1:+.1%})")
    return path


def encoder_differences(a: LoadedModel, b: LoadedModel) -> list[str]:
    """What makes two shipped models' tokens differ: their configs, any analysis weight or latent statistic, their
    static or gain priors (the names of what differs; empty when they make the same tokens and price them alike)."""
    if a.config != b.config:
        return ["config"]
    sa, sb = a.net.state_dict(), b.net.state_dict()
    out = [k for k in sa if k.startswith(("g_a.", "standardize.")) and not torch.equal(sa[k], sb[k])]
    if not np.array_equal(a.prior.freqs, b.prior.freqs):
        out.append("static prior")
    if (a.gains is None) != (b.gains is None) or (a.gains is not None and not np.array_equal(a.gains.freqs,
                                                                                             b.gains.freqs)):
        out.append("gain prior")
    return out


def reuse_context_prior(model_id: str, source_id: str, command: list[str] | None = None) -> Path:
    """Give the registered model ``model_id`` the conditional prior of ``source_id``, which makes the same tokens
    (``encoder_differences`` empty) → the new file's path. The weights are copied unchanged; the file is bound to
    ``model_id``'s weights and its ``meta`` names where they came from."""
    model, source = load_model(model_id), load_model(source_id)
    entry = registry()["models"][source_id].get("context_prior")
    if source.context is None or entry is None:
        raise TrainingError(f"{source_id} has no conditional prior to reuse")
    differences = encoder_differences(model, source)
    if differences:
        shown = ", ".join(differences[:3]) + (f" and {len(differences) - 3} more" if len(differences) > 3 else "")
        raise TrainingError(f"{model_id} does not make the tokens of {source_id} (differs in {shown}); fit its own "
                            "conditional prior")
    blob = torch.load(models_dir() / entry["file"], map_location="cpu", weights_only=True)
    meta = dict(blob["meta"]) | {"reused_from": entry["file"],
                                 "command": [str(a) for a in command] if command else None}
    path = write_context_prior(model_id, blob["weights"].numpy(), meta)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): the conditional prior of {source_id}, whose tokens "
          f"{model_id} makes, and registered it", flush=True)
    return path

"""The model registry: shipped weights in ``models/``, their hashes, and loading.

A weights file is ``models/<id>-<sha8>.pt`` where sha8 is the first 8 hex digits of the SHA-256 of the file's bytes;
it loads with ``torch.load(weights_only=True)`` and holds the config, the state dict, the frozen entropy tables (the
static prior, and for a gain–shape model the gain prior) and training metadata. ``models/zoo.json`` lists the shipped
models (id, file, Kodak numbers) and names the default. An entry with ``"retired": "<commit>"`` is a model whose
files were taken out of the tree to keep the checkout small; they stay in git history at that commit, and loading it
says how to restore them (once restored, it loads as before). An entry's ``"former_context_priors"`` lists the
conditional priors it shipped with before its current one (file, sha256, and the commit whose tree still holds the
file): files written with one of them still decode, once that prior file is back in the models folder
(``former_context``). An entry's ``"allocation_weights"`` (``record_allocation_weights``) are the encoder's alone: the
adaptive allocator weighs each latent channel's error by them.
The models folder: ``models_dir``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from leechcodec import compat, context, lattice
from leechcodec.conditional import ConditionalPrior
from leechcodec.entropy import StaticPrior
from leechcodec.gains import GainPrior
from leechcodec.model import LeechAutoencoder, ModelConfig
from leechcodec.token_coder import TokenCoder

WEIGHTS_FILE_VERSION = 2  # the weights file that bin/export_model.py writes; 1 still loads (``static_prior_of``)
# per version: 1 = static prior as ``prior_freqs`` [G, 196560] int16; 2 = the same bytes zlib-compressed in
# ``prior_freqs_zlib`` (uint8) with ``prior_groups`` G (about 4.5× smaller, so that 24 groups fit in 20 MB)
PRIORS = ("auto", "static", "conditional")  # the index priors a file can be written with
PRIOR_FILE_VERSION = 2  # format of the conditional-prior files (models/<id>-ctx-<sha8>.pt) that bin/train_context.py writes
# features per format: 1 = without the earlier-stage slots (read as zero weights there), 2 = with them (``context``)
CONTEXT_FEATURES = {1: compat.LEGACY_NUM_FEATURES, 2: context.NUM_FEATURES}


class ModelError(ValueError):
    """A model cannot be found, or its weights file is not what it claims to be."""


def models_dir() -> Path:
    """$LEECHCODEC_MODELS if set; else the models installed with the package (a wheel's leechcodec/models); else the
    source tree's models/ folder (a checkout, or an editable install)."""
    if "LEECHCODEC_MODELS" in os.environ:
        return Path(os.environ["LEECHCODEC_MODELS"])
    installed = Path(__file__).resolve().parent / "models"
    return installed if (installed / "zoo.json").is_file() else Path(__file__).resolve().parents[1] / "models"


def registry() -> dict:
    path = models_dir() / "zoo.json"
    if not path.exists():
        raise ModelError(f"no model registry at {path}")
    return json.loads(path.read_text())


def list_models() -> list[dict]:
    """The registered models: [{"id", "file", "qualities", "default_quality", "kodak", ...}, ...], with
    "retired": "<commit>" on those whose files are only in git history."""
    reg = registry()
    return [dict(m, id=k, default=(k == reg["default"])) for k, m in reg["models"].items()]


def default_model_id() -> str:
    return registry()["default"]


@dataclass(frozen=True)
class LoadedModel:
    """A ready-to-use model: network (eval mode), frozen prior, and identity."""

    model_id: str
    weights_hash: bytes  # first 8 bytes of the SHA-256 of the weights file
    net: LeechAutoencoder
    prior: StaticPrior
    meta: dict
    context: ConditionalPrior | None = None  # entropy model v2, when the model ships one
    context_hash: bytes | None = None  # first 8 bytes of the SHA-256 of its file
    gains: GainPrior | None = None  # the gain symbols' prior, exactly when the model has gain levels
    # the adaptive allocator's per-channel weights of the latent error [24·S] (registry; None: all channels alike)
    allocation_weights: torch.Tensor | None = None

    @property
    def config(self) -> ModelConfig:
        return self.net.cfg

    @property
    def qualities(self) -> int:
        return len(self.config.groups_for_quality)

    def token_coder(self, prior: str = "auto") -> TokenCoder:
        """The coder of a file's tokens under ``prior``: "conditional" (formats 2 and 3), "static" (format 1), or
        "auto" (conditional when the model ships one)."""
        if prior not in PRIORS:
            raise ValueError(f"unknown prior {prior!r}: valid priors are {', '.join(PRIORS)}")
        if prior == "conditional" and self.context is None:
            raise ValueError(f"model {self.model_id} has no conditional prior")
        return TokenCoder(self.prior, None if prior == "static" else self.context, self.gains)

    def groups_for(self, quality: int | None) -> int:
        n = self.qualities
        if quality is None:
            quality = self.meta.get("default_quality", n)
        if not isinstance(quality, int) or not 1 <= quality <= n:
            raise ValueError(f"unknown quality {quality!r} for model {self.model_id}: valid qualities are 1..{n}")
        return self.config.groups_for_quality[quality - 1]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


MAX_SHIPPED_FILE_BYTES = 20_000_000  # the project's limit for one file under models/ (weights or context prior)


class FileTooLargeError(ValueError):
    """A blob that ``save_hashed`` refused to write: ``size`` bytes, over the ``max_bytes`` a shipped file may have."""

    def __init__(self, size: int, max_bytes: int):
        super().__init__(f"{size} bytes, over {max_bytes}")
        self.size, self.max_bytes = size, max_bytes


def save_hashed(blob: dict, stem: str) -> tuple[Path, str]:
    """Write a torch blob as ``models/<stem>-<sha8>.pt`` (temporary file, then rename) → (path, full SHA-256).
    A blob over ``MAX_SHIPPED_FILE_BYTES`` raises ``FileTooLargeError`` and nothing is written."""
    buf = io.BytesIO()
    torch.save(blob, buf)
    data = buf.getvalue()
    if len(data) > MAX_SHIPPED_FILE_BYTES:
        raise FileTooLargeError(len(data), MAX_SHIPPED_FILE_BYTES)
    out_dir = models_dir()
    out_dir.mkdir(exist_ok=True)
    tmp = out_dir / f".{stem}.pt.part"
    tmp.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    path = out_dir / f"{stem}-{sha[:8]}.pt"
    tmp.replace(path)
    return path, sha


def _check_name_hash(path: Path) -> str:
    """The file's SHA-256, after checking that the file exists and its name ends in the first 8 hex digits."""
    if not path.is_file():
        raise ModelError(f"weights file {path} not found")
    digest = file_sha256(path)
    stem = path.stem
    if "-" not in stem or not digest.startswith(stem.rsplit("-", 1)[1]):
        raise ModelError(f"weights file {path.name} does not match the hash in its name (tampered or truncated)")
    return digest


def load_context_file(path: Path, base: LoadedModel) -> LoadedModel:
    """Attach a conditional prior file (made by bin/train_context.py for exactly these weights) to a model."""
    path = Path(path)
    digest = _check_name_hash(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob["format"] not in CONTEXT_FEATURES:
            raise ModelError(f"conditional prior {path.name} has unsupported format {blob['format']}")
        if bytes.fromhex(blob["base_sha256"][:16]) != base.weights_hash:
            raise ModelError(f"conditional prior {path.name} was made for other weights of {base.model_id}")
        weights = blob["weights"].numpy()
        if weights.shape[-1] != CONTEXT_FEATURES[blob["format"]]:
            raise ValueError(f"format {blob['format']} has {CONTEXT_FEATURES[blob['format']]} features, not "
                             f"{weights.shape[-1]}")
        prior = ConditionalPrior(weights, base.prior.freqs, base.config.block_subspaces,
                                 base.config.block_groups)
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - any unpickling or shape problem means a broken file
        raise ModelError(f"conditional prior {path.name} is unreadable ({type(e).__name__}: {e})") from None
    return replace(base, context=prior, context_hash=bytes.fromhex(digest[:16]))


def packed_static_prior(freqs: np.ndarray) -> dict:
    """Static-prior frequencies [G, 196560] uint16 → the entries of a weights file (format 2) that hold them."""
    raw = np.ascontiguousarray(freqs, dtype=np.uint16).astype("<u2").tobytes()
    packed = np.frombuffer(zlib.compress(raw, 9), dtype=np.uint8).copy()
    return {"prior_freqs_zlib": torch.from_numpy(packed), "prior_groups": int(freqs.shape[0])}


def static_prior_of(blob: dict) -> np.ndarray:
    """A loaded weights file → its static-prior frequencies [G, 196560] uint16 (format 1 or 2)."""
    if blob["format"] == 1:
        return blob["prior_freqs"].numpy().view(np.uint16)
    raw = zlib.decompress(blob["prior_freqs_zlib"].numpy().tobytes())
    return np.frombuffer(raw, dtype="<u2").astype(np.uint16).reshape(blob["prior_groups"], -1)


def load_weights_file(path: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load and verify one weights file (hash in the name, format, codebook) → LoadedModel."""
    path = Path(path)
    digest = _check_name_hash(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        cfg = ModelConfig.from_dict(blob["config"])
        if blob["format"] not in (1, WEIGHTS_FILE_VERSION):
            raise ModelError(f"weights file {path.name} has unsupported format {blob['format']}")
        if cfg.quantizer == "leech" and blob["codebook_sha256"] != lattice.CODEBOOK_SHA256:
            raise ModelError(f"weights file {path.name} was made for another Leech index order")
        net = LeechAutoencoder(cfg)
        net.load_state_dict(blob["state_dict"])
        prior = StaticPrior(static_prior_of(blob))
        gain_freqs = blob["gain_freqs"].numpy().view(np.uint16) if cfg.gain_levels else None
        gains = GainPrior(gain_freqs, cfg.block_subspaces, cfg.block_groups) if cfg.gain_levels else None
        if gains is not None and gains.freqs.shape[::2] != (cfg.groups, cfg.gain_levels):
            raise ModelError(f"weights file {path.name} has a gain prior of the wrong shape")
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - any unpickling or shape problem means a broken file
        raise ModelError(f"weights file {path.name} is unreadable ({type(e).__name__}: {e})") from None
    net.eval().to(device).use_memory_format(torch.channels_last)
    return LoadedModel(blob["model_id"], bytes.fromhex(digest[:16]), net, prior, dict(blob.get("meta", {})),
                       gains=gains)


def _restore_hint(commit: str, files: list[str]) -> str:
    """The line that brings files of models/ back from the git commit that still holds them."""
    return f"restore them from git history with: git checkout {commit} -- " + " ".join(f"models/{f}" for f in files)


@lru_cache(maxsize=8)
def _load_cached(model_id: str, device: str, folder: str) -> LoadedModel:  # folder: models_dir(), part of the key
    reg = registry()["models"]
    if model_id not in reg:
        raise ValueError(f"unknown model {model_id!r}: valid models are {', '.join(sorted(reg))}")
    entry = reg[model_id]
    files = [entry["file"]] + ([entry["context_prior"]["file"]] if "context_prior" in entry else [])
    missing = [f for f in files if not (models_dir() / f).is_file()]
    if entry.get("retired") and missing:
        raise ModelError(f"model {model_id} is retired: its files are not in {models_dir()}; "
                         + _restore_hint(entry["retired"], missing))
    loaded = load_weights_file(models_dir() / entry["file"], device)
    if "context_prior" in reg[model_id]:
        loaded = load_context_file(models_dir() / reg[model_id]["context_prior"]["file"], loaded)
    # the registry, not the weights file, says which quality is the default (chosen after measuring on Kodak)
    loaded.meta["default_quality"] = reg[model_id]["default_quality"]
    if "allocation_weights" in entry:
        loaded = replace(loaded, allocation_weights=_allocation_weights(model_id, entry["allocation_weights"],
                                                                        lattice.DIM * loaded.config.subspaces))
    return loaded


def _allocation_weights(model_id: str, record: dict, channels: int) -> torch.Tensor:
    """A registry entry's ``allocation_weights`` (written by ``record_allocation_weights``) → float32 [channels]."""
    values = record.get("values") if isinstance(record, dict) else None
    try:
        w = torch.tensor(values, dtype=torch.float32)
    except (TypeError, ValueError):
        w = torch.empty(0)
    if w.shape != (channels,) or not bool(torch.isfinite(w).all() and (w > 0).all()):
        raise ModelError(f"model {model_id}: the registry's allocation weights are not {channels} positive numbers")
    return w


def record_allocation_weights(model_id: str, weights: np.ndarray, how: str) -> None:
    """Store the adaptive allocator's per-channel weights of a model (``training.sensitivity``) in its registry entry,
    with the command that fitted them. Files written afterwards may choose other token counts; every file decodes as
    before (the weights are the encoder's alone). A model already loaded in this process keeps its former weights
    until ``clear_cache``."""
    path = models_dir() / "zoo.json"
    reg = json.loads(path.read_text())
    reg["models"][model_id]["allocation_weights"] = {"values": [round(float(v), 4) for v in weights], "fitted": how}
    path.write_text(json.dumps(reg, indent=2) + "\n")


def former_context(model_id: str, prior_hash: bytes, device: str = "cpu") -> LoadedModel:
    """The shipped model with the former conditional prior whose SHA-256 starts with prior_hash (8 bytes, as in a
    file's header): for files written before the model's prior was refitted. Raises ModelError when the registry
    names no such prior, or, naming the command that restores it, when its file is not in the models folder."""
    return _former_cached(model_id, prior_hash, str(device), str(models_dir()))


@lru_cache(maxsize=8)
def _former_cached(model_id: str, prior_hash: bytes, device: str, folder: str) -> LoadedModel:
    for former in registry()["models"].get(model_id, {}).get("former_context_priors", []):
        if bytes.fromhex(former["sha256"][:16]) == prior_hash:
            path = models_dir() / former["file"]
            if not path.is_file():
                raise ModelError(f"it is a former conditional prior of {model_id}, not in {models_dir()}; "
                                 + _restore_hint(former["retired"], [former["file"]]))
            base = load_model(model_id, device)
            return load_context_file(path, replace(base, context=None, context_hash=None))
    raise ModelError(f"model {model_id} has no conditional prior {prior_hash.hex()}")


def load_model(model_id: str | None = None, device: str = "cpu") -> LoadedModel:
    """A shipped model by id (default: the registry's default), verified and cached per device."""
    return _load_cached(model_id or default_model_id(), str(device), str(models_dir()))


def record_kodak(model_id: str, result: dict) -> None:
    """Store an evaluation's per-quality means (from ``evaluate.run``) in the registry entry of a model, with the
    token allocation its files used ("uniform" or "adaptive"; entries without one predate adaptive files: uniform)."""
    path = models_dir() / "zoo.json"
    reg = json.loads(path.read_text())
    entry = reg["models"][model_id]
    r = result["results"]
    entry["kodak"] = sorted(({"quality": q, "groups": entry["groups_for_quality"][q - 1], "bpp": round(b, 4),
                              "psnr": round(p, 3), "ms_ssim": round(s, 4)}
                             for q, b, p, s in zip(r["quality"], r["bpp"], r["psnr-rgb"], r["ms-ssim-rgb"])),
                            key=lambda e: e["quality"])
    entry["kodak_images"] = result["images"]
    entry["kodak_allocation"] = result["allocation"]
    path.write_text(json.dumps(reg, indent=2) + "\n")


def clear_cache() -> None:
    """Forget the loaded models (after the models folder changed, e.g. a new export)."""
    _load_cached.cache_clear()
    _former_cached.cache_clear()

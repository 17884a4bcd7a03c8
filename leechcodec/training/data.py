"""The training photos: loading them as training sees them, the fixed validation split, random training crops, and the
held-out images as PNG centre crops (for measuring model choices without touching Kodak)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "train"


def is_validation(name: str, fraction: float = 0.015) -> bool:
    """A fixed, name-hashed ~1.5% of the training images is held aside for validation."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) < fraction * 2**32


def load_image(path: Path) -> Image.Image:
    """One training photo as training sees it: RGB, sunhays_* photos halved to hide JPEG artefacts."""
    img = Image.open(path).convert("RGB")
    if path.name.startswith("sunhays_"):
        img = img.resize((img.width // 2, img.height // 2), Image.BICUBIC)
    return img


def load_images(folder: Path, min_side: int, limit: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Decode every image once into uint8 HWC arrays (load_image), split into (training, validation); with ``limit``,
    stop after the first ``limit`` training images (in name order, as without it)."""
    train, val = [], []
    for path in sorted(folder.glob("*.jp*g")):
        if limit is not None and len(train) >= limit:
            break
        img = load_image(path)
        if min(img.size) < min_side:
            continue
        (val if is_validation(path.name) else train).append(np.asarray(img))
    return train, val


def random_batch(images: list[np.ndarray], batch: int, crop: int, rng: random.Random) -> torch.Tensor:
    """``batch`` random crop × crop patches, each flipped left-right and upside-down with probability 1/2, as a float
    tensor [B, 3, crop, crop] on [0, 1]. All randomness comes from ``rng`` (its state lives in the checkpoint)."""
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


def centre_crop(rgb: np.ndarray, height: int = 512, width: int = 768, multiple: int = 16) -> np.ndarray:
    """The centre min(H, height) × min(W, width) of an image, cut to multiples of ``multiple``."""
    h, w = rgb.shape[:2]
    ch, cw = min(h, height) // multiple * multiple, min(w, width) // multiple * multiple
    y, x = (h - ch) // 2, (w - cw) // 2
    return rgb[y:y + ch, x:x + cw]


def write_heldout_crops(data: Path, out: Path) -> int:
    """Write the held-out images of ``data`` (the validation split) as PNG centre crops of the image as training
    loads it into ``out`` (created) → how many. Raises ValueError when ``data`` holds none."""
    held_out = sorted(path for path in data.glob("*.jp*g") if is_validation(path.name))
    if not held_out:
        raise ValueError(f"no held-out images in {data}")
    out.mkdir(parents=True, exist_ok=True)
    for path in held_out:
        rgb = np.asarray(load_image(path))
        Image.fromarray(np.ascontiguousarray(centre_crop(rgb))).save(out / f"{path.stem}.png")
    return len(held_out)

"""Shared fixtures: a synthetic prior for format tests, the shipped default model, small test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leechcodec.entropy import NUM_SYMBOLS, StaticPrior

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "sample.png"


@pytest.fixture(scope="session")
def synthetic_prior() -> StaticPrior:
    """A fixed, skewed integer prior (2 groups) defined by arithmetic only: stable across machines."""
    i = np.arange(NUM_SYMBOLS)
    f0 = 1 + (65534 * 1000 // (1000 + i))
    f1 = 1 + (i * 7919) % 5000
    return StaticPrior(np.stack([f0, f1]).astype(np.uint16))


@pytest.fixture(scope="session")
def default_model():
    from leechcodec.zoo import load_model

    return load_model()


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A 96x80 crop of a natural image: the repository's docs/sample.png (public domain, docs/sample-LICENSE.md)."""
    from PIL import Image

    return np.asarray(Image.open(SAMPLE).convert("RGB"))[200:280, 150:246].copy()

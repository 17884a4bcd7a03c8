"""Entropy model v1: a static categorical prior over the 196,560 Leech indices per token group, and its range coder.

The prior is frozen at export as integer frequencies ``freqs [G, 196560] uint16`` (every entry ≥ 1). The coder's
probabilities are ``freqs[g] / freqs[g].sum()`` in float64, which is exact IEEE arithmetic and so identical on every
machine; constriction (pinned version) turns them into its fixed-point model the same way everywhere. Decoding
never recomputes probabilities from a network.

Symbol order in a stream: group 0 in raster order over the latent positions, then group 1, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

NUM_SYMBOLS = 196_560
MAX_FREQ = 65_535  # frequencies are stored as uint16
PRECISION = 24  # constriction's Categorical uses 24-bit fixed-point probabilities


class DecodeError(ValueError):
    """The payload does not decode under the model (corrupt or truncated data)."""


def frequencies_from_counts(counts: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Symbol counts [..., n] (n = 196,560 for indices) → uint16 frequencies over the last axis (Laplace-smoothed
    with ``alpha``, every entry ≥ 1).

    The smoothed empirical distribution is the minimizer of the rate term −log2 p(index) over the counted tokens.
    """
    counts = np.asarray(counts, dtype=np.float64)
    p = (counts + alpha) / (counts + alpha).sum(axis=-1, keepdims=True)
    scale = MAX_FREQ / p.max(axis=-1, keepdims=True)
    return np.clip(np.rint(p * scale), 1, MAX_FREQ).astype(np.uint16)


@dataclass
class StaticPrior:
    """Frozen per-group categorical prior. freqs: [G, 196560] uint16, all ≥ 1."""

    freqs: np.ndarray

    def __post_init__(self):
        f = np.asarray(self.freqs)
        if f.ndim != 2 or f.shape[1] != NUM_SYMBOLS or f.dtype != np.uint16 or (f == 0).any():
            raise ValueError("a static prior needs uint16 frequencies [G, 196560], all ≥ 1")
        self._probs: dict[int, np.ndarray] = {}
        self._models: dict[int, constriction.stream.model.Categorical] = {}

    @property
    def groups(self) -> int:
        return self.freqs.shape[0]

    def probabilities(self, g: int) -> np.ndarray:
        """float64 [196560]: exact IEEE division of the integer frequencies (cached; do not modify)."""
        if g not in self._probs:
            f = self.freqs[g].astype(np.float64)
            self._probs[g] = f / f.sum()
        return self._probs[g]

    def model(self, g: int):
        if g not in self._models:
            self._models[g] = constriction.stream.model.Categorical(self.probabilities(g), perfect=False)
        return self._models[g]

    def information_bits(self, indices: np.ndarray) -> float:
        """−Σ log2 p(index) of indices [k, h, w] under the prior (the ideal code length)."""
        return float(sum(-np.log2(self.probabilities(g)[indices[g]]).sum() for g in range(indices.shape[0])))

    def min_bits(self, k: int, n: int) -> float:
        """A lower bound on the code length of n symbols in each of the first k groups."""
        return float(sum(n * -np.log2(self.probabilities(g).max()) for g in range(k)))

    def encode(self, indices: np.ndarray) -> np.ndarray:
        """indices [k, h, w] (k ≤ G) → uint32 words."""
        if indices.ndim != 3 or indices.shape[0] > self.groups:
            raise ValueError(f"expected indices [k ≤ {self.groups}, h, w], got {indices.shape}")
        enc = constriction.stream.queue.RangeEncoder()
        for g in range(indices.shape[0]):
            enc.encode(np.ascontiguousarray(indices[g].reshape(-1), dtype=np.int32), self.model(g))
        return enc.get_compressed()

    def decode(self, words: np.ndarray, k: int, h: int, w: int) -> np.ndarray:
        """uint32 words → indices [k, h, w] int64. Raises DecodeError on data the model cannot decode."""
        dec = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(words, dtype=np.uint32))
        out = np.empty((k, h * w), np.int64)
        try:
            for g in range(k):
                out[g] = dec.decode(self.model(g), h * w)
        except (AssertionError, ValueError, RuntimeError) as e:
            raise DecodeError(f"payload does not decode ({e})") from None
        return out.reshape(k, h, w)

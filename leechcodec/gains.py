"""Entropy model of the gain symbols of gain–shape models: a frozen categorical per group and context, and its stream.

A gain–shape model (``ModelConfig.gain_levels`` = L > 0) gives every token a gain symbol s ∈ [0, L) beside its
Leech index (``model``). Gains of one position are strongly correlated across groups, so the symbol of group g is
coded under a categorical chosen by the symbol of an earlier group at the same position, its *context group*:
g−1 (none for group 0: context L), except in a model with residual stages (S subspaces, S < G), where group g ≥ S
looks at g−S — the previous stage of its own subspace, whose residual it refines; with token blocks S is a block's
subspaces (``context.earlier_stage``). On 150 training images with leech-rs3-s16g12's network at step 4,000 that
costs 0.19–0.28 bits per residual gain, against 1.15–1.39 with g−1 (measured by a script not kept; the numbers are
in the model card at commit b03b99e). The model:

    freqs [G, L+1, L] uint16, all ≥ 1;  p(s | g, c) = freqs[g, c, s] / Σ_s' freqs[g, c, s']  (exact float64)

Symbol order: group 0 in raster order, then group 1, and so on; every group is coded in one vectorized call, since
its contexts are known once the previous group is decoded. The gain stream is a separate range-coder stream; the
file puts it before the index stream (``bitstream``).
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from leechcodec.context import earlier_stage
from leechcodec.token_counts import ABSENT
from leechcodec.entropy import DecodeError, frequencies_from_counts


def context_group(g: int, subspaces: int | None, block_groups: int | None = None) -> int:
    """The group whose symbol at the same position is group g's context: g − S for a residual stage (g ≥ S, S the
    model's subspaces; per token block of ``block_groups`` tokens, S a block's), else g − 1; −1 (context L) for group
    0. subspaces None: no residual stages."""
    earlier = -1 if subspaces is None else earlier_stage(g, 1, subspaces, block_groups)
    return earlier if earlier >= 0 else g - 1


def gain_contexts(symbols: np.ndarray, levels: int, subspaces: int | None = None,
                  block_groups: int | None = None) -> np.ndarray:
    """Gain symbols [k, h, w] → the context of each symbol [k, h, w]: its context group's symbol, L for group 0."""
    ctx = np.empty_like(symbols)
    for g in range(symbols.shape[0]):
        c = context_group(g, subspaces, block_groups)
        ctx[g] = symbols[c] if c >= 0 else levels
    return ctx


def gain_frequencies(symbols: list[np.ndarray], levels: int, alpha: float = 0.5,
                     subspaces: int | None = None, block_groups: int | None = None) -> np.ndarray:
    """Gain symbols of training images (a list of [G, h, w] arrays) → uint16 frequencies [G, L+1, L]
    (Laplace-smoothed, all ≥ 1). The smoothed empirical conditional distribution minimizes −log2 p over them."""
    groups = symbols[0].shape[0]
    counts = np.zeros((groups, levels + 1, levels), np.float64)
    for s in symbols:
        ctx = gain_contexts(s, levels, subspaces, block_groups)
        for g in range(groups):
            np.add.at(counts[g], (ctx[g].ravel(), s[g].ravel()), 1)
    return frequencies_from_counts(counts, alpha)


@dataclass
class GainPrior:
    """Frozen conditional categorical over gain symbols. freqs: [G, L+1, L] uint16, all ≥ 1; subspaces: S of a model
    with residual stages (selects the context groups), None otherwise; block_groups: tokens per token block (None:
    one block)."""

    freqs: np.ndarray
    subspaces: int | None = None
    block_groups: int | None = None

    def __post_init__(self):
        f = np.asarray(self.freqs)
        if f.ndim != 3 or f.shape[1] != f.shape[2] + 1 or f.dtype != np.uint16 or (f == 0).any():
            raise ValueError("a gain prior needs uint16 frequencies [G, L+1, L], all ≥ 1")
        p = f.astype(np.float64)
        self._probs = p / p.sum(axis=-1, keepdims=True)  # exact IEEE division: the same on every machine
        self._family = constriction.stream.model.Categorical(perfect=False)

    @property
    def levels(self) -> int:
        return self.freqs.shape[2]

    def _check(self, symbols: np.ndarray) -> np.ndarray:
        """Validate gain symbols [k, h, w] (ABSENT for tokens an adaptive file leaves out) → their presence mask."""
        if symbols.ndim != 3 or symbols.shape[0] > self.freqs.shape[0]:
            raise ValueError(f"expected gain symbols [k ≤ {self.freqs.shape[0]}, h, w], got {symbols.shape}")
        present = symbols != ABSENT
        if present.any() and (symbols[present].min() < 0 or symbols[present].max() >= self.levels):
            raise ValueError(f"gain symbols must lie in [0, {self.levels})")
        return present

    def symbol_bits(self, symbols: np.ndarray) -> np.ndarray:
        """−log2 p(s | context) of each gain symbol [k, h, w] → float64 [k, h, w] (0 where absent)."""
        present = self._check(symbols)
        ctx = gain_contexts(symbols, self.levels, self.subspaces, self.block_groups)
        g = np.broadcast_to(np.arange(symbols.shape[0])[:, None, None], symbols.shape)
        bits = np.zeros(symbols.shape)
        bits[present] = -np.log2(self._probs[g[present], ctx[present], symbols[present]])
        return bits

    def information_bits(self, symbols: np.ndarray) -> float:
        """−Σ log2 p(s | context) of the present gain symbols [k, h, w] (the ideal code length)."""
        return float(self.symbol_bits(symbols).sum())

    def encode(self, symbols: np.ndarray) -> np.ndarray:
        """Gain symbols [k, h, w] → uint32 words. Absent symbols (a prefix-shaped mask: ``allocation``) are skipped;
        a present symbol's context group is then present too."""
        present = self._check(symbols)
        ctx = gain_contexts(symbols, self.levels, self.subspaces, self.block_groups)
        enc = constriction.stream.queue.RangeEncoder()
        for g in range(symbols.shape[0]):
            m = present[g]
            enc.encode(np.ascontiguousarray(symbols[g][m], dtype=np.int32), self._family, self._probs[g, ctx[g][m]])
        return enc.get_compressed()

    def decode(self, words: np.ndarray, k: int, h: int, w: int, present: np.ndarray | None = None) -> np.ndarray:
        """uint32 words → gain symbols [k, h, w] int64 (ABSENT where ``present`` [k, h, w] is False). Raises
        DecodeError on data the model cannot decode."""
        if k > self.freqs.shape[0]:
            raise DecodeError(f"{k} groups of gains, the model has {self.freqs.shape[0]}")
        dec = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(words, dtype=np.uint32))
        out = np.full((k, h * w), ABSENT, np.int64)
        first = np.full(h * w, self.levels, np.int64)
        mask = np.ones((k, h * w), bool) if present is None else present.reshape(k, h * w)
        try:
            for g in range(k):
                c = context_group(g, self.subspaces, self.block_groups)
                m = mask[g]
                out[g, m] = dec.decode(self._family, self._probs[g, (out[c] if c >= 0 else first)[m]])
        except (AssertionError, ValueError, RuntimeError) as e:
            raise DecodeError(f"gain stream does not decode ({e})") from None
        return out.reshape(k, h, w)

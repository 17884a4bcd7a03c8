"""Per-position token counts: the absent-token convention and the count map's stream (format 3).

A uniform file keeps the same k leading tokens at every latent position; an adaptive one keeps n(y, x) tokens at
position (y, x), 1 ≤ n ≤ k. Absent tokens are ``ABSENT`` (−1) in the index and gain arrays everywhere in the codec;
the decoder sees zero vectors for them.

Invariant (checked by ``counts_of``): presence is a prefix — token g is present at a position exactly when g < n
there. So a residual stage's context (an earlier token of the same position) is always present when it is, and the
count map alone says which tokens the payload holds. The map's stream is specified in docs/format.md.
"""

from __future__ import annotations

import constriction
import numpy as np

from leechcodec.entropy import DecodeError

ABSENT = -1
_FREQ_BITS = 16  # the count histogram's frequencies are uint16, two per payload word


def counts_of(indices: np.ndarray) -> np.ndarray:
    """indices [k, h, w] with ABSENT for missing tokens → counts [h, w]; ValueError unless presence is a prefix."""
    present = indices != ABSENT
    counts = present.sum(axis=0)
    if (present != present_mask(counts, indices.shape[0])).any():
        raise ValueError("absent tokens must come after the present ones at every position")
    return counts


def present_mask(counts: np.ndarray, k: int) -> np.ndarray:
    """counts [h, w] → bool [k, h, w]: token g present where g < count."""
    return np.arange(k)[:, None, None] < counts[None]


def keep_counts(tokens: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """All G tokens [G, h, w] (indices or gain symbols) and counts [h, w] → [k, h, w], k = counts.max(): each
    position's first n tokens, ABSENT after them."""
    k = int(counts.max())
    return np.where(present_mask(counts, k), tokens[:k], ABSENT)


def encode_counts(counts: np.ndarray, k: int) -> np.ndarray:
    """counts [h, w] in [1, k] → uint32 words: ⌈k/2⌉ words of uint16 frequencies of n = 1..k, then the range-coded
    map in raster order."""
    if k < 2:
        raise ValueError("a count map needs at least 2 token groups")  # one group: every count is 1, nothing to code
    if counts.min() < 1 or counts.max() > k:
        raise ValueError(f"token counts must lie in [1, {k}]")
    freqs = _frequencies(counts, k)
    head = np.pad(freqs, (0, len(freqs) % 2)).view(np.uint32)
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(np.ascontiguousarray(counts.ravel() - 1, dtype=np.int32), _model(freqs))
    return np.concatenate([head, enc.get_compressed()]).astype(np.uint32)


def count_bits(counts: np.ndarray, k: int) -> float:
    """The information content of the count map under the frequencies ``encode_counts`` writes (head excluded)."""
    freqs = _frequencies(counts, k).astype(np.float64)
    return float(-np.log2(freqs[counts.ravel() - 1] / freqs.sum()).sum())


def decode_counts(words: np.ndarray, k: int, h: int, w: int) -> np.ndarray:
    """uint32 words → counts [h, w] int64 in [1, k]. Raises DecodeError on data that cannot be a count map."""
    head = -(-k // 2)
    if k < 2:
        raise DecodeError("a count map needs at least 2 token groups")
    if len(words) < head:
        raise DecodeError("count map shorter than its frequency table")
    freqs = np.frombuffer(np.ascontiguousarray(words[:head], np.uint32).tobytes(), np.uint16)[:k]
    if (freqs == 0).any():
        raise DecodeError("count map frequency table holds a zero")
    dec = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(words[head:], dtype=np.uint32))
    try:
        return dec.decode(_model(freqs), h * w).astype(np.int64).reshape(h, w) + 1
    except (AssertionError, ValueError, RuntimeError) as e:
        raise DecodeError(f"count map does not decode ({e})") from None


def _frequencies(counts: np.ndarray, k: int) -> np.ndarray:
    """The map's histogram of n = 1..k as uint16 frequencies, all ≥ 1, summing below 2^16."""
    hist = np.bincount(counts.ravel() - 1, minlength=k).astype(np.float64)
    return np.maximum(1, np.round(hist / hist.sum() * ((1 << _FREQ_BITS) - 1 - k))).astype(np.uint16)


def _model(freqs: np.ndarray):
    p = freqs.astype(np.float64)
    return constriction.stream.model.Categorical(p / p.sum(), perfect=False)

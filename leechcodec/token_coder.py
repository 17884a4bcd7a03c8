"""The payload of a .lsq file: one coder for an image's tokens, whichever entropy models the file uses.

A ``TokenCoder`` holds the index prior that codes a file — the static prior (``entropy``, format 1) or the
conditional prior (``conditional``, formats 2 and 3) — and, for a gain–shape model, the gain prior (``gains``). Its
``encode`` turns indices (and gain symbols) into payload words; its ``decode`` turns them back. Per-position token
counts (``token_counts``) are written as a count map in front of the other streams. The payload's layout is
specified in docs/format.md:

    payload = [a] + count stream (a words; adaptive files only)
              + [c] + gain stream (c words; gain–shape models only)
              + index stream

Every probability the coder uses comes from integer tables by exact IEEE arithmetic, so a file decodes to the same
tokens on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leechcodec import token_counts
from leechcodec.conditional import ConditionalPrior
from leechcodec.entropy import DecodeError, StaticPrior
from leechcodec.gains import GainPrior
from leechcodec.token_counts import ABSENT


@dataclass(frozen=True)
class Payload:
    """What ``TokenCoder.encode`` wrote."""

    words: np.ndarray  # uint32 payload words
    information_bits: float  # −Σ log2 p of every coded symbol (indices, gain symbols, counts) under the coder's models
    counts_coded: bool  # whether the payload starts with a count map (per-position token counts, format 3)


@dataclass(frozen=True)
class TokenCoder:
    """The entropy models of one file. conditional None: the static prior codes the indices (format 1)."""

    static: StaticPrior
    conditional: ConditionalPrior | None = None
    gains: GainPrior | None = None

    def encode(self, indices: np.ndarray, gains: np.ndarray | None = None) -> Payload:
        """Indices [k, h, w] (ABSENT where a position keeps fewer tokens) and, exactly for a gain–shape model, gain
        symbols of the same shape → the payload."""
        if (gains is None) != (self.gains is None):
            raise ValueError("gain symbols are needed exactly when the model has gain levels")
        if gains is not None and gains.shape != indices.shape:
            raise ValueError(f"gain symbols {gains.shape} do not match the indices {indices.shape}")
        counts = token_counts.counts_of(indices)  # raises unless the absent tokens form a suffix at every position
        adaptive = bool((counts != indices.shape[0]).any())
        if adaptive and self.conditional is None:
            raise ValueError("per-position token counts (format 3) need the conditional prior")
        if gains is not None and ((gains == ABSENT) != (indices == ABSENT)).any():
            raise ValueError("gain symbols must be absent exactly where the indices are")
        if adaptive and counts.min() < 1:
            raise ValueError("every position needs at least one token")
        if self.conditional is not None:
            words, bits = self.conditional.encode(indices)
        else:
            words, bits = self.static.encode(indices), self.static.information_bits(indices)
        if gains is not None:
            words = prepend_stream(self.gains.encode(gains), words)
            bits += self.gains.information_bits(gains)
        if adaptive:
            k = indices.shape[0]
            words = prepend_stream(token_counts.encode_counts(counts, k), words)
            bits += token_counts.count_bits(counts, k)
        return Payload(words, bits, adaptive)

    def decode(self, words: np.ndarray, k: int, h: int, w: int, counts_coded: bool = False
               ) -> tuple[np.ndarray, np.ndarray | None]:
        """Payload words of k token groups over an h×w latent → (indices [k, h, w], gain symbols [k, h, w] or None).
        counts_coded: the payload starts with a count map (format 3). Raises DecodeError (a ValueError) on words
        that are not such a payload."""
        if counts_coded and self.conditional is None:
            raise DecodeError("per-position token counts need the conditional prior")
        present = count_words = gain_words = None
        if counts_coded:
            count_words, words = split_stream(words, "count")
        if self.gains is not None:
            gain_words, words = split_stream(words, "gain")
        # Under the static prior no symbol costs less than −log2(max p): a payload shorter than that cannot hold the
        # declared image. Checked before anything of the image's size is allocated.
        if self.conditional is None and 32 * len(words) + 64 < self.static.min_bits(k, h * w):
            raise DecodeError("corrupt file (payload too short for the declared image size)")
        if count_words is not None:
            present = token_counts.present_mask(token_counts.decode_counts(count_words, k, h, w), k)
        gains = None if gain_words is None else self.gains.decode(gain_words, k, h, w, present)
        if self.conditional is not None:
            return self.conditional.decode(words, k, h, w, present), gains
        return self.static.decode(words, k, h, w), gains


def prepend_stream(stream: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """[len(stream)] + stream + rest: how a payload carries a stream before the next one."""
    return np.concatenate([np.array([len(stream)], np.uint32), stream, rest]).astype(np.uint32)


def split_stream(words: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of ``prepend_stream``: (stream, rest), or DecodeError when the length word overruns."""
    if len(words) < 1 or int(words[0]) > len(words) - 1:
        raise DecodeError(f"corrupt file ({name} stream longer than the payload)")
    n = int(words[0])
    return words[1:1 + n], words[1 + n:]

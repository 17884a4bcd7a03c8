"""The .lsq file layer: an image's tokens ↔ file bytes through a model, and tokens → pixels.

``encode_indices`` writes the header (``bitstream``) around the payload of the model's ``TokenCoder``; ``parse``
validates a file, loads the model it names and decodes its tokens; ``decode_indices`` runs the synthesis transform.
The decoder is chosen by the model id in the file, and the weights hash in the file must match the loaded weights.
The format is specified in docs/format.md. Which tokens an image gets is the encoder's business (``encoder``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from leechcodec import bitstream
from leechcodec.pixels import tensor_to_rgb8
from leechcodec.token_counts import ABSENT
from leechcodec.zoo import LoadedModel, ModelError, former_context, load_model


@dataclass(frozen=True)
class Encoded:
    """What the encoder produced for one image."""

    data: bytes  # the complete .lsq file
    indices: np.ndarray  # [k, h, w] int64 (ABSENT where a position keeps fewer tokens)
    height: int
    width: int
    information_bits: float  # −Σ log2 p of every coded symbol under the models that coded the file
    gains: np.ndarray | None = None  # [k, h, w] int64 gain symbols of a gain–shape model

    @property
    def bpp(self) -> float:
        return 8 * len(self.data) / (self.height * self.width)

    @property
    def mean_tokens(self) -> float:
        """Tokens per latent position, averaged over the image."""
        return float((self.indices != ABSENT).sum() / (self.indices[0].size))

    @property
    def token_counts(self) -> str:
        """Either "uniform" (every position holds k tokens) or "adaptive" (per-position counts: absent tokens are −1)."""
        return "adaptive" if (self.indices == ABSENT).any() else "uniform"


def encode_indices(model: LoadedModel, indices: np.ndarray, height: int, width: int, *, prior: str = "auto",
                   gains: np.ndarray | None = None) -> Encoded:
    """Indices [k, h, w] (and gain symbols [k, h, w] for a gain–shape model) → the file. prior: "conditional"
    (formats 2 and 3), "static" (format 1), or "auto" (conditional when the model ships one)."""
    coder = model.token_coder(prior)
    payload = coder.encode(indices, gains)
    prior_hash = model.context_hash if coder.conditional is not None else None
    header = bitstream.Header(model.model_id, model.weights_hash, height, width, indices.shape[0], indices.size,
                              len(payload.words), prior_hash, payload.counts_coded)
    return Encoded(bitstream.pack(header, payload.words), indices, height, width, payload.information_bits, gains)


def parse(data: bytes, device: str = "cpu") -> tuple[bitstream.Header, LoadedModel, np.ndarray, np.ndarray | None]:
    """Validate a file, load the model it names and decode its tokens → (header, model, indices [k, h, w], gain
    symbols [k, h, w] or None for a direction-only model). Raises FormatError (a ValueError) on a bad file."""
    header, words = bitstream.unpack(data)
    try:
        model = load_model(header.model_id, device)
    except ValueError as e:
        raise bitstream.FormatError(f"file needs model {header.model_id!r}, which is not available ({e})") from None
    if header.weights_hash != model.weights_hash:
        raise bitstream.FormatError(f"file was made with other weights for model {header.model_id!r} "
                                    f"(hash {header.weights_hash.hex()}, have {model.weights_hash.hex()})")
    s = model.config.stride
    h, w = -(-header.height // s), -(-header.width // s)
    if header.groups > model.config.groups or header.symbols != header.groups * h * w:
        raise bitstream.FormatError("corrupt header (symbol count does not match the image size)")
    if header.prior_hash is not None and header.prior_hash != model.context_hash:
        try:  # written with a conditional prior the model shipped with before its current one
            model = former_context(header.model_id, header.prior_hash, device)
        except ModelError as e:
            have = model.context_hash.hex() if model.context is not None else "none"
            raise bitstream.FormatError(f"file needs conditional prior {header.prior_hash.hex()} of model "
                                        f"{header.model_id!r}, which is not available (have {have}; {e})") from None
    coder = model.token_coder("static" if header.prior_hash is None else "conditional")
    try:
        indices, gains = coder.decode(words, header.groups, h, w, header.token_counts)
    except ValueError as e:
        raise bitstream.FormatError(str(e)) from None
    return header, model, indices, gains


def decode_indices(model: LoadedModel, indices: np.ndarray, height: int, width: int,
                   gains: np.ndarray | None = None) -> np.ndarray:
    """Indices [k, h, w] (and gain symbols [k, h, w] for a gain–shape model) → uint8 [H, W, 3]."""
    gains_t = None if gains is None else torch.from_numpy(gains)[None]
    x_hat = model.net.decode(torch.from_numpy(indices)[None], gains_t)
    return tensor_to_rgb8(x_hat, height, width)

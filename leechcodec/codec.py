"""File-level API: images ↔ .lsq bytes through a loaded model (the encodec-style two layers).

``encode_image``/``decode_indices`` go pixels ↔ indices with a model; ``compress``/``decompress`` go images ↔ bytes
and are what users call. The decoder is chosen by the model id in the file, and the weights hash in the file must
match the loaded weights.

Two entropy models: the static prior (``entropy``, format version 1) and the conditional prior (``conditional``,
format version 2), used by default when the model ships one. Files of either version decode. A gain–shape model's
gain symbols (``gains``) travel in their own stream at the head of the payload, under either version.

The encoder can search for better tokens than the analysis transform's (``refine``, ``encode_image(refine=N)``);
that changes which tokens a file holds, never how they are coded. It can also spend the quality level's tokens
unevenly over the image (``allocation``, ``encode_image(allocation="adaptive")``, format version 3): absent tokens
are −1 in the index and gain arrays. The default, allocation "auto", is adaptive wherever the model and prior allow
it (``resolve_allocation``) and uniform elsewhere. Instead of a quality level the encoder can be given a bpp target
(``encode_at_rate``, rate control): it writes the largest file within it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from leechcodec import allocation as alloc
from leechcodec import bitstream
from leechcodec.imageio import read_image
from leechcodec.refine import refine_tokens
from leechcodec.zoo import LoadedModel, ModelError, former_context, load_model


@dataclass(frozen=True)
class Encoded:
    """What the encoder produced for one image."""

    data: bytes  # the complete .lsq file
    indices: np.ndarray  # [k, h, w] int64
    height: int
    width: int
    information_bits: float  # −Σ log2 p(index) (and of the gain symbols) under the priors that coded the file
    gains: np.ndarray | None = None  # [k, h, w] int64 gain symbols of a gain–shape model

    @property
    def bpp(self) -> float:
        return 8 * len(self.data) / (self.height * self.width)

    @property
    def mean_tokens(self) -> float:
        """Tokens per latent position, averaged over the image."""
        return float((self.indices != alloc.ABSENT).sum() / (self.indices[0].size))

    @property
    def token_counts(self) -> str:
        """Either "uniform" (every position holds k tokens) or "adaptive" (per-position counts: absent tokens are −1)."""
        return "adaptive" if (self.indices == alloc.ABSENT).any() else "uniform"


def _to_tensor(rgb: np.ndarray, stride: int, device: str | torch.device) -> torch.Tensor:
    """uint8 [H, W, 3] → float [1, 3, H', W'] in [0, 1], padded (edge replication) to multiples of the stride."""
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)[None].float().div(255)
    h, w = rgb.shape[:2]
    ph, pw = -h % stride, -w % stride
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x.to(device)


def _to_rgb8(x_hat: torch.Tensor, height: int, width: int) -> np.ndarray:
    """float [1, 3, H', W'] in [0, 1] → uint8 [H, W, 3] (cropped, rounded)."""
    x = x_hat[0, :, :height, :width].clamp(0, 1).mul(255).round().byte()
    return x.permute(1, 2, 0).cpu().numpy()


PRIORS = ("auto", "static", "conditional")
ALLOCATIONS = ("auto", "uniform", "adaptive")


def adaptive_supported(model: LoadedModel, prior: str = "auto") -> bool:
    """Whether per-position token counts (format 3) can be written: a gain–shape model with its conditional prior."""
    return model.gains is not None and model.context is not None and prior != "static"


def resolve_allocation(model: LoadedModel, prior: str = "auto", allocation: str = "auto") -> str:
    """Allocation "auto" → "adaptive" where ``adaptive_supported``, else "uniform"; the others unchanged (validated). At
    quality 1 (one token per position) an adaptive file holds the uniform tokens and is written as the uniform file."""
    if allocation not in ALLOCATIONS:
        raise ValueError(f"unknown allocation {allocation!r}: valid allocations are {', '.join(ALLOCATIONS)}")
    if allocation == "auto":
        return "adaptive" if adaptive_supported(model, prior) else "uniform"
    return allocation


def _check_adaptive(model: LoadedModel, prior: str) -> None:
    if not adaptive_supported(model, prior):
        raise ValueError(f"adaptive allocation needs a gain–shape model with its conditional prior "
                         f"({model.model_id} {'has no gain levels' if model.gains is None else 'and --prior'})")


def encode_indices(model: LoadedModel, indices: np.ndarray, height: int, width: int, prior: str = "auto",
                   gains: np.ndarray | None = None) -> Encoded:
    """Indices [k, h, w] (and gain symbols [k, h, w] for a gain–shape model) → the file. prior: "conditional"
    (format 2), "static" (format 1), or "auto" (conditional when the model ships one)."""
    if prior not in PRIORS:
        raise ValueError(f"unknown prior {prior!r}: valid priors are {', '.join(PRIORS)}")
    if prior == "conditional" and model.context is None:
        raise ValueError(f"model {model.model_id} has no conditional prior")
    if (gains is None) != (model.gains is None):
        raise ValueError(f"model {model.model_id} needs gain symbols exactly when it has gain levels")
    if gains is not None and gains.shape != indices.shape:
        raise ValueError(f"gain symbols {gains.shape} do not match the indices {indices.shape}")
    counts = alloc.counts_of(indices)  # raises unless the absent tokens (−1) form a suffix at every position
    adaptive = bool((counts != indices.shape[0]).any())
    if adaptive and (prior == "static" or model.context is None):
        raise ValueError("per-position token counts (format 3) need the conditional prior")
    if gains is not None and ((gains == alloc.ABSENT) != (indices == alloc.ABSENT)).any():
        raise ValueError("gain symbols must be absent exactly where the indices are")
    if adaptive and counts.min() < 1:
        raise ValueError("every position needs at least one token")
    if prior != "static" and model.context is not None:
        words, bits = model.context.encode(indices)
        prior_hash = model.context_hash
    else:
        words, bits, prior_hash = model.prior.encode(indices), model.prior.information_bits(indices), None
    if gains is not None:
        # payload = [c] + c words of the gain stream + the index stream (the gain stream's length comes first)
        words = _prepend_stream(model.gains.encode(gains), words)
        bits += model.gains.information_bits(gains)
    k = indices.shape[0]
    if adaptive:
        # payload = [a] + a words of the count stream + the version-2 payload
        words = _prepend_stream(alloc.encode_counts(counts, k), words)
        bits += alloc.count_bits(counts, k)
    header = bitstream.Header(model.model_id, model.weights_hash, height, width, k, indices.size, len(words),
                              prior_hash, adaptive)
    return Encoded(bitstream.pack(header, words), indices, height, width, bits, gains)


def _token_costs(model: LoadedModel, indices: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """All G tokens' indices and gain symbols [G, h, w] → bits of each prefix [G+1, h, w] under the static priors
    (index prior and gain prior): the rate term of the allocation."""
    bits = np.stack([-np.log2(model.prior.probabilities(g)[indices[g]]) for g in range(len(indices))])
    bits += model.gains.symbol_bits(gains)
    return np.concatenate([np.zeros((1, *bits.shape[1:])), np.cumsum(bits, axis=0)])


def encode_image(model: LoadedModel, rgb: np.ndarray, quality: int | None = None, prior: str = "auto",
                 refine: int = 0, allocation: str = "auto") -> Encoded:
    """uint8 [H, W, 3] → the file. refine: steps of encoder-side latent refinement (``refine``; 0 = the plain
    encoder); it changes only which tokens are chosen, never the format. allocation: "uniform" (the quality
    level's k tokens at every position), "adaptive" (k per position on average, more where they remove more
    latent error: ``allocation``; format 3, gain–shape models with a conditional prior) or "auto" (adaptive where
    the model and prior allow it: ``resolve_allocation``)."""
    if refine < 0:
        raise ValueError(f"refine must be 0 or more steps, not {refine}")
    allocation = resolve_allocation(model, prior, allocation)
    groups = model.groups_for(quality)
    device = next(model.net.parameters()).device
    x = _to_tensor(rgb, model.config.stride, device)
    if allocation == "adaptive":
        _check_adaptive(model, prior)
        indices, gains, errors = model.net.encode_all_with_errors(x)
        costs = _token_costs(model, indices[0].numpy(), gains[0].numpy())
        counts = alloc.allocate(errors.numpy(), costs, costs[groups].sum())
        if refine:  # the counts stay those of the plain tokens; refinement picks better tokens under them
            r_indices, r_gains = _refined_tokens(model, x, refine, counts)
            return encode_indices(model, r_indices, *rgb.shape[:2], prior, r_gains)
        return encode_indices(model, alloc.keep_counts(indices[0].numpy(), counts), *rgb.shape[:2], prior,
                              alloc.keep_counts(gains[0].numpy(), counts))
    if refine:
        indices, gains = refine_tokens(model.net, x, groups, refine)[:2]
    else:
        indices, gains = model.net.encode(x, groups)
    return encode_indices(model, indices[0].numpy(), *rgb.shape[:2], prior,
                          None if gains is None else gains[0].numpy())


def encode_at_rate(model: LoadedModel, rgb: np.ndarray, bpp: float, prior: str = "auto",
                   allocation: str = "auto", refine: int = 0) -> Encoded:
    """Rate control: the largest file of at most ``bpp`` bits per pixel, the whole file counted (header included).

    Uniform allocation takes the largest token count k, any of 1..G (not only the quality levels'), whose file fits
    (binary search: file sizes grow with k, since each file's tokens are a prefix of the next one's). Adaptive
    allocation makes the mean token count continuous between 1 and G: it searches the allocation's static-cost
    budget for the largest file that fits (``_largest_fitting``). ValueError when one token per position is over the
    target.

    refine: steps of encoder-side refinement (``refine``) of the plain search's tokens, under its token counts.
    Refined tokens cost a few percent more bits; where their file is over the target, adaptive allocation drops the
    refined tokens the allocation values least (a lower budget, counts never above the refined file's) until it fits.
    Of the refined and plain files that fit, the one that decodes closer to the image is returned, so refinement
    never makes the result worse."""
    if isinstance(bpp, bool) or not isinstance(bpp, int | float) or not math.isfinite(bpp) or bpp <= 0:
        raise ValueError(f"the bpp target must be a positive number, not {bpp!r}")
    if refine < 0:
        raise ValueError(f"refine must be 0 or more steps, not {refine}")
    allocation = resolve_allocation(model, prior, allocation)
    height, width = rgb.shape[:2]
    max_bytes = math.floor(bpp * height * width / 8 + 1e-6)  # a target of 8·size/pixels admits that size
    x = _to_tensor(rgb, model.config.stride, next(model.net.parameters()).device)
    g = model.config.groups
    if allocation == "adaptive":
        _check_adaptive(model, prior)
        indices, gains, errors = model.net.encode_all_with_errors(x)
    else:
        indices, gains = model.net.encode(x, g)
    indices = indices[0].numpy()
    gains = None if gains is None else gains[0].numpy()

    def file_of(tokens: np.ndarray, symbols: np.ndarray | None, counts: np.ndarray) -> Encoded:
        return encode_indices(model, alloc.keep_counts(tokens, counts), height, width, prior,
                              None if symbols is None else alloc.keep_counts(symbols, counts))

    best = file_of(indices, gains, np.ones(indices.shape[1:], np.int64))  # the smallest file either allocation writes
    if len(best.data) > max_bytes:
        raise ValueError(f"{bpp} bpp is below the smallest file of model {model.model_id} for this image "
                         f"({best.bpp:.4f} bpp with one token per position)")
    if allocation == "uniform":
        lo, hi = 2, g  # the largest fitting k lies in [lo - 1, hi]
        while lo <= hi:
            mid = (lo + hi) // 2
            enc = encode_indices(model, indices[:mid], height, width, prior, None if gains is None else gains[:mid])
            lo, hi, best = (mid + 1, hi, enc) if len(enc.data) <= max_bytes else (lo, mid - 1, best)
        if not refine:
            return best
        r_indices, r_gains = _refined_tokens(model, x, refine, np.full(indices.shape[1:], best.indices.shape[0]))
        refined = encode_indices(model, r_indices, height, width, prior, r_gains)
        return best if len(refined.data) > max_bytes else _closer(model, rgb, refined, best)

    costs, errors = _token_costs(model, indices, gains), errors.numpy()
    best, budget = _largest_fitting(lambda b: file_of(indices, gains, alloc.allocate(errors, costs, b)), max_bytes,
                                    costs[g].sum(), best, lo=(costs[1].sum(), len(best.data)))
    if not refine:
        return best
    counts = alloc.counts_of(best.indices)
    r_indices, r_gains = _refined_tokens(model, x, refine, counts)
    refined = encode_indices(model, r_indices, height, width, prior, r_gains)
    if len(refined.data) > max_bytes:
        refined = _largest_fitting(
            lambda b: file_of(r_indices, r_gains, np.minimum(alloc.allocate(errors, costs, b), counts)), max_bytes,
            budget, None, hi=(budget, len(refined.data)))[0]
    return best if refined is None else _closer(model, rgb, refined, best)


def _largest_fitting(file_at: Callable[[float], Encoded], max_bytes: int, b_max: float, best: Encoded | None,
                     lo: tuple[float, int] | None = None, hi: tuple[float, int] | None = None
                     ) -> tuple[Encoded | None, float]:
    """The largest file within ``max_bytes`` that ``file_at(budget)`` writes for a budget ≤ b_max (file sizes grow
    with the budget), and its budget. best: the largest fitting file known (None: none); lo, hi: (budget, size) of
    a file known to fit / to be over (at least one of them). Secant steps through the origin until the target is
    bracketed, then false position; at most ``_RATE_STEPS`` files, stopping within ``_RATE_TOLERANCE`` of the
    target."""
    aim = max_bytes * (1 - _RATE_TOLERANCE / 2)  # interpolate towards a size inside the tolerance
    best_budget = lo[0] if lo is not None else -math.inf
    budget = (lo or hi)[0] * aim / (lo or hi)[1]
    for _ in range(_RATE_STEPS):
        budget = min(budget, b_max)
        enc = file_at(budget)
        size = len(enc.data)
        if size <= max_bytes:
            if best is None or size > len(best.data):
                best, best_budget = enc, budget
            if budget >= b_max:
                break  # the largest file fits
            lo = (budget, size)
        else:
            hi = (budget, size)
        if ((best is not None and len(best.data) >= (1 - _RATE_TOLERANCE) * max_bytes)
                or (lo is not None and hi is not None and hi[0] - lo[0] < 1)):
            break
        budget = (budget * aim / size if lo is None or hi is None  # secant through the origin until bracketed
                  else lo[0] + (hi[0] - lo[0]) * (aim - lo[1]) / (hi[1] - lo[1]))  # then false position
    return best, best_budget


def _refined_tokens(model: LoadedModel, x: torch.Tensor, steps: int, counts: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """``steps`` of refinement under the per-position token counts [h, w] → indices and gain symbols [k, h, w]
    (k = counts.max(); −1 where absent)."""
    k = int(counts.max())
    present = None if (counts == k).all() else torch.from_numpy(alloc.present_mask(counts, k))[None]
    r = refine_tokens(model.net, x, k, steps, present=present)
    return r.indices[0].numpy(), None if r.gains is None else r.gains[0].numpy()


def _closer(model: LoadedModel, rgb: np.ndarray, a: Encoded, b: Encoded) -> Encoded:
    """Whichever of two files decodes closer to the image (squared error of the 8-bit output); b on a tie."""
    def error(enc: Encoded) -> float:
        decoded = decode_indices(model, enc.indices, enc.height, enc.width, enc.gains)
        return float(np.sum((decoded.astype(np.float64) - rgb) ** 2))
    return a if error(a) < error(b) else b


_RATE_STEPS = 6  # files tried by one budget search of encode_at_rate at most
_RATE_TOLERANCE = 0.005  # … which stops once a file fits within this fraction of the target


def decode_indices(model: LoadedModel, indices: np.ndarray, height: int, width: int,
                   gains: np.ndarray | None = None) -> np.ndarray:
    """Indices [k, h, w] (and gain symbols [k, h, w] for a gain–shape model) → uint8 [H, W, 3]."""
    gains_t = None if gains is None else torch.from_numpy(gains)[None]
    x_hat = model.net.decode(torch.from_numpy(indices)[None], gains_t)
    return _to_rgb8(x_hat, height, width)


def _prepend_stream(stream: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """[len(stream)] + stream + rest: how a payload carries a stream before the next one."""
    return np.concatenate([np.array([len(stream)], np.uint32), stream, rest]).astype(np.uint32)


def _split_stream(words: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of ``_prepend_stream``: (stream, rest), or FormatError when the length word overruns."""
    if len(words) < 1 or int(words[0]) > len(words) - 1:
        raise bitstream.FormatError(f"corrupt file ({name} stream longer than the payload)")
    n = int(words[0])
    return words[1:1 + n], words[1 + n:]


def parse(data: bytes, device: str = "cpu") -> tuple[bitstream.Header, LoadedModel, np.ndarray, np.ndarray | None]:
    """Validate a file, load the model it names and decode its tokens → (header, model, indices [k, h, w], gain
    symbols [k, h, w] or None for a direction-only model)."""
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
    count_words = gain_words = present = None
    if header.token_counts:
        count_words, words = _split_stream(words, "count")
    if model.gains is not None:
        gain_words, words = _split_stream(words, "gain")
    if header.prior_hash is not None:
        if header.prior_hash != model.context_hash:
            try:  # written with a conditional prior the model shipped with before its current one
                model = former_context(header.model_id, header.prior_hash, device)
            except ModelError as e:
                have = model.context_hash.hex() if model.context is not None else "none"
                raise bitstream.FormatError(f"file needs conditional prior {header.prior_hash.hex()} of model "
                                            f"{header.model_id!r}, which is not available (have {have}; {e})") from None
    # Under the static prior no symbol costs less than −log2(max p): a payload shorter than that cannot hold the
    # declared image. Checked before anything of the image's size is allocated.
    elif 32 * len(words) + 64 < model.prior.min_bits(header.groups, h * w):
        raise bitstream.FormatError("corrupt file (payload too short for the declared image size)")
    if count_words is not None:
        present = alloc.present_mask(alloc.decode_counts(count_words, header.groups, h, w), header.groups)
    gains = None if gain_words is None else model.gains.decode(gain_words, header.groups, h, w, present)
    if header.prior_hash is not None:
        return header, model, model.context.decode(words, header.groups, h, w, present), gains
    return header, model, model.prior.decode(words, header.groups, h, w), gains


def compress(image, quality: int | None = None, model: str | None = None, device: str = "cpu",
             prior: str = "auto", refine: int = 0, allocation: str = "auto", bpp: float | None = None) -> bytes:
    """An image (path, bytes, PIL image or uint8 [H, W, 3]) → .lsq bytes. quality: 1..N, lowest rate first;
    prior: "auto" (the conditional prior when the model has one), "conditional" or "static"; refine: steps of
    encoder-side latent refinement (slower encoding, the same token count and format, lower distortion, a few
    percent more bits; 0 = off); allocation: "auto" (adaptive where the model allows it), "uniform" or "adaptive"
    (the same mean token count spent where it removes the most latent error; format 3); bpp: instead of a quality
    level, the largest file of at most this many bits per pixel (``encode_at_rate``; with refinement too)."""
    loaded, rgb = load_model(model, device), read_image(image)
    if bpp is None:
        return encode_image(loaded, rgb, quality, prior, refine, allocation).data
    if quality is not None:
        raise ValueError("a bpp target replaces the quality level")
    return encode_at_rate(loaded, rgb, bpp, prior, allocation, refine).data


def decompress(data: bytes, device: str = "cpu") -> Image.Image:
    """.lsq bytes → the decoded RGB image (the model named in the file)."""
    header, model, indices, gains = parse(data, device)
    return Image.fromarray(decode_indices(model, indices, header.height, header.width, gains), "RGB")

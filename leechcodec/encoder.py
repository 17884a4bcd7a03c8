"""The encoder's policy: which tokens an image gets, and how many, before the file layer (``container``) writes them.

- Quality levels: level q keeps the model's ``groups_for_quality[q-1]`` leading tokens per latent position.
- Allocation (``allocation``): "uniform" keeps that many at every position; "adaptive" (format 3) spends the same
  static-prior cost where the tokens remove the most latent error; "auto" is adaptive wherever the model and prior
  allow it (``resolve_allocation``).
- Rate control (``encode_at_rate``): instead of a quality level, the largest file within a bpp target.
- Refinement (``refine``): steps of latent search for better tokens under the same counts.

None of this changes the format: every choice here is a choice of tokens, coded the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from leechcodec import allocation as alloc
from leechcodec import token_counts
from leechcodec.container import Encoded, decode_indices, encode_indices
from leechcodec.pixels import image_to_tensor
from leechcodec.refine import refine_tokens
from leechcodec.zoo import LoadedModel


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


def _token_costs(model: LoadedModel, indices: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """All G tokens' indices and gain symbols [G, h, w] → bits of each prefix [G+1, h, w] under the static priors
    (index prior and gain prior): the rate term of the allocation."""
    bits = np.stack([-np.log2(model.prior.probabilities(g)[indices[g]]) for g in range(len(indices))])
    bits += model.gains.symbol_bits(gains)
    return np.concatenate([np.zeros((1, *bits.shape[1:])), np.cumsum(bits, axis=0)])


def encode_image(model: LoadedModel, rgb: np.ndarray, *, quality: int | None = None, prior: str = "auto",
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
    x = image_to_tensor(rgb, model.config.stride, device)
    if allocation == "adaptive":
        _check_adaptive(model, prior)
        indices, gains, errors = model.net.encode_all_with_errors(x)
        costs = _token_costs(model, indices[0].numpy(), gains[0].numpy())
        counts = alloc.allocate(errors.numpy(), costs, costs[groups].sum())
        if refine:  # the counts stay those of the plain tokens; refinement picks better tokens under them
            r_indices, r_gains = refined_tokens(model, x, refine, counts)
            return encode_indices(model, r_indices, *rgb.shape[:2], prior=prior, gains=r_gains)
        return encode_indices(model, token_counts.keep_counts(indices[0].numpy(), counts), *rgb.shape[:2],
                              prior=prior, gains=token_counts.keep_counts(gains[0].numpy(), counts))
    if refine:
        indices, gains = refine_tokens(model.net, x, groups, refine)[:2]
    else:
        indices, gains = model.net.encode(x, groups)
    return encode_indices(model, indices[0].numpy(), *rgb.shape[:2], prior=prior,
                          gains=None if gains is None else gains[0].numpy())


def encode_at_rate(model: LoadedModel, rgb: np.ndarray, bpp: float, *, prior: str = "auto",
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
    x = image_to_tensor(rgb, model.config.stride, next(model.net.parameters()).device)
    g = model.config.groups
    if allocation == "adaptive":
        _check_adaptive(model, prior)
        indices, gains, errors = model.net.encode_all_with_errors(x)
    else:
        indices, gains = model.net.encode(x, g)
    indices = indices[0].numpy()
    gains = None if gains is None else gains[0].numpy()

    def file_of(tokens: np.ndarray, symbols: np.ndarray | None, counts: np.ndarray) -> Encoded:
        return encode_indices(model, token_counts.keep_counts(tokens, counts), height, width, prior=prior,
                              gains=None if symbols is None else token_counts.keep_counts(symbols, counts))

    best = file_of(indices, gains, np.ones(indices.shape[1:], np.int64))  # the smallest file either allocation writes
    if len(best.data) > max_bytes:
        raise ValueError(f"{bpp} bpp is below the smallest file of model {model.model_id} for this image "
                         f"({best.bpp:.4f} bpp with one token per position)")
    if allocation == "uniform":
        lo, hi = 2, g  # the largest fitting k lies in [lo - 1, hi]
        while lo <= hi:
            mid = (lo + hi) // 2
            enc = encode_indices(model, indices[:mid], height, width, prior=prior,
                                 gains=None if gains is None else gains[:mid])
            lo, hi, best = (mid + 1, hi, enc) if len(enc.data) <= max_bytes else (lo, mid - 1, best)
        if not refine:
            return best
        r_indices, r_gains = refined_tokens(model, x, refine, np.full(indices.shape[1:], best.indices.shape[0]))
        refined = encode_indices(model, r_indices, height, width, prior=prior, gains=r_gains)
        return best if len(refined.data) > max_bytes else _closer(model, rgb, refined, best)

    costs, errors = _token_costs(model, indices, gains), errors.numpy()
    best, budget = _largest_fitting(lambda b: file_of(indices, gains, alloc.allocate(errors, costs, b)), max_bytes,
                                    costs[g].sum(), best, lo=(costs[1].sum(), len(best.data)))
    if not refine:
        return best
    counts = token_counts.counts_of(best.indices)
    r_indices, r_gains = refined_tokens(model, x, refine, counts)
    refined = encode_indices(model, r_indices, height, width, prior=prior, gains=r_gains)
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


def refined_tokens(model: LoadedModel, x: torch.Tensor, steps: int, counts: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """``steps`` of refinement under the per-position token counts [h, w] → indices and gain symbols [k, h, w]
    (k = counts.max(); −1 where absent)."""
    k = int(counts.max())
    present = None if (counts == k).all() else torch.from_numpy(token_counts.present_mask(counts, k))[None]
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

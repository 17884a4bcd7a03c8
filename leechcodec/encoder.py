"""The encoder's policy: which tokens an image gets, and how many, before the file layer (``container``) writes them.

- Quality levels: level q keeps the model's ``groups_for_quality[q-1]`` leading tokens per latent position.
- Allocation (``allocation``): "uniform" keeps that many at every position; "adaptive" (format 3) spends the same
  static-prior cost where the tokens remove the most latent error; "auto" is adaptive wherever the model and prior
  allow it (``resolve_allocation``).
- Rate control (``encode_at_rate``): instead of a quality level, the largest file within a bpp target.
- Effort (``effort``): levels of a rate-aware search for better tokens (refinement, then per-position counts);
  refinement alone (``refine``) stays available as a number of steps.

None of this changes the format: every choice here is a choice of tokens, coded the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from leechcodec import allocation as alloc
from leechcodec import effort as effort_levels
from leechcodec import token_counts
from leechcodec.container import Encoded, decode_indices, encode_indices
from leechcodec.pixels import image_to_tensor
from leechcodec.refine import refine_under_counts
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


def encode_image(model: LoadedModel, rgb: np.ndarray, *, quality: int | None = None, prior: str = "auto",
                 refine: int = 0, allocation: str = "auto", effort: int = 0) -> Encoded:
    """uint8 [H, W, 3] → the file. allocation: "uniform" (the quality level's k tokens at every position),
    "adaptive" (k per position on average, more where they remove more latent error: ``allocation``; format 3,
    gain–shape models with a conditional prior) or "auto" (adaptive where the model and prior allow it:
    ``resolve_allocation``). effort: 0 (the plain encoder) to ``effort.MAX_EFFORT``, a longer rate-aware search for
    better tokens (``effort``). refine: instead of an effort level, steps of plain latent refinement (``refine``).
    Neither changes the format, only which tokens are chosen."""
    _check_search(refine, effort)
    allocation = resolve_allocation(model, prior, allocation)
    groups = model.groups_for(quality)
    device = next(model.net.parameters()).device
    x = image_to_tensor(rgb, model.config.stride, device)
    if allocation == "adaptive":
        _check_adaptive(model, prior)
        indices, gains, errors = model.net.encode_all_with_errors(x, model.allocation_weights)
        costs = alloc.prefix_costs(model.prior, model.gains, indices[0].numpy(), gains[0].numpy())
        budget = costs[groups].sum()
        counts = alloc.allocate(errors.numpy(), costs, budget)
        if refine or effort:  # starting from the plain tokens' counts
            bracket = tuple(alloc.allocate(errors.numpy(), costs, budget * f) for f in _BRACKET)
            r_indices, r_gains = _improved_tokens(model, x, counts, bracket, prior, refine, effort, adaptive=True)
            return encode_indices(model, r_indices, *rgb.shape[:2], prior=prior, gains=r_gains)
        return encode_indices(model, token_counts.keep_counts(indices[0].numpy(), counts), *rgb.shape[:2],
                              prior=prior, gains=token_counts.keep_counts(gains[0].numpy(), counts))
    if refine or effort:
        counts, bracket = _uniform_counts(model, x, groups)
        r_indices, r_gains = _improved_tokens(model, x, counts, bracket, prior, refine, effort, adaptive=False)
        return encode_indices(model, r_indices, *rgb.shape[:2], prior=prior, gains=r_gains)
    indices, gains = model.net.encode(x, groups)
    return encode_indices(model, indices[0].numpy(), *rgb.shape[:2], prior=prior,
                          gains=None if gains is None else gains[0].numpy())


def encode_at_rate(model: LoadedModel, rgb: np.ndarray, bpp: float, *, prior: str = "auto",
                   allocation: str = "auto", refine: int = 0, effort: int = 0) -> Encoded:
    """Rate control: the largest file of at most ``bpp`` bits per pixel, the whole file counted (header included).

    Uniform allocation takes the largest token count k, any of 1..G (not only the quality levels'), whose file fits
    (binary search: file sizes grow with k, since each file's tokens are a prefix of the next one's). Adaptive
    allocation makes the mean token count continuous between 1 and G: it searches the allocation's static-cost
    budget for the largest file that fits (``_largest_fitting``). ValueError when one token per position is over the
    target.

    effort (``effort``) or refine (steps of refinement, ``refine``): a search for better tokens, starting from the
    plain search's file. Where the improved file is over the target, adaptive allocation drops the improved tokens
    the allocation values least (a lower budget, counts never above the improved file's) until it fits. Of the
    improved and plain files that fit, the one that decodes closer to the image is returned, so the search never
    makes the result worse."""
    if isinstance(bpp, bool) or not isinstance(bpp, int | float) or not math.isfinite(bpp) or bpp <= 0:
        raise ValueError(f"the bpp target must be a positive number, not {bpp!r}")
    _check_search(refine, effort)
    allocation = resolve_allocation(model, prior, allocation)
    height, width = rgb.shape[:2]
    max_bytes = math.floor(bpp * height * width / 8 + 1e-6)  # a target of 8·size/pixels admits that size
    x = image_to_tensor(rgb, model.config.stride, next(model.net.parameters()).device)
    g = model.config.groups
    if allocation == "adaptive":
        _check_adaptive(model, prior)
        indices, gains, errors = model.net.encode_all_with_errors(x, model.allocation_weights)
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
        if not (refine or effort):
            return best
        counts, bracket = _uniform_counts(model, x, best.indices.shape[0])
        r_indices, r_gains = _improved_tokens(model, x, counts, bracket, prior, refine, effort, adaptive=False)
        refined = encode_indices(model, r_indices, height, width, prior=prior, gains=r_gains)
        return best if len(refined.data) > max_bytes else _closer(model, rgb, refined, best)

    costs, errors = alloc.prefix_costs(model.prior, model.gains, indices, gains), errors.numpy()
    best, budget = _largest_fitting(lambda b: file_of(indices, gains, alloc.allocate(errors, costs, b)), max_bytes,
                                    costs[g].sum(), best, lo=(costs[1].sum(), len(best.data)))
    if not (refine or effort):
        return best
    bracket = tuple(alloc.allocate(errors, costs, budget * f) for f in _BRACKET)
    r_indices, r_gains = _improved_tokens(model, x, token_counts.counts_of(best.indices), bracket, prior, refine,
                                          effort, adaptive=True)
    refined = encode_indices(model, r_indices, height, width, prior=prior, gains=r_gains)
    if len(refined.data) > max_bytes:
        counts = token_counts.counts_of(r_indices)
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


def _check_search(refine: int, effort: int) -> None:
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise ValueError(f"refine must be 0 or more steps, not {refine!r}")
    effort_levels.check_effort(effort)
    if refine and effort:
        raise ValueError("refine and effort are alternatives: give one of them")


def _uniform_counts(model: LoadedModel, x: torch.Tensor, k: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """k tokens at every latent position of x, and the bracket of k − 1 and k + 1 (within 1..G)."""
    shape = (x.shape[2] // model.config.stride, x.shape[3] // model.config.stride)
    return np.full(shape, k), (np.full(shape, max(k - 1, 1)), np.full(shape, min(k + 1, model.config.groups)))


def _improved_tokens(model: LoadedModel, x: torch.Tensor, counts: np.ndarray,
                     bracket: tuple[np.ndarray, np.ndarray], prior: str, refine: int, effort: int, adaptive: bool
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """The tokens of an effort level's search (``effort``) or of ``refine`` steps of refinement, from the plain
    tokens under counts [h, w]; bracket: the counts of a smaller and a larger plain file (λ of the search)."""
    if effort:
        return effort_levels.search(model, x, counts, bracket, effort, token_price(model, prior), adaptive)[:2]
    return refined_tokens(model, x, refine, counts)


def refined_tokens(model: LoadedModel, x: torch.Tensor, steps: int, counts: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """``steps`` of refinement under the per-position token counts [h, w] → indices and gain symbols [k, h, w]
    (k = counts.max(); −1 where absent)."""
    return refine_under_counts(model.net, x, counts, steps).tokens()


def token_price(model: LoadedModel, prior: str = "auto") -> effort_levels.Price:
    """The effort search's price of tokens: their information content in bits under the entropy models that will write
    the file (what the range coder spends, to within a few bytes)."""
    coder = model.token_coder(prior)
    return lambda indices, gains: coder.encode(indices, gains).information_bits


def _closer(model: LoadedModel, rgb: np.ndarray, a: Encoded, b: Encoded) -> Encoded:
    """Whichever of two files decodes closer to the image (squared error of the 8-bit output); b on a tie."""
    def error(enc: Encoded) -> float:
        decoded = decode_indices(model, enc.indices, enc.height, enc.width, enc.gains)
        return float(np.sum((decoded.astype(np.float64) - rgb) ** 2))
    return a if error(a) < error(b) else b


_BRACKET = (0.8, 1.25)  # an effort search's λ: the slope between plain files of these multiples of the budget
_RATE_STEPS = 6  # files tried by one budget search of encode_at_rate at most
_RATE_TOLERANCE = 0.005  # … which stops once a file fits within this fraction of the target

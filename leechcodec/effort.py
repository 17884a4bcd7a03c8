"""Effort levels: how long the encoder searches for better tokens. The format and the decoder are the same at every
level; only the choice of tokens changes.

Level 0 is the plain encoder. A higher level runs a list of stages (``LEVELS``), each level's list extending the one
below it. Every stage starts from the tokens the stages before it kept and keeps its own only when they lower the
rate–distortion cost

    J = squared error of the decoded image (float, on [0, 1], summed) + λ · bits,

bits being the information content of the tokens under the entropy models that write the file (``Price``), and λ
the image's own exchange rate of squared error for bits: the slope between two plain files around the target
(``lagrangian``). So J never rises from one stage to the next, nor from one level to the next.

Stages:
- ``Refine(steps)``: latent refinement (``refine``) under the current per-position token counts, from the latent
  the last stage left. Within the stage candidates are ranked by their error (docs/history.md says why); the
  stage's result is kept only if its J is lower.
- ``Counts()``: a search over the per-position token counts (adaptive files only). For every position it measures
  what one token less and one token more would change: the squared error in the decoded image around the position
  (the position's 16×16 block and its eight neighbours, with the change applied on a grid of every third position
  at once, so 2 × 9 decodes price every position) and the bits under the static priors. Every position whose best
  move lowers J takes it; the new counts are kept when the file's real J is lower.
Refinement lowers the distortion at the counts it is given; the count search then trades the refined tokens'
distortion against their bits, which is where the rate awareness pays most (docs/results.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from leechcodec import allocation as alloc
from leechcodec import token_counts
from leechcodec.lattice import DIM
from leechcodec.model import ENCODE_MARGIN, ENCODE_TILE, tiled
from leechcodec.refine import refine_under_counts
from leechcodec.zoo import LoadedModel

Price = Callable[[np.ndarray, np.ndarray | None], float]  # (indices, gain symbols [k, h, w]; ABSENT) → bits


@dataclass(frozen=True)
class Refine:
    steps: int


@dataclass(frozen=True)
class Counts:
    spacing: int = 3  # positions changed at once lie this far apart: their measurement windows (±1) do not overlap


LEVELS: dict[int, tuple[Refine | Counts, ...]] = {
    0: (),
    1: (Refine(10),),
    2: (Refine(10), Refine(20), Counts()),
    3: (Refine(10), Refine(20), Counts(), Refine(10), Counts()),
}
MAX_EFFORT = max(LEVELS)


def check_effort(effort: int) -> None:
    if isinstance(effort, bool) or not isinstance(effort, int) or effort not in LEVELS:
        raise ValueError(f"effort must be an integer 0..{MAX_EFFORT}, not {effort!r}")


@dataclass
class Tokens:
    """The search's state: the kept tokens [k, h, w] (ABSENT where a position keeps fewer), their cost J, and the
    full-width latent y [1, 24·S, h, w] they were quantized from."""

    indices: np.ndarray
    gains: np.ndarray | None
    cost: float
    latent: torch.Tensor

    @property
    def counts(self) -> np.ndarray:
        return token_counts.counts_of(self.indices)


class Found(NamedTuple):
    indices: np.ndarray  # [k, h, w], ABSENT where a position keeps fewer tokens
    gains: np.ndarray | None  # gain symbols of the same shape (None: a direction-only model)
    cost: float  # their J
    lam: float  # the λ of J


def search(model: LoadedModel, x: torch.Tensor, counts: np.ndarray, bracket: tuple[np.ndarray, np.ndarray],
           effort: int, price: Price, adaptive: bool = True) -> Found:
    """x [1, 3, H, W] in [0, 1] (H, W multiples of the stride), the plain encoder's per-position token counts [h, w]
    → the tokens of the lowest J the level's stages found.
    bracket: the counts of a smaller and of a larger plain file, whose slope is λ (``lagrangian``). adaptive False:
    the counts stay as given (uniform files; no ``Counts`` stages)."""
    check_effort(effort)
    net = model.net
    with torch.no_grad():
        latent = tiled(net.analysis, x, 1 / net.stride, ENCODE_TILE, ENCODE_MARGIN).float().cpu()
    lam = lagrangian(*(_rate_and_error(net, x, *_quantize(net, latent, c), price) for c in bracket))
    indices, gains = _quantize(net, latent, counts)
    state = Tokens(indices, gains, _cost(net, x, indices, gains, price, lam), latent)
    for stage in LEVELS[effort]:
        if isinstance(stage, Refine):
            state = _refine(net, x, state, stage.steps, price, lam)
        elif adaptive:
            state = _count_search(model, x, state, price, lam, stage.spacing)
    return Found(state.indices, state.gains, state.cost, lam)


def lagrangian(lower: tuple[float, float], upper: tuple[float, float]) -> float:
    """(bits, squared error) of two plain files of one image, the second larger → λ, the squared error one bit buys
    between them (never below a tiny positive number, so that bits always count)."""
    (bits_lo, sse_lo), (bits_hi, sse_hi) = lower, upper
    return max((sse_lo - sse_hi) / max(bits_hi - bits_lo, 1.0), 1e-9)


def _quantize(net, latent: torch.Tensor, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The tokens of the latent under the per-position counts (ABSENT beyond each count)."""
    k = int(counts.max())
    indices, gains, _ = net.quantize_tokens(latent[:, : DIM * net.cfg.subspaces_of(k)], k)
    keep = lambda t: token_counts.keep_counts(t[0].numpy(), counts)  # noqa: E731
    return keep(indices), None if gains is None else keep(gains)


def _decoded(net, indices: np.ndarray, gains: np.ndarray | None) -> torch.Tensor:
    """The decoder's float output [1, 3, H, W] (clamped, before 8-bit rounding) for tokens [k, h, w] with ABSENT."""
    return net.decode(torch.from_numpy(indices)[None], None if gains is None else torch.from_numpy(gains)[None])


def _rate_and_error(net, x: torch.Tensor, indices: np.ndarray, gains: np.ndarray | None, price: Price
                    ) -> tuple[float, float]:
    """(bits, squared error of the decoded image) of the tokens."""
    return price(indices, gains), float(torch.sum((_decoded(net, indices, gains) - x) ** 2))


def _cost(net, x: torch.Tensor, indices: np.ndarray, gains: np.ndarray | None, price: Price, lam: float) -> float:
    """J of the tokens."""
    bits, sse = _rate_and_error(net, x, indices, gains, price)
    return sse + lam * bits


def _refine(net, x: torch.Tensor, state: Tokens, steps: int, price: Price, lam: float) -> Tokens:
    s = net.cfg.subspaces_of(int(state.counts.max()))
    r = refine_under_counts(net, x, state.counts, steps, start=state.latent[:, : DIM * s])
    indices, gains = r.tokens()
    cost = _cost(net, x, indices, gains, price, lam)  # J as every stage measures it (the decoder's own tiling)
    if cost >= state.cost:
        return state
    latent = state.latent.clone()
    latent[:, : DIM * s] = r.latent
    return Tokens(indices, gains, cost, latent)


@torch.no_grad()
def _count_search(model: LoadedModel, x: torch.Tensor, state: Tokens, price: Price, lam: float,
                  spacing: int) -> Tokens:
    net, counts = model.net, state.counts
    k_max = min(model.config.groups, int(counts.max()) + 1)
    indices, gains, _ = net.quantize_tokens(state.latent[:, : DIM * net.cfg.subspaces_of(k_max)], k_max)
    indices, gains = indices[0].numpy(), None if gains is None else gains[0].numpy()
    costs = alloc.prefix_costs(model.prior, model.gains, indices, gains)  # [k_max + 1, h, w]

    def window_errors(c: np.ndarray) -> np.ndarray:
        """Squared error of the decoded image summed over each position's 3 × 3 block neighbourhood [h, w]."""
        kept = token_counts.keep_counts(indices, c)
        err = ((_decoded(net, kept, None if gains is None else token_counts.keep_counts(gains, c)) - x) ** 2)
        blocks = F.avg_pool2d(err.sum(dim=1, keepdim=True), net.stride, divisor_override=1)
        return F.conv2d(F.pad(blocks, (1, 1, 1, 1)), torch.ones(1, 1, 3, 3, dtype=blocks.dtype))[0, 0].double().numpy()

    base = window_errors(counts)
    rows, cols = np.indices(counts.shape)
    best_gain, best_move = np.zeros(counts.shape), np.zeros(counts.shape, np.int64)
    for move in (-1, 1):
        allowed = (counts + move >= 1) & (counts + move <= k_max)
        d_sse = np.zeros(counts.shape)
        for a in range(spacing):
            for b in range(spacing):
                grid = allowed & (rows % spacing == a) & (cols % spacing == b)
                if grid.any():
                    d_sse[grid] = (window_errors(np.where(grid, counts + move, counts)) - base)[grid]
        target = np.clip(counts + move, 0, k_max)
        d_bits = np.take_along_axis(costs, target[None], 0)[0] - np.take_along_axis(costs, counts[None], 0)[0]
        gain = np.where(allowed, -(d_sse + lam * d_bits), 0.0)
        better = gain > best_gain
        best_gain[better], best_move[better] = gain[better], move
    if not best_move.any():
        return state
    new_counts = counts + best_move
    new_indices = token_counts.keep_counts(indices, new_counts)
    new_gains = None if gains is None else token_counts.keep_counts(gains, new_counts)
    cost = _cost(net, x, new_indices, new_gains, price, lam)
    return Tokens(new_indices, new_gains, cost, state.latent) if cost < state.cost else state

"""Coding order and context features of the conditional entropy model (entropy model v2).

Tokens are coded group by group (group 0 first). Within a group the latent positions are coded in three passes over
a 2×2 grid, so that all tokens of one pass can be coded together (batched) and see the tokens of earlier passes:

========  ======================  ======================================================
pass      positions (y%2, x%2)    same-group neighbours already known
========  ======================  ======================================================
0         (0, 0)                  none
1         (1, 1)                  the 4 diagonal ones (all pass 0)
2         (0, 1) and (1, 0)       the 4 horizontal/vertical ones (passes 0 and 1)
========  ======================  ======================================================

Each token also sees the 3×3 neighbourhood of the previous group (already fully known) and, in a model with
residual stages (``model``: token j is stage j // S of subspace j % S), the tokens at its own position that it
refines: those of groups g − S and g − 2S (the earlier stages of its subspace; in a model with token blocks, S is a
block's subspaces and the earlier stages lie in g's block: ``earlier_stage``). A residual token's direction is far
from uniform given the token it refines (its inner product with it is negative much more often than chance). A
token's features are integers: for each of the 8 same-group, 9 previous-group and 2 earlier-stage slots, the slot's
minimal vector (coordinates in −4..4) and its absolute values; zeros where the slot is not available (outside the
image, not yet coded, no such group); and a constant 1. Integer features make the model's arithmetic exact (see
``conditional``): the encoder and every decoder compute the same numbers on any machine.

Conditional priors fitted before the earlier-stage slots existed are read by ``compat``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from leechcodec import lattice

PASSES = (((0, 0),), ((1, 1),), ((0, 1), (1, 0)))
SAME_GROUP = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
PREV_GROUP = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
EARLIER_STAGES = (1, 2)  # slots at the token's own position in groups g − k·S (k = 1, 2): the tokens it refines
SLOTS = len(SAME_GROUP) + len(PREV_GROUP) + len(EARLIER_STAGES)
NUM_FEATURES = SLOTS * 2 * lattice.DIM + 1  # (vector, |vector|) per slot, and the constant


def _pass_of(py: int, px: int) -> int:
    return next(p for p, phases in enumerate(PASSES) if (py, px) in phases)


def same_group_available(p: int) -> tuple[bool, ...]:
    """Per SAME_GROUP slot: is that neighbour coded in an earlier pass, for every position of pass p?"""
    return tuple(all(_pass_of((py + dy) % 2, (px + dx) % 2) < p for py, px in PASSES[p]) for dy, dx in SAME_GROUP)


@lru_cache(maxsize=64)
def pass_positions(h: int, w: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the positions coded in pass p, in raster order (cached: do not modify)."""
    ys, xs = np.mgrid[:h, :w]
    mask = np.zeros((h, w), bool)
    for py, px in PASSES[p]:
        mask |= (ys % 2 == py) & (xs % 2 == px)
    return ys[mask], xs[mask]


def earlier_stage(g: int, back: int, subspaces: int, block_groups: int | None = None) -> int:
    """The token ``back`` stages before token g in g's subspace, or −1 when g has fewer earlier stages: tokens are
    stage-major over ``subspaces`` subspaces within blocks of ``block_groups`` tokens (None: one block of all)."""
    i = g if block_groups is None else g % block_groups
    return g - back * subspaces if i >= back * subspaces else -1


def slot_sources(g: int, p: int, subspaces: int, block_groups: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per slot (SAME_GROUP, PREV_GROUP, then EARLIER_STAGES): offsets [SLOTS, 2] (dy, dx) and the group it reads
    [SLOTS], −1 where the slot is not available for group g, pass p. subspaces: S of the model (its number of groups
    when it has one stage, so that no earlier-stage slot is ever available), or of one token block with
    ``block_groups`` tokens."""
    offsets = np.array(SAME_GROUP + PREV_GROUP + ((0, 0),) * len(EARLIER_STAGES), np.int64)
    groups = ([g if ok else -1 for ok in same_group_available(p)] + [g - 1] * len(PREV_GROUP)
              + [earlier_stage(g, k, subspaces, block_groups) for k in EARLIER_STAGES])
    return offsets, np.array(groups, np.int64)


def features(vectors: np.ndarray, g: int, p: int, subspaces: int, block_groups: int | None = None) -> np.ndarray:
    """Integer features of the tokens of group g, pass p, in a model with the given number of subspaces (per token
    block of ``block_groups`` tokens: ``slot_sources``).

    vectors: int8 [k, h, w, 24], the minimal vectors of the groups; only groups < g and the positions of group g in
    passes < p are read. Returns int8 [n, NUM_FEATURES] in the order of ``pass_positions``.
    """
    _, h, w, d = vectors.shape
    ys, xs = pass_positions(h, w, p)
    out = np.zeros((len(ys), SLOTS, 2, d), np.int8)
    offsets, groups = slot_sources(g, p, subspaces, block_groups)
    for s, ((dy, dx), src) in enumerate(zip(offsets, groups)):
        if src < 0:
            continue
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        v = vectors[src, ny[inside], nx[inside]]
        out[inside, s, 0] = v
        out[inside, s, 1] = np.abs(v)
    return np.concatenate([out.reshape(len(ys), -1), np.ones((len(ys), 1), np.int8)], axis=1)

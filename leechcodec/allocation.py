"""The encoder's rate allocation: how many tokens each latent position keeps (adaptive files, format 3).

For each position the encoder knows the latent-domain error E_p(n) left after n tokens (the standardized latent
against the decoder's input, each channel's squared error weighted by the decoder's sensitivity to it when the model
has allocation weights: ``LoadedModel.allocation_weights``) and their cost R_p(n) in bits under the static priors;
it picks n_p = argmin E_p(n) + λ·R_p(n) with λ bisected so that Σ R_p(n_p) stays within the cost of the quality
level's uniform k tokens. A residual-stage model may keep fewer than its S first-stage tokens somewhere (its missing
subspaces are zeros there, as at the quality levels below S in training). How the counts are written:
``token_counts``.
"""

from __future__ import annotations

import numpy as np

from leechcodec.entropy import StaticPrior
from leechcodec.gains import GainPrior


def prefix_costs(prior: StaticPrior, gain_prior: GainPrior, indices: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """All K tokens' indices and gain symbols [K, h, w] → bits of each prefix [K+1, h, w] under the static priors
    (index prior and gain prior): the rate term of the allocation."""
    bits = np.stack([-np.log2(prior.probabilities(g)[indices[g]]) for g in range(len(indices))])
    bits += gain_prior.symbol_bits(gains)
    return np.concatenate([np.zeros((1, *bits.shape[1:])), np.cumsum(bits, axis=0)])


def allocate(errors: np.ndarray, costs: np.ndarray, budget: float, n_min: int = 1) -> np.ndarray:
    """errors [K+1, h, w] (E_p(n) for n = 0..K tokens) and costs [K+1, h, w] (bits of the first n tokens, 0 for
    n = 0, non-decreasing in n) → counts [h, w] int64 in [n_min, K] minimizing Σ E_p(n_p) + λ Σ cost_p(n_p), with λ
    the smallest that keeps Σ cost_p(n_p) ≤ budget (when even n_min tokens everywhere cost more: n_min tokens)."""
    return _counts_at(errors, costs, n_min, exchange_rate(errors, costs, budget, n_min))[0]


def exchange_rate(errors: np.ndarray, costs: np.ndarray, budget: float, n_min: int = 1) -> float:
    """The λ of ``allocate``: latent-domain error per bit at the budget (bisected; 0 when every token fits)."""
    k = errors.shape[0] - 1
    if not 1 <= n_min <= k or costs.shape != errors.shape:
        raise ValueError(f"cannot allocate with at least {n_min} of {k} tokens per position and costs {costs.shape}")
    lo, hi = 0.0, 1.0
    while _counts_at(errors, costs, n_min, hi)[1] > budget and hi < 1e12:  # large λ: the cheapest counts
        hi *= 4
    if _counts_at(errors, costs, n_min, lo)[1] <= budget:
        return lo
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _counts_at(errors, costs, n_min, mid)[1] > budget else (lo, mid)
    return hi


def _counts_at(errors: np.ndarray, costs: np.ndarray, n_min: int, lam: float) -> tuple[np.ndarray, float]:
    """The counts [h, w] minimizing E_p(n) + λ·cost_p(n) over n ≥ n_min at every position, and their total cost."""
    e = np.asarray(errors[n_min:], np.float64).reshape(errors.shape[0] - n_min, -1)
    c = np.asarray(costs[n_min:], np.float64).reshape(e.shape)
    n = (e + lam * c).argmin(axis=0)
    return n.reshape(errors.shape[1:]) + n_min, float(c[n, np.arange(e.shape[1])].sum())

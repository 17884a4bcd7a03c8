"""Checking the training rate proxy (``leechcodec.rate_proxy``) against the real code entropies: how CELL_KAPPA, the
cells' blur, was chosen (experiments/calibrate_rate_proxy.py prints the table)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import vonmises_fisher

from leechcodec import lattice
from leechcodec.rate_proxy import LOG2_CELL_AREA, DirectionRateProxy, log_vmf_normalizer


def calibrate(kappa: float, samples: int, rng: np.random.Generator) -> tuple[int, float, float, float]:
    """vMF(κ) samples on S^23 → (codes they use, the plug-in entropy of those codes, mean proxy bits, mean bits of
    the bare density), bits per token."""
    mu = np.zeros(lattice.DIM)
    mu[0] = 1.0
    u = vonmises_fisher(mu, kappa).rvs(samples, random_state=rng).astype(np.float32)
    _, counts = np.unique(lattice.quantize(u), return_counts=True)
    freq = counts / counts.sum()
    proxy = DirectionRateProxy(groups=1, components=1, kappa_init=kappa)
    with torch.no_grad():
        proxy.mean_dirs.zero_()
        proxy.mean_dirs[0, 0, 0] = 1.0
        bits = float(proxy.bits(torch.from_numpy(u)[:, None]).mean())
        k = torch.tensor(kappa, dtype=torch.float64)
        bare = float((-(log_vmf_normalizer(k) + k * torch.from_numpy(u[:, 0]).double()) / math.log(2)).mean()
                     - LOG2_CELL_AREA)
    return len(counts), float(-(freq * np.log2(freq)).sum()), bits, bare

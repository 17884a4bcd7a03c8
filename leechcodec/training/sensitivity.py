"""The decoder's sensitivity to each latent channel: the weights of the adaptive allocator's latent error.

The allocator (``leechcodec.allocation``) compares, position by position, how much latent error each prefix of tokens
leaves. An error of the same size costs more pixel error in some channels than in others, so the error is weighted per
channel by w_c = E[Σ_pixels (∂x̂/∂ŷ_c)²], the diagonal of JᵀJ of the synthesis at the decoder input, averaged over
positions and images (scaled to mean 1). Hutchinson's estimator gives it from gradients alone: for Gaussian probes u
in pixel space, E[(Jᵀu)_c²] = (JᵀJ)_cc. The decoder input is that of real tokens (a uniform prefix of the given
length), since the synthesis is not linear.
"""

from __future__ import annotations

import numpy as np
import torch

from leechcodec.lattice import DIM
from leechcodec.model import LeechAutoencoder
from leechcodec.refine import frozen_weights
from leechcodec.training.data import centre_crop


def hutchinson_elements(synthesis, y_hat: torch.Tensor, probes: int, gen: torch.Generator) -> torch.Tensor:
    """A decoder input y_hat [1, C, h, w] → the Hutchinson estimate of diag(JᵀJ) of ``synthesis`` there, at every
    element: [C, h, w] float64, the mean over ``probes`` Gaussian probes u of (Jᵀu)²."""
    y_hat = y_hat.detach().requires_grad_(True)
    out = synthesis(y_hat)
    total = torch.zeros(y_hat.shape[1:], dtype=torch.float64)
    for p in range(probes):
        u = torch.randn(out.shape, generator=gen)
        (grad,) = torch.autograd.grad(out, y_hat, u, retain_graph=p < probes - 1)
        total += grad[0].double().square()
    return total / probes


def hutchinson_diagonal(synthesis, y_hat: torch.Tensor, probes: int, gen: torch.Generator) -> torch.Tensor:
    """``hutchinson_elements`` averaged over positions: [C] float64."""
    return hutchinson_elements(synthesis, y_hat, probes, gen).mean(dim=(1, 2))


def channel_weights(net: LeechAutoencoder, images: list[np.ndarray], tokens: int, crop: int = 256, probes: int = 4,
                    seed: int = 0) -> np.ndarray:
    """uint8 images [H, W, 3] (each cut to its centre crop × crop, multiples of the stride) → the weights [24·S]
    float64, positive with mean 1: diag(JᵀJ) of the synthesis (``hutchinson_diagonal``) at the decoder input of the
    first ``tokens`` tokens, averaged over images."""
    if not images or probes < 1:
        raise ValueError("channel weights need at least one image and one probe")
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(DIM * net.cfg.subspaces, dtype=torch.float64)
    with frozen_weights(net):
        for rgb in images:
            x = torch.from_numpy(centre_crop(rgb, crop, crop).copy()).permute(2, 0, 1)[None].float().div(255)
            with torch.no_grad():
                _, _, vectors = net.quantize_stages(net.analysis(x), tokens)
                y_hat = net.assemble(vectors)
            total += hutchinson_diagonal(net.synthesis, y_hat, probes, gen)
    w = total.numpy()
    return w / w.mean()

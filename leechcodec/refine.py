"""Encoder-side latent refinement: search for tokens that decode closer to the image than the analysis transform's.

The analysis transform g_a is one amortized guess of a good latent. Given the image, the encoder can do better: it
runs gradient descent on the latent y through the (frozen) synthesis transform, with the same straight-through
estimator as training (forward: the quantized tokens; gradient: identity to y/√24), and keeps the tokens whose
decoded image had the lowest squared error. The decoder and the file format are untouched, so refined files decode
with any decoder; only encoding gets slower (one synthesis forward and backward pass and one lattice search per step).

Invariant: the first candidate is the starting latent's tokens (the plain encoder's, unless ``start`` is given) and a
candidate replaces the best only when its error is strictly lower, so refinement never returns tokens worse (in this
error) than the ones it started from.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from leechcodec import token_counts
from leechcodec.model import DECODE_MARGIN, DECODE_TILE, ENCODE_MARGIN, ENCODE_TILE, LeechAutoencoder, tile_boxes, tiled
from leechcodec.lattice import DIM


class Refinement(NamedTuple):
    indices: torch.Tensor  # [1, k, h, w] int64
    gains: torch.Tensor | None  # [1, k, h, w] int64 gain symbols, None for a direction-only model
    mse: float  # mean squared error (on [0, 1], over the padded image) of the decoded tokens, before 8-bit rounding
    plain_mse: float  # the same for the plain encoder's tokens
    latent: torch.Tensor | None = None  # the latent y [1, 24·s, h, w] whose tokens were returned (a later ``start``)

    def tokens(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The returned tokens as a file holds them: indices and gain symbols [k, h, w] (−1 where absent)."""
        return self.indices[0].numpy(), None if self.gains is None else self.gains[0].numpy()


class _Adam:
    """Adam (Kingma & Ba) on one tensor, with torch.optim.Adam's defaults (betas 0.9, 0.999; eps 1e-8). Written out
    because constructing any torch.optim optimizer imports torch._dynamo, about 3 s on these CPUs: longer than a
    short refinement."""

    def __init__(self, param: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.param, self.betas, self.eps, self.t = param, betas, eps, 0
        self.m, self.v = torch.zeros_like(param), torch.zeros_like(param)

    @torch.no_grad()
    def step(self, lr: float) -> None:
        (b1, b2), g = self.betas, self.param.grad
        self.t += 1
        self.m.mul_(b1).add_(g, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (self.v / (1 - b2 ** self.t)).sqrt_().add_(self.eps)
        self.param.addcdiv_(self.m, denom, value=-lr / (1 - b1 ** self.t))


@contextmanager
def frozen_weights(net: torch.nn.Module) -> Iterator[None]:
    """Within the block no gradient reaches the network's trainable parameters (gradient descent on a latent through
    the network leaves its weights and their .grad alone); afterwards they are trainable again."""
    frozen = [p for p in net.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def refine_under_counts(net: LeechAutoencoder, x: torch.Tensor, counts: np.ndarray, steps: int,
                        start: torch.Tensor | None = None) -> Refinement:
    """``refine_tokens`` under the per-position token counts [h, w] of a file (k = counts.max()), kept fixed."""
    k = int(counts.max())
    present = None if (counts == k).all() else torch.from_numpy(token_counts.present_mask(counts, k))[None]
    return refine_tokens(net, x, k, steps, present=present, start=start)


def refine_tokens(net: LeechAutoencoder, x: torch.Tensor, groups: int, steps: int, lr: float = 0.01,
                  present: torch.Tensor | None = None, start: torch.Tensor | None = None) -> Refinement:
    """x [1, 3, H, W] in [0, 1] (H, W multiples of the stride) → the best tokens found in ``steps`` steps of Adam on
    the latent (steps = 0: the plain encoder's tokens), with a cosine-decaying step size from ``lr``.

    present [1, groups, h, w] bool (None: all): the per-position token counts of an adaptive file (``allocation``),
    kept fixed; absent tokens are zeros for the decoder and come back as −1.

    start: a latent to start from instead of the analysis transform's (an earlier refinement's ``latent``: its
    tokens are then the first candidate).

    The error is that of the decoder's own output: the synthesis runs over the decoder's tiles, one tile's forward
    and backward pass at a time, so memory stays bounded as in decoding. The model's parameters are not changed
    (their gradients are never computed)."""
    k = groups
    mask = None if present is None else present.float().repeat_interleave(DIM, dim=1)
    s = net.cfg.subspaces_of(k)
    width = DIM * net.cfg.subspaces
    stride = net.stride
    if start is None:
        with torch.no_grad():
            start = tiled(net.analysis, x, 1 / stride, ENCODE_TILE, ENCODE_MARGIN)[:, : DIM * s].float()
    y = start.detach().cpu().clone().requires_grad_(True)
    boxes = list(tile_boxes(y.shape[2], y.shape[3], DECODE_TILE, DECODE_MARGIN))
    with frozen_weights(net):
        adam = _Adam(y)
        best_err, best, plain_err = math.inf, None, None
        for step in range(steps + 1):
            indices, symbols, vectors = net.quantize_tokens(y.detach(), k)
            if mask is not None:
                vectors = vectors * mask
                indices = indices.masked_fill(~present, -1)
                symbols = None if symbols is None else symbols.masked_fill(~present, -1)
            target = y / math.sqrt(DIM)
            y_hat = target + (net.assemble(vectors)[:, : DIM * s] - target).detach()
            y_hat = F.pad(y_hat, (0, 0, 0, 0, 0, width - DIM * s)).to(x.device)
            y.grad = None
            err = 0.0
            for (r0, r1, c0, c1), (a, c, b, d) in boxes:
                out = net.synthesis(y_hat[:, :, a:c, b:d])
                out = out[:, :, (r0 - a) * stride:(r1 - a) * stride, (c0 - b) * stride:(c1 - b) * stride]
                sse = torch.sum((out.clamp(0, 1) - x[:, :, r0 * stride:r1 * stride, c0 * stride:c1 * stride]) ** 2)
                if step < steps:
                    sse.backward(retain_graph=True)
                err += sse.item()
            plain_err = err if plain_err is None else plain_err
            if err < best_err:
                best_err, best = err, (indices, symbols, y.detach().clone())
            if step < steps:  # cosine decay: large moves first, fine ones at the end
                adam.step(lr * 0.5 * (1 + math.cos(math.pi * step / steps)))
    n = x[:, :, : y.shape[2] * stride, : y.shape[3] * stride].numel()
    return Refinement(best[0], best[1], best_err / n, plain_err / n, best[2])

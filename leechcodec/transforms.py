"""The learned transforms: analysis g_a (image → latent) and synthesis g_s (latent → image), from a model config.

``"gdn"`` (every shipped model): Ballé et al.'s 5×5 stride-2 convolutions with GDN / inverse GDN, as in compressai's
``FactorizedPrior``; ``len(widths)`` down-sampling layers and a last one to the latent of 24·S channels (S subspaces).
``"residual"`` is the retired first model's family (``compat``).
"""

from __future__ import annotations

from itertools import pairwise

from torch import nn

from leechcodec import compat
from leechcodec.compressai_layers import GDN, conv, deconv
from leechcodec.lattice import DIM


def analysis(arch: str, widths: tuple[int, ...], subspaces: int) -> nn.Sequential:
    """g_a: x [B, 3, H, W] → y [B, 24·subspaces, H/s, W/s]."""
    if arch == "residual":
        return compat.residual_analysis(widths, DIM * subspaces)
    chans = (3, *widths)
    layers = []
    for a, b in pairwise(chans):
        layers += [conv(a, b, kernel_size=5, stride=2), GDN(b)]
    return nn.Sequential(*layers, conv(chans[-1], DIM * subspaces, kernel_size=5, stride=2))


def synthesis(arch: str, widths: tuple[int, ...], subspaces: int) -> nn.Sequential:
    """g_s: y_hat [B, 24·subspaces, H/s, W/s] → x_hat [B, 3, H, W]."""
    if arch == "residual":
        return compat.residual_synthesis(widths, DIM * subspaces)
    chans = (DIM * subspaces, *widths[::-1])
    layers = []
    for a, b in pairwise(chans):
        layers += [deconv(a, b, kernel_size=5, stride=2), GDN(b, inverse=True)]
    return nn.Sequential(*layers, deconv(chans[-1], 3, kernel_size=5, stride=2))

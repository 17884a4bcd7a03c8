"""Compatibility: what only files of retired models and former formats need. Nothing new is written with it.

- The ``"residual"`` transforms of the first shipped model (pixel-unshuffle + 3×3 convolutions with ResidualBlocks,
  ``subpel_conv3x3`` up-sampling). Read by ``transforms`` for a config with ``arch="residual"`` (configs saved
  before the ``arch`` field existed are residual): retired models restored from git history, and old checkpoints.
- Conditional-prior files of prior-file version 1, fitted before the earlier-stage context slots existed
  (``LEGACY_NUM_FEATURES`` features). Read by ``conditional.ConditionalPrior``: zero weights on the missing slots give
  exactly the tilts, so the code, they gave before.
- Former conditional priors of a shipped model (files written before its prior was refitted) are found through the
  registry by ``zoo.former_context``, the one piece that lives with the registry it reads.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from torch import nn

from leechcodec import context
from leechcodec.compressai_layers import ResidualBlock, conv3x3, subpel_conv3x3
from leechcodec.lattice import DIM

LEGACY_SLOTS = len(context.SAME_GROUP) + len(context.PREV_GROUP)  # the slots before context.EARLIER_STAGES
LEGACY_NUM_FEATURES = LEGACY_SLOTS * 2 * DIM + 1


def widen_legacy_weights(w: np.ndarray) -> np.ndarray:
    """Conditional-prior weights [..., LEGACY_NUM_FEATURES] → [..., context.NUM_FEATURES]: zero weights for the
    earlier-stage slots, inserted before the constant feature."""
    pad = np.zeros((*w.shape[:-1], context.NUM_FEATURES - LEGACY_NUM_FEATURES), w.dtype)
    return np.concatenate([w[..., :-1], pad, w[..., -1:]], axis=-1)


def residual_analysis(widths: tuple[int, ...], latent_channels: int) -> nn.Sequential:
    w = widths
    layers: list[nn.Module] = [nn.PixelUnshuffle(2), conv3x3(12, w[0]), ResidualBlock(w[0], w[0])]
    for a, b in pairwise(w):
        layers += [nn.PixelUnshuffle(2), conv3x3(4 * a, b), nn.LeakyReLU(inplace=True), ResidualBlock(b, b)]
    layers += [ResidualBlock(w[-1], w[-1]), conv3x3(w[-1], latent_channels)]
    return nn.Sequential(*layers)


def residual_synthesis(widths: tuple[int, ...], latent_channels: int) -> nn.Sequential:
    w = widths[::-1]
    layers: list[nn.Module] = [conv3x3(latent_channels, w[0]), ResidualBlock(w[0], w[0]), ResidualBlock(w[0], w[0])]
    for a, b in pairwise(w):
        layers += [subpel_conv3x3(a, b, 2), nn.LeakyReLU(inplace=True), ResidualBlock(b, b)]
    layers += [subpel_conv3x3(w[-1], 3, 2)]
    return nn.Sequential(*layers)

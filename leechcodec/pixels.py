"""Pixels ↔ network tensors: 8-bit RGB arrays to padded float tensors for the analysis transform, and back.

Invariant: the round trip crops to the original size, so the edge replication that pads an image to a multiple of the
model's stride never reaches a decoded picture.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def image_to_tensor(rgb: np.ndarray, stride: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 [H, W, 3] → float [1, 3, H', W'] in [0, 1], padded (edge replication) to multiples of the stride."""
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)[None].float().div(255)
    h, w = rgb.shape[:2]
    ph, pw = -h % stride, -w % stride
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x.to(device)


def tensor_to_rgb8(x_hat: torch.Tensor, height: int, width: int) -> np.ndarray:
    """float [1, 3, H', W'] in [0, 1] → uint8 [H, W, 3] (cropped, rounded)."""
    x = x_hat[0, :, :height, :width].clamp(0, 1).mul(255).round().byte()
    return x.permute(1, 2, 0).cpu().numpy()

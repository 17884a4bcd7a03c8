"""Quantizer modules: cut a latent into 24-d vectors and snap them to a spherical codebook.

``LeechQuantizer`` is Λ24-SQ (196,560 unit vectors, the Leech lattice's first shell, see ``leechcodec.lattice``);
``BSQQuantizer`` is binary spherical quantization (24 sign bits scaled to the unit sphere, 2^24 codes), the
paper's comparison arm. Both share one interface:

    y [B, 24·G, h, w] float  →  (y_hat [B, 24·G, h, w] float32 unit code vectors with a straight-through gradient,
                                  indices [B, G, h, w] int64)
    indices_to_codes(indices [B, G, h, w]) → y_hat [B, 24·G, h, w] float32

Channel 24·g + d of the latent is coordinate d of group g. Quantization always runs in float32 with autocast off;
the indices are decided by the encoder alone, so float noise can change a choice but never desynchronize a decoder.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from leechcodec import lattice
from leechcodec.lattice import DIM

_EPS = 1e-12  # a zero vector normalizes to zero, which quantizes to index 0 (documented in lattice)


def _to_vectors(y: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """[B, 24·G, h, w] → [B, G, h, w, 24] float32."""
    if y.dim() != 4 or y.shape[1] % DIM:
        raise ValueError(f"expected a latent of shape [B, 24·G, h, w], got {tuple(y.shape)}")
    b, c, h, w = y.shape
    g = c // DIM
    return y.float().reshape(b, g, DIM, h, w).permute(0, 1, 3, 4, 2), (b, g, h, w)


def _from_vectors(v: torch.Tensor) -> torch.Tensor:
    """[B, G, h, w, 24] → [B, 24·G, h, w]."""
    b, g, h, w, _ = v.shape
    return v.permute(0, 1, 4, 2, 3).reshape(b, g * DIM, h, w)


def unit_vectors(y: torch.Tensor) -> torch.Tensor:
    """[B, 24·G, h, w] → the same shape with every 24-d group scaled to unit length (float32; zero stays zero)."""
    v, _ = _to_vectors(y)
    return _from_vectors(v / v.norm(dim=-1, keepdim=True).clamp_min(_EPS))


class SphericalQuantizer(nn.Module):
    """Shared plumbing: normalize, search (no grad), straight-through estimator."""

    num_codes: int

    def search(self, z: torch.Tensor) -> torch.Tensor:
        """Unit vectors z [N, 24] float32 → int64 indices [N] (on z's device)."""
        raise NotImplementedError

    def codes(self, indices: torch.Tensor) -> torch.Tensor:
        """int64 indices [...] → float32 unit code vectors [..., 24] (on the indices' device)."""
        raise NotImplementedError

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device_type=y.device.type, enabled=False):
            v, shape = _to_vectors(y)
            if not torch.isfinite(v).all():
                raise ValueError("latent contains NaN or ±Inf")
            z = v / v.norm(dim=-1, keepdim=True).clamp_min(_EPS)
            with torch.no_grad():
                indices = self.search(z.detach().reshape(-1, DIM)).reshape(shape)
                q = self.codes(indices)
            z_hat = z + (q - z).detach()  # straight-through: forward = code vector, gradient = identity on z
            return _from_vectors(z_hat), indices

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        if indices.dim() != 4:
            raise ValueError(f"expected indices of shape [B, G, h, w], got {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_codes):
            raise ValueError(f"indices must lie in [0, {self.num_codes})")
        return _from_vectors(self.codes(indices.long()))


class LeechQuantizer(SphericalQuantizer):
    """Λ24-SQ: nearest of the 196,560 minimal Leech vectors on the unit sphere.

    On the CPU the exact structured search of ``lattice.quantize`` runs; on CUDA an exact chunked brute force
    (float32 matmul + argmax) against a 19 MB table kept on the device.
    """

    num_codes = lattice.NUM_POINTS

    def __init__(self, cuda_chunk: int = 8192):
        super().__init__()
        self.cuda_chunk = cuda_chunk
        self._tables: dict[torch.device, torch.Tensor] = {}

    def _table(self, device: torch.device) -> torch.Tensor:
        if device not in self._tables:
            unit = lattice.codebook().astype(np.float32) / np.float32(math.sqrt(lattice.NORM2))
            self._tables[device] = torch.from_numpy(unit).to(device)
        return self._tables[device]

    def search(self, z: torch.Tensor) -> torch.Tensor:
        if z.device.type == "cpu":
            return torch.from_numpy(lattice.quantize(z.numpy()))
        table = self._table(z.device)
        return torch.cat([(c @ table.T).argmax(dim=1) for c in z.split(self.cuda_chunk)])

    def codes(self, indices: torch.Tensor) -> torch.Tensor:
        if indices.device.type == "cpu":
            v = lattice.index_to_vector(indices.numpy()).astype(np.float32)
            return torch.from_numpy(v) / math.sqrt(lattice.NORM2)
        return self._table(indices.device)[indices]


class BSQQuantizer(SphericalQuantizer):
    """Binary spherical quantization: sign(z)/√24, index = Σ_d [z_d < 0]·2^d (2^24 codes; zero counts as +)."""

    num_codes = 1 << DIM

    def search(self, z: torch.Tensor) -> torch.Tensor:
        weights = 2 ** torch.arange(DIM, device=z.device, dtype=torch.int64)
        return ((z < 0).long() * weights).sum(-1)

    def codes(self, indices: torch.Tensor) -> torch.Tensor:
        bits = (indices.unsqueeze(-1) >> torch.arange(DIM, device=indices.device)) & 1
        return (1.0 - 2.0 * bits.float()) / math.sqrt(DIM)

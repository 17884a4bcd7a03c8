"""LeechQuantizer and BSQQuantizer: shapes, exactness, inverse pair, straight-through gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from leechcodec import lattice
from leechcodec.quantizer import BSQQuantizer, LeechQuantizer


@pytest.mark.parametrize("quantizer", [LeechQuantizer(), BSQQuantizer()])
def test_shapes_unit_norm_and_inverse(quantizer):
    y = torch.randn(2, 48, 3, 5)
    y_hat, idx = quantizer(y)
    assert y_hat.shape == y.shape and idx.shape == (2, 2, 3, 5) and idx.dtype == torch.int64
    norms = y_hat.reshape(2, 2, 24, 3, 5).norm(dim=2)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6)
    # the straight-through value z + (q - z) equals the code vector up to float rounding
    assert torch.allclose(quantizer.indices_to_codes(idx), y_hat, atol=1e-6)


def test_leech_indices_match_lattice_quantize():
    y = torch.randn(1, 24, 4, 4)
    _, idx = LeechQuantizer()(y)
    vectors = y[0].permute(1, 2, 0).reshape(-1, 24).numpy()
    assert (idx.reshape(-1).numpy() == lattice.quantize(vectors)).all()


def test_leech_scale_invariance():
    y = torch.randn(1, 24, 4, 4)
    q = LeechQuantizer()
    assert torch.equal(q(y)[1], q(y * 37.5)[1])


def test_straight_through_gradient_is_identity_on_the_unit_vector():
    y = torch.randn(1, 24, 2, 2, requires_grad=True)
    y_hat, _ = LeechQuantizer()(y)
    g = torch.randn_like(y_hat)
    (y_hat * g).sum().backward()
    z = y / y.reshape(1, 1, 24, 2, 2).norm(dim=2).reshape(1, 1, 2, 2)
    y2 = y.detach().clone().requires_grad_(True)
    z2 = y2 / y2.norm(dim=1, keepdim=True)
    (z2 * g).sum().backward()
    assert torch.allclose(y.grad, y2.grad, atol=1e-6) and z.shape == y.shape


def test_bsq_codes_are_signs():
    y = torch.randn(1, 24, 1, 1)
    y_hat, idx = BSQQuantizer()(y)
    assert torch.allclose(y_hat * np.sqrt(24), torch.sign(y))
    assert 0 <= int(idx) < 2**24


def test_errors():
    q = LeechQuantizer()
    with pytest.raises(ValueError, match="24"):
        q(torch.randn(1, 25, 2, 2))
    with pytest.raises(ValueError, match="NaN"):
        q(torch.full((1, 24, 1, 1), float("nan")))
    with pytest.raises(ValueError, match="196560"):
        q.indices_to_codes(torch.full((1, 1, 1, 1), 196_560))
    _, idx = q(torch.zeros(1, 24, 1, 1))  # the zero vector: documented answer 0
    assert int(idx) == 0

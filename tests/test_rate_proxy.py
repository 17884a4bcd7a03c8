"""The training-time rate proxy: the vMF normalizer, the uniform limit, and where its gradients go."""

from __future__ import annotations

import math

import numpy as np
import torch

from leechcodec import lattice
from leechcodec.rate_proxy import LOG2_CELL_AREA, DirectionRateProxy, log_bessel_i, log_vmf_normalizer
from leechcodec.training.calibration import calibrate


def _log_bessel_series(nu: float, kappa: float, terms: int = 4000) -> float:
    """log I_nu(kappa) from its power series Σ_k (κ/2)^(2k+ν) / (k! Γ(k+ν+1)), summed in the log domain."""
    k = np.arange(terms, dtype=np.float64)
    logs = (2 * k + nu) * math.log(kappa / 2) - np.array([math.lgamma(i + 1) + math.lgamma(i + nu + 1) for i in k])
    top = logs.max()
    return float(top + math.log(np.exp(logs - top).sum()))


def test_log_bessel_matches_the_power_series_over_six_decades():
    kappas = [1e-3, 0.1, 1.0, 5.0, 11.0, 30.0, 100.0, 1000.0]
    got = log_bessel_i(11, torch.tensor(kappas, dtype=torch.float64)).numpy()
    want = np.array([_log_bessel_series(11, k) for k in kappas])
    assert np.abs(got - want).max() < 2e-5


def test_a_vmf_density_integrates_to_one_over_the_sphere():
    # The Leech minimal vectors form a spherical 11-design: their mean of a polynomial of degree ≤ 11 is its sphere
    # mean exactly, and for κ = 1 exp(κ μ·u) is such a polynomial to within 1/12! ≈ 2e-9.
    unit = torch.from_numpy(lattice.codebook().astype(np.float64) / math.sqrt(lattice.NORM2))
    mu = torch.zeros(lattice.DIM, dtype=torch.float64)
    mu[0] = 1.0
    kappa = torch.tensor(1.0, dtype=torch.float64)
    log_area = (math.log(2) + lattice.DIM / 2 * math.log(math.pi) - math.lgamma(lattice.DIM / 2))
    mass = torch.exp(log_vmf_normalizer(kappa) + kappa * unit @ mu).mean() * math.exp(log_area)
    assert abs(float(mass) - 1) < 2e-5  # the bound on log_bessel_i; the design itself is exact here
    assert abs(log_area / math.log(2) - math.log2(lattice.NUM_POINTS) - LOG2_CELL_AREA) < 1e-12


def test_a_flat_mixture_costs_what_a_uniform_choice_of_code_costs():
    proxy = DirectionRateProxy(groups=3, components=16, kappa_init=1e-3)
    u = torch.nn.functional.normalize(torch.randn(50, 3, lattice.DIM), dim=-1)
    bits = proxy.bits(u)
    assert bits.shape == (50, 3)
    assert torch.allclose(bits, torch.full_like(bits, math.log2(lattice.NUM_POINTS)), atol=1e-3)


def test_a_concentrated_mixture_makes_its_mode_cheap_and_the_opposite_pole_dear():
    proxy = DirectionRateProxy(groups=1, components=1, kappa_init=20.0)
    mode = torch.nn.functional.normalize(proxy.mean_dirs.detach()[0, 0], dim=0)
    bits = proxy.bits(torch.stack([mode, -mode])[:, None])[:, 0]
    assert bits[0] < math.log2(lattice.NUM_POINTS) - 5 < math.log2(lattice.NUM_POINTS) + 5 < bits[1]


def test_gradients_reach_the_directions_or_the_mixtures_as_asked():
    proxy = DirectionRateProxy(groups=2, components=8)
    u = torch.nn.functional.normalize(torch.randn(10, 2, lattice.DIM), dim=-1).requires_grad_()
    proxy.bits(u, detach_params=True).sum().backward()
    assert u.grad is not None and u.grad.abs().sum() > 0
    assert all(p.grad is None for p in proxy.parameters())
    proxy.bits(u.detach()).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in proxy.parameters())


def test_a_sharp_component_is_priced_at_what_its_codes_cost():
    """The cell blur (CELL_KAPPA): a component's samples cost about the entropy of their Leech codes, where the bare
    density would claim several bits fewer (the phantom bits a first training run learned to buy)."""
    rng = np.random.default_rng(0)
    for kappa in (25.0, 40.0):
        _, code_entropy, bits, bare = calibrate(kappa, 200_000, rng)
        assert abs(bits - code_entropy) < 0.6
        assert bare < code_entropy - 2.5

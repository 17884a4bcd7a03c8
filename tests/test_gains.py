"""Gain–shape tokens: the gain quantizer of the model and the gain symbols' entropy model (leechcodec.gains)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from leechcodec.entropy import DecodeError
from leechcodec.gains import GainPrior, context_group, gain_contexts, gain_frequencies
from leechcodec.model import LeechAutoencoder, ModelConfig

LEVELS = 8


def _symbols(seed: int, k: int = 3, h: int = 9, w: int = 11) -> np.ndarray:
    """Correlated symbols: each group is the previous one plus a small step, as a model's gains are."""
    rng = np.random.default_rng(seed)
    s = np.empty((k, h, w), np.int64)
    s[0] = rng.integers(0, LEVELS, (h, w))
    for g in range(1, k):
        s[g] = np.clip(s[g - 1] + rng.integers(-1, 2, (h, w)), 0, LEVELS - 1)
    return s


@pytest.fixture(scope="module")
def prior() -> GainPrior:
    return GainPrior(gain_frequencies([_symbols(i) for i in range(20)], LEVELS))


def test_contexts_are_the_previous_group():
    s = _symbols(0)
    ctx = gain_contexts(s, LEVELS)
    assert (ctx[0] == LEVELS).all() and (ctx[1:] == s[:-1]).all()


def test_round_trip_is_exact_and_real_bits_bound_information(prior):
    for seed in (100, 101):
        s = _symbols(seed)
        for k in (1, 3):
            words = prior.encode(s[:k])
            assert (prior.decode(words, k, *s.shape[1:]) == s[:k]).all()
            info = prior.information_bits(s[:k])
            assert info - 32 <= 32 * len(words) <= 1.01 * info + 64


def test_the_context_pays_off(prior):
    """Symbols that follow the previous group cost less than log2(L) bits; group 0 costs about log2(L)."""
    s = _symbols(7, h=40, w=40)
    bits_per_group = [prior.information_bits(s[: g + 1]) for g in range(3)]
    first, later = bits_per_group[0] / s[0].size, (bits_per_group[2] - bits_per_group[0]) / (2 * s[0].size)
    assert later < 0.6 * math.log2(LEVELS) < first


def test_bad_symbols_and_tables_are_refused(prior):
    with pytest.raises(ValueError, match="gain symbols must lie"):
        prior.encode(np.full((1, 2, 2), LEVELS))
    with pytest.raises(ValueError, match=r"k ≤ 3"):
        prior.encode(np.zeros((4, 2, 2), np.int64))
    with pytest.raises(DecodeError):
        prior.decode(np.zeros(2, np.uint32), 4, 2, 2)
    with pytest.raises(ValueError, match="uint16 frequencies"):
        GainPrior(np.zeros((3, LEVELS + 1, LEVELS), np.uint16))
    with pytest.raises(ValueError, match="uint16 frequencies"):
        GainPrior(np.ones((3, LEVELS, LEVELS), np.uint16))


def test_model_gains_are_the_nearest_level_and_scale_the_code_vectors():
    cfg = ModelConfig(groups=2, widths=(8, 8, 8), arch="gdn", groups_for_quality=(1, 2), gain_levels=LEVELS)
    net = LeechAutoencoder(cfg).eval()
    y = torch.randn(1, 48, 3, 4) * torch.exp2(torch.randn(1, 1, 3, 4) * 1.5)
    s = net.gain_symbols(y)
    assert s.shape == (1, 2, 3, 4) and s.min() >= 0 and s.max() < LEVELS
    true = torch.log2(y.reshape(1, 2, 24, 3, 4).norm(dim=2) / math.sqrt(24))
    levels = cfg.gain_log2_min + cfg.gain_log2_step * torch.arange(LEVELS).float()
    nearest = (true[..., None] - levels).abs().argmin(-1)
    assert (s == nearest).all()
    # the decoder's input: unit code vectors scaled by the level of their symbol
    codes = net.quantizer.indices_to_codes(net.quantizer(y)[1]) * net.gain_values(s)
    norms = codes.reshape(1, 2, 24, 3, 4).norm(dim=2)
    assert torch.allclose(norms, torch.exp2(levels[s]), rtol=1e-5)
    with pytest.raises(ValueError, match="gain symbols are needed"):
        net.decode(net.quantizer(y)[1])


def test_residual_stages_take_their_subspaces_previous_stage_as_context():
    """With S subspaces, group g ≥ S is coded given group g − S (its own subspace's previous stage); a prior fitted
    that way round-trips, and symbols that follow their subspace cost far less than under the g − 1 context."""
    rng = np.random.default_rng(5)
    s = np.empty((6, 20, 20), np.int64)
    s[:2] = rng.integers(0, LEVELS, (2, 20, 20))
    for g in range(2, 6):  # stage t of subspace g % 2 is the previous stage's symbol minus one, clipped
        s[g] = np.clip(s[g - 2] - 1, 0, LEVELS - 1)
    ctx = gain_contexts(s, LEVELS, subspaces=2)
    assert (ctx[0] == LEVELS).all() and (ctx[1] == s[0]).all() and (ctx[2:] == s[:-2]).all()
    staged = GainPrior(gain_frequencies([s], LEVELS, subspaces=2), 2)
    plain = GainPrior(gain_frequencies([s], LEVELS))
    words = staged.encode(s)
    assert (staged.decode(words, 6, 20, 20) == s).all() and (staged.decode(words, 3, 20, 20) == s[:3]).all()
    assert staged.information_bits(s) < 0.5 * plain.information_bits(s)
    assert gain_contexts(s, LEVELS, subspaces=6).tolist() == gain_contexts(s, LEVELS).tolist()  # S = G: g − 1


def test_token_blocks_keep_the_gain_contexts_inside_each_block():
    """With token blocks of 6 tokens over 2 subspaces each, a block's first stage looks at the token before it (as
    group 1 does) and its later stages at their own subspace's previous stage; one block is the plain layout."""
    assert [context_group(g, 2, 6) for g in range(12)] == [-1, 0, 0, 1, 2, 3, 5, 6, 6, 7, 8, 9]
    assert [context_group(g, 2, 6) for g in range(6)] == [context_group(g, 2) for g in range(6)]
    rng = np.random.default_rng(6)
    s = rng.integers(0, LEVELS, (12, 8, 8))
    prior = GainPrior(gain_frequencies([s], LEVELS, subspaces=2, block_groups=6), 2, 6)
    assert (prior.decode(prior.encode(s), 12, 8, 8) == s).all()
    assert (prior.decode(prior.encode(s[:8]), 8, 8, 8) == s[:8]).all()

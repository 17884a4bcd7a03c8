"""The static prior and range coder: exact round trips and rate bounds."""

from __future__ import annotations

import numpy as np
import pytest

from leechcodec.entropy import DecodeError, StaticPrior, frequencies_from_counts


def test_round_trip_and_rate_bound(synthetic_prior):
    rng = np.random.default_rng(0)
    for g in range(2):
        p = synthetic_prior.probabilities(g)
        idx = rng.choice(len(p), size=(2, 30, 40), p=p)
        words = synthetic_prior.encode(idx)
        assert (synthetic_prior.decode(words, 2, 30, 40) == idx).all()
        real, info = 32 * len(words), synthetic_prior.information_bits(idx)
        # real bits match the information content within 1% plus one word (the coder's fixed point can shave a
        # fraction of a bit per rare symbol, never a whole word)
        assert info - 32 <= real <= 1.01 * info + 32


def test_uniformish_worst_case_costs_at_most_24_bits(synthetic_prior):
    idx = np.full((1, 10, 10), 196_559)  # the least likely symbol
    words = synthetic_prior.encode(idx)
    assert 32 * len(words) <= 24 * idx.size + 64


def test_frequencies_from_counts():
    counts = np.zeros((2, 196_560))
    counts[0, 5] = 1000
    f = frequencies_from_counts(counts)
    assert f.dtype == np.uint16 and f.min() >= 1 and f[0, 5] == 65535 and (f[1] == 65535).all()


def test_garbage_payload_is_a_decode_error(synthetic_prior):
    with pytest.raises(DecodeError):
        synthetic_prior.decode(np.array([0xFFFFFFFF, 0xFFFFFFFF], np.uint32), 2, 50, 50)


def test_bad_prior_rejected():
    with pytest.raises(ValueError):
        StaticPrior(np.zeros((1, 196_560), np.uint16))

"""The Leech codebook, its canonical index and the exact nearest-point search."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from leechcodec import lattice


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    return lattice.codebook()


def test_codebook_facts(table):
    assert table.shape == (196_560, 24) and table.dtype == np.int8
    t = table.astype(np.int64)
    assert ((t**2).sum(1) == 32).all()
    assert len(np.unique(table, axis=0)) == 196_560
    # antipodal closure
    assert (lattice.vector_to_index(-t) >= 0).all()
    # class sizes and shapes in their index ranges
    nz = (t != 0).sum(1)
    assert (nz[: lattice.OFFSET_B] == 2).all() and (nz[lattice.OFFSET_B: lattice.OFFSET_C] == 8).all()
    assert (nz[lattice.OFFSET_C:] == 24).all()


def test_inner_products_of_a_sample(table):
    rng = np.random.default_rng(1)
    s = table[rng.choice(len(table), 600, replace=False)].astype(np.int64)
    g = s @ s.T
    off = g[~np.eye(len(s), dtype=bool)]
    assert set(np.unique(off)) <= {-32, -16, -8, 0, 8, 16}


def test_codebook_hash_is_pinned(table):
    """The index order is part of the .lsq format: changing it must be deliberate."""
    assert hashlib.sha256(table.tobytes()).hexdigest() == lattice.CODEBOOK_SHA256


def test_index_round_trip_every_index(table):
    assert (lattice.vector_to_index(table) == np.arange(lattice.NUM_POINTS)).all()


def test_non_minimal_vectors_get_minus_one(table):
    bad = [np.zeros(24, np.int64), np.r_[4, 4, 4, np.zeros(21)], np.r_[2 * np.ones(8), np.zeros(16)],
           np.r_[3, np.ones(23)], np.r_[5, 1, np.zeros(22)], np.r_[4, -4, np.zeros(22)] * 2]
    # an octad support with an odd number of minus signs
    v = table[lattice.OFFSET_B].astype(np.int64).copy()
    v[np.nonzero(v)[0][0]] *= -1
    bad.append(v)
    # a class-C shape whose sign pattern is not a Golay codeword
    v = table[lattice.OFFSET_C].astype(np.int64).copy()
    v[5] *= -1
    bad.append(v)
    assert (lattice.vector_to_index(np.array(bad, dtype=np.int64)) == -1).all()


def test_every_minimal_vector_quantizes_to_itself(table):
    assert (lattice.quantize(table.astype(np.float32)) == np.arange(lattice.NUM_POINTS)).all()


@pytest.mark.slow
def test_matches_brute_force_on_100k_gaussians(table):
    rng = np.random.default_rng(2024)
    x = rng.standard_normal((100_000, 24)).astype(np.float32)
    fast = lattice.quantize(x)
    t32 = table.astype(np.float32)
    best = np.concatenate([(c @ t32.T).max(1) for c in np.array_split(x, 40)])
    got = (x.astype(np.float64) * table[fast].astype(np.float64)).sum(1)
    # fast scores are exact; the float32 brute force carries rounding of about 1e-6 relative
    assert (got >= best - 1e-4).all()
    # winners fall in the classes roughly in proportion to the class sizes
    share = np.bincount(np.searchsorted([lattice.OFFSET_B, lattice.OFFSET_C], fast, side="right"), minlength=3)
    assert 0.45 < share[1] / len(x) < 0.55 and 0.45 < share[2] / len(x) < 0.55


def test_exact_agreement_with_brute_force_indices(table):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2000, 24))
    assert (lattice.quantize(x) == lattice.quantize_brute_force(x)).all()


def test_perturbed_points_return_to_their_centre(table):
    rng = np.random.default_rng(3)
    idx = rng.integers(0, lattice.NUM_POINTS, 20_000)
    v = table[idx].astype(np.float64) / np.sqrt(32)
    noise = rng.standard_normal(v.shape)
    noise *= 0.2 / np.linalg.norm(noise, axis=1, keepdims=True)  # well inside the 30° covering cap
    assert (lattice.quantize(v + noise) == idx).all()


def test_cosines_lie_between_deep_hole_and_max():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5000, 24))
    v = lattice.index_to_vector(lattice.quantize(x)).astype(np.float64) / np.sqrt(32)
    cos = (x * v).sum(1) / np.linalg.norm(x, axis=1)
    assert cos.min() >= 1 / np.sqrt(2) - 1e-9 and cos.max() <= 0.95
    assert 0.75 < cos.mean() < 0.81


def test_ties_are_deterministic_across_runs_and_threads():
    import numba

    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, (4000, 24)).astype(np.float64)  # small integers: many exact ties
    x[0] = 0
    x[1] = np.eye(24)[0]  # a deep hole
    before = numba.get_num_threads()
    try:
        results = []
        for threads in (1, before):
            numba.set_num_threads(threads)
            results += [lattice.quantize(x), lattice.quantize(x[::-1])[::-1]]
    finally:
        numba.set_num_threads(before)
    for r in results[1:]:
        assert (r == results[0]).all()
    assert results[0][0] == 0  # documented answer for the zero vector


def test_scale_invariant_down_to_subnormals():
    """Power-of-two scaling of integer vectors is exact, so the answers (ties included) must not change."""
    rng = np.random.default_rng(6)
    x = rng.integers(-8, 9, (3000, 24)).astype(np.float64)
    ref = lattice.quantize(x)
    for k in (-1070, -1040, -1000, -300, 300, 1000):
        assert (lattice.quantize(np.ldexp(x, k)) == ref).all(), k


@pytest.mark.parametrize("bad, message", [
    (np.full((2, 24), np.nan), "NaN"),
    (np.r_[np.inf, np.zeros(23)][None], "Inf"),
    (np.zeros((3, 23)), "shape"),
    (np.array("abc"), "shape"),
])
def test_bad_input_raises_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        lattice.quantize(bad)


def test_index_bounds_checked():
    with pytest.raises(ValueError, match="196560"):
        lattice.index_to_vector([0, 196_560])
    with pytest.raises(ValueError, match="integers"):
        lattice.index_to_vector([0.5])
    with pytest.raises(ValueError, match="shape"):
        lattice.vector_to_index(np.zeros((2, 5), np.int8))

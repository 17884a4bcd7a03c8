"""Per-position token counts (format 3): the allocation, the count map's stream, the coders' presence masks, and
adaptive files end to end on the shipped default model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import leechcodec
from leechcodec import token_counts
from leechcodec import allocation as alloc
from leechcodec import bitstream, context, lattice
from leechcodec.cli import main
from leechcodec.container import decode_indices, encode_indices, parse
from leechcodec.encoder import encode_image, resolve_allocation
from leechcodec.conditional import OUTPUTS, ConditionalPrior
from leechcodec.entropy import DecodeError
from leechcodec.gains import GainPrior, gain_frequencies


def _prefix_counts(seed: int, k: int, h: int, w: int, n_min: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(n_min, k + 1, (h, w))


def test_allocate_meets_the_budget_and_favours_the_larger_error_drops():
    rng = np.random.default_rng(0)
    k, h, w = 6, 8, 10
    drops = rng.exponential(1.0, (k, h, w)) * np.linspace(0.2, 3, w)[None, None, :]  # right side gains more
    errors = np.concatenate([np.full((1, h, w), drops.sum(0).max() + 1), np.zeros((k, h, w))])
    errors[1:] = errors[0] - np.cumsum(drops, axis=0)
    costs = np.concatenate([np.zeros((1, h, w)), np.cumsum(np.full((k, h, w), 17.0), axis=0)])
    budget = costs[3].sum()
    n = alloc.allocate(errors, costs, budget, n_min=2)
    assert n.min() >= 2 and n.max() <= k
    assert 17.0 * n.sum() <= budget and 17.0 * n.sum() >= budget - 17.0 * h  # within a few tokens of the budget
    assert n[:, -2:].mean() > n[:, :2].mean()  # tokens go where they remove more error
    # a budget below n_min tokens everywhere still gives n_min; one above everything gives all tokens
    assert (alloc.allocate(errors, costs, 0.0, n_min=2) == 2).all()
    assert (alloc.allocate(errors, costs, costs[k].sum() + 1, n_min=1) == k).all()


def test_exchange_rate_is_the_smallest_lambda_within_the_budget():
    rng = np.random.default_rng(1)
    k, h, w = 5, 6, 7
    errors = np.concatenate([np.full((1, h, w), 50.0), 50.0 - np.cumsum(rng.exponential(2.0, (k, h, w)), axis=0)])
    costs = np.concatenate([np.zeros((1, h, w)), np.cumsum(rng.uniform(10, 20, (k, h, w)), axis=0)])
    budget = costs[2].sum()

    def spent(lam: float) -> float:
        n = (errors[1:] + lam * costs[1:]).argmin(axis=0) + 1
        return np.take_along_axis(costs, n[None], 0).sum()

    lam = alloc.exchange_rate(errors, costs, budget)
    assert lam > 0 and spent(lam) <= budget < spent(lam * 0.999)  # the smallest λ that fits, to bisection accuracy
    n = alloc.allocate(errors, costs, budget)
    assert (n == (errors[1:] + lam * costs[1:]).argmin(axis=0) + 1).all()
    assert alloc.exchange_rate(errors, costs, costs[k].sum() + 1) == 0.0  # every token fits: bits cost nothing


def test_counts_of_accepts_prefixes_only():
    idx = np.arange(24).reshape(3, 2, 4)
    assert (token_counts.counts_of(idx) == 3).all()
    idx[2, 0, 0] = idx[1, 0, 1] = idx[2, 0, 1] = token_counts.ABSENT
    assert token_counts.counts_of(idx)[0, :2].tolist() == [2, 1]
    idx[0, 1, 1] = token_counts.ABSENT  # a hole before a present token
    with pytest.raises(ValueError, match="absent tokens must come after"):
        token_counts.counts_of(idx)


@pytest.mark.parametrize("k,h,w", [(12, 9, 11), (2, 3, 3), (5, 1, 1), (4, 32, 48)])
def test_count_map_round_trip_and_bound(k, h, w):
    counts = _prefix_counts(k * h, k, h, w)
    words = token_counts.encode_counts(counts, k)
    assert (token_counts.decode_counts(words, k, h, w) == counts).all()
    info = token_counts.count_bits(counts, k)
    head = 32 * -(-k // 2)
    assert info - 32 <= 32 * len(words) - head <= 1.01 * info + 64


def test_bad_count_maps_are_refused():
    with pytest.raises(ValueError, match=r"\[1, 4\]"):
        token_counts.encode_counts(np.array([[0, 1]]), 4)
    with pytest.raises(ValueError, match="at least 2"):
        token_counts.encode_counts(np.ones((2, 2), np.int64), 1)
    with pytest.raises(DecodeError, match="at least 2"):
        token_counts.decode_counts(np.ones(3, np.uint32), 1, 2, 2)
    with pytest.raises(DecodeError, match="zero"):
        token_counts.decode_counts(np.zeros(3, np.uint32), 4, 2, 2)
    with pytest.raises(DecodeError, match="shorter"):
        token_counts.decode_counts(np.zeros(1, np.uint32), 4, 2, 2)


def test_conditional_prior_skips_absent_tokens_exactly(synthetic_prior):
    rng = np.random.default_rng(0)
    weights = rng.integers(-40, 41, (2, len(context.PASSES), OUTPUTS, context.NUM_FEATURES), dtype=np.int16)
    cp = ConditionalPrior(weights, synthetic_prior.freqs)
    idx = np.stack([rng.choice(lattice.NUM_POINTS, size=(9, 11), p=synthetic_prior.probabilities(g))
                    for g in range(2)])
    present = token_counts.present_mask(_prefix_counts(1, 2, 9, 11), 2)
    sparse = np.where(present, idx, token_counts.ABSENT)
    words, info = cp.encode(sparse)
    assert (cp.decode(words, 2, 9, 11, present) == sparse).all()
    assert info - 32 <= 32 * len(words) <= 1.01 * info + 64
    assert info < cp.encode(idx)[1]  # fewer tokens, fewer bits


def test_gain_prior_skips_absent_symbols_exactly():
    rng = np.random.default_rng(3)
    sym = [np.clip(rng.integers(0, 8, (1, 6, 7)) + np.arange(4)[:, None, None] % 2, 0, 7) for _ in range(10)]
    prior = GainPrior(gain_frequencies(sym, 8, subspaces=2), subspaces=2)
    present = token_counts.present_mask(_prefix_counts(2, 4, 6, 7), 4)
    s = np.where(present, sym[0], token_counts.ABSENT)
    words = prior.encode(s)
    assert (prior.decode(words, 4, 6, 7, present) == s).all()
    assert prior.information_bits(s) == pytest.approx(prior.symbol_bits(s)[present].sum())
    assert prior.information_bits(s) < prior.information_bits(sym[0])


def test_header_version_3_round_trips_and_needs_the_conditional_prior():
    h = bitstream.Header("m", b"w" * 8, 20, 30, 4, 4 * 2 * 2, 3, b"p" * 8, True)
    back, _ = bitstream.unpack(bitstream.pack(h, np.arange(3, dtype=np.uint32)))
    assert back == h and back.version == 3 and back.describe()["token_counts"] == "per position"
    with pytest.raises(ValueError, match="conditional prior"):
        bitstream.pack(bitstream.Header("m", b"w" * 8, 20, 30, 4, 16, 3, None, True), np.arange(3, dtype=np.uint32))


def test_adaptive_file_round_trips_and_spends_tokens_unevenly(default_model, photo):
    q = default_model.config.subspaces + 2  # above the subspace count: room to move tokens
    enc = encode_image(default_model, photo, quality=q, allocation="adaptive")
    header, m, indices, gains = parse(enc.data)
    assert header.version == 3 and (indices == enc.indices).all() and (gains == enc.gains).all()
    counts = token_counts.counts_of(indices)
    k = default_model.groups_for(q)
    assert counts.min() >= 1 and counts.max() > k and counts.min() < k
    # the decoded image is the model's decode of the present tokens, absent ones as zeros
    decoded = decode_indices(m, indices, header.height, header.width, gains)
    codes = default_model.net.quantizer.indices_to_codes(torch.from_numpy(indices).clamp_min(0)[None])
    codes = codes * default_model.net.gain_values(torch.from_numpy(gains).clamp_min(0)[None])
    codes = codes * torch.from_numpy(indices >= 0).float()[None].repeat_interleave(lattice.DIM, dim=1)
    x_hat = default_model.net.synthesis(default_model.net.assemble(codes))
    ref = x_hat[0, :, : header.height, : header.width].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(decoded, ref)
    # real bits bound the information content (three streams and two length words of slack)
    assert enc.information_bits - 32 <= 8 * len(enc.data) <= 1.01 * enc.information_bits + 8 * 200


def test_adaptive_equals_uniform_where_there_is_no_room(default_model, photo):
    """At quality 1 every position keeps its one token: the same file as uniform."""
    q = 1
    assert encode_image(default_model, photo, quality=q, allocation="adaptive").data == encode_image(
        default_model, photo, quality=q, allocation="uniform").data


def test_auto_allocation_is_the_default_and_adaptive_where_the_model_allows(default_model, photo):
    assert resolve_allocation(default_model) == "adaptive"  # the shipped default: gain–shape with its context
    assert resolve_allocation(default_model, "static") == "uniform"
    assert resolve_allocation(default_model, "auto", "uniform") == "uniform"
    plain = dataclasses.replace(default_model, context=None, context_hash=None)
    assert resolve_allocation(plain) == "uniform" and resolve_allocation(plain, "auto", "adaptive") == "adaptive"
    with pytest.raises(ValueError, match="unknown allocation"):
        resolve_allocation(default_model, "auto", "greedy")
    q = default_model.config.subspaces + 1
    assert encode_image(default_model, photo, quality=q).data == encode_image(default_model, photo, quality=q,
                                                                      allocation="adaptive").data
    assert bitstream.unpack(leechcodec.compress(photo, quality=q))[0].version == 3
    assert bitstream.unpack(leechcodec.compress(photo, quality=2))[0].version == 3  # below S too: tokens can move
    # a model without the conditional prior writes uniform files under the default, not an error
    assert bitstream.unpack(encode_image(plain, photo, quality=q).data)[0].version == 1


def test_adaptive_allocation_errors(default_model, photo):
    with pytest.raises(ValueError, match="unknown allocation"):
        encode_image(default_model, photo, quality=5, allocation="greedy")
    with pytest.raises(ValueError, match="conditional prior"):
        encode_image(default_model, photo, quality=5, prior="static", allocation="adaptive")
    enc = encode_image(default_model, photo, quality=6, allocation="adaptive")
    with pytest.raises(ValueError, match="conditional prior"):
        encode_indices(default_model, enc.indices, *photo.shape[:2], prior="static", gains=enc.gains)
    gains = enc.gains.copy()
    gains[enc.gains == token_counts.ABSENT] = 0
    with pytest.raises(ValueError, match="absent exactly where"):
        encode_indices(default_model, enc.indices, *photo.shape[:2], prior="auto", gains=gains)


def test_refinement_keeps_the_adaptive_counts_and_lowers_the_error(default_model, photo):
    q = default_model.config.subspaces + 2
    plain = encode_image(default_model, photo, quality=q, allocation="adaptive")
    refined = encode_image(default_model, photo, quality=q, refine=3, allocation="adaptive")
    assert (token_counts.counts_of(refined.indices) == token_counts.counts_of(plain.indices)).all()
    assert (refined.indices != plain.indices).any()
    header, m, indices, _ = parse(refined.data)
    assert header.version == 3 and (indices == refined.indices).all()
    err = lambda enc: ((decode_indices(m, enc.indices, *photo.shape[:2], enc.gains).astype(float) - photo) ** 2).mean()
    assert err(refined) < err(plain)


def test_cli_encode_adaptive_by_default_and_info(tmp_path, photo):
    from PIL import Image

    png = tmp_path / "p.png"
    Image.fromarray(photo).save(png)
    r = CliRunner().invoke(main, ["encode", str(png), "-q", "6", "-o", str(tmp_path / "u.lsq"), "--allocation",
                                  "uniform"])
    assert r.exit_code == 0 and "uniform token counts" in r.output, r.output
    r = CliRunner().invoke(main, ["encode", str(png), "-q", "6"])  # the default: allocation auto
    assert r.exit_code == 0 and "adaptive token counts" in r.output, r.output
    r = CliRunner().invoke(main, ["info", str(png.with_suffix(".lsq"))])
    assert r.exit_code == 0 and "per position" in r.output
    r = CliRunner().invoke(main, ["decode", str(png.with_suffix(".lsq")), "-o", str(tmp_path / "d.png")])
    assert r.exit_code == 0 and Image.open(tmp_path / "d.png").size == (photo.shape[1], photo.shape[0])

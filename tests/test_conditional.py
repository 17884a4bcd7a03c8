"""Entropy model v2 (conditional prior): exact round trips, rate bounds, exactness of the factorization,
causality of the context, determinism, and format compatibility."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import leechcodec
from leechcodec import bitstream, compat, context, lattice
from leechcodec.container import parse
from leechcodec.encoder import encode_image
from leechcodec.conditional import OUTPUTS, ConditionalPrior
from leechcodec.entropy import DecodeError

ROOT = Path(__file__).resolve().parents[1]
V1_FILE = Path(__file__).parent / "data" / "gradient-v1.lsq"  # written by commit 1dee6e9 (format 1 only), q2


def small_weights(scale: int = 40, groups: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(-scale, scale + 1, (groups, len(context.PASSES), OUTPUTS, context.NUM_FEATURES), dtype=np.int16)


def sample(prior, shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(lattice.NUM_POINTS, size=shape, p=prior.probabilities(g)) for g in range(2)])


def test_round_trip_and_rate_bound(synthetic_prior):
    cp = ConditionalPrior(small_weights(), synthetic_prior.freqs)
    for shape in ((9, 11), (1, 1), (2, 7)):
        idx = sample(synthetic_prior, shape)
        words, info = cp.encode(idx)
        assert (cp.decode(words, 2, *shape) == idx).all()
        assert info - 32 <= 32 * len(words) <= 1.01 * info + 64


def test_zero_tilts_are_exactly_the_static_prior(synthetic_prior):
    """With zero weights the product of the steps is the static prior: same information content."""
    cp = ConditionalPrior(np.zeros_like(small_weights()), synthetic_prior.freqs)
    idx = sample(synthetic_prior, (8, 8), seed=1)
    assert cp.information_bits(idx) == pytest.approx(synthetic_prior.information_bits(idx), rel=1e-9)


def test_extreme_weights_still_round_trip(synthetic_prior):
    """Tilts far beyond the coder's resolution (clamped weights) cannot make a symbol uncodable."""
    w = np.where(small_weights() > 0, 32767, -32767).astype(np.int16)
    cp = ConditionalPrior(w, synthetic_prior.freqs)
    idx = sample(synthetic_prior, (5, 6), seed=2)
    words, _ = cp.encode(idx)
    assert (cp.decode(words, 2, 5, 6) == idx).all()
    assert 32 * len(words) <= 4 * 24 * idx.size + 64  # at most 4 coded symbols of ≤ 24 bits per token


@pytest.mark.parametrize("subspaces", [2, 1], ids=["one-stage", "two-stages"])
@pytest.mark.parametrize("g", [0, 1])
def test_features_read_only_what_the_decoder_already_has(g, subspaces):
    rng = np.random.default_rng(3)
    h, w = 7, 9
    vec = lattice.index_to_vector(rng.integers(0, lattice.NUM_POINTS, (2, h, w)))
    for p in range(len(context.PASSES)):
        ref = context.features(vec, g, p, subspaces)
        garbled = vec.copy()
        garbled[g + 1:] = 99  # later groups
        for later in range(p, len(context.PASSES)):  # this and later passes of group g
            ys, xs = context.pass_positions(h, w, later)
            garbled[g, ys, xs] = -99
        assert (context.features(garbled, g, p, subspaces) == ref).all()
    # every position is coded in exactly one pass
    cover = np.zeros((h, w), int)
    for p in range(len(context.PASSES)):
        ys, xs = context.pass_positions(h, w, p)
        cover[ys, xs] += 1
    assert (cover == 1).all()


@pytest.mark.parametrize("subspaces", [2, 1], ids=["one-stage", "two-stages"])
def test_tilts_are_the_linear_map_of_the_features(synthetic_prior, subspaces):
    """The fused kernel equals floor(features · weights / 2^SHIFT) computed the plain way, in exact integers."""
    from leechcodec.conditional import SHIFT

    w = small_weights(scale=32767)
    cp = ConditionalPrior(w, synthetic_prior.freqs, subspaces)
    vec = lattice.index_to_vector(np.random.default_rng(4).integers(0, lattice.NUM_POINTS, (2, 6, 7)))
    for g in range(2):
        for p in range(len(context.PASSES)):
            plain = context.features(vec, g, p, subspaces).astype(np.int64) @ w[g, p].T.astype(np.int64)
            assert (cp.tilts(vec, g, p) == plain >> SHIFT).all()


def test_earlier_stage_slots_hold_the_refined_token():
    """With residual stages, a token sees the token of its subspace's earlier stage at its own position (vector and
    |vector|); in a one-stage model those slots stay empty."""
    rng = np.random.default_rng(5)
    vec = lattice.index_to_vector(rng.integers(0, lattice.NUM_POINTS, (2, 5, 6)))
    first = compat.LEGACY_SLOTS * 2 * lattice.DIM  # the first earlier-stage slot (k = 1)
    for p in range(len(context.PASSES)):
        ys, xs = context.pass_positions(5, 6, p)
        staged = context.features(vec, 1, p, subspaces=1)[:, first: first + 2 * lattice.DIM]
        assert (staged[:, : lattice.DIM] == vec[0, ys, xs]).all()
        assert (staged[:, lattice.DIM:] == np.abs(vec[0, ys, xs])).all()
        assert not context.features(vec, 1, p, subspaces=2)[:, first:-1].any()
        assert not context.features(vec, 0, p, subspaces=1)[:, first:-1].any()  # no earlier stage


def test_legacy_weights_code_as_before(synthetic_prior):
    """A prior fitted before the earlier-stage slots (LEGACY_NUM_FEATURES) codes exactly as the same weights with
    zeros on those slots, whatever the model's stages; nonzero stage weights round-trip and change the code."""
    legacy = small_weights()[..., : compat.LEGACY_NUM_FEATURES].copy()
    legacy[..., -1] = small_weights()[..., -1]
    padded = np.zeros_like(small_weights())
    padded[..., : compat.LEGACY_SLOTS * 2 * lattice.DIM] = legacy[..., :-1]
    padded[..., -1] = legacy[..., -1]
    idx = sample(synthetic_prior, (5, 6), seed=6)
    words, bits = ConditionalPrior(legacy, synthetic_prior.freqs, 1).encode(idx)
    assert np.array_equal(ConditionalPrior(padded, synthetic_prior.freqs, 1).encode(idx)[0], words)
    assert np.array_equal(ConditionalPrior(legacy, synthetic_prior.freqs).encode(idx)[0], words)
    staged = ConditionalPrior(small_weights(), synthetic_prior.freqs, 1)
    words2, bits2 = staged.encode(idx)
    assert (staged.decode(words2, 2, 5, 6) == idx).all() and bits2 != bits


def _context_file(tmp_path, blob) -> Path:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(blob, buf)
    data = buf.getvalue()
    path = tmp_path / f"m-ctx-{hashlib.sha256(data).hexdigest()[:8]}.pt"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("fmt", [1, 2])
def test_context_file_formats_load_and_mismatched_shapes_are_refused(default_model, tmp_path, fmt):
    """Format 1 files hold LEGACY_NUM_FEATURES features, format 2 files NUM_FEATURES; either loads, and a file whose
    weights do not have its format's shape is refused with a clear error."""
    import torch

    from leechcodec.zoo import ModelError, load_context_file

    base = default_model.weights_hash.hex()
    groups = default_model.config.groups
    shape = {1: compat.LEGACY_NUM_FEATURES, 2: context.NUM_FEATURES}
    for features, ok in ((shape[fmt], True), (shape[3 - fmt], False)):
        w = torch.zeros(groups, len(context.PASSES), OUTPUTS, features, dtype=torch.int16)
        blob = {"format": fmt, "model_id": default_model.model_id, "base_sha256": base, "weights": w}
        path = _context_file(tmp_path, blob)
        if ok:
            assert load_context_file(path, default_model).context.subspaces == default_model.config.subspaces
        else:
            with pytest.raises(ModelError, match=f"format {fmt} has {shape[fmt]} features"):
                load_context_file(path, default_model)


def test_garbage_payload_decodes_or_fails_cleanly(synthetic_prior):
    cp = ConditionalPrior(small_weights(), synthetic_prior.freqs)
    for seed in range(5):
        words = np.random.default_rng(seed).integers(0, 2**32, 7, dtype=np.uint64).astype(np.uint32)
        try:
            idx = cp.decode(words, 2, 4, 5)
        except DecodeError:
            continue
        assert idx.shape == (2, 4, 5) and idx.min() >= 0 and idx.max() < lattice.NUM_POINTS


def test_bad_weights_rejected(synthetic_prior):
    with pytest.raises(ValueError, match="integers"):
        ConditionalPrior(np.zeros((2, 3, OUTPUTS, 5), np.int16), synthetic_prior.freqs)
    with pytest.raises(ValueError, match="groups"):
        ConditionalPrior(small_weights(groups=3), synthetic_prior.freqs)
    with pytest.raises(ValueError, match="subspaces"):
        ConditionalPrior(small_weights(), synthetic_prior.freqs, subspaces=3)


# ---------------------------------------------------------------------------------------------- shipped model
needs_context = pytest.mark.skipif(leechcodec.load_model().context is None,
                                   reason="the default model ships no conditional prior")

_THREADS_SCRIPT = """
import hashlib, numpy as np, leechcodec
m = leechcodec.load_model()
idx = np.random.default_rng(5).integers(0, 196560, (3, 6, 10))
print(hashlib.sha256(m.context.encode(idx)[0].tobytes()).hexdigest())
"""


@needs_context
def test_same_bits_at_any_thread_count(default_model):
    idx = np.random.default_rng(5).integers(0, 196560, (3, 6, 10))
    here = hashlib.sha256(default_model.context.encode(idx)[0].tobytes()).hexdigest()
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == here


@needs_context
def test_conditional_files_are_format_2_and_cost_less(default_model, photo):
    q = default_model.qualities
    ctx = encode_image(default_model, photo, quality=q)
    static = encode_image(default_model, photo, quality=q, prior="static")
    h2, _ = bitstream.unpack(ctx.data)
    h1, _ = bitstream.unpack(static.data)
    assert (h2.version, h1.version) == (2, 1) and h2.prior_hash == default_model.context_hash
    assert (parse(ctx.data)[2] == parse(static.data)[2]).all()  # the same tokens, coded two ways
    assert np.array_equal(np.asarray(leechcodec.decompress(ctx.data)), np.asarray(leechcodec.decompress(static.data)))
    # the trained context model must pay off on a natural picture: at least 4% fewer bits at the top quality. The
    # default's prior saves 7.7% on held-out training images over all groups and 4.8% on this crop of the sample
    # photo (6,342 against 6,660 bits), much of which is flat background
    assert ctx.information_bits < 0.96 * static.information_bits, (ctx.information_bits, static.information_bits)


@needs_context
def test_wrong_conditional_prior_is_refused(photo):
    data = leechcodec.compress(photo, quality=1)
    header, words = bitstream.unpack(data)
    other = bitstream.Header(header.model_id, header.weights_hash, header.height, header.width, header.groups,
                             header.symbols, header.words, b"\1" * 8)
    with pytest.raises(bitstream.FormatError, match="conditional prior"):
        leechcodec.decompress(bitstream.pack(other, words))


def test_version_1_files_still_decode(default_model):
    """A file written before format 2 existed decodes, and re-encoding its tokens with the static prior gives the
    same bytes."""
    data = V1_FILE.read_bytes()
    header, model, indices, gains = parse(data)
    assert header.version == 1
    from leechcodec.container import encode_indices

    assert encode_indices(model, indices, header.height, header.width, prior="static",
                          gains=gains).data == data
    assert leechcodec.decompress(data).size == (header.width, header.height)


def test_power_table_is_each_power_of_two_correctly_rounded():
    """The tilts' 2^(r/1024) table (built by repeated multiplication) equals the direct 40-digit 2^(r/1024) of
    every entry, rounded to float64: the probabilities depend on its exact bits."""
    from decimal import Decimal, localcontext

    from leechcodec import conditional

    with localcontext() as ctx:
        ctx.prec = 40
        direct = [float(Decimal(2) ** (Decimal(r) / conditional.LOG_UNIT)) for r in range(conditional.LOG_UNIT)]
    assert conditional._FRAC.tolist() == direct


def test_token_blocks_keep_the_earlier_stage_slots_inside_each_block():
    """In blocks of 6 tokens over 2 subspaces, the earlier-stage slots of a token read its own block's earlier stages
    only: a block's first-stage tokens have none."""
    sources = [context.slot_sources(g, 0, 2, 6)[1][-len(context.EARLIER_STAGES):].tolist() for g in range(12)]
    assert sources == [[-1, -1], [-1, -1], [0, -1], [1, -1], [2, 0], [3, 1],
                       [-1, -1], [-1, -1], [6, -1], [7, -1], [8, 6], [9, 7]]
    assert sources[:6] == [context.slot_sources(g, 0, 2)[1][-2:].tolist() for g in range(6)]

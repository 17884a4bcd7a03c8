"""Effort levels (leechcodec.effort): a higher level never ends at a higher rate–distortion cost J than a lower one,
every level writes ordinary files that any decoder reads, rate control keeps its target, and bad settings are refused
cleanly. Also the hand-written Adam of the refinement against torch.optim.Adam."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from leechcodec import allocation as alloc
from leechcodec import effort, token_counts
from leechcodec.cli import main
from leechcodec.codec import compress, decompress
from leechcodec.container import encode_indices
from leechcodec.encoder import encode_at_rate, encode_image, token_price
from leechcodec.pixels import image_to_tensor
from leechcodec.refine import _Adam


def _search_inputs(model, photo, quality):
    x = image_to_tensor(photo, model.config.stride, "cpu")
    indices, gains, errors = model.net.encode_all_with_errors(x, model.allocation_weights)  # as the encoder
    costs = alloc.prefix_costs(model.prior, model.gains, indices[0].numpy(), gains[0].numpy())
    budget = costs[model.groups_for(quality)].sum()
    counts = alloc.allocate(errors.numpy(), costs, budget)
    bracket = tuple(alloc.allocate(errors.numpy(), costs, budget * f) for f in (0.8, 1.25))
    return x, counts, bracket


def test_higher_effort_never_costs_more(default_model, photo):
    x, counts, bracket = _search_inputs(default_model, photo, 4)
    price = token_price(default_model)
    found = [effort.search(default_model, x, counts, bracket, level, price) for level in sorted(effort.LEVELS)]
    assert len({f.lam for f in found}) == 1 and found[0].lam > 0  # one exchange rate for the image
    costs = [f.cost for f in found]
    assert all(b <= a for a, b in zip(costs, costs[1:])), costs
    assert costs[-1] < costs[0]  # the search finds something on a photo
    # level 0 is the plain encoder's file
    plain = encode_image(default_model, photo, quality=4)
    np.testing.assert_array_equal(found[0].indices, plain.indices)
    # the cost is what the file is: its information content prices the bits
    last = found[-1]
    enc = encode_indices(default_model, last.indices, *photo.shape[:2], gains=last.gains)
    assert price(last.indices, last.gains) == pytest.approx(enc.information_bits)


def test_levels_extend_each_other():
    """Each level runs the stages of the level below first: what makes J monotone across levels."""
    levels = [effort.LEVELS[k] for k in sorted(effort.LEVELS)]
    assert all(b[:len(a)] == a for a, b in zip(levels, levels[1:]))
    assert effort.MAX_EFFORT == len(levels) - 1


def test_every_level_writes_files_any_decoder_reads(default_model, photo):
    plain = compress(photo, quality=3)
    searched = compress(photo, quality=3, effort=2)
    assert searched[:8] == plain[:8]  # same magic and format version
    decoded = np.asarray(decompress(searched))
    assert decoded.shape == photo.shape
    enc = encode_image(default_model, photo, quality=3, effort=2)
    assert enc.data == searched and token_counts.counts_of(enc.indices).min() >= 1


def test_uniform_allocation_keeps_its_counts(default_model, photo):
    enc = encode_image(default_model, photo, quality=3, allocation="uniform", effort=2)
    assert enc.token_counts == "uniform" and enc.indices.shape[0] == default_model.groups_for(3)


@pytest.mark.parametrize("allocation", ["adaptive", "uniform"])
def test_rate_control_with_effort_stays_within_the_target(default_model, photo, allocation):
    target = 0.6
    enc = encode_at_rate(default_model, photo, target, allocation=allocation, effort=1)
    assert enc.bpp <= target


def test_bad_effort_is_refused(default_model, photo):
    for bad in (-1, 4, 1.5, True, "2"):
        with pytest.raises(ValueError, match="effort"):
            encode_image(default_model, photo, effort=bad)
    with pytest.raises(ValueError, match="alternatives"):
        encode_image(default_model, photo, effort=1, refine=3)


def test_cli_effort(tmp_path, photo):
    src = tmp_path / "p.png"
    Image.fromarray(photo).save(src)
    runner = CliRunner()
    r = runner.invoke(main, ["encode", str(src), "-o", str(tmp_path / "p.lsq"), "--effort", "1", "-q", "2"])
    assert r.exit_code == 0 and "effort 1" in r.output
    assert (tmp_path / "p.lsq").read_bytes() == compress(photo, quality=2, effort=1)
    r = runner.invoke(main, ["encode", str(src), "-o", str(tmp_path / "x.lsq"), "--effort", "9"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    r = runner.invoke(main, ["encode", str(src), "-o", str(tmp_path / "x.lsq"), "--effort", "1", "--refine", "2"])
    assert r.exit_code == 1 and "alternatives" in r.output and not (tmp_path / "x.lsq").exists()


def test_adam_matches_torch():
    torch.manual_seed(0)
    ours, theirs = torch.randn(50, requires_grad=True), None
    theirs = ours.detach().clone().requires_grad_(True)
    adam, reference = _Adam(ours), torch.optim.Adam([theirs], lr=0.01)
    for step in range(5):
        lr = 0.01 * (1 - step / 10)
        for p in (ours, theirs):
            p.grad = None
            (p ** 3).sum().backward()
        adam.step(lr)
        reference.param_groups[0]["lr"] = lr
        reference.step()
    torch.testing.assert_close(ours, theirs)


def test_direction_only_model_searches_with_uniform_counts(photo):
    """leech-gdn-s16g12 has no gain levels: its files keep uniform counts, and the search refines them."""
    from leechcodec.zoo import load_model

    model = load_model("leech-gdn-s16g12")
    enc = encode_image(model, photo, quality=3, effort=1)
    assert enc.gains is None and enc.token_counts == "uniform"
    assert np.asarray(decompress(enc.data)).shape == photo.shape

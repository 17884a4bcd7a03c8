"""Encoder-side latent refinement (leechcodec.refine): the plain tokens at zero steps, never worse than them, the
decoder's own error under tiling, ordinary files that decode anywhere, and clean refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from leechcodec import model as model_module
from leechcodec import refine as refine_module
from leechcodec.cli import main
from leechcodec.pixels import image_to_tensor
from leechcodec.codec import decompress
from leechcodec.container import decode_indices
from leechcodec.encoder import encode_image
from leechcodec.refine import refine_tokens


def _mse(net, x, indices, gains) -> float:
    """The decoder's error (clamped, before 8-bit rounding), as refine_tokens measures it."""
    return torch.mean((net.decode(indices, gains) - x) ** 2).item()


def test_zero_steps_are_the_plain_encoder(default_model, photo):
    x = image_to_tensor(photo, default_model.config.stride, "cpu")
    for k in (1, default_model.config.groups):
        r = refine_tokens(default_model.net, x, k, 0)
        indices, gains = default_model.net.encode(x, k)
        assert torch.equal(r.indices, indices) and torch.equal(r.gains, gains)
        assert r.mse == r.plain_mse == pytest.approx(_mse(default_model.net, x, indices, gains), rel=1e-5)


def test_refinement_lowers_the_decoded_error(default_model, photo):
    x = image_to_tensor(photo, default_model.config.stride, "cpu")
    net = default_model.net
    for k in (2, 4):
        r = refine_tokens(net, x, k, 8)
        assert r.indices.shape == (1, k, x.shape[2] // 16, x.shape[3] // 16)
        # the reported error is the decoder's, and it is below the plain encoder's on a trained model
        assert r.mse == pytest.approx(_mse(net, x, r.indices, r.gains), rel=1e-5)
        assert r.mse < r.plain_mse
    assert all(p.requires_grad for p in net.parameters())  # the frozen weights are handed back trainable


def test_direction_only_models_refine_too(photo):
    """A model without gain levels (leech-gdn-s16g12): zero steps give its encoder's indices, refinement no worse."""
    from leechcodec.zoo import load_model

    m = load_model("leech-gdn-s16g12")
    x = image_to_tensor(photo, m.config.stride, "cpu")
    assert torch.equal(refine_tokens(m.net, x, 3, 0).indices, m.net.encode(x, 3)[0])
    r = refine_tokens(m.net, x, 3, 4)
    assert r.gains is None and r.mse <= r.plain_mse
    assert r.mse == pytest.approx(_mse(m.net, x, r.indices, None), rel=1e-5)


def test_tiled_refinement_measures_the_tiled_decoder(default_model, photo, monkeypatch):
    """With tiles of 2 × 2 latent positions (the photo's 5 × 6 latent makes 9 tiles) the objective is still exactly
    the error of what the (equally tiled) decoder outputs."""
    for module in (model_module, refine_module):
        monkeypatch.setattr(module, "DECODE_TILE", 2)
        monkeypatch.setattr(module, "DECODE_MARGIN", 1)
    x = image_to_tensor(photo, default_model.config.stride, "cpu")
    r = refine_tokens(default_model.net, x, 4, 4)
    assert r.mse <= r.plain_mse
    assert r.mse == pytest.approx(_mse(default_model.net, x, r.indices, r.gains), rel=1e-5)


def test_refined_files_are_ordinary_files(default_model, photo):
    enc = encode_image(default_model, photo, quality=3, refine=4)
    assert 8 * len(enc.data) >= enc.information_bits
    decoded = np.asarray(decompress(enc.data))
    assert np.array_equal(decoded, decode_indices(default_model, enc.indices, *photo.shape[:2], enc.gains))
    plain = encode_image(default_model, photo, quality=3)
    assert enc.indices.shape == plain.indices.shape  # the same number of tokens: refinement is not a rate control
    with pytest.raises(ValueError, match="refine"):
        encode_image(default_model, photo, quality=3, refine=-1)


def test_cli_refine(tmp_path, photo):
    png = tmp_path / "photo.png"
    Image.fromarray(photo).save(png)
    runner = CliRunner()
    r = runner.invoke(main, ["encode", str(png), "-q", "2", "--refine", "3"])
    assert r.exit_code == 0, r.output
    assert runner.invoke(main, ["decode", str(png.with_suffix(".lsq")), "-o", str(tmp_path / "d.png")]).exit_code == 0
    r = runner.invoke(main, ["eval", str(tmp_path), "--refine", "2", "--update-registry", "--compare", ""])
    assert r.exit_code == 1 and "update-registry" in r.output and "Traceback" not in r.output

"""bin/transform_ceiling.py: its token columns are exactly the codec's uniform files, optimizing the continuous
latent lowers the decoder's error, and bad arguments get one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from leechcodec.codec import _to_tensor, decode_indices, encode_image, parse
from leechcodec.metrics import psnr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bin"))
import transform_ceiling  # noqa: E402


def test_token_columns_are_the_psnr_of_the_uniform_files(default_model, photo):
    k_of = {default_model.groups_for(q): q for q in range(1, default_model.qualities + 1)}
    tokens = sorted(k_of)[:2] + [max(k_of)]
    row = transform_ceiling.ceiling_row(default_model.net, photo, tokens)
    for k in tokens:
        enc = encode_image(default_model, photo, k_of[k], allocation="uniform")
        header, m, indices, gains = parse(enc.data)
        decoded = decode_indices(m, indices, header.height, header.width, gains)
        assert row[f"k={k}"] == pytest.approx(psnr(photo, decoded), abs=1e-9)
    assert row["unquantized"] > row[f"k={max(k_of)}"]  # the trained decoder is best on its unquantized latent


def test_optimizing_the_latent_lowers_the_decoders_error(default_model, photo):
    net = default_model.net
    x = _to_tensor(photo, net.stride, "cpu")
    with torch.no_grad():
        start = net.analysis(x).float() / 24 ** 0.5
    z = transform_ceiling.optimized_latent(net, x, start, 6)
    with torch.no_grad():
        before, after = (torch.mean((net.synthesis(v).clamp(0, 1) - x) ** 2).item() for v in (start, z))
    assert after < before
    assert torch.equal(transform_ceiling.optimized_latent(net, x, start, 0), start)
    # the network is not trained along: no gradients reach its parameters, which are handed back trainable
    assert all(p.requires_grad and p.grad is None for p in net.parameters())


@pytest.mark.parametrize("args, message", [(["--tokens", "13"], "--tokens must lie in 1..12"),
                                            (["--optimize", "-1"], "--optimize must be ≥ 0"),
                                            (["-m", "no-such-model"], "no-such-model")])
def test_bad_arguments_exit_with_one_line(tmp_path, photo, args, message):
    Image.fromarray(photo).save(tmp_path / "a.png")
    with pytest.raises(SystemExit) as e:
        transform_ceiling.main([str(tmp_path), *args])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_an_empty_folder_is_refused(tmp_path):
    with pytest.raises(SystemExit) as e:
        transform_ceiling.main([str(tmp_path)])
    assert "no readable images" in str(e.value)
    assert not any(tmp_path.iterdir())

"""The codec end to end on the shipped default model: round trips, sizes, rate bounds, identity checks."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
import torch
from PIL import Image

import leechcodec
from leechcodec import bitstream
from leechcodec.container import decode_indices, parse
from leechcodec.encoder import encode_image
from leechcodec.metrics import psnr


def test_decompress_equals_model_decode_bit_for_bit(default_model, photo):
    data = leechcodec.compress(photo, quality=2, allocation="uniform")  # adaptive files: test_allocation.py
    out = np.asarray(leechcodec.decompress(data))
    enc = encode_image(default_model, photo, quality=2, allocation="uniform")
    assert enc.data == data  # encoding is deterministic
    _, _, indices, gains = parse(data)
    assert (indices == enc.indices).all()  # the decoder recovers the encoder's indices exactly
    assert (gains is None and enc.gains is None) or (gains == enc.gains).all()  # and gain symbols
    x = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)[None].float() / 255
    direct = default_model.net.decode(*default_model.net.encode(torch.nn.functional.pad(
        x, (0, -photo.shape[1] % 16, 0, -photo.shape[0] % 16), mode="replicate"), enc.indices.shape[0]))
    direct = direct[0, :, :photo.shape[0], :photo.shape[1]].mul(255).round().byte().permute(1, 2, 0).numpy()
    assert (out == direct).all()


@pytest.mark.parametrize("size", [(1, 1), (53, 67), (3, 2000), (17, 16)])
def test_odd_sizes_come_back_at_their_size(size):
    h, w = size
    rgb = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = leechcodec.decompress(leechcodec.compress(rgb, quality=1))
    assert img.size == (w, h) and img.mode == "RGB"


def test_real_bits_bound_information_content(default_model, photo):
    for q in (1, default_model.qualities):
        enc = encode_image(default_model, photo, quality=q)
        _, words = bitstream.unpack(enc.data)
        real = 32 * len(words)
        slack = 32 if enc.gains is None else 3 * 32  # a gain–shape file: two streams and a length word
        assert enc.information_bits - 32 <= real <= 1.01 * enc.information_bits + slack


def test_rate_rises_and_quality_improves_with_quality_level(default_model, photo):
    sizes, psnrs = [], []
    for q in range(1, default_model.qualities + 1):
        enc = encode_image(default_model, photo, quality=q)
        h, m, idx, gains = parse(enc.data)
        sizes.append(len(enc.data))
        psnrs.append(psnr(photo, decode_indices(m, idx, h.height, h.width, gains)))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    # a trained model: more tokens give a better picture, and well above what an untrained network gives
    assert psnrs[-1] > psnrs[0] and psnrs[-1] > 18, psnrs


def test_inputs_of_every_kind(tmp_path, photo):
    img = Image.fromarray(photo)
    ref = leechcodec.compress(photo, quality=1)
    path = tmp_path / "a.png"
    img.save(path)
    assert leechcodec.compress(path, quality=1) == ref
    assert leechcodec.compress(img, quality=1) == ref
    for mode in ("L", "P", "RGBA", "I;16", "CMYK"):
        converted = img.convert(mode) if mode != "I;16" else Image.fromarray(
            np.asarray(img.convert("L")).astype(np.uint16) * 257)
        with pytest.warns(UserWarning) if mode == "RGBA" else nullcontext():
            data = leechcodec.compress(converted, quality=1)
        assert leechcodec.decompress(data).size == img.size


def test_exif_orientation_is_applied(tmp_path, photo):
    img = Image.fromarray(photo)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif, quality=95)
    out = leechcodec.decompress(leechcodec.compress(path, quality=1))
    assert out.size == (photo.shape[0], photo.shape[1])


def test_unknown_quality_and_model(photo):
    with pytest.raises(ValueError, match="valid qualities are 1.."):
        leechcodec.compress(photo, quality=99)
    with pytest.raises(ValueError, match="valid models are"):
        leechcodec.compress(photo, model="no-such-model")


def test_header_names_model_and_hash(default_model, photo):
    header, _ = bitstream.unpack(leechcodec.compress(photo, quality=1))
    assert header.model_id == default_model.model_id and header.weights_hash == default_model.weights_hash
    assert (header.height, header.width) == photo.shape[:2]


def test_wrong_weights_hash_is_refused(photo):
    data = bytearray(leechcodec.compress(photo, quality=1))
    header, words = bitstream.unpack(bytes(data))
    other = bitstream.Header(header.model_id, b"\0" * 8, header.height, header.width, header.groups,
                             header.symbols, header.words)
    with pytest.raises(bitstream.FormatError, match="other weights"):
        leechcodec.decompress(bitstream.pack(other, words))
    unknown = bitstream.Header("nope", header.weights_hash, header.height, header.width, header.groups,
                               header.symbols, header.words)
    with pytest.raises(bitstream.FormatError, match="not available"):
        leechcodec.decompress(bitstream.pack(unknown, words))


def test_list_models_and_load(default_model):
    models = leechcodec.list_models()
    assert any(m["default"] and m["id"] == default_model.model_id for m in models)
    assert leechcodec.load_model(default_model.model_id) is default_model

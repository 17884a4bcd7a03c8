"""Reliability: hostile images, tiling of large images, determinism across thread counts, atomic writes,
tampered weights."""

from __future__ import annotations

import os
import shutil
import stat

import numpy as np
import pytest
import torch
from PIL import Image

import leechcodec
from leechcodec import imageio, zoo
from leechcodec import model as model_module
from leechcodec.container import decode_indices
from leechcodec.encoder import encode_image
from leechcodec.imageio import ImageError, read_image
from leechcodec.metrics import psnr


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"hello world", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "not an image"),
])
def test_hostile_files(tmp_path, content, message):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        read_image(path)


def test_truncated_png_and_jpeg(tmp_path, photo):
    for fmt in ("PNG", "JPEG"):
        path = tmp_path / f"t.{fmt.lower()}"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8)).save(path, fmt)
        path.write_bytes(path.read_bytes()[:2000])
        with pytest.raises(ImageError, match="corrupt or truncated"):
            read_image(path)


def test_directory_and_missing(tmp_path):
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path)
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.png")


def test_decompression_bomb_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (3000, 3000)).save(path)  # a tiny file declaring 9 M pixels
    monkeypatch.setenv("LEECHCODEC_MAX_PIXELS", "1000000")
    with pytest.raises(ImageError, match="over the limit"):
        read_image(path)


def test_tiled_transforms_match_whole_image(default_model, monkeypatch):
    rgb = np.asarray(Image.open(_kodak_or_skip()).convert("RGB"))[:256, :384].copy()
    whole = encode_image(default_model, rgb, quality=default_model.qualities)
    dec_whole = decode_indices(default_model, whole.indices, *rgb.shape[:2], whole.gains)
    monkeypatch.setattr(model_module, "ENCODE_TILE", 128)
    monkeypatch.setattr(model_module, "ENCODE_MARGIN", 64)
    monkeypatch.setattr(model_module, "DECODE_TILE", 8)
    monkeypatch.setattr(model_module, "DECODE_MARGIN", 4)
    tiled = encode_image(default_model, rgb, quality=default_model.qualities)
    dec_tiled = decode_indices(default_model, tiled.indices, *rgb.shape[:2], tiled.gains)
    assert (tiled.indices != whole.indices).mean() < 0.02
    assert abs(psnr(rgb, dec_tiled) - psnr(rgb, dec_whole)) < 0.1


def test_same_file_at_any_thread_count(photo):
    before = torch.get_num_threads()
    files = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            files.append(leechcodec.compress(photo, quality=3))
    finally:
        torch.set_num_threads(before)
    assert files[0] == files[1]


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out.lsq"

    class Boom:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            raise KeyboardInterrupt

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(imageio.os, "fdopen", Boom)
    with pytest.raises(KeyboardInterrupt):
        imageio.write_atomic(target, b"data")
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_the_umask_mode_and_overwrites_keep_theirs(tmp_path):
    """The temporary file behind write_atomic starts 0o600; the written file must not stay owner-only."""
    new, old = tmp_path / "new.lsq", tmp_path / "old.png"
    old.write_bytes(b"old")
    old.chmod(0o640)
    previous = os.umask(0o027)
    try:
        imageio.write_atomic(new, b"data")
    finally:
        os.umask(previous)
    imageio.write_atomic(old, b"new")
    assert stat.S_IMODE(new.stat().st_mode) == 0o640 and new.read_bytes() == b"data"
    assert stat.S_IMODE(old.stat().st_mode) == 0o640 and old.read_bytes() == b"new"
    previous = os.umask(0o022)
    try:
        imageio.write_atomic(tmp_path / "other.lsq", b"x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "other.lsq").stat().st_mode) == 0o644


def test_tampered_or_truncated_weights_refused(default_model, tmp_path):
    src = zoo.models_dir() / zoo.registry()["models"][default_model.model_id]["file"]
    bad = tmp_path / src.name
    shutil.copy(src, bad)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(zoo.ModelError, match="does not match the hash"):
        zoo.load_weights_file(bad)
    bad.write_bytes(src.read_bytes()[:1000])
    with pytest.raises(zoo.ModelError, match="does not match the hash"):
        zoo.load_weights_file(bad)
    renamed = tmp_path / "evil-00000000.pt"
    renamed.write_bytes(b"not a torch file")
    with pytest.raises(zoo.ModelError):
        zoo.load_weights_file(renamed)


def _kodak_or_skip():
    from conftest import KODAK

    path = KODAK / "kodim05.png"
    if not path.exists():
        pytest.skip("Kodak not available")
    return path


def test_weights_file_formats_hold_the_same_static_prior(default_model, tmp_path, monkeypatch):
    """Format 2 stores the static prior zlib-compressed; a shipped format-1 file (rs4a's) rewritten as format 2 loads
    with the same frequencies and network, in a file smaller by more than 3/4 of the prior's raw bytes. The default
    (format 2, rs4a's encoder) holds the same frequencies."""
    source = zoo.load_model("leech-rs4a-s16g12")
    src = zoo.models_dir() / zoo.registry()["models"][source.model_id]["file"]
    blob = torch.load(src, map_location="cpu", weights_only=True)
    assert blob["format"] == 1
    freqs = blob.pop("prior_freqs").numpy().view(np.uint16)
    assert torch.load(zoo.models_dir() / zoo.registry()["models"][default_model.model_id]["file"],
                      weights_only=True)["format"] == 2
    assert np.array_equal(default_model.prior.freqs, freqs)
    monkeypatch.setenv("LEECHCODEC_MODELS", str(tmp_path))
    path, _ = zoo.save_hashed(blob | {"format": 2} | zoo.packed_static_prior(freqs), "repacked")
    repacked = zoo.load_weights_file(path)
    assert np.array_equal(repacked.prior.freqs, freqs) and repacked.prior.freqs.dtype == np.uint16
    assert src.stat().st_size - path.stat().st_size > 0.75 * freqs.nbytes
    x = torch.rand(1, 3, 32, 48)
    assert torch.equal(repacked.net.decode(*repacked.net.encode(x)), source.net.decode(*source.net.encode(x)))
    with pytest.raises(zoo.ModelError, match="unsupported format 3"):
        path3, _ = zoo.save_hashed(blob | {"format": 3} | zoo.packed_static_prior(freqs), "future")
        zoo.load_weights_file(path3)

"""The Pillow plugin: after `import leechcodec`, Image.open reads .lsq files and Image.save writes them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import leechcodec


def test_open_equals_decompress_and_save_writes_a_file_that_decodes(tmp_path, photo):
    data = leechcodec.compress(photo, quality=2)
    path = tmp_path / "x.lsq"
    path.write_bytes(data)
    with Image.open(path) as im:
        assert (im.format, im.size, im.mode) == ("LSQ", (photo.shape[1], photo.shape[0]), "RGB")
        assert np.array_equal(np.asarray(im), np.asarray(leechcodec.decompress(data)))
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="LSQ", quality=2)
    assert buf.getvalue() == data  # the same encoder, the same options: the same bytes
    Image.fromarray(photo).save(tmp_path / "y.lsq")  # by extension, the default quality
    assert np.asarray(Image.open(tmp_path / "y.lsq")).shape == photo.shape
    assert Image.registered_extensions()[".lsq"] == "LSQ"


def test_bad_files_are_not_lsq_images(tmp_path):
    bad = tmp_path / "bad.lsq"
    bad.write_bytes(b"\x89LSQ\x03 truncated")
    with pytest.raises(UnidentifiedImageError):
        Image.open(bad)
    with pytest.raises(ValueError, match="unknown quality"):
        Image.new("RGB", (32, 32)).save(io.BytesIO(), format="LSQ", quality=99)

"""Files written before the redesign of the codec's modules (commit e474d6c) still decode to the same picture.

tests/data/sample-*.lsq are a 192×128 crop of docs/sample.png encoded by that commit: the default model at its
default quality (format 3, adaptive counts, conditional prior), quality 3 with the static prior (format 1), and the
older leech-gdn-s16g12 at quality 4. Beside each is the PNG that commit decoded. The decoder's float math may differ
slightly between CPUs, so the pictures must agree within one level per pixel nearly everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import leechcodec
from leechcodec import bitstream

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name, version", [("default-q5", 3), ("static-q3", 1), ("gdn-q4", 2)])
def test_files_from_before_the_redesign_decode_to_the_same_picture(name, version):
    data = (DATA / f"sample-{name}.lsq").read_bytes()
    assert bitstream.unpack(data)[0].version == version
    decoded = np.asarray(leechcodec.decompress(data), np.int16)
    expected = np.asarray(Image.open(DATA / f"sample-{name}.png").convert("RGB"), np.int16)
    assert decoded.shape == expected.shape == (128, 192, 3)
    diff = np.abs(decoded - expected)
    assert diff.max() <= 2 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())

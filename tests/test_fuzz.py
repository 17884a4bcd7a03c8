"""Seeded decoder fuzzing (reduced run; bin/fuzz_decoder.py runs the long one): every input ends in a decoded
image or a clean ValueError, never another exception."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bin"))
from fuzz_decoder import fuzz


def test_fuzz_reduced(photo):
    import leechcodec

    seeds = [leechcodec.compress(photo[:40, :48], quality=q, prior=pr) for q in (1, 2) for pr in ("auto", "static")]
    seeds.append(leechcodec.compress(photo[:64, :64], quality=6, allocation="adaptive"))
    assert seeds[-1][4] == 3  # a format-3 seed (per-position token counts)
    stats = fuzz(seeds, cases=300, seed=1)
    assert stats["crash"] == 0, stats["examples"]
    assert stats["clean_error"] > 0 and stats["cases"] == 300


@pytest.mark.slow
def test_fuzz_long(photo):
    import leechcodec

    seeds = [leechcodec.compress(photo[:40, :48], quality=q, prior=pr) for q in (1, 3) for pr in ("auto", "static")]
    seeds.append(leechcodec.compress(photo[:64, :64], quality=6, allocation="adaptive"))
    stats = fuzz(seeds, cases=10_000, seed=2)
    assert stats["crash"] == 0, stats["examples"]

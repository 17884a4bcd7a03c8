"""Seeded decoder fuzzing with bin/fuzz_decoder.py, run as a command (a reduced run here; the long one is marked
slow): every mutated file ends in a decoded image or a clean ValueError, never another exception; the seeds cover
every format version and decode unchanged, and the mutations reach both outcomes, so the run tests something."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[1] / "bin" / "fuzz_decoder.py"


def _fuzz(cases: int, seed: int) -> dict:
    done = subprocess.run([sys.executable, str(FUZZ), "--cases", str(cases), "--seed", str(seed)], capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stderr + done.stdout  # 1: a seed failed to decode, or a case crashed
    versions = re.search(r"seeds in format versions \[([\d, ]+)\]", done.stdout)
    counts = re.search(r"(\d+) cases in \d+ s: (\d+) decoded, (\d+) clean errors, (\d+) other exceptions", done.stdout)
    assert versions and counts, done.stdout
    n, decoded, clean, crash = map(int, counts.groups())
    return {"versions": [int(v) for v in versions.group(1).split(",")], "cases": n, "decoded": decoded,
            "clean_error": clean, "crash": crash}


def _check(stats: dict, cases: int) -> None:
    assert stats["crash"] == 0
    assert stats["cases"] == cases == stats["decoded"] + stats["clean_error"]
    # neither outcome may be all there is: a decoder that rejected everything (or nothing) would pass unnoticed
    assert stats["decoded"] > 0 and stats["clean_error"] > 0
    assert stats["versions"][:2] == [1, 2]  # static and conditional priors; 3 as well when the default model can


def test_fuzz_reduced():
    _check(_fuzz(300, seed=1), 300)


@pytest.mark.slow
def test_fuzz_long():
    _check(_fuzz(10_000, seed=2), 10_000)

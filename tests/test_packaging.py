"""The wheel carries the model registry and the default model's weights, so `pip install .` works anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_the_registry_and_the_default_weights(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(tmp_path)],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("leechcodec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    registry = json.loads((ROOT / "models" / "zoo.json").read_text())
    default = registry["models"][registry["default"]]
    for f in ("zoo.json", default["file"], default["context_prior"]["file"]):
        assert f"leechcodec/models/{f}" in names
    assert "leechcodec/training/__init__.py" in names

"""The lent-GPU path, run here on the CPU: bin/gpu_carry.py builds the carried folder (validation split whole, the
rest within the byte budget, compressai's layer files without its compiled extension) and bin/gpu_run.sh trains
from it and leaves a checkpoint without optimizer state that --init-from reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bin"))
import gpu_carry
import train


def _toy_data(folder: Path, n_train: int = 6) -> list[str]:
    folder.mkdir()
    names = [f"train{i}.jpg" for i in range(10_000) if not train.is_validation(f"train{i}.jpg")][:n_train]
    val = next(f"val{i}.jpg" for i in range(10_000) if train.is_validation(f"val{i}.jpg"))
    rng = np.random.default_rng(0)
    for name in [*names, val]:
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(folder / name, quality=95)
    (folder / "kodim01.png").write_bytes(b"not a training image")  # only JPEGs travel
    return [val]


def test_carry_folder_then_a_short_run_from_it(tmp_path):
    data, carried, out = tmp_path / "data", tmp_path / "carried", tmp_path / "out"
    val_names = _toy_data(data)
    one = (data / "train0.jpg").stat().st_size
    budget_mb = (sum((data / v).stat().st_size for v in val_names) + 2.5 * one) / 2**20
    over = gpu_carry.tracked_bytes() > gpu_carry.LIMIT - 2**20
    if over:  # the shipped weights alone are over what a call may send: built anyway, and said so by exit status 2
        with pytest.raises(SystemExit) as exc:
            gpu_carry.main(["--out", str(carried), "--data", str(data), "--train-mb", str(budget_mb)])
        assert exc.value.code == 2
    else:
        gpu_carry.main(["--out", str(carried), "--data", str(data), "--train-mb", str(budget_mb)])
    copied = sorted(p.name for p in (carried / "train").iterdir())
    assert set(val_names) <= set(copied) and "kodim01.png" not in copied
    assert sum((carried / "train" / n).stat().st_size for n in copied) <= budget_mb * 2**20
    assert 1 <= len(copied) - len(val_names) <= 2  # the budget held about 2.5 more images of this size
    lib = carried / "pylib" / "compressai"
    assert (lib / "layers" / "gdn.py").is_file() and (lib / "models" / "utils.py").is_file()
    assert not list(lib.rglob("*.so")) and "carried to a lent GPU machine" in (lib / "__init__.py").read_text()
    with pytest.raises(SystemExit, match="exists"):
        gpu_carry.main(["--out", str(carried), "--data", str(data)])

    # the carried layer files alone give the transforms (compressai_layers loads them without a package __init__)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from leechcodec import compressai_layers as L; "
             "print(L.GDN.forward.__code__.co_filename)")
    where = subprocess.run([sys.executable, "-c", probe, str(carried / "pylib")], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert where.startswith(str(lib)), where

    out.mkdir()
    env = os.environ | {"OUT": str(out), "DEVICE": "cpu", "PYTHON": sys.executable, "GPU_DIR": str(carried)}
    flags = ["--arch", "gdn", "--widths", "8,8,8", "--groups", "2", "--batch", "2", "--crop", "64", "--steps", "2",
             "--val-every", "2", "--blend-steps", "1", "--seed", "3", "--min-keep", "1"]
    done = subprocess.run(["bash", str(ROOT / "bin" / "gpu_run.sh"), "5", *flags], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "weights.pt: step 2" in done.stdout and (out / "run.txt").is_file() and (out / "run" / "log.csv").is_file()
    assert not (out / "run" / "checkpoint.pt").exists()
    weights = torch.load(out / "run" / "weights.pt", weights_only=False)
    assert "optimizer" not in weights and weights["step"] == 2
    state, origin = train.init_weights(out / "run" / "weights.pt", torch.device("cpu"))
    assert origin == "step 2 of that run" and state.keys() == weights["model"].keys()

    missing = subprocess.run(["bash", str(ROOT / "bin" / "gpu_run.sh"), "5"], capture_output=True, text=True,
                             env=env | {"GPU_DIR": str(tmp_path / "nothing")})
    assert missing.returncode == 2 and "run bin/gpu_carry.py" in missing.stderr

"""The lent-GPU path, run here on the CPU, its scripts as commands: experiments/gpu_carry.py builds the carried folder
(validation split whole, the rest within the byte budget, compressai's layer files without its compiled extension),
experiments/gpu_run.sh trains from it and returns the checkpoint without optimizer state in parts of at most 16 MiB,
and experiments/gpu_join.py joins them into the file --init-from reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from leechcodec.training.data import is_validation
from leechcodec.training.loop import init_weights
from leechcodec.training.parts import PART_BYTES, find_parts, join_parts, split_file

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"


def _toy_data(folder: Path, n_train: int = 6) -> list[str]:
    folder.mkdir()
    names = [f"train{i}.jpg" for i in range(10_000) if not is_validation(f"train{i}.jpg")][:n_train]
    val = next(f"val{i}.jpg" for i in range(10_000) if is_validation(f"val{i}.jpg"))
    rng = np.random.default_rng(0)
    for name in [*names, val]:
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(folder / name, quality=95)
    (folder / "kodim01.png").write_bytes(b"not a training image")  # only JPEGs travel
    return [val]


def _python(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXPERIMENTS / script), *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow  # about 25 s: three interpreters and a toy training run; the parts themselves are tested below
def test_carry_folder_then_a_short_run_from_it_returned_in_parts(tmp_path):
    data, carried, out = tmp_path / "data", tmp_path / "carried", tmp_path / "out"
    val_names = _toy_data(data)
    one = (data / "train0.jpg").stat().st_size
    budget_mb = (sum((data / v).stat().st_size for v in val_names) + 2.5 * one) / 2**20
    done = _python("gpu_carry.py", "--out", str(carried), "--data", str(data), "--train-mb", str(budget_mb))
    # 2: the shipped weights alone are over what a call may send: built anyway, and said so
    assert done.returncode == 0 or (done.returncode == 2 and "over the limit" in done.stderr), done.stderr
    assert "experiments/gpu_run.sh MINUTES" in done.stdout
    copied = sorted(p.name for p in (carried / "train").iterdir())
    assert set(val_names) <= set(copied) and "kodim01.png" not in copied
    assert sum((carried / "train" / n).stat().st_size for n in copied) <= budget_mb * 2**20
    assert 1 <= len(copied) - len(val_names) <= 2  # the budget held about 2.5 more images of this size
    lib = carried / "pylib" / "compressai"
    assert (lib / "layers" / "gdn.py").is_file() and (lib / "models" / "utils.py").is_file()
    assert not list(lib.rglob("*.so")) and "carried to a lent GPU machine" in (lib / "__init__.py").read_text()
    again = _python("gpu_carry.py", "--out", str(carried), "--data", str(data))
    assert again.returncode != 0 and "exists" in again.stderr

    # the carried layer files alone give the transforms (compressai_layers loads them without a package __init__)
    probe = "from leechcodec import compressai_layers as L; print(L.GDN.forward.__code__.co_filename)"
    env = os.environ | {"PYTHONPATH": str(carried / "pylib")}
    where = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
                           env=env).stdout.strip()
    assert where.startswith(str(lib)), where

    out.mkdir()
    env = os.environ | {"OUT": str(out), "DEVICE": "cpu", "PYTHON": sys.executable, "GPU_DIR": str(carried),
                        "PART_BYTES": "40000"}  # small parts, so that the toy checkpoint comes back in several
    flags = ["--arch", "gdn", "--widths", "8,8,8", "--groups", "2", "--batch", "2", "--crop", "64", "--steps", "2",
             "--val-every", "2", "--blend-steps", "1", "--seed", "3", "--min-keep", "1"]
    done = subprocess.run(["bash", str(EXPERIMENTS / "gpu_run.sh"), "5", *flags], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "weights.pt: step 2" in done.stdout and (out / "run.txt").is_file() and (out / "run" / "log.csv").is_file()
    assert not (out / "run" / "checkpoint.pt").exists() and not (out / "run" / "weights.pt").exists()
    parts = find_parts(out / "run" / "weights.pt")
    assert len(parts) >= 2 and all(p.stat().st_size <= 40000 for p in parts)

    joined = _python("gpu_join.py", str(out / "run"), str(tmp_path / "back"))
    assert joined.returncode == 0, joined.stderr
    weights = torch.load(tmp_path / "back" / "weights.pt", weights_only=False)
    assert "optimizer" not in weights and weights["step"] == 2 and (tmp_path / "back" / "log.csv").is_file()
    state, origin = init_weights(tmp_path / "back" / "weights.pt", torch.device("cpu"))
    assert origin == "step 2 of that run" and state.keys() == weights["model"].keys()

    missing = subprocess.run(["bash", str(EXPERIMENTS / "gpu_run.sh"), "5"], capture_output=True, text=True,
                             env=env | {"GPU_DIR": str(tmp_path / "nothing")})
    assert missing.returncode == 2 and "run experiments/gpu_carry.py" in missing.stderr


def test_a_21_mb_state_returns_in_parts_of_at_most_16_mib_and_joins_back_exactly(tmp_path):
    """A 5.3 M-parameter float32 state (21 MB, over the 16 MiB a returned file may have) splits into parts within the
    limit and joins back byte for byte, so the weights return without rounding."""
    gen = torch.Generator().manual_seed(0)
    state = {"model": {"g_a.0.weight": torch.randn(3_000_000, generator=gen),
                       "g_s.0.weight": torch.randn(2_300_000, generator=gen)}, "step": 7}
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    size = path.stat().st_size
    assert size > 21_000_000 > PART_BYTES
    parts = split_file(path)
    assert not path.exists() and len(parts) == 2 and all(p.stat().st_size <= PART_BYTES for p in parts)
    assert sum(p.stat().st_size for p in parts) == size
    back = torch.load(join_parts(path, tmp_path / "joined.pt"), weights_only=True)
    assert back["step"] == 7 and all(torch.equal(back["model"][k], state["model"][k]) for k in state["model"])
    parts[0].unlink()  # a missing part is an error, not a short file
    with pytest.raises(ValueError, match="not numbered"):
        join_parts(path, tmp_path / "again.pt")

"""experiments/transform_ceiling.py, run as a command: its token columns are exactly the codec's uniform files,
optimizing the continuous latent lowers the decoder's error, and bad arguments get one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from leechcodec.container import decode_indices, parse
from leechcodec.encoder import encode_image
from leechcodec.metrics import psnr

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "transform_ceiling.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_token_columns_are_the_uniform_files_and_optimizing_the_latent_helps(default_model, photo, tmp_path):
    k_of = {default_model.groups_for(q): q for q in range(1, default_model.qualities + 1)}
    tokens = sorted(k_of)[:2] + [max(k_of)]
    folder, out = tmp_path / "images", tmp_path / "ceiling.json"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "a.png")
    done = _run(str(folder), "--tokens", ",".join(map(str, tokens)), "--optimize", "6", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    (row,) = result["per_image"].values()
    assert result["model"] == default_model.model_id and result["optimize_steps"] == 6
    for k in tokens:
        enc = encode_image(default_model, photo, quality=k_of[k], allocation="uniform")
        header, m, indices, gains = parse(enc.data)
        decoded = decode_indices(m, indices, header.height, header.width, gains)
        assert row[f"k={k}"] == pytest.approx(psnr(photo, decoded), abs=1e-9)
    assert row["unquantized"] > row[f"k={max(k_of)}"]  # the trained decoder is best on its unquantized latent
    assert row["optimized"] > row["unquantized"]  # Adam on the latent through the frozen decoder lowers the error


@pytest.mark.slow  # one interpreter with the default model per case
@pytest.mark.parametrize("args, message", [(["--tokens", "13"], "--tokens must lie in 1..12"),
                                            (["--optimize", "-1"], "--optimize must be ≥ 0"),
                                            (["-m", "no-such-model"], "no-such-model")])
def test_bad_arguments_exit_with_one_line(tmp_path, photo, args, message):
    Image.fromarray(photo).save(tmp_path / "a.png")
    done = _run(str(tmp_path), *args)
    assert done.returncode == 1 and message in done.stderr
    assert done.stderr.startswith("transform_ceiling.py: error: ") and done.stderr.count("\n") == 1


def test_an_empty_folder_is_refused(tmp_path):
    done = _run(str(tmp_path))
    assert done.returncode == 1 and "no readable images" in done.stderr
    assert not any(tmp_path.iterdir())

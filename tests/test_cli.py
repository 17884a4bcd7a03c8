"""The command line through click's CliRunner: help, version, encode/decode, refusals and clean errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from leechcodec import __version__
from leechcodec.cli import main


@pytest.fixture()
def runner():
    return CliRunner()


@pytest.fixture()
def png(tmp_path, photo):
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    return path


def test_help_and_version(runner):
    r = runner.invoke(main, ["-h"])
    assert r.exit_code == 0 and "encode" in r.output and "decode" in r.output and "eval" in r.output
    r = runner.invoke(main, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output
    for cmd in ("encode", "decode", "info", "models", "eval"):
        assert runner.invoke(main, [cmd, "--help"]).exit_code == 0


def test_encode_decode_info(runner, png, photo):
    r = runner.invoke(main, ["encode", str(png), "-q", "2"])
    assert r.exit_code == 0, r.output
    lsq = png.with_suffix(".lsq")
    assert lsq.exists() and "bpp" in r.output
    bpp = float(r.output.split(" bpp")[0].split()[-1])
    assert bpp == pytest.approx(8 * lsq.stat().st_size / (photo.shape[0] * photo.shape[1]), abs=1e-4)
    out = png.with_name("out.png")
    r = runner.invoke(main, ["decode", str(lsq), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (photo.shape[1], photo.shape[0])
    r = runner.invoke(main, ["info", str(lsq)])
    assert r.exit_code == 0 and "model_id" in r.output and f"height: {photo.shape[0]}" in r.output


def test_overwrite_refused_without_force(runner, png):
    assert runner.invoke(main, ["encode", str(png)]).exit_code == 0
    lsq = png.with_suffix(".lsq")
    before = lsq.read_bytes()
    r = runner.invoke(main, ["encode", str(png), "-q", "1"])
    assert r.exit_code != 0 and "exists" in r.output and "Traceback" not in r.output
    assert lsq.read_bytes() == before
    assert runner.invoke(main, ["encode", str(png), "-q", "1", "-f"]).exit_code == 0
    assert lsq.read_bytes() != before


def test_corrupt_and_missing_inputs_give_one_line_errors(runner, png, tmp_path):
    assert runner.invoke(main, ["encode", str(png)]).exit_code == 0
    lsq = png.with_suffix(".lsq")
    data = lsq.read_bytes()
    cases = {"cut.lsq": data[: len(data) // 2], "flip.lsq": data[:20] + bytes([data[20] ^ 1]) + data[21:],
             "magic.lsq": b"XXXX" + data[4:], "empty.lsq": b""}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        out = tmp_path / (name + ".png")
        r = runner.invoke(main, ["decode", str(tmp_path / name), "-o", str(out)])
        assert r.exit_code == 1, (name, r.output)
        assert r.output.startswith("leechcodec: error:") and "Traceback" not in r.output
        assert not out.exists()
    for args in (["decode", str(tmp_path / "missing.lsq")], ["encode", str(tmp_path / "missing.png")],
                 ["encode", str(tmp_path)], ["info", str(tmp_path / "magic.lsq")]):
        r = runner.invoke(main, args)
        assert r.exit_code == 1 and r.output.startswith("leechcodec: error:"), (args, r.output)


def test_non_image_and_bad_quality(runner, tmp_path, png):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    r = runner.invoke(main, ["encode", str(txt)])
    assert r.exit_code == 1 and "not an image" in r.output and not txt.with_suffix(".lsq").exists()
    r = runner.invoke(main, ["encode", str(png), "-q", "42"])
    assert r.exit_code == 1 and "valid qualities" in r.output and not png.with_suffix(".lsq").exists()


def test_models_lists_the_default(runner):
    r = runner.invoke(main, ["models"])
    assert r.exit_code == 0 and "(default)" in r.output


def test_retired_model_says_how_to_restore_it(runner, tmp_path, png, monkeypatch):
    """A registry entry marked retired loads while its files are there and otherwise fails with one line naming the
    git command that restores them; `models` marks it."""
    import json

    from leechcodec import zoo

    real = zoo.models_dir()
    reg = json.loads((real / "zoo.json").read_text())
    entry = reg["models"][reg["default"]]
    folder = tmp_path / "models"
    folder.mkdir()
    for f in [entry["file"], entry["context_prior"]["file"]]:
        (folder / f).symlink_to(real / f)
    kept = dict(entry, retired="abc1234")  # retired, but its files were restored: loads as before
    gone = dict(entry, file="retired-model-0123abcd.pt", retired="abc1234")
    del gone["context_prior"]
    (folder / "zoo.json").write_text(json.dumps({"default": "test-default", "models": {
        "test-default": entry, "test-restored": kept, "test-gone": gone}}))
    monkeypatch.setenv("LEECHCODEC_MODELS", str(folder))

    r = runner.invoke(main, ["models"])
    assert r.exit_code == 0 and "test-gone (retired: files in git commit abc1234)" in r.output
    r = runner.invoke(main, ["encode", str(png), "-m", "test-gone", "-o", str(tmp_path / "x.lsq")])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "model test-gone is retired" in r.output
    assert "git checkout abc1234 -- models/retired-model-0123abcd.pt" in r.output
    assert not (tmp_path / "x.lsq").exists()
    r = runner.invoke(main, ["encode", str(png), "-m", "test-restored", "-q", "1", "-o", str(tmp_path / "y.lsq")])
    assert r.exit_code == 0, r.output


def test_files_of_a_former_conditional_prior_still_decode(runner, png, tmp_path, monkeypatch):
    """After a model's conditional prior is refitted, files written with the old one decode once its file is back
    (the registry lists it under former_context_priors); without it, one line names the git command that restores
    it, and no output is written."""
    import hashlib
    import io
    import json

    import torch

    from leechcodec import context, zoo
    from leechcodec.conditional import OUTPUTS

    mid = "leech-gdn-s16g12"  # the test suite's model, with its shipped (format-1) prior
    real = zoo.models_dir()
    entry = json.loads((real / "zoo.json").read_text())["models"][mid]
    lsq, first, again = tmp_path / "a.lsq", tmp_path / "a.png", tmp_path / "b.png"
    assert runner.invoke(main, ["encode", str(png), "-m", mid, "-q", "3", "-o", str(lsq)]).exit_code == 0
    assert runner.invoke(main, ["decode", str(lsq), "-o", str(first)]).exit_code == 0

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / entry["file"]).symlink_to(real / entry["file"])
    refit = torch.zeros(entry["groups_for_quality"][-1], len(context.PASSES), OUTPUTS, context.NUM_FEATURES,
                        dtype=torch.int16)  # a stand-in for a refitted prior (zero tilts), format 2
    buf = io.BytesIO()
    torch.save({"format": 2, "model_id": mid, "base_sha256": entry["sha256"], "weights": refit}, buf)
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    (folder / f"{mid}-ctx-{sha[:8]}.pt").write_bytes(buf.getvalue())
    refitted = dict(entry, context_prior={"file": f"{mid}-ctx-{sha[:8]}.pt", "sha256": sha},
                    former_context_priors=[dict(entry["context_prior"], retired="abc1234")])
    (folder / "zoo.json").write_text(json.dumps({"default": mid, "models": {mid: refitted}}))
    monkeypatch.setenv("LEECHCODEC_MODELS", str(folder))  # loaded models are cached per folder: nothing crosses over
    r = runner.invoke(main, ["decode", str(lsq), "-o", str(again)])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1 and not again.exists()
    assert f"git checkout abc1234 -- models/{entry['context_prior']['file']}" in r.output
    (folder / entry["context_prior"]["file"]).symlink_to(real / entry["context_prior"]["file"])
    r = runner.invoke(main, ["decode", str(lsq), "-o", str(again)])
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(first)))


def test_decompression_bomb_refused(runner, tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(path)
    monkeypatch.setenv("LEECHCODEC_MAX_PIXELS", "10000")
    r = runner.invoke(main, ["encode", str(path)])
    assert r.exit_code == 1 and "limit" in r.output


def test_cuda_request_without_cuda_is_a_clean_error(runner, png):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    r = runner.invoke(main, ["encode", str(png), "--device", "cuda"])
    assert r.exit_code == 1 and "no CUDA device" in r.output and not png.with_suffix(".lsq").exists()


def test_help_version_and_info_do_not_import_torch(tmp_path, png):
    """The package imports its API lazily: the commands that need no model start without torch (seconds)."""
    import subprocess
    import sys

    lsq = tmp_path / "x.lsq"
    assert CliRunner().invoke(main, ["encode", str(png), "-o", str(lsq)]).exit_code == 0
    code = ("import sys; from leechcodec.cli import main\n"
            "for args in (['--help'], ['--version'], ['info', sys.argv[1]]):\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        assert not e.code, (args, e.code)\n"
            "assert 'torch' not in sys.modules and 'compressai' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code, str(lsq)], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "model_id" in r.stdout


def test_decode_path_skips_compressais_package_init_and_keeps_its_classes(tmp_path):
    """Loading the model imports compressai's layers without compressai's __init__ (datasets, zoo, torchvision:
    seconds per decode); a later full ``import compressai`` reuses the same layer classes."""
    import subprocess
    import sys

    code = ("import sys; import leechcodec.model, leechcodec.transforms as m\n"
            "assert 'torchvision' not in sys.modules, 'torchvision was imported'\n"
            "assert 'compressai' not in sys.modules and 'compressai.zoo' not in sys.modules\n"
            "import compressai, compressai.layers\n"
            "from compressai.entropy_models import EntropyBottleneck\n"
            "assert m.GDN is compressai.layers.GDN and compressai.available_entropy_coders()\n")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

"""Many files per call: `leechcodec encode IMG...` / `decode FILE...` load the model once, report a bad input on its
own line, write the others, and exit non-zero when any failed."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from PIL import Image

from leechcodec.cli import main


def _folder(tmp_path, photo):
    src = tmp_path / "in"
    src.mkdir()
    for i, crop in enumerate((photo, photo[:64, :80], photo[8:, 16:])):
        Image.fromarray(np.ascontiguousarray(crop)).save(src / f"img{i}.png")
    (src / "broken.png").write_bytes(b"not an image")
    return src


def test_batch_encode_and_decode_write_the_good_files_and_name_the_bad_one(tmp_path, photo):
    src, out = _folder(tmp_path, photo), tmp_path / "out"
    out.mkdir()
    runner = CliRunner()
    inputs = [str(src / n) for n in ("img0.png", "broken.png", "img1.png", "img2.png")]
    r = runner.invoke(main, ["encode", *inputs, "-o", str(out), "-q", "2"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "leechcodec: error: " in r.output and "broken.png" in r.output
    assert "encode: 3 of 4 files" in r.output and "1 failed" in r.output
    assert sorted(p.name for p in out.iterdir()) == ["img0.lsq", "img1.lsq", "img2.lsq"]
    for i in range(3):  # byte for byte the single-file path's output
        one = tmp_path / f"one{i}.lsq"
        assert runner.invoke(main, ["encode", str(src / f"img{i}.png"), "-o", str(one), "-q", "2"]).exit_code == 0
        assert one.read_bytes() == (out / f"img{i}.lsq").read_bytes()
    files = sorted(str(p) for p in out.glob("*.lsq")) + [str(src / "broken.png")]
    r = runner.invoke(main, ["decode", *files, "-o", str(out)])
    assert r.exit_code == 1 and "decode: 3 of 4 files" in r.output and "broken.png" in r.output
    for i in range(3):
        single = tmp_path / f"single{i}.png"
        assert runner.invoke(main, ["decode", str(tmp_path / f"one{i}.lsq"), "-o", str(single)]).exit_code == 0
        assert np.array_equal(np.asarray(Image.open(single)), np.asarray(Image.open(out / f"img{i}.png")))


def test_batch_keeps_the_overwrite_rule_and_reports_clean_errors(tmp_path, photo):
    src, out = _folder(tmp_path, photo), tmp_path / "out"
    out.mkdir()
    runner = CliRunner()
    a, b = str(src / "img0.png"), str(src / "img1.png")
    assert runner.invoke(main, ["encode", a, b, "-o", str(out), "-q", "1"]).exit_code == 0
    before = (out / "img0.lsq").read_bytes()
    r = runner.invoke(main, ["encode", a, b, "-o", str(out), "-q", "3"])  # both exist: refused, kept as they were
    assert r.exit_code == 1 and r.output.count("exists (use -f to overwrite)") == 2
    assert (out / "img0.lsq").read_bytes() == before
    assert runner.invoke(main, ["encode", a, b, "-o", str(out), "-q", "3", "-f"]).exit_code == 0
    assert (out / "img0.lsq").read_bytes() != before
    r = runner.invoke(main, ["encode", a, b, "-o", str(tmp_path / "no-such-folder")])
    assert r.exit_code == 1 and "must be an existing folder" in r.output and "Traceback" not in r.output
    r = runner.invoke(main, ["encode", a, a])  # two inputs, one output
    assert r.exit_code == 1 and "would both be written" in r.output
    r = runner.invoke(main, ["encode", a, b, "-q", "99"])  # checked once, before any file
    assert r.exit_code == 1 and "unknown quality" in r.output and not (src / "img0.lsq").exists()
    assert runner.invoke(main, ["decode"]).exit_code == 1
    assert not list(out.glob(".*.part"))  # atomic writes leave no temporary files

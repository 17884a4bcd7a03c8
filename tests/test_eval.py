"""`leechcodec eval` end to end on two small images, and the BD-rate helper."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import leechcodec
from leechcodec import zoo
from leechcodec.cli import main
from leechcodec.metrics import bd_rate


@pytest.fixture()
def dataset(tmp_path, photo):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "a.png")
    Image.fromarray(np.ascontiguousarray(photo[::-1, ::-1])).save(folder / "b.png")
    (folder / "readme.txt").write_text("not an image")
    return folder


def test_eval_command_writes_json_csv_and_plot(dataset, tmp_path):
    out = {k: tmp_path / f"r.{k}" for k in ("json", "csv", "png")}
    r = CliRunner().invoke(main, ["eval", str(dataset), "-q", "1", "--compare", "jpeg", "--json", str(out["json"]),
                                  "--csv", str(out["csv"]), "--plot", str(out["png"])])
    assert r.exit_code == 0, r.output
    data = json.loads(out["json"].read_text())
    assert data["name"].startswith("leechcodec") and data["images"] == 2
    res = data["results"]
    assert res["quality"] == [1] and len(res["bpp"]) == 1 and res["psnr-rgb"][0] > 10
    model = leechcodec.load_model()
    static = [f"leechcodec {model.model_id} static prior"] if model.context is not None else []
    assert [c["name"] for c in data["comparisons"]] == static + ["jpeg"]  # the static-prior curve, when it differs
    assert any(t["reference"] == "webp (Pillow)" for t in data["bd_rate"])
    rows = list(csv.DictReader(out["csv"].open()))
    ours = [r for r in rows if r["codec"] == data["name"] and r["image"] != "MEAN"]
    assert {r["image"] for r in ours} == {"a.png", "b.png"}
    # the mean row is the mean of the per-image rows, and bpp is the real file size
    mean = next(r for r in rows if r["codec"] == data["name"] and r["image"] == "MEAN")
    assert float(mean["bpp"]) == pytest.approx(np.mean([float(r["bpp"]) for r in ours]), rel=1e-5)
    assert Image.open(out["png"]).size[0] > 500


def test_eval_matches_encode_one_by_one(dataset, tmp_path):
    import leechcodec
    from leechcodec.metrics import psnr

    out = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["eval", str(dataset), "-q", "1", "--compare", "", "--json", str(out)])
    assert r.exit_code == 0, r.output
    result = json.loads(out.read_text())
    per_image = {row["image"]: row for row in result["per_image"] if row["codec"] == result["name"]}
    for name in ("a.png", "b.png"):
        rgb = np.asarray(Image.open(dataset / name).convert("RGB"))
        data = leechcodec.compress(dataset / name, quality=1)
        dec = np.asarray(leechcodec.decompress(data))
        assert per_image[name]["bpp"] == pytest.approx(8 * len(data) / rgb[..., 0].size, abs=1e-9)
        assert per_image[name]["psnr"] == pytest.approx(psnr(rgb, dec), abs=1e-9)


def test_eval_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(main, ["eval", str(empty), "--compare", ""])
    assert r.exit_code == 1 and "no readable images" in r.output
    r = CliRunner().invoke(main, ["eval", str(tmp_path / "nope"), "--compare", ""])
    assert r.exit_code == 1 and "not a folder" in r.output
    (empty / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    r = CliRunner().invoke(main, ["eval", str(empty), "--compare", ""])
    assert r.exit_code == 1 and "no readable images" in r.output


def test_bd_rate_identities():
    rate = [0.1, 0.2, 0.4, 0.8]
    quality = [26.0, 28.0, 30.0, 32.0]
    assert bd_rate(rate, quality, rate, quality) == pytest.approx(0, abs=1e-9)
    assert bd_rate(rate, quality, [r * 0.9 for r in rate], quality) == pytest.approx(-10, abs=1e-6)
    assert math.isnan(bd_rate(rate, quality, rate, [40, 41, 42, 43]))


def test_rd_table_prints_bd_rate_against_another_result(tmp_path):
    """bin/rd_table.py --against, run as a command: the BD-rate of one eval result's curve against another's (here:
    the same PSNRs at 80% of the rate, so exactly -20%)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    rd_table = Path(__file__).resolve().parents[1] / "bin" / "rd_table.py"

    def result(name, scale):
        r = {"quality": [1, 2, 3], "bpp": [0.1 * scale, 0.2 * scale, 0.4 * scale], "psnr-rgb": [24.0, 26.0, 28.0],
             "ms-ssim-rgb": [0.8, 0.85, 0.9], "encoding_time": [0.1] * 3, "decoding_time": [0.1] * 3}
        return {"name": name, "description": "test", "images": 2, "results": r, "comparisons": [], "bd_rate": []}

    def run(*args):
        done = subprocess.run([sys.executable, str(rd_table), *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    new, old = tmp_path / "new.json", tmp_path / "old.json"
    new.write_text(json.dumps(result("new", 0.8)))
    old.write_text(json.dumps(result("old", 1.0)))
    assert "| old (test) | -20.0% |" in run(str(new), "--against", str(old))
    # --with-their-comparisons: also against the curves measured beside the other result (here at half its rate)
    beside = result("webp", 0.5)
    old.write_text(json.dumps(result("old", 1.0) | {"comparisons": [beside]}))
    out = run(str(new), "--against", str(old), "--with-their-comparisons")
    assert "| old (test) | -20.0% |" in out and "| webp (measured beside old) | +60.0% |" in out


def test_bin_scripts_run_from_their_shebang_under_any_python3(tmp_path):
    """bin/*.py start with `#!/usr/bin/env python3`; run that way (whatever python3 is on PATH, possibly one without
    torch or Pillow) they re-run themselves under the repository's .venv (bin/_bootstrap.py) and work, here drawing
    a plot, which needs Pillow and matplotlib."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "rd.png"
    done = subprocess.run([str(root / "bin" / "rd_table.py"), str(root / "docs" / "leech-gdn-s16g12" / "kodak_eval.json"), "--plot",
                           str(out)], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| reference | BD-rate |" in done.stdout and out.stat().st_size > 10_000


def test_default_eval_is_adaptive_with_uniform_beside_it_and_records_its_allocation(dataset, tmp_path, monkeypatch):
    """The default encoder (allocation auto) is what eval measures and --update-registry records; uniform allocation
    is measured beside it at the quality levels where the two differ."""
    model = leechcodec.load_model()
    if model.context is None or model.gains is None:
        pytest.skip("the default model cannot write adaptive files")
    models = tmp_path / "models"
    models.mkdir()
    for f in zoo.models_dir().iterdir():  # the weights linked, the registry copied: the test writes only its copy
        if f.name == "zoo.json":
            shutil.copy(f, models / f.name)
        else:
            (models / f.name).symlink_to(f.resolve())
    monkeypatch.setenv("LEECHCODEC_MODELS", str(models))
    q = model.config.subspaces + 1
    out = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["eval", str(dataset), "-q", f"1,{q}", "--compare", "", "--json", str(out),
                                  "--update-registry"])
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["allocation"] == "adaptive" and data["name"] == f"leechcodec {model.model_id} adaptive"
    uniform = next(c for c in data["comparisons"] if c["name"] == f"leechcodec {model.model_id}")
    assert uniform["results"]["quality"] == [q]  # quality 1 has no room: its adaptive file is the uniform one
    entry = json.loads((models / "zoo.json").read_text())["models"][model.model_id]
    assert entry["kodak_allocation"] == "adaptive"
    assert [e["quality"] for e in entry["kodak"]] == [1, q]
    assert entry["kodak"][1]["bpp"] == pytest.approx(data["results"]["bpp"][1], abs=1e-4)
    r = CliRunner().invoke(main, ["models"])
    assert "adaptive allocation" in r.output
    r = CliRunner().invoke(main, ["eval", str(dataset), "--allocation", "uniform", "--update-registry"])
    assert r.exit_code == 1 and "default encoder" in r.output and "Traceback" not in r.output


def test_effort_eval_measures_only_the_searched_files(dataset, tmp_path):
    """An effort level is measured alone: no uniform or static-prior comparison (each would rerun the search)."""
    out = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["eval", str(dataset), "-q", "2", "--effort", "1", "--compare", "", "--json",
                                  str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["name"].endswith("effort 1 adaptive") and data["comparisons"] == []
    r = CliRunner().invoke(main, ["eval", str(dataset), "--effort", "1", "--refine", "2", "--compare", ""])
    assert r.exit_code == 1 and "alternatives" in r.output

"""The training pipeline end to end on a toy set: train, resume, export, load, and a real file round trip
(leechcodec.training; bin/train.py and bin/export_model.py, run as commands, once)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from leechcodec import container, encoder
from leechcodec.model import LeechAutoencoder, ModelConfig
from leechcodec.training import TrainingError
from leechcodec.training.context_fit import fit_context_prior
from leechcodec.training.data import is_validation
from leechcodec.training.export import export_model
from leechcodec.training.loop import TrainOptions, forward_mse, init_weights, token_directions, train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--arch", "gdn", "--widths", "8,8,8", "--groups", "2", "--batch", "2", "--crop", "64", "--ckpt-every", "2",
        "--val-every", "2", "--blend-steps", "1", "--seed", "3"]
TINY_OPTIONS = {"arch": "gdn", "widths": "8,8,8", "groups": 2, "batch": 2, "crop": 64, "ckpt_every": 2,
                "val_every": 2, "blend_steps": 1, "seed": 3}


def _train(out: Path, data: Path, steps: int, **options) -> Path:
    return train(TrainOptions(out=out, data=data, steps=steps, **(TINY_OPTIONS | options)))


def _export(checkpoint: Path, model_id: str, data: Path, **options) -> Path:
    return export_model(checkpoint, model_id, data=data, images=3, **options)


def _network(checkpoint: Path) -> LeechAutoencoder:
    """The network of a run's checkpoint, in eval mode."""
    ckpt = torch.load(checkpoint, weights_only=False)
    net = LeechAutoencoder(ModelConfig.from_dict(ckpt["config"]))
    net.load_state_dict(ckpt["model"])
    return net.eval()


def _toy_data(folder: Path) -> None:
    """Four smooth 96×96 JPEGs, one of them with a name the validation split holds out."""
    folder.mkdir()
    names = [f"train{i}.jpg" for i in range(3)]
    names.append(next(f"val{i}.jpg" for i in range(10_000) if is_validation(f"val{i}.jpg")))
    y, x = np.mgrid[0:96, 0:96]
    for k, name in enumerate(names):
        rgb = np.stack([(x * (k + 1)) % 256, (y * 2 + k * 40) % 256, (x + y) % 256], -1).astype(np.uint8)
        Image.fromarray(rgb).save(folder / name, quality=95)


def _run(script: str, *args: str, env: dict | None = None) -> str:
    """A bin/ script as a command, under this python → its stdout."""
    import os

    done = subprocess.run([sys.executable, str(ROOT / "bin" / script), *args], capture_output=True, text=True,
                          timeout=300, env=os.environ | (env or {}))
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_train_resume_export_and_code(tmp_path, monkeypatch):
    """The commands themselves: bin/train.py trains and resumes, bin/export_model.py ships the weights with their
    recipe (the model config and every command line that made them), and the model codes real files."""
    data, run, models = tmp_path / "data", tmp_path / "run", tmp_path / "models"
    _toy_data(data)
    first = ["--out", str(run), "--data", str(data), "--steps", "2", *TINY]
    _run("train.py", *first)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 2 and ckpt["config"]["arch"] == "gdn"

    second = ["--out", str(run), "--data", str(data), "--steps", "4", *TINY]
    assert "resumed from" in _run("train.py", *second)
    rows = list(csv.DictReader((run / "log.csv").read_text().splitlines()))
    assert [r["step"] for r in rows] == ["2", "4"]
    assert all(float(r["val_psnr_q2"]) > 0 for r in rows)
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 4

    monkeypatch.setenv("LEECHCODEC_MODELS", str(models))
    export = [str(run / "checkpoint.pt"), "--id", "toy", "--data", str(data), "--images", "3", "--default-quality", "1"]
    _run("export_model.py", *export, env={"LEECHCODEC_MODELS": str(models)})
    reg = json.loads((models / "zoo.json").read_text())
    assert reg["default"] == "toy" and reg["models"]["toy"]["arch"] == "gdn"
    shipped = models / reg["models"]["toy"]["file"]
    assert shipped.stat().st_size < 2_000_000  # mostly the 2 × 196,560 prior

    # the recipe travels in the file, which still loads with weights_only=True
    meta = torch.load(shipped, weights_only=True)["meta"]
    assert ModelConfig.from_dict(meta["config"]) == ModelConfig.from_dict(ckpt["config"])
    assert meta["training_commands"] == [["bin/train.py", *first], ["bin/train.py", *second]]
    assert meta["export_command"] == ["bin/export_model.py", *export]
    assert meta["training_args"]["steps"] == 4 and meta["training_args"]["widths"] == "8,8,8"
    assert meta["training_steps"] == 4 and meta["kernel_dtype"] == "float32"

    from leechcodec import codec

    img = np.asarray(Image.open(next(data.glob("train*.jpg"))).convert("RGB"))
    lsq = codec.compress(img, quality=2, model="toy")
    out = codec.decompress(lsq)
    assert out.size == (96, 96)
    header, _, indices, _ = container.parse(lsq)
    assert header.model_id == "toy" and tuple(indices.shape)[-3:] == (2, 6, 6)  # 2 groups of 6 × 6 tokens

    # a new run can start from the shipped file itself: the same network weights as the checkpoint it came from
    weights, origin = init_weights(shipped, torch.device("cpu"))
    final = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    assert weights.keys() == final.keys() and all(torch.equal(weights[k], final[k]) for k in final)
    assert origin == "shipped model toy, 4 steps in its last run"
    _train(tmp_path / "more", data, 2, init_from=shipped)
    more = torch.load(tmp_path / "more" / "checkpoint.pt", weights_only=False)
    assert more["step"] == 2
    # called as a library, the run keeps a command line that repeats it
    assert more["commands"] == [["bin/train.py", "--out", str(tmp_path / "more"), "--data", str(data), "--steps", "2",
                                 "--batch", "2", "--crop", "64", "--groups", "2", "--widths", "8,8,8",
                                 "--init-from", str(shipped), "--blend-steps", "1", "--ckpt-every", "2",
                                 "--val-every", "2", "--seed", "3"]]
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(TrainingError, match="neither a training checkpoint nor a shipped weights file"):
        init_weights(tmp_path / "other.pt", torch.device("cpu"))


def test_a_refused_run_is_one_line_from_the_command(tmp_path):
    """A library refusal (here: resuming a run with another config) reaches the user as one line, no traceback."""
    data, run = tmp_path / "data", tmp_path / "run"
    _toy_data(data)
    _train(run, data, 1)
    done = subprocess.run([sys.executable, str(ROOT / "bin" / "train.py"), "--out", str(run), "--data", str(data),
                           "--steps", "2", *TINY, "--groups", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"train.py: error: {run / 'checkpoint.pt'} was trained with another config;"
                                   " use another --out")


def test_max_minutes_stops_early_with_a_validated_checkpoint_and_resumes(tmp_path):
    """--max-minutes (for a lent GPU's counted minutes) ends the run before --steps with the step logged, validated
    and checkpointed; the same command again resumes there and, without the limit, reaches --steps."""
    data, run = tmp_path / "data", tmp_path / "run"
    _toy_data(data)
    _train(run, data, 50, max_minutes=1e-9)
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 1
    rows = list(csv.DictReader((run / "log.csv").read_text().splitlines()))
    assert [r["step"] for r in rows] == ["1"] and float(rows[0]["val_psnr_q1"]) > 0
    _train(run, data, 3)
    rows = list(csv.DictReader((run / "log.csv").read_text().splitlines()))
    assert [r["step"] for r in rows] == ["1", "3"]
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 3


def test_time_schedule_ends_the_cosine_with_the_minutes_and_does_not_resume(tmp_path, monkeypatch):
    """--time-schedule: the learning rate follows the fraction of --max-minutes spent (on a clock that advances
    10 ms per reading, so the test does not depend on this machine's speed), so the run, stopped by the minutes well
    short of --steps, is past the cosine's middle at step 50 and at its floor at the end, where the step-based
    schedule would still be warming up; the run refuses to resume, and to run without --max-minutes."""
    from leechcodec.training import loop

    class Clock:
        now = 0.0

        def time(self) -> float:
            self.now += 0.01
            return self.now

    monkeypatch.setattr(loop, "time", Clock())
    data, run = tmp_path / "data", tmp_path / "run"
    _toy_data(data)
    base = 1e-3
    _train(run, data, 100_000, lr=base, max_minutes=0.05, time_schedule=True, val_every=100_000)
    rows = list(csv.DictReader((run / "log.csv").read_text().splitlines()))
    assert rows[0]["step"] == "50" and 0.4 * base < float(rows[0]["lr"]) < 0.9 * base
    assert 50 < int(rows[-1]["step"]) < 1000 and float(rows[-1]["lr"]) < 0.06 * base
    with pytest.raises(TrainingError, match="one invocation"):
        _train(run, data, 100_000, lr=base, max_minutes=0.05, time_schedule=True)
    with pytest.raises(TrainingError, match="give it"):
        _train(tmp_path / "no_limit", data, 10, time_schedule=True)


def test_bf16_run_keeps_float32_weights_and_tracks_the_float32_run(tmp_path, monkeypatch):
    """--bf16 autocasts the step's forward only: the weights (and so checkpoints and exports) stay float32, the
    training PSNR stays within 0.5 dB of the float32 run's, and the exported model codes a real file."""
    data, models = tmp_path / "data", tmp_path / "models"
    _toy_data(data)
    runs = {}
    for name, extra in (("fp32", False), ("bf16", True)):
        _train(tmp_path / name, data, 2, bf16=bool(extra))
        runs[name] = list(csv.DictReader((tmp_path / name / "log.csv").read_text().splitlines()))[-1]
    ckpt = torch.load(tmp_path / "bf16" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 2 and all(t.dtype == torch.float32 for t in ckpt["model"].values() if t.is_floating_point())
    assert abs(float(runs["bf16"]["psnr"]) - float(runs["fp32"]["psnr"])) < 0.5
    model = LeechAutoencoder(ModelConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    x, keep = torch.rand(2, 3, 64, 64), torch.tensor([2, 1])
    for bf16, dtype in ((True, torch.bfloat16), (False, torch.float32)):  # the step's forward: autocast on or off
        out, mse = forward_mse(model, x, keep, 1.0, bf16)
        assert out["x_hat"].dtype == dtype and mse.dtype == torch.float32 and mse.shape == (2,)
    assert float(runs["bf16"]["val_psnr_q2"]) > 0

    monkeypatch.setenv("LEECHCODEC_MODELS", str(models))
    _export(tmp_path / "bf16" / "checkpoint.pt", "toy-bf16", data)
    from leechcodec import codec

    img = np.asarray(Image.open(next(data.glob("train*.jpg"))).convert("RGB"))
    assert codec.decompress(codec.compress(img, quality=2, model="toy-bf16")).size == (96, 96)


def test_fp16_kernels_export_ships_the_rounded_network_and_the_size_limit_refuses(tmp_path, monkeypatch, capsys):
    """--fp16-kernels stores the conv kernels as float16 (the rest float32), loads back as the float32 network with
    exactly those rounded kernels, codes real files, restarts training as float32, and reports validation before
    and after the rounding; a file over the size limit is refused with one line and nothing written."""
    data, run, models = tmp_path / "data", tmp_path / "run", tmp_path / "models"
    _toy_data(data)
    _train(run, data, 2)
    monkeypatch.setenv("LEECHCODEC_MODELS", str(models))
    _export(run / "checkpoint.pt", "toy32", data)
    _export(run / "checkpoint.pt", "toy16", data, fp16_kernels=True)
    printed = capsys.readouterr().out
    assert "fp16 kernels: held-out validation PSNR per quality, float32 → float16 kernels: q1 " in printed
    reg = json.loads((models / "zoo.json").read_text())["models"]
    f32, f16 = (torch.load(models / reg[m]["file"], weights_only=True) for m in ("toy32", "toy16"))
    kernels = [k for k, t in f32["state_dict"].items() if t.dim() == 4]
    assert kernels and all(f16["state_dict"][k].dtype == torch.float16 for k in kernels)
    others = [t for k, t in f16["state_dict"].items() if k not in kernels and t.is_floating_point()]
    assert others and all(t.dtype == torch.float32 for t in others)
    assert all(torch.equal(f16["state_dict"][k], f32["state_dict"][k].half()) for k in kernels)
    assert f16["meta"]["kernel_dtype"] == "float16" and f32["meta"]["kernel_dtype"] == "float32"

    from leechcodec import codec, zoo

    loaded = zoo.load_weights_file(models / reg["toy16"]["file"]).net.state_dict()
    assert all(loaded[k].dtype == torch.float32 and torch.equal(loaded[k], f16["state_dict"][k].float())
               for k in kernels)
    img = np.asarray(Image.open(next(data.glob("train*.jpg"))).convert("RGB"))
    assert codec.decompress(codec.compress(img, quality=2, model="toy16")).size == (96, 96)
    weights, _ = init_weights(models / reg["toy16"]["file"], torch.device("cpu"))
    assert all(t.dtype == torch.float32 for t in weights.values() if t.is_floating_point())

    monkeypatch.setattr(zoo, "MAX_SHIPPED_FILE_BYTES", 1000)
    before = sorted(p.name for p in models.iterdir())
    with pytest.raises(TrainingError, match=r"would be .* MB, over the 0 MB a shipped file may have \(try --fp16"):
        _export(run / "checkpoint.pt", "toy-big", data)
    assert sorted(p.name for p in models.iterdir()) == before


def test_gain_shape_model_from_another_run_exports_and_round_trips(tmp_path, monkeypatch):
    """--init-from starts a gain–shape run from a direction-only run's network; the export carries a gain prior
    and files made with it carry the gain symbols exactly."""
    data, base, run, models = tmp_path / "data", tmp_path / "base", tmp_path / "run", tmp_path / "models"
    _toy_data(data)
    _train(base, data, 2)
    _train(run, data, 2, gain_levels=8, init_from=base / "checkpoint.pt")
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["config"]["gain_levels"] == 8 and ckpt["step"] == 2

    monkeypatch.setenv("LEECHCODEC_MODELS", str(models))
    _export(run / "checkpoint.pt", "toy-gain", data)
    from leechcodec import codec
    from leechcodec.zoo import load_model

    model = load_model("toy-gain")
    assert model.gains is not None and model.gains.freqs.shape == (2, 9, 8)
    img = np.asarray(Image.open(next(data.glob("train*.jpg"))).convert("RGB"))
    enc = encoder.encode_image(model, img, quality=2)
    header, _, indices, gains = container.parse(enc.data)
    assert (indices == enc.indices).all() and gains.shape == (2, 6, 6) and (gains == enc.gains).all()
    assert codec.decompress(enc.data).size == (96, 96)
    with pytest.raises(ValueError, match="gain symbols .*exactly"):
        container.encode_indices(model, indices, 96, 96)
    from leechcodec import bitstream

    words = bitstream.unpack(enc.data)[1].copy()
    words[0] = len(words)  # a gain stream longer than the payload (CRC recomputed: only the length is wrong)
    with pytest.raises(bitstream.FormatError, match="gain stream longer"):
        codec.decompress(bitstream.pack(header, words))

    # the conditional prior of the same model (bin/train_context.py), then files of format 2 with gains
    from leechcodec import zoo

    ctx_args = {"data": data, "images": 3, "steps": 2, "batch": 64, "work": tmp_path / "ctx"}
    before = sorted(p.name for p in models.iterdir())
    with monkeypatch.context() as m:  # the 20 MB limit, lowered: refused with one line, nothing written
        m.setattr(zoo, "MAX_SHIPPED_FILE_BYTES", 1000)
        with pytest.raises(TrainingError, match=r"context prior file would be .* MB, over the 0 MB a shipped file "
                                                r"may have$"):
            fit_context_prior("toy-gain", **ctx_args)
    assert sorted(p.name for p in models.iterdir()) == before
    fit_context_prior("toy-gain", **ctx_args, command=["bin/train_context.py", "toy-gain"])
    prior_file = models / zoo.registry()["models"]["toy-gain"]["context_prior"]["file"]
    assert torch.load(prior_file, weights_only=True)["meta"]["command"] == ["bin/train_context.py", "toy-gain"]
    zoo.clear_cache()
    model = load_model("toy-gain")
    assert model.context is not None
    enc2 = encoder.encode_image(model, img, quality=2, allocation="uniform")  # the same tokens as enc, format 2
    header2, _, indices2, gains2 = container.parse(enc2.data)
    assert header2.version == 2 and (indices2 == enc.indices).all() and (gains2 == enc.gains).all()


def test_residual_stage_model_from_a_wider_run_exports_and_round_trips(tmp_path, monkeypatch):
    """--stages 2 from a two-subspace run: the network keeps the first subspace (leading slices); its files carry
    two tokens per position, and decoding adds them."""
    data, base, run, models = tmp_path / "data", tmp_path / "base", tmp_path / "run", tmp_path / "models"
    _toy_data(data)
    _train(base, data, 2)
    _train(run, data, 2, gain_levels=11, gain_log2_min=-4.5, stages=2, init_from=base / "checkpoint.pt")
    cfg = torch.load(run / "checkpoint.pt", weights_only=False)["config"]
    assert cfg["stages"] == 2 and cfg["groups"] == 2

    monkeypatch.setenv("LEECHCODEC_MODELS", str(models))
    _export(run / "checkpoint.pt", "toy-stages", data)
    from leechcodec import codec
    from leechcodec.zoo import load_model

    model = load_model("toy-stages")
    img = np.asarray(Image.open(next(data.glob("train*.jpg"))).convert("RGB"))
    enc = encoder.encode_image(model, img, quality=2)
    _, _, indices, gains = container.parse(enc.data)
    assert indices.shape[-3:] == (2, 6, 6) and (indices == enc.indices).all() and (gains == enc.gains).all()
    decoded = np.asarray(codec.decompress(enc.data)).astype(int)
    x = torch.from_numpy(img.copy()).permute(2, 0, 1).float().div(255)[None]
    with torch.no_grad():  # the training pass with both tokens kept: what the decoder must reproduce
        x_hat = model.net(x, keep=torch.tensor([2]))["x_hat"].clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(decoded - np.round(x_hat * 255)).max() <= 1


def test_token_block_model_widened_from_a_run_exports_and_round_trips(tmp_path, monkeypatch):
    """--blocks 2 from a one-subspace, two-stage run: the widened run's first block is the source's tokens; its
    files (adaptive allocation, conditional prior fitted with the block layout) decode to the training pass."""
    data, base, run, models = tmp_path / "data", tmp_path / "base", tmp_path / "run", tmp_path / "models"
    _toy_data(data)
    staged = {"gain_levels": 11, "gain_log2_min": -4.5, "stages": 2}
    _train(base, data, 2, **staged)
    _train(run, data, 2, **staged, groups=4, blocks=2, qualities="1,2,3,4", init_from=base / "checkpoint.pt")
    with pytest.raises(TrainingError, match="does not support --blocks"):
        _train(tmp_path / "rate", data, 2, **staged, groups=4, blocks=2, rate_weight=0.1)
    monkeypatch.setenv("LEECHCODEC_MODELS", str(models))
    _export(run / "checkpoint.pt", "toy-blocks", data)
    fit_context_prior("toy-blocks", data=data, images=3, steps=2, batch=64, work=tmp_path / "ctx")
    from leechcodec import codec, zoo
    from leechcodec.zoo import load_model

    zoo.clear_cache()
    model = load_model("toy-blocks")
    assert model.config.blocks == 2 and model.context is not None and model.gains.block_groups == 2
    assert zoo.registry()["models"]["toy-blocks"]["blocks"] == 2
    img = np.asarray(Image.open(next(data.glob("train*.jpg"))).convert("RGB"))
    x = torch.from_numpy(img.copy()).permute(2, 0, 1).float().div(255)[None]
    for quality in (1, 3, 4):
        enc = encoder.encode_image(model, img, quality=quality, allocation="uniform")
        _, _, indices, gains = container.parse(enc.data)
        assert (indices == enc.indices).all() and (gains == enc.gains).all()
        decoded = np.asarray(codec.decompress(enc.data)).astype(int)
        with torch.no_grad():  # the training pass with that many tokens kept: what the decoder must reproduce
            x_hat = model.net(x, keep=torch.tensor([quality]))["x_hat"].clamp(0, 1)[0].permute(1, 2, 0).numpy()
        assert np.abs(decoded - np.round(x_hat * 255)).max() <= 1
    adaptive = encoder.encode_image(model, img, quality=3)  # per-position counts over both blocks
    _, _, indices, gains = container.parse(adaptive.data)
    assert (indices == adaptive.indices).all() and (gains == adaptive.gains).all()
    expected = model.net.decode(torch.from_numpy(indices)[None], torch.from_numpy(gains)[None])
    decoded = np.asarray(codec.decompress(adaptive.data)).astype(int)
    assert np.abs(decoded - np.round(expected[0].permute(1, 2, 0).numpy() * 255)).max() <= 1


def _two_block_setup(data: Path, base: Path) -> tuple[dict, dict]:
    """Toy data and a one-subspace, two-stage source run in ``base`` → (its options, the options that widen it to
    two token blocks)."""
    _toy_data(data)
    staged = {"gain_levels": 11, "gain_log2_min": -4.5, "stages": 2}
    _train(base, data, 2, **staged)
    return staged, {**staged, "groups": 4, "blocks": 2, "qualities": "1,2,3,4", "init_from": base / "checkpoint.pt"}


def test_freeze_first_block_keeps_the_source_tokens_and_trains_the_new_block(tmp_path):
    """--freeze-first-block: after training, the first block's tokens are exactly the source's on an image, while
    the new block's analysis rows and the synthesis moved, and the new channels' statistics were calibrated."""
    data, base, run = tmp_path / "data", tmp_path / "base", tmp_path / "run"
    staged, widened = _two_block_setup(data, base)
    with pytest.raises(TrainingError, match="needs --blocks"):
        _train(tmp_path / "one", data, 2, **staged, freeze_first_block=True, init_from=base / "checkpoint.pt")
    with pytest.raises(TrainingError, match="freezes all of it"):
        _train(tmp_path / "both", data, 2, **widened, freeze_first_block=True, freeze_analysis=True)
    _train(run, data, 3, **widened, freeze_first_block=True)
    with pytest.raises(TrainingError, match="trained with --freeze-first-block"):
        _train(run, data, 4, **widened)
    source_state = torch.load(base / "checkpoint.pt", weights_only=False)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    source, model = (_network(path / "checkpoint.pt") for path in (base, run))
    img = np.asarray(Image.open(next(data.glob("train*.jpg"))).convert("RGB"))
    x = torch.from_numpy(img.copy()).permute(2, 0, 1).float().div(255)[None]
    old_indices, old_gains = source.encode(x)
    new_indices, new_gains = model.encode(x)
    assert torch.equal(new_indices[:, :2], old_indices) and torch.equal(new_gains[:, :2], old_gains)
    w_old, w_new = source_state["model"]["g_a.6.weight"], ckpt["model"]["g_a.6.weight"]  # the last analysis conv
    assert torch.equal(w_new[:24], w_old) and not torch.equal(w_new[24:], torch.zeros_like(w_new[24:]))
    assert not torch.equal(ckpt["model"]["g_s.0.weight"][:24], source_state["model"]["g_s.0.weight"])
    mean, var = ckpt["model"]["standardize.running_mean"], ckpt["model"]["standardize.running_var"]
    assert torch.equal(mean[:24], source_state["model"]["standardize.running_mean"])
    assert not torch.equal(var[24:], torch.ones(24))  # calibrated, not the fresh statistics


def test_new_block_only_keeps_every_first_block_prefix_decoding_as_the_source(tmp_path):
    """--freeze-first-block --new-block-only: after training, a prefix inside the first block decodes to exactly
    the source's image, while the decoder's weights from the new channels moved and no other decoder weight did."""
    data, base, run = tmp_path / "data", tmp_path / "base", tmp_path / "run"
    _, widened = _two_block_setup(data, base)
    with pytest.raises(TrainingError, match="goes with --freeze-first-block"):
        _train(tmp_path / "alone", data, 2, **widened, new_block_only=True)
    _train(run, data, 3, **widened, freeze_first_block=True, new_block_only=True)
    source, model = (_network(path / "checkpoint.pt") for path in (base, run))
    source_state, state = source.state_dict(), model.state_dict()
    for name, tensor in state.items():
        if name.startswith("g_s.") and name != "g_s.0.weight":
            assert torch.equal(tensor, source_state[name]), name
    w = state["g_s.0.weight"]
    assert torch.equal(w[:24], source_state["g_s.0.weight"]) and w[24:].abs().sum() > 0
    img = np.asarray(Image.open(next(data.glob("train*.jpg"))).convert("RGB"))
    x = torch.from_numpy(img.copy()).permute(2, 0, 1).float().div(255)[None]
    for k in (1, 2):
        indices, gains = source.encode(x, k)
        assert torch.equal(model.decode(indices, gains), source.decode(indices, gains))


def test_rate_term_fits_its_proxy_logs_it_and_resumes(tmp_path):
    """--rate-weight: the proxy's mixtures travel in the checkpoint, its bits reach the log, and a run started
    without the rate term cannot be resumed with it."""
    data, run = tmp_path / "data", tmp_path / "run"
    _toy_data(data)
    rate = {"gain_levels": 11, "gain_log2_min": -4.5, "stages": 2, "rate_weight": 0.1, "rate_components": 4,
            "rate_ramp": 1}
    _train(run, data, 2, **rate)
    first = torch.load(run / "checkpoint.pt", weights_only=False)["rate_proxy"]
    _train(run, data, 4, **rate)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 4 and ckpt["rate_proxy"]["mean_dirs"].shape == (2, 4, 24)
    assert not torch.equal(first["mean_dirs"], ckpt["rate_proxy"]["mean_dirs"])  # the mixtures kept learning
    rows = list(csv.DictReader((run / "log.csv").read_text().splitlines()))
    assert [r["step"] for r in rows] == ["2", "4"] and all(10 < float(r["proxy_bits"]) < 25 for r in rows)

    plain = tmp_path / "plain"
    _train(plain, data, 2)
    with pytest.raises(TrainingError, match="trained without --rate-weight"):
        _train(plain, data, 4, rate_weight=0.1)


def test_freeze_synthesis_trains_the_encoder_only_and_refuses_a_mixed_resume(tmp_path):
    """--freeze-synthesis: the decoder's weights are bit for bit those the run started from, the encoder's move, and
    a checkpoint cannot switch between the two."""
    data, base, run = tmp_path / "data", tmp_path / "base", tmp_path / "run"
    _toy_data(data)
    _train(base, data, 2)
    start = torch.load(base / "checkpoint.pt", weights_only=False)["model"]
    init = {"init_from": base / "checkpoint.pt", "lr": 1e-2}
    _train(run, data, 2, freeze_synthesis=True, **init)
    _train(run, data, 4, freeze_synthesis=True, **init)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 4
    decoder = [k for k in start if k.startswith("g_s.")]
    net = LeechAutoencoder(ModelConfig.from_dict(ckpt["config"]))
    analysis = [k for k, _ in net.named_parameters() if k.startswith("g_a.")]
    assert decoder and all(torch.equal(start[k], ckpt["model"][k]) for k in decoder)
    assert all(not torch.equal(start[k], ckpt["model"][k]) for k in analysis)
    with pytest.raises(TrainingError, match="trained with --freeze-synthesis"):
        _train(run, data, 6, **init)
    with pytest.raises(TrainingError, match="trained without --freeze-synthesis"):
        _train(base, data, 4, freeze_synthesis=True)


def test_allocator_draw_trains_the_decoder_on_the_encoders_own_counts(tmp_path, monkeypatch):
    """--keep-draw allocator with --freeze-analysis: each sample keeps, per position, the counts the default encoder
    writes into a file at that quality; only the synthesis learns (the analysis weights and latent statistics stay
    the shipped model's bit for bit, so its priors stay exact); it refuses to run where the tokens would move."""
    from leechcodec import bitstream, codec
    from leechcodec.training.adaptive import AllocatorCounts
    from leechcodec.zoo import clear_cache, load_model

    data, base, run, models = tmp_path / "data", tmp_path / "base", tmp_path / "run", tmp_path / "models"
    _toy_data(data)
    stages = {"gain_levels": 11, "gain_log2_min": -4.5, "stages": 2, "groups": 4, "widths": "8,8,16"}
    _train(base, data, 2, **stages)
    monkeypatch.setenv("LEECHCODEC_MODELS", str(models))
    shipped = models / _export(base / "checkpoint.pt", "toy-base", data).name
    fit_context_prior("toy-base", data=data, images=3, steps=2, batch=64, work=tmp_path / "ctx")  # adaptive files
    clear_cache()
    model = load_model("toy-base")

    # the counts are the encoder's: those an adaptive file at the same quality keeps
    allocator = AllocatorCounts.of_weights_file(shipped)
    img = np.asarray(Image.open(next(data.glob("train*.jpg"))).convert("RGB"))
    x = torch.from_numpy(img.copy()).permute(2, 0, 1).float().div(255)[None]
    seen = set()
    for quality in (2, 3):
        k = model.groups_for(quality)
        with torch.no_grad():
            counts = allocator.forward(model.net, x, torch.tensor([k]))["counts"][0].numpy()
        enc = encoder.encode_image(model, img, quality=quality, allocation="adaptive")
        assert enc.indices.shape[0] == 4 and np.array_equal((enc.indices >= 0).sum(axis=0), counts)
        seen.add(len(np.unique(counts)))
    assert max(seen) > 1  # not a uniform prefix

    options = {**stages, "init_from": shipped, "freeze_analysis": True, "keep_draw": "allocator", "lr": 1e-2,
               "blend_steps": 0, "qualities": "1,2,3,4"}
    _train(run, data, 2, **options)
    _train(run, data, 4, **options)  # resumes
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    start, _ = init_weights(shipped, torch.device("cpu"))
    assert ckpt["step"] == 4
    encoder_side = [k for k in start if k.startswith(("g_a.", "standardize."))]
    decoder_side = [k for k, _ in model.net.named_parameters() if k.startswith("g_s.")]
    assert any(k.startswith("standardize.running") for k in encoder_side)
    assert all(torch.equal(start[k], ckpt["model"][k]) for k in encoder_side)
    assert all(not torch.equal(start[k], ckpt["model"][k]) for k in decoder_side)

    # the fine-tuned decoder ships with the source's conditional prior: the same tokens, the same file bits
    from leechcodec.training.context_fit import reuse_context_prior

    _export(run / "checkpoint.pt", "toy-decoder", data)
    _run("train_context.py", "toy-decoder", "--same-encoder-as", "toy-base", env={"LEECHCODEC_MODELS": str(models)})
    clear_cache()
    tuned = load_model("toy-decoder")
    reg = json.loads((models / "zoo.json").read_text())["models"]
    ctx = [torch.load(models / reg[m]["context_prior"]["file"], weights_only=True)
           for m in ("toy-base", "toy-decoder")]
    assert torch.equal(ctx[0]["weights"], ctx[1]["weights"])
    assert ctx[1]["meta"]["reused_from"].startswith("toy-base-ctx")
    a, b = (encoder.encode_image(m, img, quality=3) for m in (model, tuned))
    assert np.array_equal(a.indices, b.indices) and np.array_equal(bitstream.unpack(a.data)[1],
                                                                   bitstream.unpack(b.data)[1])
    assert not np.array_equal(np.asarray(codec.decompress(a.data)), np.asarray(codec.decompress(b.data)))

    # with allocation weights in the source's registry entry, the draw follows them as the encoder does
    from leechcodec.zoo import record_allocation_weights

    channels = 24 * model.config.subspaces
    record_allocation_weights("toy-base", np.linspace(2.0, 0.01, channels), "a test")
    clear_cache()
    weighted_model, weighted = load_model("toy-base"), AllocatorCounts.of_weights_file(shipped)
    assert weighted.weights_of == "toy-base" and weighted.weights is not None
    moved = False
    for quality in (2, 3):
        k = model.groups_for(quality)
        with torch.no_grad():
            counts = weighted.forward(model.net, x, torch.tensor([k]))["counts"][0].numpy()
            plain = allocator.forward(model.net, x, torch.tensor([k]))["counts"][0].numpy()
        enc = encoder.encode_image(weighted_model, img, quality=quality, allocation="adaptive")
        assert np.array_equal((enc.indices >= 0).sum(axis=0), counts)
        moved |= not np.array_equal(counts, plain)
    assert moved
    _train(tmp_path / "moved", data, 2, **(stages | {"init_from": shipped, "lr": 1e-2, "blend_steps": 0}))
    _export(tmp_path / "moved" / "checkpoint.pt", "toy-moved", data)
    with pytest.raises(TrainingError, match=r"toy-moved does not make the tokens of toy-base \(differs in g_a\."):
        reuse_context_prior("toy-moved", "toy-base")

    with pytest.raises(TrainingError, match="needs --freeze-analysis"):
        _train(tmp_path / "moving", data, 2, **(options | {"freeze_analysis": False}))
    with pytest.raises(TrainingError, match="trained with --freeze-analysis"):
        _train(run, data, 6, **(options | {"freeze_analysis": False, "keep_draw": "qualities"}))
    with pytest.raises(TrainingError, match="needs --init-from a shipped weights file"):
        _train(tmp_path / "from-run", data, 2, **(options | {"init_from": base / "checkpoint.pt"}))


def test_token_directions_are_the_directions_the_quantizer_snapped():
    """The rate term must price the directions the tokens actually took: quantizing token_directions' output gives
    the training pass's indices, residual stages included, and only a sample's kept tokens count."""
    torch.manual_seed(0)
    model = LeechAutoencoder(ModelConfig(arch="gdn", widths=(8, 8, 8), groups=6, stages=3, gain_levels=11,
                                         gain_log2_min=-4.5, groups_for_quality=(1, 3, 6)))
    x = torch.rand(2, 3, 64, 64)
    keep = torch.tensor([1, 4])
    out = model(x, keep=keep)
    u, kept = token_directions(model, out, keep)
    assert u.shape == (2 * 4 * 4, 6, 24) and u.requires_grad
    found = model.quantizer.search(u.detach().reshape(-1, 24)).reshape(2, 4, 4, 6).permute(0, 3, 1, 2)
    assert torch.equal(found, out["indices"])
    assert kept.shape == (32, 6) and kept[:16].sum() == 16 and kept[16:].sum() == 16 * 4
    u[kept.bool()].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.g_a.parameters())

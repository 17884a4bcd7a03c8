"""The training pipeline end to end on a toy set: train, resume, export, load, and a real file round trip."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

BIN = Path(__file__).resolve().parents[1] / "bin"
sys.path.insert(0, str(BIN))
import export_model
import train

from leechcodec.model import LeechAutoencoder, ModelConfig

TINY = ["--arch", "gdn", "--widths", "8,8,8", "--groups", "2", "--batch", "2", "--crop", "64", "--ckpt-every", "2",
        "--val-every", "2", "--blend-steps", "1", "--seed", "3"]


def _toy_data(folder: Path) -> None:
    """Four smooth 96×96 JPEGs, one of them with a name the validation split holds out."""
    folder.mkdir()
    names = [f"train{i}.jpg" for i in range(3)]
    names.append(next(f"val{i}.jpg" for i in range(10_000) if train.is_validation(f"val{i}.jpg")))
    y, x = np.mgrid[0:96, 0:96]
    for k, name in enumerate(names):
        rgb = np.stack([(x * (k + 1)) % 256, (y * 2 + k * 40) % 256, (x + y) % 256], -1).astype(np.uint8)
        Image.fromarray(rgb).save(folder / name, quality=95)


def test_train_resume_export_and_code(tmp_path, monkeypatch):
    data, run, models = tmp_path / "data", tmp_path / "run", tmp_path / "models"
    _toy_data(data)
    train.main(["--out", str(run), "--data", str(data), "--steps", "2", *TINY])
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 2 and ckpt["config"]["arch"] == "gdn"

    train.main(["--out", str(run), "--data", str(data), "--steps", "4", *TINY])  # resumes at step 2
    rows = list(csv.DictReader((run / "log.csv").read_text().splitlines()))
    assert [r["step"] for r in rows] == ["2", "4"]
    assert all(float(r["val_psnr_q2"]) > 0 for r in rows)
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 4

    monkeypatch.setenv("LEECHCODEC_MODELS", str(models))
    export_model.main([str(run / "checkpoint.pt"), "--id", "toy", "--data", str(data), "--images", "3",
                       "--default-quality", "1"])
    reg = json.loads((models / "zoo.json").read_text())
    assert reg["default"] == "toy" and reg["models"]["toy"]["arch"] == "gdn"
    assert (models / reg["models"]["toy"]["file"]).stat().st_size < 2_000_000  # mostly the 2 × 196,560 prior

    from leechcodec import codec

    img = np.asarray(Image.open(next(data.glob("train*.jpg"))).convert("RGB"))
    lsq = codec.compress(img, quality=2, model="toy")
    out = codec.decompress(lsq)
    assert out.size == (96, 96)
    header, _, indices, _ = codec.parse(lsq)
    assert header.model_id == "toy" and tuple(indices.shape)[-3:] == (2, 6, 6)  # 2 groups of 6 × 6 tokens

    # a new run can start from the shipped file itself: the same network weights as the checkpoint it came from
    shipped = models / reg["models"]["toy"]["file"]
    weights, origin = train.init_weights(shipped, torch.device("cpu"))
    final = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    assert weights.keys() == final.keys() and all(torch.equal(weights[k], final[k]) for k in final)
    assert origin == "shipped model toy, 4 steps in its last run"
    train.main(["--out", str(tmp_path / "more"), "--data", str(data), "--steps", "2", "--init-from", str(shipped),
                *TINY])
    assert torch.load(tmp_path / "more" / "checkpoint.pt", weights_only=False)["step"] == 2
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(SystemExit, match="neither a training checkpoint nor a shipped weights file"):
        train.init_weights(tmp_path / "other.pt", torch.device("cpu"))


def test_max_minutes_stops_early_with_a_validated_checkpoint_and_resumes(tmp_path):
    """--max-minutes (for a lent GPU's counted minutes) ends the run before --steps with the step logged, validated
    and checkpointed; the same command again resumes there and, without the limit, reaches --steps."""
    data, run = tmp_path / "data", tmp_path / "run"
    _toy_data(data)
    train.main(["--out", str(run), "--data", str(data), "--steps", "50", "--max-minutes", "1e-9", *TINY])
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 1
    rows = list(csv.DictReader((run / "log.csv").read_text().splitlines()))
    assert [r["step"] for r in rows] == ["1"] and float(rows[0]["val_psnr_q1"]) > 0
    train.main(["--out", str(run), "--data", str(data), "--steps", "3", *TINY])
    rows = list(csv.DictReader((run / "log.csv").read_text().splitlines()))
    assert [r["step"] for r in rows] == ["1", "3"]
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 3


def test_bf16_run_keeps_float32_weights_and_tracks_the_float32_run(tmp_path, monkeypatch):
    """--bf16 autocasts the step's forward only: the weights (and so checkpoints and exports) stay float32, the
    training PSNR stays within 0.5 dB of the float32 run's, and the exported model codes a real file."""
    data, models = tmp_path / "data", tmp_path / "models"
    _toy_data(data)
    runs = {}
    for name, extra in (("fp32", []), ("bf16", ["--bf16"])):
        train.main(["--out", str(tmp_path / name), "--data", str(data), "--steps", "2", *TINY, *extra])
        runs[name] = list(csv.DictReader((tmp_path / name / "log.csv").read_text().splitlines()))[-1]
    ckpt = torch.load(tmp_path / "bf16" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 2 and all(t.dtype == torch.float32 for t in ckpt["model"].values() if t.is_floating_point())
    assert abs(float(runs["bf16"]["psnr"]) - float(runs["fp32"]["psnr"])) < 0.5
    model = LeechAutoencoder(ModelConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    x, keep = torch.rand(2, 3, 64, 64), torch.tensor([2, 1])
    for bf16, dtype in ((True, torch.bfloat16), (False, torch.float32)):  # the step's forward: autocast on or off
        out, mse = train.forward_mse(model, x, keep, 1.0, bf16)
        assert out["x_hat"].dtype == dtype and mse.dtype == torch.float32 and mse.shape == (2,)
    assert float(runs["bf16"]["val_psnr_q2"]) > 0

    monkeypatch.setenv("LEECHCODEC_MODELS", str(models))
    export_model.main([str(tmp_path / "bf16" / "checkpoint.pt"), "--id", "toy-bf16", "--data", str(data),
                       "--images", "3"])
    from leechcodec import codec

    img = np.asarray(Image.open(next(data.glob("train*.jpg"))).convert("RGB"))
    assert codec.decompress(codec.compress(img, quality=2, model="toy-bf16")).size == (96, 96)


def test_fp16_kernels_export_ships_the_rounded_network_and_the_size_limit_refuses(tmp_path, monkeypatch, capsys):
    """--fp16-kernels stores the conv kernels as float16 (the rest float32), loads back as the float32 network with
    exactly those rounded kernels, codes real files, restarts training as float32, and reports validation before
    and after the rounding; a file over the size limit is refused with one line and nothing written."""
    data, run, models = tmp_path / "data", tmp_path / "run", tmp_path / "models"
    _toy_data(data)
    train.main(["--out", str(run), "--data", str(data), "--steps", "2", *TINY])
    monkeypatch.setenv("LEECHCODEC_MODELS", str(models))
    export_model.main([str(run / "checkpoint.pt"), "--id", "toy32", "--data", str(data), "--images", "3"])
    export_model.main([str(run / "checkpoint.pt"), "--id", "toy16", "--data", str(data), "--images", "3",
                       "--fp16-kernels"])
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
    weights, _ = train.init_weights(models / reg["toy16"]["file"], torch.device("cpu"))
    assert all(t.dtype == torch.float32 for t in weights.values() if t.is_floating_point())

    monkeypatch.setattr(zoo, "MAX_SHIPPED_FILE_BYTES", 1000)
    before = sorted(p.name for p in models.iterdir())
    with pytest.raises(SystemExit, match=r"would be .* MB, over the 0 MB a shipped file may have \(try --fp16"):
        export_model.main([str(run / "checkpoint.pt"), "--id", "toy-big", "--data", str(data), "--images", "3"])
    assert sorted(p.name for p in models.iterdir()) == before


def test_gain_shape_model_from_another_run_exports_and_round_trips(tmp_path, monkeypatch):
    """--init-from starts a gain–shape run from a direction-only run's network; the export carries a gain prior
    and files made with it carry the gain symbols exactly."""
    data, base, run, models = tmp_path / "data", tmp_path / "base", tmp_path / "run", tmp_path / "models"
    _toy_data(data)
    train.main(["--out", str(base), "--data", str(data), "--steps", "2", *TINY])
    train.main(["--out", str(run), "--data", str(data), "--steps", "2", "--gain-levels", "8",
                "--init-from", str(base / "checkpoint.pt"), *TINY])
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["config"]["gain_levels"] == 8 and ckpt["step"] == 2

    monkeypatch.setenv("LEECHCODEC_MODELS", str(models))
    export_model.main([str(run / "checkpoint.pt"), "--id", "toy-gain", "--data", str(data), "--images", "3"])
    from leechcodec import codec
    from leechcodec.zoo import load_model

    model = load_model("toy-gain")
    assert model.gains is not None and model.gains.freqs.shape == (2, 9, 8)
    img = np.asarray(Image.open(next(data.glob("train*.jpg"))).convert("RGB"))
    enc = codec.encode_image(model, img, 2)
    header, _, indices, gains = codec.parse(enc.data)
    assert (indices == enc.indices).all() and gains.shape == (2, 6, 6) and (gains == enc.gains).all()
    assert codec.decompress(enc.data).size == (96, 96)
    with pytest.raises(ValueError, match="gain symbols exactly"):
        codec.encode_indices(model, indices, 96, 96)
    from leechcodec import bitstream

    words = bitstream.unpack(enc.data)[1].copy()
    words[0] = len(words)  # a gain stream longer than the payload (CRC recomputed: only the length is wrong)
    with pytest.raises(bitstream.FormatError, match="gain stream longer"):
        codec.decompress(bitstream.pack(header, words))

    # the conditional prior of the same model (bin/train_context.py), then files of format 2 with gains
    import train_context

    from leechcodec import zoo

    ctx_args = ["toy-gain", "--data", str(data), "--images", "3", "--steps", "2", "--batch", "64",
                "--work", str(tmp_path / "ctx")]
    before = sorted(p.name for p in models.iterdir())
    with monkeypatch.context() as m:  # the 20 MB limit, lowered: refused with one line, nothing written
        m.setattr(zoo, "MAX_SHIPPED_FILE_BYTES", 1000)
        with pytest.raises(SystemExit, match=r"context prior file would be .* MB, over the 0 MB a shipped file may have$"):
            train_context.main(ctx_args)
    assert sorted(p.name for p in models.iterdir()) == before
    train_context.main(ctx_args)
    zoo._load_cached.cache_clear()
    model = load_model("toy-gain")
    assert model.context is not None
    enc2 = codec.encode_image(model, img, 2, allocation="uniform")  # the same tokens as enc, format 2
    header2, _, indices2, gains2 = codec.parse(enc2.data)
    assert header2.version == 2 and (indices2 == enc.indices).all() and (gains2 == enc.gains).all()


def test_residual_stage_model_from_a_wider_run_exports_and_round_trips(tmp_path, monkeypatch):
    """--stages 2 from a two-subspace run: the network keeps the first subspace (leading slices); its files carry
    two tokens per position, and decoding adds them."""
    data, base, run, models = tmp_path / "data", tmp_path / "base", tmp_path / "run", tmp_path / "models"
    _toy_data(data)
    train.main(["--out", str(base), "--data", str(data), "--steps", "2", *TINY])
    train.main(["--out", str(run), "--data", str(data), "--steps", "2", "--gain-levels", "11", "--gain-log2-min",
                "-4.5", "--stages", "2", "--init-from", str(base / "checkpoint.pt"), *TINY])
    cfg = torch.load(run / "checkpoint.pt", weights_only=False)["config"]
    assert cfg["stages"] == 2 and cfg["groups"] == 2

    monkeypatch.setenv("LEECHCODEC_MODELS", str(models))
    export_model.main([str(run / "checkpoint.pt"), "--id", "toy-stages", "--data", str(data), "--images", "3"])
    from leechcodec import codec
    from leechcodec.zoo import load_model

    model = load_model("toy-stages")
    img = np.asarray(Image.open(next(data.glob("train*.jpg"))).convert("RGB"))
    enc = codec.encode_image(model, img, 2)
    _, _, indices, gains = codec.parse(enc.data)
    assert indices.shape[-3:] == (2, 6, 6) and (indices == enc.indices).all() and (gains == enc.gains).all()
    decoded = np.asarray(codec.decompress(enc.data)).astype(int)
    x = torch.from_numpy(img.copy()).permute(2, 0, 1).float().div(255)[None]
    with torch.no_grad():  # the training pass with both tokens kept: what the decoder must reproduce
        x_hat = model.net(x, keep=torch.tensor([2]))["x_hat"].clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(decoded - np.round(x_hat * 255)).max() <= 1


def test_rate_term_fits_its_proxy_logs_it_and_resumes(tmp_path):
    """--rate-weight: the proxy's mixtures travel in the checkpoint, its bits reach the log, and a run started
    without the rate term cannot be resumed with it."""
    data, run = tmp_path / "data", tmp_path / "run"
    _toy_data(data)
    rate = ["--gain-levels", "11", "--gain-log2-min", "-4.5", "--stages", "2", "--rate-weight", "0.1",
            "--rate-components", "4", "--rate-ramp", "1"]
    train.main(["--out", str(run), "--data", str(data), "--steps", "2", *rate, *TINY])
    first = torch.load(run / "checkpoint.pt", weights_only=False)["rate_proxy"]
    train.main(["--out", str(run), "--data", str(data), "--steps", "4", *rate, *TINY])
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 4 and ckpt["rate_proxy"]["mean_dirs"].shape == (2, 4, 24)
    assert not torch.equal(first["mean_dirs"], ckpt["rate_proxy"]["mean_dirs"])  # the mixtures kept learning
    rows = list(csv.DictReader((run / "log.csv").read_text().splitlines()))
    assert [r["step"] for r in rows] == ["2", "4"] and all(10 < float(r["proxy_bits"]) < 25 for r in rows)

    plain = tmp_path / "plain"
    train.main(["--out", str(plain), "--data", str(data), "--steps", "2", *TINY])
    with pytest.raises(SystemExit, match="trained without --rate-weight"):
        train.main(["--out", str(plain), "--data", str(data), "--steps", "4", "--rate-weight", "0.1", *TINY])


def test_freeze_synthesis_trains_the_encoder_only_and_refuses_a_mixed_resume(tmp_path):
    """--freeze-synthesis: the decoder's weights are bit for bit those the run started from, the encoder's move, and
    a checkpoint cannot switch between the two."""
    data, base, run = tmp_path / "data", tmp_path / "base", tmp_path / "run"
    _toy_data(data)
    train.main(["--out", str(base), "--data", str(data), "--steps", "2", *TINY])
    start = torch.load(base / "checkpoint.pt", weights_only=False)["model"]
    init = ["--init-from", str(base / "checkpoint.pt"), "--lr", "1e-2"]
    train.main(["--out", str(run), "--data", str(data), "--steps", "2", "--freeze-synthesis", *init, *TINY])
    train.main(["--out", str(run), "--data", str(data), "--steps", "4", "--freeze-synthesis", *init, *TINY])
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 4
    decoder = [k for k in start if k.startswith("g_s.")]
    net = LeechAutoencoder(ModelConfig.from_dict(ckpt["config"]))
    encoder = [k for k, _ in net.named_parameters() if k.startswith("g_a.")]
    assert decoder and all(torch.equal(start[k], ckpt["model"][k]) for k in decoder)
    assert all(not torch.equal(start[k], ckpt["model"][k]) for k in encoder)
    with pytest.raises(SystemExit, match="trained with --freeze-synthesis"):
        train.main(["--out", str(run), "--data", str(data), "--steps", "6", *init, *TINY])
    with pytest.raises(SystemExit, match="trained without --freeze-synthesis"):
        train.main(["--out", str(base), "--data", str(data), "--steps", "4", "--freeze-synthesis", *TINY])


def test_token_directions_are_the_directions_the_quantizer_snapped():
    """The rate term must price the directions the tokens actually took: quantizing token_directions' output gives
    the training pass's indices, residual stages included, and only a sample's kept tokens count."""
    torch.manual_seed(0)
    model = LeechAutoencoder(ModelConfig(arch="gdn", widths=(8, 8, 8), groups=6, stages=3, gain_levels=11,
                                         gain_log2_min=-4.5, groups_for_quality=(1, 3, 6)))
    x = torch.rand(2, 3, 64, 64)
    keep = torch.tensor([1, 4])
    out = model(x, keep=keep)
    u, kept = train.token_directions(model, out, keep)
    assert u.shape == (2 * 4 * 4, 6, 24) and u.requires_grad
    found = model.quantizer.search(u.detach().reshape(-1, 24)).reshape(2, 4, 4, 6).permute(0, 3, 1, 2)
    assert torch.equal(found, out["indices"])
    assert kept.shape == (32, 6) and kept[:16].sum() == 16 and kept[16:].sum() == 16 * 4
    u[kept.bool()].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.g_a.parameters())

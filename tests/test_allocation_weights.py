"""The adaptive allocator's per-channel weights: the decoder's sensitivity estimate, the weighted latent error, the
registry entry that holds them, and the encoder that uses them (the files decode as any other)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from leechcodec import token_counts, zoo
from leechcodec.container import decode_indices, parse
from leechcodec.encoder import encode_image
from leechcodec.lattice import DIM
from leechcodec.pixels import image_to_tensor
from leechcodec.refine import frozen_weights
from leechcodec.training.sensitivity import channel_weights, hutchinson_diagonal


def test_weighted_prefix_errors_weigh_each_channel(default_model, photo):
    net = default_model.net
    x = image_to_tensor(photo, net.stride)
    with torch.no_grad():
        y = net.analysis(x)
        _, _, vectors = net.quantize_stages(y, net.cfg.groups)
        plain = net.prefix_errors(y, vectors)
        ones = net.prefix_errors(y, vectors, torch.ones(DIM * net.cfg.subspaces))
        w = torch.rand(DIM * net.cfg.subspaces, generator=torch.Generator().manual_seed(1)) + 0.1
        weighted = net.prefix_errors(y, vectors, w)
    assert torch.equal(plain, ones)
    # errors[n] by hand: the weighted squared difference between y/√24 and the first n tokens' decoder input
    for n in (0, 3, net.cfg.groups):
        diff = y / DIM ** 0.5 - net.assemble(vectors[:, : DIM * n]) if n else y / DIM ** 0.5
        expect = (w.view(1, -1, 1, 1) * diff.square()).sum(dim=1).double()
        assert torch.allclose(weighted[:, n], expect, rtol=1e-5)


def test_hutchinson_estimate_matches_the_exact_jacobian(default_model, photo):
    """At a 1×1 latent the exact diag(JᵀJ) is cheap (one backward pass per output pixel value); many probes of the
    estimator land within a few percent of it."""
    net = default_model.net
    with torch.no_grad():
        y = net.analysis(image_to_tensor(photo[:16, :16], net.stride))
        y_hat = net.assemble(net.quantize_stages(y, 5)[2])
    with frozen_weights(net):
        jac = torch.autograd.functional.jacobian(lambda v: net.synthesis(v).flatten(), y_hat)  # [768, 1, 96, 1, 1]
        exact = jac.reshape(jac.shape[0], -1).double().square().sum(dim=0)
        estimate = hutchinson_diagonal(net.synthesis, y_hat, 400, torch.Generator().manual_seed(0))
    rel = (estimate - exact).abs() / exact
    assert float(rel.mean()) < 0.08 and float(rel.max()) < 0.3


def test_channel_weights_are_positive_with_mean_one_and_reproducible(default_model, photo):
    images = [photo, photo[::-1].copy()]
    a = channel_weights(default_model.net, images, tokens=5, crop=64, probes=2, seed=3)
    b = channel_weights(default_model.net, images, tokens=5, crop=64, probes=2, seed=3)
    assert a.shape == (DIM * default_model.config.subspaces,) and np.array_equal(a, b)
    assert (a > 0).all() and abs(a.mean() - 1) < 1e-9
    with pytest.raises(ValueError, match="at least one image"):
        channel_weights(default_model.net, [], tokens=5)
    assert all(p.requires_grad for p in default_model.net.parameters())  # the weights are left trainable


def test_weights_change_the_counts_and_the_files_decode(default_model, photo):
    unweighted = dataclasses.replace(default_model, allocation_weights=None)
    same = dataclasses.replace(default_model, allocation_weights=torch.ones(DIM * default_model.config.subspaces))
    q = default_model.config.subspaces + 2
    plain = encode_image(unweighted, photo, quality=q)
    assert encode_image(same, photo, quality=q).data == plain.data  # weights of 1 are no weights
    w = torch.ones(DIM * default_model.config.subspaces)
    w[-DIM:] = 0.01  # the last subspace barely counts: positions stop paying for it
    skewed = encode_image(dataclasses.replace(default_model, allocation_weights=w), photo, quality=q)
    assert not np.array_equal(token_counts.counts_of(skewed.indices), token_counts.counts_of(plain.indices))
    header, m, indices, gains = parse(skewed.data)
    assert np.array_equal(indices, skewed.indices)
    assert decode_indices(m, indices, header.height, header.width, gains).shape == (*photo.shape[:2], 3)


def _models_folder(folder: Path, weights: dict | None = None) -> Path:
    """A models folder whose only model "m" is the shipped default's files (symlinked), with the given
    ``allocation_weights`` entry or none. Loaded models are cached per folder, so each variant gets its own."""
    real = zoo.models_dir()
    reg = json.loads((real / "zoo.json").read_text())
    entry = {k: v for k, v in reg["models"][reg["default"]].items() if k != "allocation_weights"}
    if weights is not None:
        entry["allocation_weights"] = weights
    folder.mkdir()
    for f in [entry["file"], entry["context_prior"]["file"]]:
        (folder / f).symlink_to(real / f)
    (folder / "zoo.json").write_text(json.dumps({"default": "m", "models": {"m": entry}}))
    return folder


def test_registry_weights_load_and_bad_ones_are_refused(tmp_path, monkeypatch):
    def use(folder: Path) -> None:
        monkeypatch.setenv("LEECHCODEC_MODELS", str(folder))

    use(_models_folder(tmp_path / "plain"))
    assert zoo.load_model("m").allocation_weights is None
    channels = DIM * zoo.load_model("m").config.subspaces
    values = np.linspace(0.5, 1.5, channels)
    zoo.record_allocation_weights("m", values, "a test")
    stored = json.loads((tmp_path / "plain" / "zoo.json").read_text())["models"]["m"]["allocation_weights"]
    assert stored["fitted"] == "a test" and len(stored["values"]) == channels
    use(_models_folder(tmp_path / "weighted", stored))
    assert torch.allclose(zoo.load_model("m").allocation_weights, torch.tensor(values, dtype=torch.float32),
                          atol=1e-4)
    for n, bad in enumerate(([1.0] * (channels - 1), [1.0] * (channels - 1) + [-1.0], "x", [float("nan")] * channels)):
        use(_models_folder(tmp_path / f"bad{n}", {"values": bad}))
        with pytest.raises(zoo.ModelError, match="allocation weights"):
            zoo.load_model("m")


def test_fit_command_writes_the_registry_and_refuses_bad_input(tmp_path):
    """bin/fit_allocation_weights.py: the fitted weights land in the model's registry entry with the command that
    made them; an unknown model or a folder without training images is one line and a non-zero exit."""
    import os
    import subprocess
    import sys

    from PIL import Image

    models, data, empty = _models_folder(tmp_path / "models"), tmp_path / "data", tmp_path / "empty"
    for folder in (data, empty):
        folder.mkdir()
    y, x = np.mgrid[0:64, 0:64]
    Image.fromarray(np.stack([x * 3 % 256, y * 4 % 256, (x + y) % 256], -1).astype(np.uint8)).save(data / "a.jpg")
    script = str(Path(__file__).resolve().parents[1] / "bin" / "fit_allocation_weights.py")
    env = os.environ | {"LEECHCODEC_MODELS": str(models)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=env, timeout=300)

    done = run("m", "--data", str(data), "--crop", "64", "--probes", "1")
    assert done.returncode == 0, done.stderr
    stored = json.loads((models / "zoo.json").read_text())["models"]["m"]["allocation_weights"]
    assert len(stored["values"]) == 96 and min(stored["values"]) > 0
    assert stored["fitted"].startswith("bin/fit_allocation_weights.py m --images 64 --crop 64 --probes 1")
    for args, message in ((["nope"], "unknown model 'nope'"), (["m", "--data", str(empty)], "no training images")):
        bad = run(*args)
        assert bad.returncode != 0 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
        assert "Traceback" not in bad.stderr

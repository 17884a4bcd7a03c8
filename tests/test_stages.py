"""Residual stages (ModelConfig.stages > 1): stage-major tokens, each refining what the earlier stages of its 24-d
subspace left; and fitting another run's weights to a model with fewer or more subspaces or wider
hidden layers (bin/train.py --init-from: leechcodec.training.loop.fit_weights)."""

from __future__ import annotations

import pytest
import torch

from leechcodec.model import LeechAutoencoder, ModelConfig
from leechcodec.training import TrainingError
from leechcodec.training.loop import fit_weights


def _net(stages: int, groups: int = 6) -> LeechAutoencoder:
    torch.manual_seed(0)
    cfg = ModelConfig(groups=groups, widths=(8, 8, 8), arch="gdn", groups_for_quality=tuple(range(1, groups + 1)),
                      gain_levels=11, gain_log2_min=-4.5, stages=stages)
    return LeechAutoencoder(cfg).eval()


def test_config_needs_whole_stages_with_gains():
    assert _net(3).cfg.subspaces == 2 and _net(1).cfg.subspaces == 6
    with pytest.raises(ValueError, match="stages must divide"):
        ModelConfig(groups=6, widths=(8, 8, 8), arch="gdn", groups_for_quality=(6,), gain_levels=8, stages=4)
    with pytest.raises(ValueError, match="need gain levels"):
        ModelConfig(groups=6, widths=(8, 8, 8), arch="gdn", groups_for_quality=(6,), stages=2)


def test_each_stage_refines_its_subspace_and_tokens_are_prefixes():
    net = _net(3)
    y = torch.randn(2, 48, 5, 6)
    idx, sym, vec = net.quantize_stages(y, 6)
    assert idx.shape == sym.shape == (2, 6, 5, 6) and vec.shape == (2, 144, 5, 6)
    # stage 1 are the plain gain–shape tokens of y
    assert (idx[:, :2] == net.quantizer(y)[1]).all() and (sym[:, :2] == net.gain_symbols(y)).all()
    # fewer tokens are a prefix of more (the rate control keeps leading tokens)
    idx4, sym4, _ = net.quantize_stages(y, 4)
    assert (idx4 == idx[:, :4]).all() and (sym4 == sym[:, :4]).all()
    # every added stage brings the decoder input closer to y/√24, by a wide margin
    target = y / 24**0.5
    errors = [float(((net.assemble(vec[:, : 24 * k]) - target) ** 2).sum()) for k in (2, 4, 6)]
    assert errors[1] < 0.6 * errors[0] and errors[2] < 0.6 * errors[1]


def test_decode_of_encode_is_the_training_pass():
    net = _net(2, groups=4)
    x = torch.rand(1, 3, 48, 64)
    for k in (1, 3, 4):
        indices, gains = net.encode(x, k)
        assert indices.shape == gains.shape == (1, k, 3, 4)
        with torch.no_grad():
            x_train = net(x, keep=torch.tensor([k]))["x_hat"].clamp(0, 1)
        assert torch.allclose(net.decode(indices, gains), x_train, atol=1e-5)


def test_fit_weights_keeps_the_first_subspaces():
    wide, narrow = _net(1).state_dict(), _net(3).state_dict()
    fitted = fit_weights(wide, _net(3))
    assert all(fitted[n].shape == narrow[n].shape for n in narrow)
    last_conv = next(n for n in wide if n.startswith("g_a.") and wide[n].shape[0] == 144)
    assert torch.equal(fitted[last_conv], wide[last_conv][:48])
    with pytest.raises(TrainingError, match="needs"):  # an axis that grows while another shrinks
        fit_weights(_net(3, groups=9).state_dict(), LeechAutoencoder(
            ModelConfig.from_dict(_net(3).cfg.to_dict() | {"widths": (8, 16, 4)})))


def test_fit_weights_adds_subspaces_that_start_silent():
    """More latent subspaces (same stages): with every token kept, the wider model decodes as the narrow one did,
    its first subspaces quantize as the narrow one's did, and the new subspaces are live in the analysis."""
    narrow = _net(3)  # 2 subspaces × 3 stages
    torch.manual_seed(1)
    wide = LeechAutoencoder(ModelConfig.from_dict(narrow.cfg.to_dict() | {"groups": 12, "groups_for_quality": (12,)}))
    wide.load_state_dict(fit_weights(narrow.state_dict(), wide))
    wide.eval()
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        x_wide, x_narrow = wide(x, keep=torch.tensor([12]))["x_hat"], narrow(x, keep=torch.tensor([6]))["x_hat"]
        assert torch.allclose(x_wide, x_narrow, atol=1e-6)
        idx_wide, idx_narrow = wide.encode(x)[0], narrow.encode(x)[0]
        assert all(torch.equal(idx_wide[:, 4 * t: 4 * t + 2], idx_narrow[:, 2 * t: 2 * t + 2]) for t in range(3))
        y = wide.analysis(x)
        assert y[:, 48:].abs().sum() > 0 and y.shape[1] == 96  # new subspaces carry something …
        shuffled = wide.synthesis(torch.cat([y[:, :48], torch.randn_like(y[:, 48:])], 1))
        assert torch.equal(shuffled, wide.synthesis(torch.cat([y[:, :48], torch.zeros_like(y[:, 48:])], 1)))


def test_fit_weights_widens_hidden_layers_without_changing_the_function():
    """Wider hidden layers start out computing the narrow network's function exactly, with live new channels."""
    narrow = _net(3)
    with torch.no_grad():  # cross-channel GDN terms in the source, so that a leak into them would show
        for name, p in narrow.named_parameters():
            if name.endswith("gamma"):
                p.add_(0.05 * torch.rand_like(p))
    cfg = ModelConfig.from_dict(narrow.cfg.to_dict() | {"widths": (8, 16, 12)})
    torch.manual_seed(1)
    wide = LeechAutoencoder(cfg)
    wide.load_state_dict(fit_weights(narrow.state_dict(), wide))
    wide.eval()
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        for k in (1, 4, 6):
            keep = torch.tensor([k])
            assert torch.equal(wide(x, keep=keep)["x_hat"], narrow(x, keep=keep)["x_hat"])
    first = wide.g_a[2].weight  # the second conv: 8 → 16 channels, its new output channels freshly initialized
    assert first.shape[0] == 16 and first[8:].abs().sum() > 0
    residual = LeechAutoencoder(ModelConfig(groups=6, widths=(8, 8, 8, 8), arch="residual", gain_levels=11,
                                            groups_for_quality=(1, 6), stages=3))
    wider = LeechAutoencoder(ModelConfig.from_dict(residual.cfg.to_dict() | {"widths": (8, 8, 8, 16)}))
    with pytest.raises(TrainingError, match="needs"):
        fit_weights(residual.state_dict(), wider)


def _blocked(narrow: LeechAutoencoder, blocks: int = 2) -> LeechAutoencoder:
    """narrow widened to ``blocks`` times its subspaces, in token blocks (its tokens first), by fit_weights."""
    g = narrow.cfg.groups * blocks
    cfg = ModelConfig.from_dict(narrow.cfg.to_dict() | {"groups": g, "blocks": blocks,
                                                        "groups_for_quality": tuple(range(1, g + 1))})
    torch.manual_seed(1)
    wide = LeechAutoencoder(cfg)
    wide.load_state_dict(fit_weights(narrow.state_dict(), wide))
    return wide.eval()


def test_token_blocks_order_the_new_subspaces_after_the_old_tokens():
    """Blocks: token j lies in block j // (G/B), stage-major within it. The block layout: which subspaces a prefix
    touches, and each subspace refined by its own stages."""
    cfg = _blocked(_net(3)).cfg  # 4 subspaces × 3 stages in 2 blocks of 2 subspaces
    assert (cfg.subspaces, cfg.block_groups, cfg.block_subspaces) == (4, 6, 2)
    assert [cfg.subspaces_of(k) for k in range(13)] == [0, 1, 2, 2, 2, 2, 2, 3, 4, 4, 4, 4, 4]
    with pytest.raises(ValueError, match="blocks must divide"):
        ModelConfig.from_dict(cfg.to_dict() | {"blocks": 3})
    net = _blocked(_net(3))
    y = torch.randn(2, 96, 5, 6)
    idx, sym, vec = net.quantize_stages(y, 12)
    first, _, first_vec = _net(3).quantize_stages(y[:, :48], 6)  # block 0 is a 2-subspace model's tokens …
    second, _, second_vec = _net(3).quantize_stages(y[:, 48:], 6)  # … and so is block 1, of the next channels
    assert torch.equal(idx, torch.cat([first, second], 1))
    assembled = net.assemble(vec)
    assert torch.equal(assembled, torch.cat([_net(3).assemble(first_vec), _net(3).assemble(second_vec)], 1))
    partial = net.assemble(vec[:, : 24 * 7])  # block 0 whole, block 1's first token: subspace 3 only
    assert torch.equal(partial[:, :48], assembled[:, :48]) and torch.equal(partial[:, 48:72], second_vec[:, :24])
    assert not partial[:, 72:].any()
    idx_short = net.quantize_stages(y[:, : 24 * cfg.subspaces_of(7)], 7)[0]  # the encoder's channel slice
    assert torch.equal(idx_short, idx[:, :7])


def test_widening_into_a_second_token_block_keeps_every_old_prefix():
    """A model widened with blocks = 2 quantizes, encodes and decodes every prefix of the old token count as the
    source did; its new tokens come after them, start silent in the synthesis, and the training pass matches."""
    narrow = _net(3)
    wide = _blocked(narrow)
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        for k in (1, 2, 5, 6):
            a, b = narrow.encode(x, k), wide.encode(x, k)
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
            assert torch.allclose(narrow.decode(*a), wide.decode(*b), atol=1e-6)
            keep = torch.tensor([k])
            assert torch.allclose(wide(x, keep=keep)["x_hat"], narrow(x, keep=keep)["x_hat"], atol=1e-6)
        indices, gains = wide.encode(x, 12)
        assert torch.equal(indices[:, :6], narrow.encode(x, 6)[0])
        assert torch.allclose(wide.decode(indices, gains), narrow.decode(*narrow.encode(x, 6)), atol=1e-6)
        mask = wide.subspace_mask(torch.tensor([1, 2, 6, 7, 12]))[:, ::24, 0, 0]
        assert mask.tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
        for k in (7, 12):
            indices, gains = wide.encode(x, k)
            assert torch.allclose(wide.decode(indices, gains), wide(x, keep=torch.tensor([k]))["x_hat"].clamp(0, 1),
                                  atol=1e-5)

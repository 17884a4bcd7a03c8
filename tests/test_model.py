"""The autoencoder: config checks, both transform families, the group mask, and tiling that matches whole images."""

from __future__ import annotations

import pytest
import torch

from leechcodec import model as model_module
from leechcodec.model import LeechAutoencoder, ModelConfig, tiled

SMALL = {
    "gdn": ModelConfig(stride=16, groups=3, widths=(8, 8, 8), arch="gdn", groups_for_quality=(1, 2, 3)),
    "residual": ModelConfig(stride=16, groups=3, widths=(8, 8, 8, 8), arch="residual", groups_for_quality=(1, 2, 3)),
}


def test_config_checks():
    with pytest.raises(ValueError, match="arch"):
        ModelConfig(arch="vit")
    with pytest.raises(ValueError, match="gdn at stride 16 needs 3 widths"):
        ModelConfig(stride=16, widths=(8, 8, 8, 8), arch="gdn")
    with pytest.raises(ValueError, match="residual at stride 8 needs 3 widths"):
        ModelConfig(stride=8, widths=(8, 8), arch="residual")


def test_configs_saved_before_arch_existed_load_as_residual():
    d = SMALL["residual"].to_dict()
    del d["arch"]
    assert ModelConfig.from_dict(d) == SMALL["residual"]
    assert ModelConfig.from_dict(SMALL["gdn"].to_dict()) == SMALL["gdn"]


@pytest.mark.parametrize("arch", ["gdn", "residual"])
def test_shapes_and_group_mask(arch):
    torch.manual_seed(0)
    net = LeechAutoencoder(SMALL[arch]).eval()
    x = torch.rand(2, 3, 48, 32)
    out = net(x, keep=torch.tensor([1, 3]))
    assert out["x_hat"].shape == x.shape
    assert out["indices"].shape == (2, 3, 3, 2)
    # the first sample keeps one group: its picture depends on that group only
    y_hat, _ = net.quantizer(net.analysis(x))
    y_hat[0, 24:] = torch.randn_like(y_hat[0, 24:])
    masked = y_hat * net.group_mask(torch.tensor([1, 3]))
    assert torch.equal(net.synthesis(masked)[0], out["x_hat"][0])


def test_group_mask_per_position_keeps_each_positions_leading_tokens():
    """keep [B, h, w] (an adaptive file's counts) masks each position's own leading tokens; a constant map masks as
    keep [B] does."""
    net = LeechAutoencoder(SMALL["gdn"])
    counts = torch.tensor([[[0, 1], [2, 3]]])
    mask = net.group_mask(counts)
    assert mask.shape == (1, 24 * 3, 2, 2)
    for i, j in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        kept = mask[0, :, i, j].reshape(3, 24)
        assert (kept == (torch.arange(3) < counts[0, i, j])[:, None].float()).all()
    uniform = net.group_mask(torch.tensor([2, 2])).expand(-1, -1, 2, 2)
    assert torch.equal(net.group_mask(torch.full((2, 2, 2), 2)), uniform)


@pytest.mark.parametrize("arch", ["gdn", "residual"])
def test_tile_margins_cover_the_receptive_fields(arch):
    """With the shipped margins (and smaller tiles, so that the image is cut) tiled transforms equal whole ones."""
    torch.manual_seed(1)
    net = LeechAutoencoder(SMALL[arch]).eval()
    x = torch.rand(1, 3, 352, 336)
    with torch.no_grad():
        y = net.analysis(x)
        y_tiled = tiled(net.analysis, x, 1 / 16, 64, model_module.ENCODE_MARGIN)
        assert torch.allclose(y, y_tiled, atol=1e-4)
        z = torch.randn(1, 72, 10, 14)
        assert torch.allclose(net.synthesis(z), tiled(net.synthesis, z, 16, 4, model_module.DECODE_MARGIN), atol=1e-4)

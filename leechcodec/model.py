"""The Λ24-SQ autoencoder: analysis and synthesis transforms around the Leech quantizer, and its config.

Shapes (Ballé names): x [B, 3, H, W] float32 in [0, 1] (H, W multiples of ``stride``) → g_a → y [B, 24·G, H/s, W/s]
→ quantizer → y_hat (unit code vectors) and indices [B, G, H/s, W/s] int64 → g_s → x_hat [B, 3, H, W]. (With
residual stages, below, y and y_hat have 24·S channels for S = G/T subspaces.)

Rate control by ordered token groups: the model is trained with a random number k of leading groups kept and the
others set to zero, so decoding the first k groups of one model gives k rate points (progressive decoding). Quality
level q of a model uses ``groups_for_quality[q-1]`` groups.

Gain–shape tokens (``ModelConfig.gain_levels`` > 0): besides its direction (the Leech point), every token carries a
gain g = ‖v‖/√24 of its standardized 24-d vector, quantized to one of ``gain_levels`` log-uniform levels
2^(gain_log2_min + s·gain_log2_step), s = 0..L−1; the decoder sees g·(unit code vector). The gain symbols s
[B, G, h, w] are coded beside the indices (``gains``). gain_levels = 0 is direction only (the paper's tokenizer).

Residual stages (``ModelConfig.stages`` = T > 1, gain–shape only): the latent has S = G/T subspaces of 24 channels
and every subspace is quantized T times, each stage coding what the earlier ones left (residual vector
quantization with Λ24 directions): stage t sees e_t = u − √24·Σ_{t'<t} ĝ_t'·ĉ_t' of the standardized vector u and
codes its direction ĉ_t and gain ĝ_t like any token. Tokens are ordered stage-major — token j is stage j // S of
subspace j % S — so the first S tokens are the plain gain–shape tokens and every later one refines one of them;
keeping k leading tokens is still the rate control, and the decoder adds the kept tokens of each subspace.

Token blocks (``ModelConfig.blocks`` = B > 1): the S subspaces form B blocks of S/B consecutive subspaces, and the
tokens are ordered block by block, stage-major within a block (token j is in block j // (G/B)). A network widened
from one of G/B tokens (``training.loop.fit_weights``) keeps the source's token order as its first block, so every
prefix of k ≤ G/B tokens is the source's prefix; the new subspaces' tokens all come after the old ones.

The transforms g_a and g_s are built by ``transforms`` from the config's ``arch`` and ``widths``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from leechcodec import transforms
from leechcodec.lattice import DIM
from leechcodec.quantizer import BSQQuantizer, LeechQuantizer, unit_vectors


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network; saved with the weights."""

    stride: int = 16  # 8 or 16
    groups: int = 12  # G: 24-d tokens per latent position
    widths: tuple[int, ...] = (48, 96, 128, 192)  # channels at strides 2, 4, 8(, 16 for residual)
    quantizer: str = "leech"  # "leech" or "bsq"
    arch: str = "residual"  # "gdn" or "residual"; configs saved before the field existed are "residual"
    groups_for_quality: tuple[int, ...] = field(default=(1, 2, 3, 4, 6, 8, 10, 12))
    gain_levels: int = 0  # 0: direction only; L > 0: gain–shape tokens with L log-uniform gain levels
    gain_log2_min: float = -2.5  # log2 of the smallest gain level
    gain_log2_step: float = 2 / 3  # spacing of the gain levels in octaves
    stages: int = 1  # T: residual quantization stages per subspace (groups = T × subspaces); > 1 needs gain levels
    blocks: int = 1  # B: blocks of subspaces whose tokens are ordered one block after another (module docstring)

    def __post_init__(self):
        if self.stride not in (8, 16):
            raise ValueError(f"stride must be 8 or 16, got {self.stride}")
        if self.arch not in ("gdn", "residual"):
            raise ValueError(f"arch must be 'gdn' or 'residual', got {self.arch!r}")
        # residual: one width per stride level; gdn: one per level below the latent (the last conv makes 24·G)
        levels = int(math.log2(self.stride)) - (self.arch == "gdn")
        if len(self.widths) != levels:
            raise ValueError(f"{self.arch} at stride {self.stride} needs {levels} widths, got {len(self.widths)}")
        if self.quantizer not in ("leech", "bsq"):
            raise ValueError(f"quantizer must be 'leech' or 'bsq', got {self.quantizer!r}")
        if not all(1 <= k <= self.groups for k in self.groups_for_quality):
            raise ValueError("groups_for_quality must lie in 1..groups")
        if not 0 <= self.gain_levels <= 256 or self.gain_log2_step <= 0:
            raise ValueError("gain_levels must lie in 0..256 and gain_log2_step be positive")
        if self.stages < 1 or self.groups % self.stages or (self.stages > 1 and not self.gain_levels):
            raise ValueError("stages must divide groups, and residual stages need gain levels")
        if self.blocks < 1 or self.subspaces % self.blocks:
            raise ValueError(f"blocks must divide the {self.subspaces} subspaces, got {self.blocks}")

    @property
    def subspaces(self) -> int:
        """S: 24-d subspaces of the latent (= groups when there is one stage)."""
        return self.groups // self.stages

    @property
    def block_groups(self) -> int:
        """G/B: tokens per block (= groups without token blocks)."""
        return self.groups // self.blocks

    @property
    def block_subspaces(self) -> int:
        """S/B: subspaces per block; the distance in token order between two stages of one subspace."""
        return self.subspaces // self.blocks

    def subspaces_of(self, tokens: int) -> int:
        """How many leading subspaces hold the first ``tokens`` tokens (the latent channels an encoder needs)."""
        full, rest = divmod(min(tokens, self.groups), self.block_groups)
        return full * self.block_subspaces + min(rest, self.block_subspaces)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        d["groups_for_quality"] = tuple(d["groups_for_quality"])
        return cls(**d)


class LeechAutoencoder(nn.Module):
    """g_a → (standardize, project to the sphere, quantize) → g_s, with ordered token groups."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.g_a = transforms.analysis(cfg.arch, cfg.widths, cfg.subspaces)
        # Per-channel standardization of the latent before the projection to the sphere: keeps the 24-d directions
        # spread over the codebook instead of collapsing onto a few points (running statistics at inference).
        self.standardize = nn.BatchNorm2d(DIM * cfg.subspaces, affine=False)
        self.g_s = transforms.synthesis(cfg.arch, cfg.widths, cfg.subspaces)
        self.quantizer = LeechQuantizer() if cfg.quantizer == "leech" else BSQQuantizer()
        self.memory_format = torch.contiguous_format  # the layout of the transforms' weights and inputs

    def use_memory_format(self, memory_format: torch.memory_format) -> LeechAutoencoder:
        """Store the weights, and feed the transforms, in this layout. torch.channels_last is the one oneDNN's
        convolutions run fastest in on CPUs (about 1.5× here, forward and backward); either gives float32 results
        that differ only in rounding."""
        self.memory_format = memory_format
        return self.to(memory_format=memory_format)

    @property
    def stride(self) -> int:
        return self.cfg.stride

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 3, H, W] in [0, 1] → standardized latent y [B, 24·S, H/s, W/s]."""
        return self.standardize(self.g_a((x - 0.5).contiguous(memory_format=self.memory_format)))

    def synthesis(self, y_hat: torch.Tensor) -> torch.Tensor:
        """y_hat [B, 24·S, h, w] (absent groups zero) → x_hat [B, 3, 16h, 16w] (not clamped)."""
        return self.g_s(y_hat.contiguous(memory_format=self.memory_format)) + 0.5

    @staticmethod
    def _token_gains(y: torch.Tensor) -> torch.Tensor:
        """y [B, 24·k, h, w] → the gain ‖v‖/√24 of every token [B, k, h, w] float32."""
        b, ch, h, w = y.shape
        return y.float().reshape(b, ch // DIM, DIM, h, w).norm(dim=2) / math.sqrt(DIM)

    def _symbols_of(self, gain: torch.Tensor) -> torch.Tensor:
        """Token gains → the nearest level in the log domain, as symbols int64 in [0, gain_levels)."""
        c = self.cfg
        s = torch.round((torch.log2(gain.clamp_min(1e-30)) - c.gain_log2_min) / c.gain_log2_step)
        return s.clamp(0, c.gain_levels - 1).long()

    def gain_symbols(self, y: torch.Tensor) -> torch.Tensor:
        """Standardized latent y [B, 24·k, h, w] → gain symbols [B, k, h, w] int64 in [0, gain_levels)."""
        return self._symbols_of(self._token_gains(y))

    def gain_values(self, symbols: torch.Tensor) -> torch.Tensor:
        """Gain symbols [B, k, h, w] → gains [B, 24·k, h, w] float32 (each repeated over its token's channels)."""
        c = self.cfg
        g = torch.exp2(c.gain_log2_min + c.gain_log2_step * symbols.float())
        return g.repeat_interleave(DIM, dim=1)

    def _gain_ste(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """y → (unquantized gains, quantized gains with a straight-through gradient, symbols); gains per channel."""
        gain = self._token_gains(y)
        symbols = self._symbols_of(gain.detach())
        gain = gain.repeat_interleave(DIM, dim=1)
        g_hat = gain + (self.gain_values(symbols) - gain).detach()
        return gain, g_hat, symbols

    def group_mask(self, keep: torch.Tensor) -> torch.Tensor:
        """keep [B] int (groups kept per sample) → float mask [B, 24·G, 1, 1] (1 for kept channels); keep [B, h, w]
        (groups kept per latent position, as adaptive files keep them) → mask [B, 24·G, h, w]."""
        g = torch.arange(self.cfg.groups, device=keep.device)
        per_position = keep[:, None] if keep.dim() == 3 else keep[:, None, None, None]
        mask = (g[None, :, None, None] < per_position).float()
        return mask.repeat_interleave(DIM, dim=1)

    def subspace_mask(self, keep: torch.Tensor) -> torch.Tensor:
        """keep [B] int (tokens kept per sample) → float mask [B, 24·S, 1, 1]: 1 for the channels of the subspaces
        that hold at least one kept token (whose first stage is kept)."""
        c = self.cfg
        s = torch.arange(c.subspaces, device=keep.device)
        first = s // c.block_subspaces * c.block_groups + s % c.block_subspaces  # each subspace's first-stage token
        mask = (first[None, :, None, None] < keep[:, None, None, None]).float()
        return mask.repeat_interleave(DIM, dim=1)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None, blend: float = 1.0) -> dict:
        """Training pass. keep [B]: groups kept per sample (default all); blend in [0, 1] mixes the straight-through
        code vectors with the unquantized unit vectors (warm-up)."""
        y = self.analysis(x)
        if self.cfg.stages > 1:
            return self._forward_stages(y, keep, blend)
        y_hat, indices = self.quantizer(y)
        z = unit_vectors(y) if blend < 1.0 else None
        gain_symbols = None
        if self.cfg.gain_levels:
            gain, g_hat, gain_symbols = self._gain_ste(y)
            y_hat = y_hat * g_hat
            z = z * gain if z is not None else None
        if z is not None:
            y_hat = z + blend * (y_hat - z)
        if keep is not None:
            y_hat = y_hat * self.group_mask(keep)
        return {"x_hat": self.synthesis(y_hat), "indices": indices, "gain_symbols": gain_symbols, "y": y}

    def _forward_stages(self, y: torch.Tensor, keep: torch.Tensor | None, blend: float) -> dict:
        """Training pass of a residual-stage model: one straight-through estimator for the sum of a subspace's kept
        stages (forward: the quantized sum; gradient: identity to y/√24, the unquantized decoder input)."""
        indices, gain_symbols, vectors = self.quantize_stages(y, self.cfg.groups)
        target = y.float() / math.sqrt(DIM)
        if keep is not None:
            vectors = vectors * self.group_mask(keep)
            target = target * self.subspace_mask(keep)
        y_hat = target + blend * (self.assemble(vectors) - target).detach()
        return {"x_hat": self.synthesis(y_hat), "indices": indices, "gain_symbols": gain_symbols, "y": y}

    @torch.no_grad()
    def quantize_stages(self, y: torch.Tensor, tokens: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Standardized latent y [B, 24·s, h, w] (s ≥ ``cfg.subspaces_of(tokens)``) → its leading ``tokens``
        gain–shape tokens in token order (block by block, stage-major within a block): (indices [B, k, h, w], gain
        symbols [B, k, h, w], decoder-scale vectors ĝ·ĉ [B, 24·k, h, w]).

        Stage t quantizes the residual the stages before it left, in the standardized scale (hence the √24 that
        undoes the gain's normalization); with one stage this is plain gain–shape quantization of y."""
        c = self.cfg
        s, width = c.block_subspaces, DIM * c.block_subspaces
        indices, symbols, vectors = [], [], []
        for b0 in range(0, tokens, c.block_groups):
            block = b0 // c.block_groups
            residual = y[:, block * width:(block + 1) * width].float()
            for t0 in range(b0, min(tokens, b0 + c.block_groups), s):
                n = min(s, tokens - t0)
                r = residual[:, : DIM * n]
                codes, idx = self.quantizer(r)
                sym = self.gain_symbols(r)
                vec = codes * self.gain_values(sym)
                indices.append(idx)
                symbols.append(sym)
                vectors.append(vec)
                residual = torch.cat([r - math.sqrt(DIM) * vec, residual[:, DIM * n:]], dim=1)
        return torch.cat(indices, dim=1), torch.cat(symbols, dim=1), torch.cat(vectors, dim=1)

    def assemble(self, vectors: torch.Tensor) -> torch.Tensor:
        """Decoder-scale token vectors [B, 24·k, h, w] (token order) → decoder input [B, 24·S, h, w]: each subspace
        is the sum of its kept stages, added in stage order (a fixed order, so every decoder gets the same floats);
        subspaces without a kept token are zero."""
        b, c, h, w = vectors.shape
        cfg = self.cfg
        y_hat = vectors.new_zeros(b, DIM * cfg.subspaces, h, w)
        block_channels, width = DIM * cfg.block_groups, DIM * cfg.block_subspaces
        for b0 in range(0, c, block_channels):
            out = y_hat[:, b0 // block_channels * width:]
            for c0 in range(b0, min(c, b0 + block_channels), width):
                part = vectors[:, c0:c0 + width]
                out[:, : part.shape[1]] += part
        return y_hat

    # ---------------------------------------------------------------------------------------- inference API
    @torch.no_grad()
    def encode(self, x: torch.Tensor, groups: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [1, 3, H, W] float32 in [0, 1], H and W multiples of the stride → (indices [1, k, H/s, W/s] int64,
        gain symbols of the same shape or None for a direction-only model), on the CPU.

        Quantization always runs on the CPU with the exact structured search, so the indices do not depend on the
        device that ran g_a beyond the float values of y."""
        k = self.cfg.groups if groups is None else groups
        s = self.cfg.subspaces_of(k)
        y = tiled(self.analysis, x, 1 / self.stride, ENCODE_TILE, ENCODE_MARGIN)[:, : DIM * s].float().cpu()
        indices, gain_symbols, _ = self.quantize_tokens(y, k)
        return indices, gain_symbols

    @torch.no_grad()
    def encode_all_with_errors(self, x: torch.Tensor, weights: torch.Tensor | None = None
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x as for ``encode`` → all G tokens (indices, gain symbols [1, G, h, w]) and the latent-domain error left
        after each prefix: errors [G+1, h, w] float64, errors[n] = ‖y/√24 − decoder input of the first n tokens‖²
        per position (gain–shape models; weighted per channel with ``weights``, as in ``prefix_errors``). The input
        of ``allocation.allocate``."""
        if not self.cfg.gain_levels:
            raise ValueError("per-position token counts need a gain–shape model")
        y = tiled(self.analysis, x, 1 / self.stride, ENCODE_TILE, ENCODE_MARGIN).float().cpu()
        indices, gain_symbols, vectors = self.quantize_stages(y, self.cfg.groups)
        return indices, gain_symbols, self.prefix_errors(y, vectors, weights)[0]

    def prefix_errors(self, y: torch.Tensor, vectors: torch.Tensor, weights: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """Standardized latent y [B, 24·S, h, w] and all G tokens' decoder-scale vectors [B, 24·G, h, w] → the
        latent-domain error left after each prefix [B, G+1, h, w] float64: ‖y/√24 − decoder input of the first n
        tokens‖² per position, n = 0..G. weights [24·S] (None: all 1): each channel's squared error is multiplied
        by its weight (the decoder's sensitivity to that channel, ``LoadedModel.allocation_weights``)."""
        target = y.float() / math.sqrt(DIM)
        w = None if weights is None else weights.to(target).view(1, -1, 1, 1)

        def total(err: torch.Tensor) -> torch.Tensor:
            return (err.square() if w is None else w * err.square()).sum(dim=1).double()

        errors = [total(target)]
        for n in range(1, self.cfg.groups + 1):
            errors.append(total(target - self.assemble(vectors[:, : DIM * n])))
        return torch.stack(errors, dim=1)

    @torch.no_grad()
    def quantize_tokens(self, y: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Standardized latent y [B, 24·s, h, w] (s = ``cfg.subspaces_of(k)``) → its leading k tokens as the encoder
        writes them: (indices [B, k, h, w], gain symbols [B, k, h, w] or None for a direction-only model,
        decoder-scale vectors [B, 24·k, h, w])."""
        if self.cfg.gain_levels:
            return self.quantize_stages(y, k)
        codes, indices = self.quantizer(y)
        return indices, None, codes

    @torch.no_grad()
    def decode(self, indices: torch.Tensor, gain_symbols: torch.Tensor | None = None) -> torch.Tensor:
        """indices [1, k, h, w] (and gain symbols of the same shape for a gain–shape model) → x_hat [1, 3, s·h, s·w]
        float32 in [0, 1] (on the model's device). Tokens an adaptive file leaves out (index −1, ``allocation``)
        enter the decoder as zeros."""
        if indices.dim() != 4:
            raise ValueError(f"indices must be [B, k, h, w], got shape {tuple(indices.shape)}")
        if (gain_symbols is not None) != bool(self.cfg.gain_levels):
            raise ValueError("gain symbols are needed exactly when the model has gain levels")
        device = next(self.parameters()).device
        if (indices < -1).any():
            raise ValueError("token indices must be −1 (absent) or a Leech index")
        present = (indices >= 0).cpu()
        codes = self.quantizer.indices_to_codes(indices.cpu().clamp_min(0))
        if gain_symbols is not None:
            codes = codes * self.gain_values(gain_symbols.cpu().clamp_min(0))
        if not present.all():
            codes = codes * present.float().repeat_interleave(DIM, dim=1)
        y_hat = self.assemble(codes).to(device)
        return tiled(self.synthesis, y_hat, self.stride, DECODE_TILE, DECODE_MARGIN).clamp(0, 1)


# Large images are transformed in overlapping tiles so that memory stays bounded. Margins exceed the transforms'
# receptive fields in practice, so tile borders do not show; the tiling depends only on the image size, so every
# machine computes the same tiles. Units: pixels for the encoder, latent positions for the decoder.
ENCODE_TILE, ENCODE_MARGIN = 1024, 128
DECODE_TILE, DECODE_MARGIN = 64, 8


def tile_boxes(h: int, w: int, tile: int, margin: int):
    """The tiles of an h × w input, in row-major order: (y0, y1, x0, x1) of the tile and (a, c, b, d) of the tile
    with its margin (rows a:c, columns b:d), clipped to the input. One tile when the input is small."""
    if h <= tile + 2 * margin and w <= tile + 2 * margin:
        yield (0, h, 0, w), (0, h, 0, w)
        return
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            yield (y0, y1, x0, x1), (max(0, y0 - margin), min(h, y1 + margin), max(0, x0 - margin), min(w, x1 + margin))


def tiled(fn, x: torch.Tensor, scale: float, tile: int, margin: int) -> torch.Tensor:
    """Apply a convolutional map fn (output size = scale × input size) over overlapping tiles of x [B, C, H, W].

    tile and margin are in units of x and must be multiples of 1/scale when scale < 1. Small inputs go in one piece.
    """
    _, _, h, w = x.shape
    rows, cols, row_start = [], [], None
    for (y0, y1, x0, x1), (a, c, b, d) in tile_boxes(h, w, tile, margin):
        if row_start is not None and y0 != row_start:
            rows.append(torch.cat(cols, dim=3))
            cols = []
        row_start = y0
        out = fn(x[:, :, a:c, b:d])
        oy, ox = round((y0 - a) * scale), round((x0 - b) * scale)
        cols.append(out[:, :, oy:oy + round((y1 - y0) * scale), ox:ox + round((x1 - x0) * scale)])
    rows.append(torch.cat(cols, dim=3))
    return torch.cat(rows, dim=2)

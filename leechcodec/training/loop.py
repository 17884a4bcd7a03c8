"""The training loop of a Λ24-SQ autoencoder (bin/train.py): options, the learning-rate schedule, the forward pass with
its distortion and rate terms, validation, checkpoints that resume a run exactly, and starting a run from another
run's or a shipped model's weights (``init_weights``, ``fit_weights``).

One run trains one variable-rate model: each sample keeps the leading token groups of a randomly drawn quality level,
so one set of weights serves every quality level (or, with ``keep_draw="allocator"`` and a frozen analysis, the tokens
the default encoder's allocation keeps at that level: ``leechcodec.training.adaptive``). Loss = mean over the batch of
log10(MSE) on [0, 255] RGB (minus the mean PSNR / 10), plus, with ``rate_weight`` λ, λ × the mean proxy bits of a
kept token (``leechcodec.rate_proxy``).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from leechcodec.lattice import DIM
from leechcodec.model import LeechAutoencoder, ModelConfig
from leechcodec.rate_proxy import DirectionRateProxy
from leechcodec.training import TrainingError
from leechcodec.training.adaptive import AllocatorCounts
from leechcodec.training.data import DEFAULT_DATA, centre_crop, load_images, random_batch

LOG_COLUMNS = ["step", "elapsed_s", "lr", "loss", "psnr", "distinct_codes", "code_entropy_bits"]


@dataclass
class TrainOptions:
    """What bin/train.py's flags set (field ``init_from`` is flag ``--init-from``, and so on; their help texts)."""

    out: Path
    data: Path = DEFAULT_DATA
    steps: int = 8000
    batch: int = 8
    crop: int = 128
    lr: float = 1e-3
    stride: int = 16
    groups: int = 12
    widths: str = "64,64,64"
    quantizer: str = "leech"
    arch: str = "gdn"
    min_keep: int = 1
    keep_draw: str = "qualities"
    gain_levels: int = 0
    gain_log2_min: float = -2.5
    stages: int = 1
    blocks: int = 1
    qualities: str = "1,2,3,4,6,8,10,12,16"
    init_from: Path | None = None
    blend_steps: int = 500
    ckpt_every: int = 250
    val_every: int = 1000
    seed: int = 0
    rate_weight: float = 0.0
    rate_components: int = 256
    rate_ramp: int = 500
    rate_lr: float = 3e-3
    freeze_synthesis: bool = False
    freeze_analysis: bool = False
    freeze_first_block: bool = False
    new_block_only: bool = False
    device: str = "cpu"
    threads: int = 0
    bf16: bool = False
    max_minutes: float = 0
    time_schedule: bool = False

    def __post_init__(self):
        self.out, self.data = Path(self.out), Path(self.data)
        self.init_from = None if self.init_from is None else Path(self.init_from)

    def as_dict(self) -> dict:
        """The options as plain values (paths as strings), as checkpoints and weights files keep them."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}

    def as_argv(self) -> list[str]:
        """A bin/train.py command line that sets these options (the flags that differ from their defaults)."""
        argv = ["bin/train.py", "--out", str(self.out)]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "out" or value == f.default:
                continue
            flag = "--" + f.name.replace("_", "-")
            argv += [flag] if value is True else [flag, str(value)]
        return argv

    def qualities_kept(self) -> tuple[int, ...]:
        """The token groups kept at each quality level: those of ``qualities`` that ``groups`` allows."""
        return tuple(k for k in (int(q) for q in self.qualities.split(",")) if k <= self.groups)

    def model_config(self) -> ModelConfig:
        return ModelConfig(stride=self.stride, groups=self.groups, widths=tuple(int(w) for w in self.widths.split(",")),
                           quantizer=self.quantizer, arch=self.arch, groups_for_quality=self.qualities_kept(),
                           gain_levels=self.gain_levels, gain_log2_min=self.gain_log2_min, stages=self.stages,
                           blocks=self.blocks)


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """mse on [0, 1] → PSNR in dB on the 8-bit scale."""
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def lr_at(step: int, total: int, base: float, warmup: int = 200) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine from ``base`` down to 5% of it at step ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def square_crop(img: np.ndarray, crop: int, stride: int) -> torch.Tensor:
    """The centre square of an HxWx3 uint8 image, at most ``crop`` and a multiple of ``stride`` on a side → a
    [3, c, c] float tensor in [0, 1]."""
    side = min(crop, *img.shape[:2])
    return torch.from_numpy(centre_crop(img, side, side, stride).copy()).permute(2, 0, 1).float().div(255)


def set_training_mode(model: LeechAutoencoder, o: TrainOptions) -> None:
    """Training mode, except for a frozen analysis (whole, or all but the later blocks' rows): it keeps its running
    statistics (eval mode), so its tokens stay those of the model it came from."""
    model.train()
    if o.freeze_analysis or o.freeze_first_block:
        model.g_a.eval()
        model.standardize.eval()


def freeze_first_block(model: LeechAutoencoder, synthesis: bool = False) -> None:
    """Train only the analysis rows that make the later token blocks' subspaces: every other analysis weight gets
    no gradient, and the last convolution's rows for the first block's channels get a zero one (Adam then never
    moves them: its moments stay zero). With the latent statistics held (``set_training_mode``), the first block's
    tokens stay exactly those of the model the run was widened from, and so do their priors. With ``synthesis``
    the decoder likewise trains only its first layer's weights from the later blocks' channels, which are zero
    whenever a prefix stays in the first block: such prefixes then decode exactly as the source's."""
    first = DIM * model.cfg.block_subspaces  # the first block's latent channels lead
    model.g_a.requires_grad_(False)
    last = model.g_a[-1]
    train_later_channels(last.weight, first)  # Conv2d weight [out, in, kh, kw]: rows are output channels
    train_later_channels(last.bias, first)
    if synthesis:
        model.g_s.requires_grad_(False)
        train_later_channels(model.g_s[0].weight, first)  # ConvTranspose2d weight [in, out, kh, kw]


def train_later_channels(p: torch.nn.Parameter, first: int) -> None:
    """Let ``p`` train, but give its first ``first`` slices along axis 0 a zero gradient."""
    p.requires_grad_(True)
    mask = torch.ones_like(p)
    mask[:first] = 0
    p.register_hook(lambda g, mask=mask: g * mask)


@torch.no_grad()
def calibrate_later_blocks(model: LeechAutoencoder, images: list[np.ndarray], crop: int) -> None:
    """Set the latent statistics of the later blocks' channels to their mean and variance over centre crops of
    ``images`` (those of the first block are left as they are): a widened model's new channels start standardized,
    as training-mode statistics would leave them."""
    first = DIM * model.cfg.block_subspaces
    ys = []
    device = model.standardize.running_mean.device
    for img in images:
        x = square_crop(img, crop, model.stride)[None].to(device)
        y = model.g_a((x - 0.5).contiguous(memory_format=model.memory_format))
        ys.append(y[:, first:].permute(1, 0, 2, 3).reshape(y.shape[1] - first, -1))
    y = torch.cat(ys, dim=1)
    model.standardize.running_mean[first:] = y.mean(dim=1)
    model.standardize.running_var[first:] = y.var(dim=1)


@torch.no_grad()
def validate(model: LeechAutoencoder, images: list[np.ndarray], device: torch.device, crop: int = 256) -> dict:
    """PSNR per quality level on centre crops of the held-out images (eval mode: running statistics); leaves every
    module in the mode it found it in."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    xs = [square_crop(img, crop, model.stride) for img in images]
    result = {}
    for q, k in enumerate(model.cfg.groups_for_quality, start=1):
        psnrs = []
        for x in xs:
            x = x[None].to(device)
            x_hat = model(x, keep=torch.tensor([k], device=device))["x_hat"].clamp(0, 1)
            x_hat = (x_hat * 255).round() / 255
            psnrs.append(psnr_from_mse(((x_hat - x) ** 2).mean()).item())
        result[f"val_psnr_q{q}"] = float(np.mean(psnrs))
    for m, mode in modes:
        m.train(mode)
    return result


def fit_weights(source: dict, model: torch.nn.Module) -> dict:
    """Fit another run's weights to this model, tensor by tensor:

    - a tensor that shrank keeps its leading slice along every axis (a model with fewer latent subspaces takes the
      first subspaces' channels — the ones the ordered groups made most important);
    - a tensor that grew (wider hidden layers, or more latent subspaces) holds the source in its leading slice and
      this model's fresh initialization elsewhere, except that every conv weight reading a new channel into an old
      one is zero. The widened network therefore starts out computing exactly the source's function (GDN's fresh γ
      has no cross-channel terms, so new channels do not enter the old ones' normalization either), while the new
      channels, whose outgoing weights get nonzero gradients, start learning. New latent subspaces enter the
      synthesis with zero weights, so with every token kept the wider model decodes as the source did; with the same
      number of stages, its first S_old subspaces are the source's. With one token block a prefix of k tokens is not
      the source's prefix of k (tokens are stage-major over all subspaces); with ``blocks`` = S/S_old the source's
      tokens are the first block, so every prefix of k ≤ G_old tokens decodes as the source's did;
    - any other mismatch raises TrainingError: an axis grew and another shrank, or a layer of the residual family
      grew (its pixel (un)shuffles interleave channels, so a leading slice is not the old layer)."""
    target = model.state_dict()
    input_axis = {}  # conv weight name → the axis of its input channels
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ConvTranspose2d):
            input_axis[f"{name}.weight"] = 0
        elif isinstance(module, torch.nn.Conv2d):
            input_axis[f"{name}.weight"] = 1
    fitted = {}
    for name, want in target.items():
        have = source[name]
        if have.shape == want.shape:
            fitted[name] = have
            continue
        grew = any(a < b for a, b in zip(have.shape, want.shape, strict=False))
        shrank = any(a > b for a, b in zip(have.shape, want.shape, strict=False))
        if have.dim() != want.dim() or (grew and (shrank or model.cfg.arch != "gdn")):
            raise TrainingError(f"--init-from: {name} has shape {tuple(have.shape)}, this model needs "
                                f"{tuple(want.shape)}")
        if not grew:
            fitted[name] = have[tuple(slice(0, n) for n in want.shape)]
            continue
        grown = want.clone()
        grown[tuple(slice(0, n) for n in have.shape)] = have
        if name in input_axis:
            i = input_axis[name]
            block = [slice(None)] * want.dim()
            block[1 - i] = slice(0, have.shape[1 - i])  # old output channels …
            block[i] = slice(have.shape[i], None)  # … reading new input channels
            grown[tuple(block)] = 0
        fitted[name] = grown
    return fitted


def init_weights(path: Path, device: torch.device) -> tuple[dict, str]:
    """The network weights held by `path` → (state dict, where they stand). `path` is either a run's checkpoint
    (``train``) or a shipped weights file (``export``, models/), so a run can continue a shipped model without the run
    folder it came from; both hold the same network state dict (a shipped file's float16 kernels, from
    ``--fp16-kernels``, come back as float32)."""
    blob = torch.load(path, map_location=device, weights_only=False)
    if "model" in blob and "step" in blob:
        return blob["model"], f"step {blob['step']} of that run"
    if "state_dict" in blob and "meta" in blob:
        state = {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
        return state, (f"shipped model {blob.get('model_id', '?')}, "
                       f"{blob['meta'].get('training_steps', '?')} steps in its last run")
    raise TrainingError(f"--init-from: {path} is neither a training checkpoint nor a shipped weights file")


def forward_mse(model: LeechAutoencoder, x: torch.Tensor, keep: torch.Tensor, blend: float,
                bf16: bool, allocator: AllocatorCounts | None = None) -> tuple[dict, torch.Tensor]:
    """The model's outputs and the per-sample MSE, each sample keeping ``keep`` leading tokens (or, with an
    allocator, the allocation's counts at that level). With bf16 the transforms run under bfloat16 autocast (the
    quantizer turns it off for itself); the MSE is always taken in float32."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = allocator.forward(model, x, keep) if allocator else model(x, keep=keep, blend=blend)
    return out, ((out["x_hat"].float() - x) ** 2).mean(dim=(1, 2, 3))


def token_directions(model: LeechAutoencoder, out: dict, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit direction every token quantized, with a gradient to the encoder, and which tokens a sample keeps:
    (u [N, G, 24] float32, kept [N, G] float, N = B·h·w positions). A residual stage's direction is that of what
    the earlier stages left (their quantized vectors held fixed), as the model's stage quantization does."""
    cfg = model.cfg
    y = out["y"].float()
    if cfg.stages > 1:
        vectors = model.quantizer.indices_to_codes(out["indices"]) * model.gain_values(out["gain_symbols"])
        width, parts, residual = DIM * cfg.subspaces, [], y
        for t in range(cfg.stages):
            parts.append(residual)
            residual = residual - math.sqrt(DIM) * vectors[:, t * width:(t + 1) * width]
        y = torch.cat(parts, dim=1)  # stage-major, as the tokens are ordered
    b, _, h, w = y.shape
    v = y.reshape(b, cfg.groups, DIM, h, w).permute(0, 3, 4, 1, 2).reshape(-1, cfg.groups, DIM)
    u = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    kept = (torch.arange(cfg.groups, device=keep.device)[None, :] < keep[:, None]).float()
    return u, kept.repeat_interleave(h * w, dim=0)


@dataclass
class RunState:
    """Everything a checkpoint holds and the loop updates: the network and its optimizer, the rate proxy and its
    optimizer (with ``rate_weight``), the step, the training seconds so far, the data stream's random state, and the
    command lines of the invocations that trained it."""

    model: LeechAutoencoder
    opt: torch.optim.Optimizer
    proxy: DirectionRateProxy | None
    proxy_opt: torch.optim.Optimizer | None
    rng: random.Random
    step: int = 0
    elapsed: float = 0.0
    commands: list = dataclasses.field(default_factory=list)


def new_run(o: TrainOptions, cfg: ModelConfig, device: torch.device) -> RunState:
    """A fresh run under ``o.seed``: the network (seeded), its optimizer, the rate proxy, the data stream."""
    torch.manual_seed(o.seed)
    model = LeechAutoencoder(cfg).to(device).use_memory_format(torch.channels_last)  # faster in fp32 and bf16 alike
    if o.freeze_synthesis:
        model.g_s.requires_grad_(False)
    if o.freeze_analysis:
        model.g_a.requires_grad_(False)  # the standardization has no parameters; its statistics: set_training_mode
    elif o.freeze_first_block:
        freeze_first_block(model, synthesis=o.new_block_only)
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=o.lr)
    # the rate proxy is fitted by maximum likelihood to the directions, on its own optimizer and constant rate
    proxy = DirectionRateProxy(cfg.groups, o.rate_components, seed=o.seed).to(device) if o.rate_weight else None
    proxy_opt = torch.optim.Adam(proxy.parameters(), lr=o.rate_lr) if proxy else None
    return RunState(model, opt, proxy, proxy_opt, random.Random(o.seed))


def resume(run: RunState, o: TrainOptions, cfg: ModelConfig, ckpt_path: Path, device: torch.device) -> None:
    """Continue the run in ``ckpt_path`` exactly where it stopped (weights, optimizers, step, random states)."""
    ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
    if ModelConfig.from_dict(ckpt["config"]) != cfg:
        raise TrainingError(f"{ckpt_path} was trained with another config; use another --out")
    for flag in ("freeze_synthesis", "freeze_analysis", "freeze_first_block", "new_block_only"):
        if ckpt["args"].get(flag, False) != getattr(o, flag):
            raise TrainingError(f"{ckpt_path} was trained {'without' if getattr(o, flag) else 'with'}"
                                f" --{flag.replace('_', '-')}; use another --out")
    run.model.load_state_dict(ckpt["model"])
    run.opt.load_state_dict(ckpt["optimizer"])
    run.step, run.elapsed = ckpt["step"], ckpt["elapsed"]
    run.commands = list(ckpt.get("commands", []))
    if run.proxy is not None:
        if "rate_proxy" not in ckpt:
            raise TrainingError(f"{ckpt_path} was trained without --rate-weight; use another --out")
        run.proxy.load_state_dict(ckpt["rate_proxy"])
        run.proxy_opt.load_state_dict(ckpt["rate_optimizer"])
    run.rng.setstate(ckpt["rng"])
    torch.set_rng_state(ckpt["torch_rng"])


def save_checkpoint(run: RunState, o: TrainOptions, cfg: ModelConfig, ckpt_path: Path) -> None:
    """Write the checkpoint (temporary file, then rename): with ``resume`` it continues the run bit for bit."""
    tmp = ckpt_path.with_suffix(".tmp")
    extra = {"rate_proxy": run.proxy.state_dict(), "rate_optimizer": run.proxy_opt.state_dict()} if run.proxy else {}
    torch.save(extra | {"config": cfg.to_dict(), "model": run.model.state_dict(), "optimizer": run.opt.state_dict(),
                        "step": run.step, "elapsed": run.elapsed, "rng": run.rng.getstate(),
                        "torch_rng": torch.get_rng_state(), "args": o.as_dict(), "commands": run.commands}, tmp)
    tmp.replace(ckpt_path)


def train_step(run: RunState, o: TrainOptions, x: torch.Tensor, keep: torch.Tensor,
               allocator: AllocatorCounts | None = None) -> tuple[dict, torch.Tensor, torch.Tensor, float]:
    """One optimizer step at ``run.step`` → (the model's outputs, per-sample MSE, loss, mean proxy bits or 0)."""
    blend = min(1.0, run.step / o.blend_steps) if o.blend_steps else 1.0
    out, mse = forward_mse(run.model, x, keep, blend, o.bf16, allocator)
    loss = torch.log10(mse.clamp_min(1e-10)).mean()
    bits = 0.0
    if run.proxy is not None:
        u, kept = token_directions(run.model, out, keep)
        token_bits = run.proxy.bits(u, detach_params=True)  # gradient to the encoder only
        rate = (token_bits * kept).sum() / kept.sum()
        loss = loss + o.rate_weight * min(1.0, (run.step + 1) / max(1, o.rate_ramp)) * rate
        fit = run.proxy.bits(u.detach()).mean()  # gradient to the mixtures only
        run.proxy_opt.zero_grad(set_to_none=True)
        fit.backward()
        run.proxy_opt.step()
        bits = rate.item()
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    run.step += 1
    return out, mse, loss, bits


class TrainingLog:
    """``<out>/log.csv`` (appended to on resume) and the progress lines on stdout, averaged since the last row."""

    def __init__(self, path: Path, qualities: int):
        self.val_columns = [f"val_psnr_q{q}" for q in range(1, qualities + 1)]
        new_log = not path.exists()
        self.file = open(path, "a", newline="")  # noqa: SIM115 - open for the whole run, closed by close()
        self.writer = csv.writer(self.file)
        if new_log:
            self.writer.writerow(LOG_COLUMNS + self.val_columns + ["proxy_bits"])
        self.reset(time.time())

    def reset(self, now: float) -> None:
        self.t_last, self.psnr, self.loss, self.bits, self.n = now, 0.0, 0.0, 0.0, 0

    def add(self, mse: torch.Tensor, loss: torch.Tensor, bits: float) -> None:
        self.psnr += psnr_from_mse(mse.detach()).mean().item()
        self.loss += loss.item()
        self.bits += bits
        self.n += 1

    def row(self, run: RunState, out: dict, validation=None) -> None:
        """Log the averages since the last row, and the PSNRs that ``validation()`` returns when given (its time
        counts towards the next row); adds the time since the last row to ``run.elapsed``."""
        now = time.time()
        run.elapsed += now - self.t_last
        idx = out["indices"].flatten()
        counts = torch.bincount(idx, minlength=1).float()
        counts = counts[counts > 0] / idx.numel()
        entropy = float(-(counts * counts.log2()).sum())
        row = {"step": run.step, "elapsed_s": round(run.elapsed, 1), "lr": f"{run.opt.param_groups[0]['lr']:.2e}",
               "loss": round(self.loss / self.n, 4), "psnr": round(self.psnr / self.n, 3),
               "distinct_codes": len(counts), "code_entropy_bits": round(entropy, 2)}
        if run.proxy is not None:
            row["proxy_bits"] = round(self.bits / self.n, 3)
        if validation is not None:
            row |= {k: round(v, 3) for k, v in validation().items()}
        print(" ".join(f"{k}={v}" for k, v in row.items()) + f" steps/s={self.n / (now - self.t_last):.2f}",
              flush=True)
        self.writer.writerow([row.get(k, "") for k in LOG_COLUMNS + self.val_columns + ["proxy_bits"]])
        self.file.flush()
        self.reset(now)

    def close(self) -> None:
        self.file.close()


def prepare(o: TrainOptions, command: list[str] | None) -> tuple[RunState, ModelConfig, torch.device]:
    """Set up the run in ``o.out``: resumed from its checkpoint, or new (from ``o.init_from`` when given)."""
    if o.threads:
        torch.set_num_threads(o.threads)
    if o.keep_draw == "allocator" and not (o.freeze_analysis and o.gain_levels):
        raise TrainingError("--keep-draw allocator needs --freeze-analysis and a gain–shape model (its tokens must "
                            "stay those its priors were fitted to)")
    if o.keep_draw == "allocator" and o.rate_weight:
        raise TrainingError("--keep-draw allocator trains the decoder only; --rate-weight has nothing to act on")
    if o.freeze_first_block and not (o.blocks > 1 and o.init_from):
        raise TrainingError("--freeze-first-block needs --blocks 2 or more and --init-from (the model whose tokens "
                            "the first block keeps)")
    if o.new_block_only and not o.freeze_first_block:
        raise TrainingError("--new-block-only goes with --freeze-first-block (it freezes the decoder's part too)")
    if o.freeze_first_block and o.freeze_analysis:
        raise TrainingError("--freeze-first-block trains part of the analysis; --freeze-analysis freezes all of it")
    if o.time_schedule and o.max_minutes <= 0:
        raise TrainingError("--time-schedule spreads the learning rate over --max-minutes; give it")
    if o.blocks > 1 and o.rate_weight:
        raise TrainingError("--rate-weight prices stage-major tokens; it does not support --blocks")
    device = torch.device(o.device)
    o.out.mkdir(parents=True, exist_ok=True)
    ckpt_path = o.out / "checkpoint.pt"
    cfg = o.model_config()
    run = new_run(o, cfg, device)
    if ckpt_path.exists():
        if o.time_schedule:
            raise TrainingError(f"{ckpt_path} exists: a --time-schedule run is one invocation (a resumed one would "
                                "start its schedule again); use another --out")
        resume(run, o, cfg, ckpt_path, device)
        print(f"resumed from {ckpt_path} at step {run.step}")
    elif o.init_from:
        # Only the network weights travel (the gain levels add no parameters); optimizer, step and data stream start
        # afresh under this run's seed and schedule.
        weights, origin = init_weights(o.init_from, device)
        run.model.load_state_dict(fit_weights(weights, run.model))
        print(f"initialized from {o.init_from} ({origin})")
    run.commands.append(list(command) if command is not None else o.as_argv())
    return run, cfg, device


def train(o: TrainOptions, command: list[str] | None = None) -> Path:
    """Train (or resume) the run in ``o.out`` up to ``o.steps`` steps or ``o.max_minutes`` → its checkpoint path.
    ``command`` is the command line that asked for it, kept in the checkpoint (default: ``o.as_argv()``)."""
    run, cfg, device = prepare(o, command)
    ckpt_path = o.out / "checkpoint.pt"
    t0 = time.time()
    train_imgs, val_imgs = load_images(o.data, o.crop)
    print(f"{len(train_imgs)} training and {len(val_imgs)} validation images loaded in {time.time() - t0:.0f} s;"
          f" {sum(p.numel() for p in run.model.parameters()) / 1e6:.2f} M parameters")
    if o.freeze_first_block and run.step == 0:
        calibrate_later_blocks(run.model, train_imgs[:64], o.crop)
    log = TrainingLog(o.out / "log.csv", len(cfg.groups_for_quality))
    # By default each sample keeps the groups of one quality level, drawn uniformly, so every shipped rate point gets
    # the same share of training (drawing k uniformly from 1..G starves the low qualities when G is large).
    draw_from = cfg.groups_for_quality if o.keep_draw in ("qualities", "allocator") else range(1, cfg.groups + 1)
    keep_choices = torch.tensor([k for k in draw_from if k >= o.min_keep])
    allocator = AllocatorCounts.of_weights_file(o.init_from) if o.keep_draw == "allocator" else None
    if allocator and allocator.weights_of:
        print(f"the allocation weights of {allocator.weights_of} (its registry entry) weigh the latent error")
    set_training_mode(run.model, o)
    start = time.time()
    deadline = start + o.max_minutes * 60 if o.max_minutes > 0 else math.inf
    while run.step < o.steps:
        # with --time-schedule the schedule's clock is the fraction of --max-minutes spent, on the scale of --steps
        at = int(o.steps * (time.time() - start) / (deadline - start)) if o.time_schedule else run.step
        for group in run.opt.param_groups:
            group["lr"] = lr_at(min(at, o.steps), o.steps, o.lr)
        x = random_batch(train_imgs, o.batch, o.crop, run.rng).to(device)
        keep = keep_choices[torch.randint(len(keep_choices), (o.batch,))].to(device)
        out, mse, loss, bits = train_step(run, o, x, keep, allocator)
        log.add(mse, loss, bits)
        # a lent machine's minutes are counted: past the deadline, this step is logged, validated and checkpointed
        out_of_time = time.time() > deadline
        last = run.step == o.steps or out_of_time
        if run.step % 50 == 0 or last:
            due = run.step % o.val_every == 0 or last
            log.row(run, out, (lambda: validate(run.model, val_imgs, device)) if due else None)
        if run.step % o.ckpt_every == 0 or last:
            save_checkpoint(run, o, cfg, ckpt_path)
        if out_of_time:
            print(f"stopped at step {run.step} of {o.steps}: --max-minutes {o.max_minutes:g} reached")
            break
    log.close()
    print(f"done: {run.step} steps in {run.elapsed / 60:.1f} min; checkpoint {ckpt_path}")
    return ckpt_path

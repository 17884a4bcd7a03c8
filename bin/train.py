#!/usr/bin/env python3
"""Train a Λ24-SQ autoencoder on ../shared/data/train (never Kodak); the loop is leechcodec.training.loop.

One run trains one variable-rate model (one set of weights for every quality level). Loss: minus the mean PSNR / 10,
plus --rate-weight λ × the mean proxy bits of a kept token (a vMF mixture per token group, fitted alongside).
bin/export_model.py then turns the checkpoint into a shipped weights file.

Main flags: --out (the run folder), --steps, --lr, --seed, the model (--arch, --widths, --groups, --stages,
--gain-levels, --qualities), --init-from (start from another run's checkpoint or a shipped weights file),
--bf16, --device, --max-minutes. For example (an exported weights file keeps the commands that made it in its
``meta``):

    bin/train.py --out runs/w288d --arch gdn --widths 96,192,288 --groups 12 --stages 3 --steps 22000 --lr 1e-4 \\
        --seed 17 --gain-levels 11 --gain-log2-min -4.5 --qualities 1,2,3,4,5,6,8,10,12 \\
        --init-from models/leech-rs3z-s16g12-ca7acbac.pt --blend-steps 0 --val-every 5500 --bf16 --max-minutes 88

Progress goes to stdout and <out>/log.csv; <out>/checkpoint.pt is written every --ckpt-every steps, and a run
resumes from it when started again with the same --out (the cosine schedule follows the current --steps).
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs the script under .venv when this python lacks torch or leechcodec

# isort: split

import argparse
import sys
from pathlib import Path

from leechcodec.training import TrainingError
from leechcodec.training.loop import TrainOptions, train


def parser() -> argparse.ArgumentParser:
    d = TrainOptions(out=Path("."))  # the defaults
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, log.csv)")
    p.add_argument("--data", type=Path, default=d.data)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--crop", type=int, default=d.crop)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--stride", type=int, default=d.stride)
    p.add_argument("--groups", type=int, default=d.groups)
    p.add_argument("--widths", type=str, default=d.widths)
    p.add_argument("--quantizer", choices=["leech", "bsq"], default=d.quantizer)
    p.add_argument("--arch", choices=["gdn", "residual"], default=d.arch, help="transform family (model.py)")
    p.add_argument("--min-keep", type=int, default=d.min_keep, help="fewest token groups kept in a training sample")
    p.add_argument("--keep-draw", choices=["qualities", "groups", "allocator"], default=d.keep_draw,
                   help="draw the groups kept per sample uniformly from the quality levels' group counts, or from "
                        "1..G (how leech-s16g8 was trained); allocator: per sample a quality level, and per position "
                        "the tokens the default encoder's adaptive allocation keeps there (needs --freeze-analysis "
                        "and --init-from a shipped gain–shape model, whose priors price the tokens)")
    p.add_argument("--gain-levels", type=int, default=d.gain_levels,
                   help="gain–shape tokens with this many log-uniform gain levels (0: direction only)")
    p.add_argument("--gain-log2-min", type=float, default=d.gain_log2_min, help="log2 of the smallest gain level")
    p.add_argument("--stages", type=int, default=d.stages,
                   help="residual quantization stages per 24-d subspace (groups = stages × subspaces; model.py)")
    p.add_argument("--blocks", type=int, default=d.blocks,
                   help="token blocks: the subspaces form this many blocks whose tokens come one block after "
                        "another (model.py); widening a model of G tokens to B·G with --blocks B keeps its tokens "
                        "first")
    p.add_argument("--qualities", type=str, default=d.qualities,
                   help="token groups kept at each quality level, ascending (those above --groups are dropped)")
    p.add_argument("--init-from", type=Path,
                   help="start a new run from the network weights of another run's checkpoint or of a shipped weights "
                        "file (same transform family; fewer latent subspaces or wider hidden layers are fitted: "
                        "fit_weights)")
    p.add_argument("--blend-steps", type=int, default=d.blend_steps, help="steps over which quantization is blended in")
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    p.add_argument("--val-every", type=int, default=d.val_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--rate-weight", type=float, default=d.rate_weight,
                   help="λ: add λ × the mean proxy bits of a kept token (rate_proxy: a vMF mixture per token group, "
                        "fitted alongside) to the loss, so the encoder learns what its tokens cost "
                        "(0: distortion only)")
    p.add_argument("--rate-components", type=int, default=d.rate_components,
                   help="vMF components per token group in the proxy")
    p.add_argument("--rate-ramp", type=int, default=d.rate_ramp, help="steps over which --rate-weight ramps up from 0")
    p.add_argument("--rate-lr", type=float, default=d.rate_lr, help="Adam learning rate of the proxy's mixtures")
    p.add_argument("--freeze-synthesis", action="store_true",
                   help="train the analysis transform only: the decoder's weights stay those of --init-from or the"
                        " checkpoint (it still passes gradients back to the latent)")
    p.add_argument("--freeze-analysis", action="store_true",
                   help="train the synthesis only: the analysis weights and latent statistics stay those of "
                        "--init-from or the checkpoint, so the tokens (and the shipped model's priors) stay exact")
    p.add_argument("--freeze-first-block", action="store_true",
                   help="with --blocks and --init-from: train the later token blocks' analysis rows and the "
                        "synthesis only, so the first block's tokens (and their priors) stay those of --init-from")
    p.add_argument("--new-block-only", action="store_true",
                   help="with --freeze-first-block: the synthesis too trains only its first layer's weights from the "
                        "later blocks' channels, so every prefix inside the first block decodes exactly as before")
    p.add_argument("--device", default=d.device)
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads (0: all cores)")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast and channels_last for the transforms (quantization and the loss stay"
                        " float32); about twice the steps/s on CPUs with AVX-512 bf16 or AMX")
    p.add_argument("--max-minutes", type=float, default=d.max_minutes,
                   help="stop after this much wall time in this invocation, validated and checkpointed, even before"
                        " --steps (0: no limit); a later run with the same --out resumes, the schedule following"
                        " --steps")
    p.add_argument("--time-schedule", action="store_true",
                   help="run the learning-rate schedule over --max-minutes of wall time (on a machine of unknown "
                        "speed, such as a lent GPU: the cosine ends when the time does); --steps is then a cap and "
                        "the scale of the warm-up. One invocation: it does not resume")
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    options = TrainOptions(**vars(parser().parse_args(argv)))
    try:
        train(options, command=["bin/train.py", *argv])
    except TrainingError as e:
        sys.exit(f"train.py: error: {e}")


if __name__ == "__main__":
    main()

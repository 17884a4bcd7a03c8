"""Join the weights a lent GPU machine returned (experiments/gpu_run.sh: the checkpoint without its optimizer state, in
parts of at most 16 MiB) into one file, with the run's log beside it:

    .venv/bin/python experiments/gpu_join.py <returned folder>/run runs/<name>

writes runs/<name>/weights.pt (byte for byte the file the machine split), log.csv and run.txt when they came back.
bin/export_model.py and bin/train.py --init-from read weights.pt as they read a checkpoint.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from leechcodec.training.parts import join_parts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("returned", type=Path, help="the returned run folder (holds weights.pt.part000, ...)")
    p.add_argument("out", type=Path, help="folder to write weights.pt into (created)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        path = join_parts(args.returned / "weights.pt", args.out / "weights.pt")
    except ValueError as e:
        sys.exit(f"gpu_join.py: error: {e}")
    for name in ("log.csv", "run.txt"):
        for src in (args.returned / name, args.returned.parent / name):
            if src.is_file():
                shutil.copyfile(src, args.out / name)
                break
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    print(f"{path}: step {ckpt['step']}, {path.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

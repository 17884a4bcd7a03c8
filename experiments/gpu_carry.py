"""Build the git-ignored folder a lent GPU machine needs to run bin/train.py, and print the command to run there.

    .venv/bin/python experiments/gpu_carry.py [--train-mb 20] [--out .gpu] [-f]

A device call sends the checkout (tracked and untracked-not-ignored files) plus the ignored paths it names in
``carry``, 64 MiB in all, and the machine can fetch nothing. Its image has torch, numpy, numba and Pillow but not
compressai, whose layer files the transforms import (``leechcodec/compressai_layers.py``). This script writes
``.gpu/`` (ignored by ``.gitignore``):

- ``.gpu/train/``: the training JPEGs, byte for byte: every image of the validation split (``is_validation``)
  and a seeded random sample of the others, up to ``--train-mb`` in all. Kodak is never copied.
- ``.gpu/pylib/compressai/``: compressai's pure-Python ``layers`` and ``ops`` packages and ``models/utils.py``, the
  files ``compressai_layers`` loads (no compiled extension: they need torch alone), under a marker ``__init__.py``.

It prints the size that would travel. The tracked files count too: when they alone are over the limit (the shipped
weights in ``models/`` are the bulk of them), the call is refused, and the script says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import shutil
import subprocess
import sys
from pathlib import Path

from leechcodec.training.data import DEFAULT_DATA, is_validation

ROOT = Path(__file__).resolve().parents[1]

LIMIT = 64 * 2**20  # what one device call may send, tracked files included
COMPRESSAI_FILES = ("layers/*.py", "ops/*.py", "models/utils.py")
MARKER = ("compressai's layer files only, carried to a lent GPU machine by experiments/gpu_carry.py; "
          "leechcodec/compressai_layers.py loads them without running this file.")


def tracked_bytes() -> int:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / n.decode()).stat().st_size for n in names if n and (ROOT / n.decode()).is_file())


def copy_training_subset(src: Path, dst: Path, budget: int, seed: int) -> tuple[int, int, int]:
    """Validation images first (all of them, so validation means the same as on the CPU), then a seeded sample."""
    files = sorted(src.glob("*.jp*g"))
    if not files:
        raise SystemExit(f"gpu_carry.py: error: no JPEGs in {src}")
    val = [f for f in files if is_validation(f.name)]
    rest = [f for f in files if not is_validation(f.name)]
    random.Random(seed).shuffle(rest)
    dst.mkdir(parents=True)
    used, n_train = 0, 0
    for f in val:
        shutil.copyfile(f, dst / f.name)
        used += f.stat().st_size
    for f in rest:
        if used + f.stat().st_size > budget:
            continue
        shutil.copyfile(f, dst / f.name)
        used += f.stat().st_size
        n_train += 1
    return n_train, len(val), used


def copy_compressai_layers(dst: Path) -> int:
    spec = importlib.util.find_spec("compressai")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gpu_carry.py: error: compressai is not installed here")
    root = Path(next(iter(spec.submodule_search_locations)))
    used = 0
    for pattern in COMPRESSAI_FILES:
        for f in sorted(root.glob(pattern)):
            target = dst / "compressai" / f.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
            used += f.stat().st_size
    # a regular package (not a namespace portion), so that it is found before any compressai installed there
    (dst / "compressai" / "__init__.py").write_text(f'"""{MARKER}"""\n')
    return used


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / ".gpu")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--train-mb", type=float, default=20, help="byte budget of the training subset, in MiB")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-f", "--force", action="store_true", help="replace an existing --out folder")
    args = p.parse_args(argv)
    if args.out.exists():
        if not args.force:
            raise SystemExit(f"gpu_carry.py: error: {args.out} exists (use -f to replace it)")
        shutil.rmtree(args.out)
    n_train, n_val, data_bytes = copy_training_subset(args.data, args.out / "train", int(args.train_mb * 2**20),
                                                      args.seed)
    lib_bytes = copy_compressai_layers(args.out / "pylib")
    tracked = tracked_bytes()
    total = tracked + data_bytes + lib_bytes
    mib = 2**20
    print(f"{args.out}: {n_train} training + {n_val} validation images ({data_bytes / mib:.1f} MiB), "
          f"compressai layers ({lib_bytes / mib:.2f} MiB)")
    print(f"a device call would send {total / mib:.1f} MiB (tracked files {tracked / mib:.1f} MiB) of at most "
          f"{LIMIT / mib:.0f} MiB")
    rel = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    env = "" if rel == Path(".gpu") else f"GPU_DIR={rel} "
    print(f"on the device, with carry [\"{rel}\"]:\n"
          f"  {env}experiments/gpu_run.sh MINUTES <bin/train.py flags other than --out, --data and --device>")
    if total > LIMIT:
        print(f"gpu_carry.py: warning: {total / mib:.1f} MiB is over the limit: the call would be refused; the "
              "tracked files must shrink first (the shipped weights in models/ are most of them)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

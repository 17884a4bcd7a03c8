#!/usr/bin/env bash
# Runs bin/train.py on a lent GPU machine (the device tool), from the repository root, with the folder that
# experiments/gpu_carry.py built carried along (carry [".gpu"]):
#
#   experiments/gpu_run.sh MINUTES <bin/train.py flags other than --out, --data and --device>
#
# Trains into $OUT/run for at most MINUTES (--max-minutes: it stops validated and checkpointed), then leaves in
# $OUT: run.txt (the progress lines), run/log.csv and the checkpoint without its optimizer state, split into
# run/weights.pt.part000, .part001, ... of at most 16 MiB each (what a returned file may have; a 5.3 M-parameter
# network's is 21 MB). Back here, join them losslessly:
#
#   .venv/bin/python experiments/gpu_join.py <returned folder>/run runs/<name>
#
# which writes runs/<name>/weights.pt; bin/export_model.py and --init-from read it as they read a checkpoint.
# DEVICE (default cuda) picks another torch device, PYTHON another python, GPU_DIR another folder than .gpu, and
# PART_BYTES another part size: the test suite runs the script on the CPU that way. The machine's python has torch but
# not the project installed: the repository goes on PYTHONPATH, beside compressai's carried layer files.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: experiments/gpu_run.sh MINUTES [bin/train.py flags]" >&2; exit 2; }
minutes=$1; shift
: "${OUT:?OUT must name the folder whose files come back}"
here=$(cd "$(dirname "$0")/.." && pwd)
carried=${GPU_DIR:-$here/.gpu}
[ -d "$carried/train" ] && [ -d "$carried/pylib/compressai" ] || {
  echo "gpu_run.sh: error: $carried is missing or incomplete: run experiments/gpu_carry.py and carry .gpu" >&2; exit 2; }
export PYTHONPATH="$carried/pylib:$here${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}
"$python" "$here/bin/train.py" --device "${DEVICE:-cuda}" --data "$carried/train" --out "$OUT/run" \
  --max-minutes "$minutes" "$@" 2>&1 | tee "$OUT/run.txt"
"$python" - "$OUT/run" "${PART_BYTES:-16777216}" <<'PY'
import sys
from pathlib import Path

import torch

from leechcodec.training.parts import split_file

run, part_bytes = Path(sys.argv[1]), int(sys.argv[2])
ckpt = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
del ckpt["optimizer"]  # Adam's two moments: twice the weights, and not needed to export or to start a new run
torch.save(ckpt, run / "weights.pt")
size = (run / "weights.pt").stat().st_size
parts = split_file(run / "weights.pt", part_bytes)
(run / "checkpoint.pt").unlink()
print(f"{run / 'weights.pt'}: step {ckpt['step']}, {size / 2**20:.1f} MiB in {len(parts)} part(s) of at most "
      f"{part_bytes / 2**20:g} MiB")
PY

#!/usr/bin/env bash
# Runs bin/train.py on a lent GPU machine (the device tool), from the repository root, with the folder that
# bin/gpu_carry.py built carried along (carry [".gpu"]):
#
#   bin/gpu_run.sh MINUTES <bin/train.py flags other than --out, --data and --device>
#
# Trains into $OUT/run for at most MINUTES (--max-minutes: it stops validated and checkpointed), then leaves in
# $OUT: run.txt (the progress lines), run/log.csv and run/weights.pt, the checkpoint without its optimizer state,
# so that it fits the 16 MiB a returned file may have; bin/export_model.py and --init-from read it as they read a
# checkpoint. DEVICE (default cuda) picks another torch device and PYTHON another python, GPU_DIR another folder
# than .gpu: the test suite runs the script on the CPU that way.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bin/gpu_run.sh MINUTES [bin/train.py flags]" >&2; exit 2; }
minutes=$1; shift
: "${OUT:?OUT must name the folder whose files come back}"
here=$(cd "$(dirname "$0")/.." && pwd)
carried=${GPU_DIR:-$here/.gpu}
[ -d "$carried/train" ] && [ -d "$carried/pylib/compressai" ] || {
  echo "gpu_run.sh: error: $carried is missing or incomplete: run bin/gpu_carry.py and carry .gpu" >&2; exit 2; }
export PYTHONPATH="$carried/pylib${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}
"$python" "$here/bin/train.py" --device "${DEVICE:-cuda}" --data "$carried/train" --out "$OUT/run" \
  --max-minutes "$minutes" "$@" 2>&1 | tee "$OUT/run.txt"
"$python" - "$OUT/run" <<'PY'
import sys
from pathlib import Path

import torch

run = Path(sys.argv[1])
ckpt = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
del ckpt["optimizer"]  # Adam's two moments: twice the weights, and not needed to export or to start a new run
torch.save(ckpt, run / "weights.pt")
(run / "checkpoint.pt").unlink()
print(f"{run / 'weights.pt'}: step {ckpt['step']}, {(run / 'weights.pt').stat().st_size / 2**20:.1f} MiB")
PY

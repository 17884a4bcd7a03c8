"""Imported first by every bin/*.py script: when the python running the script lacks the project's dependencies
or the project itself (a plain ``python3`` from the ``#!/usr/bin/env python3`` line), set up the repository's
``.venv`` as bin/leechcodec does (first run only; it installs leechcodec in editable mode) and re-run the script under
its python. Under a python that has torch and can import leechcodec (the .venv's, or any with the repository on
PYTHONPATH, as on a lent GPU machine), it does nothing."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"

if importlib.util.find_spec("torch") is None or importlib.util.find_spec("leechcodec") is None:
    if Path(sys.prefix).resolve() == VENV.resolve():
        sys.exit(f"{Path(sys.argv[0]).name}: error: {VENV} lacks torch or leechcodec; remove it and run "
                 "bin/leechcodec to set it up")
    setup = subprocess.run(["bash", "-c", 'source "$1/bin/_venv.sh" && ensure_venv', "bash", str(ROOT)], check=False)
    if setup.returncode:
        sys.exit(f"{Path(sys.argv[0]).name}: error: could not set up {VENV}")
    python = VENV / "bin" / "python"
    os.execv(python, [str(python), *sys.argv])

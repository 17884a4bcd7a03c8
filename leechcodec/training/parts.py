"""Splitting a file into parts of bounded size and joining them again, byte for byte. A lent GPU machine returns files
of at most 16 MiB each, and a training checkpoint of a 5.3 M-parameter network is 21 MB: experiments/gpu_run.sh
splits it there, experiments/gpu_join.py joins it here (lossless, unlike storing the weights in half precision)."""

from __future__ import annotations

from pathlib import Path

PART_BYTES = 16 * 2**20  # the most a returned file may have
SUFFIX = ".part"


def part_name(path: Path, i: int) -> Path:
    """The i-th part of ``path``: ``<name>.part000``, ``<name>.part001``, ..."""
    return path.with_name(f"{path.name}{SUFFIX}{i:03d}")


def split_file(path: Path, max_bytes: int = PART_BYTES, remove: bool = True) -> list[Path]:
    """Write ``path``'s bytes as parts of at most ``max_bytes`` beside it (``part_name``) → the parts, in order;
    ``remove``: delete ``path`` afterwards. An empty file gives one empty part."""
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be ≥ 1, not {max_bytes}")
    data = Path(path).read_bytes()
    parts = []
    for i, start in enumerate(range(0, max(len(data), 1), max_bytes)):
        parts.append(part_name(path, i))
        parts[-1].write_bytes(data[start:start + max_bytes])
    if remove:
        Path(path).unlink()
    return parts


def find_parts(path: Path) -> list[Path]:
    """The parts of ``path`` that lie beside it, in order (none: an empty list). A gap in the numbering is an error."""
    found = sorted(path.parent.glob(f"{path.name}{SUFFIX}[0-9][0-9][0-9]"))
    if [p.name for p in found] != [part_name(path, i).name for i in range(len(found))]:
        raise ValueError(f"the parts of {path} are not numbered 0..{len(found) - 1}: {[p.name for p in found]}")
    return found


def join_parts(path: Path, out: Path) -> Path:
    """Concatenate the parts of ``path`` (``find_parts``) into ``out`` (temporary file, then rename) → ``out``."""
    parts = find_parts(Path(path))
    if not parts:
        raise ValueError(f"no parts of {path} ({Path(path).name}{SUFFIX}000, ...)")
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        for p in parts:
            f.write(p.read_bytes())
    tmp.replace(out)
    return out

"""Image input and output: anything Pillow reads → 8-bit RGB, and atomic writes of outputs.

Rules: EXIF orientation is applied; grayscale, palette, CMYK and 16-bit images become 8-bit RGB; an alpha channel is
dropped with a warning (the codec stores RGB only); GIF/APNG/TIFF take their first frame. Images larger than
``max_pixels()`` (``$LEECHCODEC_MAX_PIXELS``, default 100 M) are refused before their pixels are decoded.
Outputs are written to a temporary file in the target folder and renamed, so a failure or Ctrl-C never leaves a
partial file.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 100_000_000


class ImageError(ValueError):
    """An input that is not a usable image; the message says why."""


def max_pixels() -> int:
    return int(os.environ.get("LEECHCODEC_MAX_PIXELS", DEFAULT_MAX_PIXELS))


def to_rgb8(img: Image.Image) -> np.ndarray:
    """A PIL image → uint8 [H, W, 3] following the rules in the module docstring."""
    limit = max_pixels()
    if img.width * img.height > limit:
        raise ImageError(f"image is {img.width}x{img.height} = {img.width * img.height} pixels, over the limit of "
                         f"{limit} (set LEECHCODEC_MAX_PIXELS to raise it)")
    img = ImageOps.exif_transpose(img)
    if "A" in img.getbands() or (img.mode == "P" and "transparency" in img.info):
        warnings.warn("the alpha channel is dropped (leechcodec stores RGB)", stacklevel=2)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(np.rint(a / peak * 255), 0, 255).astype(np.uint8), "L")
    if img.mode in ("F",):
        img = Image.fromarray(np.clip(np.rint(np.asarray(img)), 0, 255).astype(np.uint8), "L")
    rgb = img.convert("RGB")
    return np.asarray(rgb, dtype=np.uint8)


def read_image(source) -> np.ndarray:
    """Path, bytes, file object, PIL image or uint8 array [H, W, 3] → uint8 RGB [H, W, 3]."""
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim != 3 or source.shape[2] != 3 or 0 in source.shape:
            raise ImageError(f"expected a uint8 array [H, W, 3], got {source.dtype} {source.shape}")
        return source
    if isinstance(source, Image.Image):
        return to_rgb8(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise ImageError(f"{path} is a directory, not an image")
        if not path.exists():
            raise ImageError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise ImageError(f"{path} is empty (0 bytes)")
        source = path.read_bytes()
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        # our pixel limit (checked first in to_rgb8, before any pixel is decoded) decides, not Pillow's warning
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                return to_rgb8(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"image refused as a decompression bomb ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"corrupt or truncated image ({e})") from None


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to path via a temporary file and a rename: the path gets all of the data or nothing.
    The file gets the permissions a plain open() would give it: an overwritten file keeps its mode, a new one gets
    0o666 less the umask (mkstemp alone would leave it 0o600, readable by its owner only)."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".part")
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:  # includes KeyboardInterrupt: never leave the temporary file behind
        Path(tmp).unlink(missing_ok=True)
        raise


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()

"""leechcodec: a learned image codec built on spherical Leech quantization (Λ24-SQ).

Python API::

    import leechcodec
    data = leechcodec.compress("photo.png", quality=3)   # .lsq bytes
    image = leechcodec.decompress(data)                  # PIL.Image
    leechcodec.list_models(); leechcodec.load_model("leech-gdn-s16g12")

Importing the package registers a Pillow plugin: ``Image.open("x.lsq")`` and ``img.save("x.lsq", quality=5)``.
"""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, version

# compressai's import scripts a module with torch.jit, which warns on every start; it is not ours to fix
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)

try:
    __version__ = version("leechcodec")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

__all__ = ["__version__", "compress", "decompress", "list_models", "load_model"]

# The API functions are imported on first use (PEP 562), so that importing the package — and CLI commands that need
# no model, such as --help, --version and info — does not pay the seconds torch and compressai take to import.
_LAZY = {"compress": "leechcodec.codec", "decompress": "leechcodec.codec", "list_models": "leechcodec.zoo",
         "load_model": "leechcodec.zoo"}


def _register_pillow_plugin() -> None:
    from leechcodec import pillow_plugin

    pillow_plugin.register()


_register_pillow_plugin()


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'leechcodec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))

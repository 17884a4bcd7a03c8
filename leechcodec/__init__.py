"""leechcodec: a learned image codec built on spherical Leech quantization (Λ24-SQ).

Python API::

    import leechcodec
    data = leechcodec.compress("photo.png", quality=3)   # .lsq bytes
    image = leechcodec.decompress(data)                  # PIL.Image
    leechcodec.list_models(); leechcodec.load_model("leech-gdn-s16g12")
"""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, version

# compressai's import scripts a module with torch.jit, which warns on every start; it is not ours to fix
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)

from leechcodec.codec import compress, decompress
from leechcodec.zoo import list_models, load_model

try:
    __version__ = version("leechcodec")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

__all__ = ["__version__", "compress", "decompress", "list_models", "load_model"]

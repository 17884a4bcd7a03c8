"""compressai's layer building blocks, imported without compressai's package-wide ``__init__``.

The transforms need only ``compressai.layers`` (GDN, ResidualBlock, conv3x3, subpel_conv3x3) and
``compressai.models.utils`` (conv, deconv), which depend on torch alone. ``import compressai`` itself also imports
every dataset, model, zoo entry and torchvision — several seconds on every ``leechcodec decode``. This module loads
the two submodules under temporary stand-ins for their parent packages and removes the stand-ins again.

Invariants:
- The submodules stay registered in ``sys.modules`` under their real names, so a later ``import compressai`` (the
  ablation's EntropyBottleneck, say) runs the real package ``__init__``, which reuses them: ``GDN`` here is the very
  class ``compressai.layers.GDN`` names then.
- When compressai is already imported, the ordinary import is used and nothing is stubbed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path


def _import_without_package_init(names: tuple[str, ...]) -> list[types.ModuleType]:
    if "compressai" in sys.modules:
        return [importlib.import_module(name) for name in names]
    spec = importlib.util.find_spec("compressai")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("compressai is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    stand_ins = {"compressai": root, "compressai.models": root / "models"}
    try:
        for name, path in stand_ins.items():
            package = types.ModuleType(name)
            package.__path__ = [str(path)]
            sys.modules[name] = package
        return [importlib.import_module(name) for name in names]
    finally:
        for name in stand_ins:
            # only our stand-in: never a package the real import put there
            if getattr(sys.modules.get(name), "__spec__", None) is None:
                sys.modules.pop(name, None)


_layers, _model_utils = _import_without_package_init(("compressai.layers", "compressai.models.utils"))

GDN = _layers.GDN
ResidualBlock = _layers.ResidualBlock
conv3x3 = _layers.conv3x3
subpel_conv3x3 = _layers.subpel_conv3x3
conv = _model_utils.conv
deconv = _model_utils.deconv

__all__ = ["GDN", "ResidualBlock", "conv", "conv3x3", "deconv", "subpel_conv3x3"]

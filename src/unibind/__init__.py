"""unibind: one embedding space for text, images and sound.

The data walk, one stage per subpackage: ``data`` (builders -> manifest) -> ``features``
(manifest -> features) -> ``train`` (features -> run) -> ``eval`` (run -> metrics) ->
``search`` (run -> index -> results) -> ``report`` (plots, pages). Imports are lazy: ``import
unibind`` loads neither torch nor transformers.
"""

from __future__ import annotations

from typing import Any

from unibind._compat import install as _install_compat
from unibind.errors import UnibindError

__version__ = "0.1.0"
__all__ = ["extract", "train", "evaluate", "build_index", "Space", "load_features", "Run",
           "encode", "UnibindError", "__version__"]

_EXPORTS = {"extract": "unibind.features.extract", "train": "unibind.training.trainer",
            "evaluate": "unibind.eval.evaluate", "build_index": "unibind.search.index",
            "Space": "unibind.search.space", "load_features": "unibind.features.folder",
            "Run": "unibind.run.folder", "encode": "unibind.run.folder"}

_install_compat()


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'unibind' has no attribute {name!r}")

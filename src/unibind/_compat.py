"""Old flat module paths (``unibind.extract``, ``unibind.evaluate`` ...) kept importable for one
release: each resolves to its new module with a DeprecationWarning."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

MOVED = {
    # flat paths of the first layout (the names of top-level functions, ``unibind.extract``,
    # ``unibind.train`` and ``unibind.evaluate``, are no longer aliased: they are the functions)
    "atomic": "util.atomic", "digests": "util.digests", "config": "util.jsonio",
    "runtime": "util.runtime", "manifest": "data.manifest", "media": "media.decode",
    "cache": "features.cache", "splits": "features.splits",
    "heads": "run.heads", "batches": "training.batches", "losses": "training.losses",
    "presets": "training.config", "finetune": "training.finetune", "tune": "training.tune",
    "synthetic": "features.synthetic", "metrics": "eval.metrics",
    "calibration": "eval.calibration", "knn": "search.knn", "index_parts": "search.parts",
    "index": "search.index", "balance": "search.merge", "pairs": "search.pair_expansion",
    "plot": "report.plots",
    # paths of the second layout
    "features.manifest": "data.manifest", "features.media": "media.decode",
    "features.store": "features.folder", "training.bind": "binding.bind",
    "training.bridge": "binding.bridge", "training.synthetic": "features.synthetic",
    "report.demo": "demo", "report.tables": "eval.tables",
}


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):  # noqa: ANN001
        head, _, tail = fullname.partition(".")
        if head == "unibind" and tail in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):  # noqa: ANN001
        return None

    def exec_module(self, module: ModuleType) -> None:
        new = "unibind." + MOVED[module.__name__.partition(".")[2]]
        warnings.warn(f"{module.__name__} moved to {new}; the old path goes in the next release",
                      DeprecationWarning, stacklevel=2)
        target = importlib.import_module(new)
        module.__dict__.update({k: v for k, v in vars(target).items()
                                if not k.startswith("__")})


def install() -> None:
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())

"""The package surface: lazy top-level exports, and the old flat module paths for one release."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest


def test_import_unibind_loads_nothing_heavy():
    code = ("import sys, unibind; heavy = {'torch', 'transformers', 'faiss', 'pandas'} & "
            "set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_top_level_exports_are_the_stage_functions():
    import unibind
    from unibind.eval.evaluate import evaluate
    from unibind.features.extract import extract
    from unibind.search.index import build_index
    from unibind.search.space import Space
    from unibind.training.trainer import train

    assert (unibind.extract, unibind.train, unibind.evaluate, unibind.build_index,
            unibind.Space) == (extract, train, evaluate, build_index, Space)
    import unibind.training.loop  # noqa: F401  (importing a subpackage shadows no export)

    assert unibind.train is train and callable(unibind.train)
    with pytest.raises(AttributeError):
        unibind.no_such_thing  # noqa: B018


@pytest.mark.parametrize("old, name, new", [
    ("unibind.index", "build_index", "unibind.search.index"),
    ("unibind.balance", "merge_topk", "unibind.search.merge"),
    ("unibind.presets", "TrainConfig", "unibind.training.config"),
    ("unibind.training.bind", "bind", "unibind.binding.bind"),
    ("unibind.features.manifest", "read_manifest", "unibind.data.manifest"),
])
def test_old_paths_still_import_with_a_deprecation_warning(old, name, new):
    import importlib

    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message)
               for w in caught)
    assert getattr(mod, name) is getattr(importlib.import_module(new), name)
    # the alias module must not stay bound on the package (unibind.train is the function)
    sys.modules.pop(old, None)
    vars(importlib.import_module("unibind")).pop(old.rpartition(".")[2], None)

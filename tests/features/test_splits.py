"""Held-out splits: by group, stratified by label, deterministic, manifest first."""

from __future__ import annotations

import pandas as pd
import pytest

from unibind.features.splits import SplitError, assign_splits, check_split


def _items(n_labels=3, groups=20, per_group=3):
    rows = []
    for lab in range(n_labels):
        for g in range(groups):
            for m in ("text", "image", "audio")[:per_group]:
                rows.append({"id": f"{lab}-{g}-{m}", "modality": m, "label": f"L{lab}",
                             "group": f"L{lab}/g{g}", "split": ""})
    return pd.DataFrame(rows)


def test_split_by_group_stratified_and_deterministic():
    items = _items()
    split, info = assign_splits(items, val=0.1, test=0.2, seed=0)
    per_group = pd.DataFrame({"g": items["group"], "s": split}).groupby("g")["s"].nunique()
    assert (per_group == 1).all()
    for _lab, sub in pd.DataFrame({"l": items["label"], "g": items["group"], "s": split}) \
            .drop_duplicates("g").groupby("l"):
        assert (sub["s"] == "test").sum() == 4 and (sub["s"] == "val").sum() == 2
    again, info2 = assign_splits(items.sample(frac=1, random_state=1), 0.1, 0.2, 0)
    assert info2["digest"] == info["digest"] and again.loc[split.index].equals(split)
    other, info3 = assign_splits(items, 0.1, 0.2, seed=1)
    assert info3["digest"] != info["digest"]
    assert info["source"] == "computed" and info["groups"]["test"] == 12
    check_split(items, info)


def test_manifest_split_wins_and_conflicts_are_named():
    items = _items(groups=5)
    items.loc[items["group"] == "L0/g0", "split"] = "test"
    split, info = assign_splits(items)
    assert (split[items["group"] == "L0/g0"] == "test").all() and info["source"] == "mixed"
    items.loc[items["id"] == "0-0-text", "split"] = "train"
    with pytest.raises(SplitError, match="L0/g0"):
        assign_splits(items)


def test_items_without_group_are_their_own_group():
    items = _items(groups=10)
    items["group"] = ""
    split, info = assign_splits(items)
    assert info["groups"]["train"] + info["groups"]["val"] + info["groups"]["test"] == len(items)
    assert set(split) == {"train", "val", "test"}

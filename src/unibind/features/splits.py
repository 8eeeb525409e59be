"""Held-out splits by group: no group of the test split is ever seen in training.

The manifest's ``split`` column wins where it is set; groups without one are assigned
deterministically (hash of seed + group), stratified by label. An item without a ``group`` is its
own group. ``assign_splits`` is a pure function of the item table and its parameters, so a run
stores only the parameters and a digest (``split_info``) and evaluation recomputes the split.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd

from unibind.data.manifest import SPLITS
from unibind.errors import UnibindError

log = logging.getLogger(__name__)


class SplitError(UnibindError, ValueError):
    """Inconsistent split information (e.g. one group in two splits)."""


def group_keys(items: pd.DataFrame) -> pd.Series:
    """The group of each item; an item with an empty group is its own group."""
    groups = items["group"].astype(str)
    return groups.where(groups != "", "id:" + items["id"].astype(str))


def _hash_order(keys: list[str], seed: int) -> np.ndarray:
    h = [int.from_bytes(hashlib.sha1(f"{seed}:{k}".encode()).digest()[:8], "little")
         for k in keys]
    return np.argsort(np.array(h, dtype=np.uint64), kind="stable")


def _counts(n: int, val: float, test: float) -> tuple[int, int]:
    n_test, n_val = int(round(n * test)), int(round(n * val))
    if n >= 3:  # every label with 3+ groups gets at least one held-out group of each kind
        n_test, n_val = max(n_test, int(test > 0)), max(n_val, int(val > 0))
    while n_test + n_val >= n and n_test + n_val > 0 and n > 0:
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def assign_splits(items: pd.DataFrame, val: float = 0.1, test: float = 0.2,
                  seed: int = 0) -> tuple[pd.Series, dict]:
    """``(split per item (aligned to items.index), info)``; info goes into run.json."""
    if not 0 <= val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise SplitError(f"bad split fractions val={val} test={test}")
    keys = group_keys(items)
    given = items["split"].astype(str) if "split" in items else pd.Series("", index=items.index)
    bad = sorted(set(given) - {"", *SPLITS})
    if bad:
        raise SplitError(f"unknown split value(s) {bad}; expected {SPLITS} or empty")
    frame = pd.DataFrame({"group": keys, "split": given, "label": items["label"].astype(str)})
    set_per_group = frame[frame["split"] != ""].groupby("group")["split"].unique()
    conflicts = [g for g, s in set_per_group.items() if len(s) > 1]
    if conflicts:
        raise SplitError(f"group(s) in more than one split (would leak): {conflicts[:10]}")
    group_split = {g: s[0] for g, s in set_per_group.items()}
    free = frame[~frame["group"].isin(group_split)]
    group_label = free.groupby("group")["label"].min()  # groups are normally single-label
    for _label, gs in group_label.groupby(group_label, sort=True):
        names = list(gs.index)  # sorted: groupby sorts its keys
        order = _hash_order(names, seed)
        n_val, n_test = _counts(len(names), val, test)
        for rank, i in enumerate(order):
            group_split[names[i]] = ("test" if rank < n_test else
                                     "val" if rank < n_test + n_val else "train")
    split = keys.map(group_split)
    n_manifest = int(len(set_per_group))
    n_free = int(len(group_label))
    source = "manifest" if n_free == 0 else "computed" if n_manifest == 0 else "mixed"
    pairs = sorted(group_split.items())
    digest = hashlib.sha256("\n".join(f"{g}\t{s}" for g, s in pairs).encode()).hexdigest()
    info = {"source": source, "val": val, "test": test, "seed": seed, "by": "group",
            "stratify": "label", "digest": digest,
            "groups": {s: int(sum(1 for _, v in pairs if v == s)) for s in SPLITS},
            "items": {s: int((split == s).sum()) for s in SPLITS}}
    return split, info


def check_split(items: pd.DataFrame, info: dict, strict: bool = True,
                what: str = "the run", hint: str = "") -> pd.Series:
    """Recompute a run's split (``info``: its stored parameters and digest) on ``items``.

    Features that no longer give the same split raise ``SplitError`` (``strict``) or log a
    warning: held-out items may then have been trained on."""
    split, again = assign_splits(items, info["val"], info["test"], info["seed"])
    if again["digest"] != info["digest"]:
        msg = (f"features give a different split than {what} was trained with (the items "
               "changed since training); held-out items may have been trained on")
        if strict:
            raise SplitError(msg + hint)
        log.warning(msg)
    return split

"""Join audio, images and captions of one label into training samples, as the reference paired them.

Within a label each modality's items are put in a stable order (natural order of their ``group``,
then ``id``); sample k is item k of every modality and gets ``group = "<label>/<k>"``. A caption
that names its image (``source_id``, written by ``unibind data captions``) travels with that image,
so image k and caption k always describe the same picture. Labels that lack a modality are reported
(and left out unless ``keep_incomplete``); items beyond the shortest modality are reported unpaired.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from unibind.data.images import natural_key
from unibind.data.manifest import ManifestError, read_manifest, write_manifest
from unibind.errors import UsageError
from unibind.modalities import MODALITIES

log = logging.getLogger(__name__)


def _load(manifests: list[str | os.PathLike]) -> pd.DataFrame:
    """All rows of ``manifests`` with absolute paths and the manifest they came from."""
    frames = []
    for src in manifests:
        m = read_manifest(src)
        table = m.table.copy()
        table["path"] = [str(m.resolve(p)) if p else "" for p in table["path"]]
        table["source_manifest"] = str(Path(src))
        frames.append(table)
    table = pd.concat(frames, ignore_index=True)
    dup = table["id"].duplicated(keep=False)
    if dup.any():
        raise ManifestError("the same id appears in more than one input manifest: "
                            f"{sorted(set(table.loc[dup, 'id']))[:20]}")
    return table


def _order(rows: pd.DataFrame) -> pd.DataFrame:
    keys = [(natural_key(g), natural_key(i)) for g, i in zip(rows["group"], rows["id"])]
    return rows.iloc[sorted(range(len(rows)), key=keys.__getitem__)]


def _columns(rows: pd.DataFrame, modalities: list[str]) -> tuple[dict[str, list[int]],
                                                                   dict[str, int]]:
    """Ordered row indices per modality for one label (captions follow their images), and how
    many images / captions were left without their partner."""
    by_mod = {m: _order(rows[rows["modality"] == m]) for m in modalities}
    cols = {m: list(t.index) for m, t in by_mod.items()}
    alone = {}
    if "image" in by_mod and "text" in by_mod and "source_id" in rows.columns:
        texts = by_mod["text"]
        linked = texts[texts["source_id"].astype(str).isin(set(by_mod["image"]["id"]))]
        if len(linked):
            caption_of = dict(zip(linked["source_id"], linked.index))
            images = [i for i in cols["image"] if by_mod["image"].at[i, "id"] in caption_of]
            alone = {"image": len(cols["image"]) - len(images),
                     "text": len(cols["text"]) - len(images)}
            cols["image"] = images
            cols["text"] = [caption_of[by_mod["image"].at[i, "id"]] for i in images]
    return cols, alone


def build_triplets(manifests: list[str | os.PathLike], out: str | os.PathLike, *,
                   modalities: list[str] | None = None, keep_incomplete: bool = False) -> dict:
    """Write the joined manifest to ``out`` and return a summary (samples per label, labels missing
    a modality, unpaired items). Media paths are rewritten relative to ``out``'s folder, which
    must contain every input's media."""
    out = Path(out)
    table = _load(manifests)
    present = [m for m in MODALITIES if m in set(table["modality"])]
    wanted = modalities or present
    unknown = [m for m in wanted if m not in MODALITIES]
    if unknown:
        raise UsageError(f"unknown modality {unknown}; expected {list(MODALITIES)}")
    table = table[table["modality"].isin(wanted)]
    base = out.parent.resolve()
    outside = [p for p in table["path"] if p and not Path(p).is_relative_to(base)]
    if outside:
        raise ManifestError(f"{len(outside)} media file(s) lie outside {base}, the folder of "
                            f"{out} (e.g. {outside[0]}); write the joined manifest in a folder "
                            "that contains all the inputs' media")
    rows, missing, per_label = [], {}, {}
    unpaired = dict.fromkeys(wanted, 0)
    mixed_splits = 0
    for label, group in table.groupby("label", sort=True):
        cols, alone = _columns(group, wanted)
        for m, n in alone.items():
            unpaired[m] += n
        lacking = [m for m in wanted if not cols[m]]
        if lacking:
            missing[label] = lacking
            if not keep_incomplete:
                for m in wanted:
                    unpaired[m] += len(cols[m])
                continue
        used = [m for m in wanted if cols[m]]
        n = min(len(cols[m]) for m in used)
        per_label[label] = n
        for m in used:
            unpaired[m] += len(cols[m]) - n
        for k in range(n):
            idx = [cols[m][k] for m in used]
            splits = {s for s in table.loc[idx, "split"] if s}
            split = splits.pop() if len(splits) == 1 else ""
            mixed_splits += len(splits) > 1
            for i in idx:
                row = table.loc[i].to_dict()
                row.update(source_group=row["group"], group=f"{label}/{k}", sample=k, split=split)
                if row["path"]:
                    row["path"] = os.path.relpath(row["path"], base)
                rows.append(row)
    if not rows:
        raise ManifestError(f"no label has all of {wanted}; missing: {missing}")
    joined = pd.DataFrame(rows)
    for col in joined.columns:  # inputs differ in extra columns: make them uniform strings
        if col != "sample" and joined[col].dtype == object:
            joined[col] = joined[col].map(lambda v: "" if v is None or v != v else str(v))
    path = write_manifest(joined, out)
    for label, lacking in missing.items():
        log.warning("label %r lacks %s%s", label, ", ".join(lacking),
                    "" if keep_incomplete else " (left out)")
    if mixed_splits:
        log.warning("%d sample(s) joined items of different splits; their split was cleared",
                    mixed_splits)
    log.info("%d sample(s) over %d label(s) -> %s", sum(per_label.values()), len(per_label), path)
    return {"out": str(path), "items": len(joined), "samples": sum(per_label.values()),
            "labels": len(per_label), "modalities": wanted, "per_label": per_label,
            "missing": missing, "unpaired": {m: n for m, n in unpaired.items() if n}}

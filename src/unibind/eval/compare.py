"""Runs side by side on the same held-out split (e.g. bound / zero-shot vs trained)."""

from __future__ import annotations

import os
from typing import Any

from unibind.run.folder import Run

ADVICE = ("Bound (zero-shot) needs no labels and no paired media and answers any text query, "
          "including words no training label covers; a trained run learns this collection's own "
          "notion of relevance from its labels or groups. Use the trained run when you have "
          "such data and it wins on the pairs you query; the bound run when you have none, or "
          "for queries beyond the training labels.")


def _name(info: dict[str, Any]) -> str:
    made = info.get("made_by", "train")
    return {"bind": "bound", "train --init": "trained (--init)"}.get(made, "trained")


def side_by_side(run: Run, metrics: dict[str, Any],
                 others: list[tuple[str | os.PathLike, dict[str, Any]]]) -> dict[str, Any]:
    """Cross-modal mAP@10 / R@10 per pair of this run and each other run, given as
    ``(path, metrics on the same split)``."""
    digest = (run.info.get("split") or {}).get("digest")
    runs = [{"name": f"{_name(run.info)} (this run)", "run": str(run.path), "same_split": True,
             "metrics": metrics}]
    for other, m in others:
        info = Run.load(other).info
        runs.append({"name": _name(info), "run": str(other), "metrics": m,
                     "same_split": (info.get("split") or {}).get("digest") == digest})
    pairs = [p for p in metrics["pairs"] if p.split("->")[0] != p.split("->")[1]]
    table = {p: {r["name"]: {k: r["metrics"]["pairs"].get(p, {}).get(k)
                             for k in ("mAP@10", "R@10")} for r in runs} for p in pairs}
    return {"runs": [{k: r[k] for k in ("name", "run", "same_split")} for r in runs],
            "pairs": table,
            "cross_modal": {r["name"]: r["metrics"]["cross_modal"]["mAP@10"] for r in runs},
            "advice": ADVICE}


def versus_markdown(versus: dict[str, Any]) -> list[str]:
    """Markdown lines comparing runs pair by pair on the same held-out split."""
    names = [r["name"] for r in versus["runs"]]
    lines = ["## Side by side (same held-out split)", "",
             "| pair | " + " | ".join(f"{n} mAP@10 / R@10" for n in names) + " |",
             "|---|" + "---|" * len(names)]

    def cell(v: dict[str, Any]) -> str:
        return "-" if v.get("mAP@10") is None else f"{v['mAP@10']:.3f} / {v['R@10']:.3f}"

    for pair, row in versus["pairs"].items():
        lines.append(f"| {pair} | " + " | ".join(cell(row[n]) for n in names) + " |")
    lines.append("| cross-modal mean mAP@10 | " + " | ".join(
        f"{versus['cross_modal'][n]:.3f}" for n in names) + " |")
    odd = [r["run"] for r in versus["runs"] if not r["same_split"]]
    if odd:
        lines += ["", f"Warning: {', '.join(odd)} used another split; figures differ in data."]
    lines += ["", versus["advice"], ""]
    return lines

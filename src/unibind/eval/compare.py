"""Runs side by side on the same held-out split (e.g. bound / zero-shot vs trained)."""

from __future__ import annotations

import os
from typing import Any

from unibind.eval.metrics import cross_modal_mean, is_cross_modal
from unibind.run.folder import Run
from unibind.util.tables import fmt

ADVICE = ("Bound (zero-shot) needs no labels and no paired media and answers any text query, "
          "including words no training label covers; a trained run learns this collection's own "
          "notion of relevance from its labels or groups. Use the trained run when you have "
          "such data and it wins on the pairs you query; the bound run when you have none, or "
          "for queries beyond the training labels.")


def _name(info: dict[str, Any]) -> str:
    made = info.get("made_by", "train")
    name = {"bind": "bound", "train --init": "trained (--init)"}.get(made, "trained")
    preset = info.get("preset")
    return f"{name}, {preset}" if made != "bind" and preset and preset != "default" else name


def _both(runs: list[dict[str, Any]], level: str, key: str) -> list[str]:
    """Cross-modal pairs every run measured (``key`` not None) at ``level``."""
    def pairs(r: dict[str, Any]) -> dict[str, Any]:
        m = r["metrics"]
        return (m.get("instance") or {}).get("pairs", {}) if level == "instance" else m["pairs"]

    first = [p for p in pairs(runs[0]) if is_cross_modal(p)]
    return [p for p in first if all((pairs(r).get(p) or {}).get(key) is not None for r in runs)]


def side_by_side(run: Run, metrics: dict[str, Any],
                 others: list[tuple[str | os.PathLike, dict[str, Any]]]) -> dict[str, Any]:
    """Cross-modal mAP@10 / R@10 per pair (and instance R@1 when measured) of this run and
    each other run, given as ``(path, metrics on the same split)``. Only pairs that every run
    measured are compared, and the means are taken over those pairs."""
    digest = (run.info.get("split") or {}).get("digest")
    runs = [{"name": f"{_name(run.info)} (this run)", "run": str(run.path), "same_split": True,
             "metrics": metrics}]
    for other, m in others:
        info = Run.load(other).info
        runs.append({"name": _name(info), "run": str(other), "metrics": m,
                     "same_split": (info.get("split") or {}).get("digest") == digest})
    common = _both(runs, "main", "mAP@10")
    table = {p: {r["name"]: {k: r["metrics"]["pairs"][p].get(k) for k in ("mAP@10", "R@10")}
                 for r in runs} for p in common}
    out: dict[str, Any] = {
        "runs": [{k: r[k] for k in ("name", "run", "same_split")} for r in runs],
        "pairs": table, "compared_pairs": common,
        "not_compared": [p for p in metrics["pairs"] if is_cross_modal(p) and p not in common],
        "cross_modal": {r["name"]: cross_modal_mean(r["metrics"]["pairs"], "mAP@10", common)
                        for r in runs},
        "advice": ADVICE}
    inst = _both(runs, "instance", "R@1") if all(r["metrics"].get("instance") for r in runs) \
        else []
    if inst:
        out["instance"] = {
            "pairs": {p: {r["name"]: r["metrics"]["instance"]["pairs"][p]["R@1"] for r in runs}
                      for p in inst},
            "cross_modal": {r["name"]: cross_modal_mean(r["metrics"]["instance"]["pairs"],
                                                        "R@1", inst) for r in runs}}
    return out


def versus_markdown(versus: dict[str, Any]) -> list[str]:
    """Markdown lines comparing runs pair by pair on the same held-out split."""
    names = [r["name"] for r in versus["runs"]]
    inst = versus.get("instance") or {}
    head = " | ".join(f"{n} mAP@10 / R@10" + (" / instance R@1" if inst else "")
                      for n in names)
    lines = ["## Side by side (same held-out split)", "",
             "| pair | " + head + " |", "|---|" + "---|" * len(names)]

    def cell(v: dict[str, Any], r1: float | None) -> str:
        text = "-" if v.get("mAP@10") is None else f"{v['mAP@10']:.3f} / {v['R@10']:.3f}"
        return text + (f" / {fmt(r1)}" if inst else "")

    for pair, row in versus["pairs"].items():
        r1 = inst.get("pairs", {}).get(pair, {})
        lines.append(f"| {pair} | " + " | ".join(cell(row[n], r1.get(n)) for n in names) + " |")
    n = len(versus["pairs"])
    lines.append(f"| cross-modal mean ({n} pairs) | " + " | ".join(
        fmt(versus["cross_modal"][n_]) + (f" / instance R@1 {fmt(inst['cross_modal'][n_])}"
                                          if inst else "") for n_ in names) + " |")
    if versus.get("not_compared"):
        lines += ["", "Not compared (not measured in every run): "
                  + ", ".join(versus["not_compared"]) + "."]
    odd = [r["run"] for r in versus["runs"] if not r["same_split"]]
    if odd:
        lines += ["", f"Warning: {', '.join(odd)} used another split; figures differ in data."]
    lines += ["", versus["advice"], ""]
    return lines

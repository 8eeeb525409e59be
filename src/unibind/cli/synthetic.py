"""``unibind synthetic OUT``: a synthetic features folder for trials without media."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, app, emit


@app.command("synthetic")
def synthetic(out: Path = typer.Argument(..., help="Features folder to write."),
              classes: int = typer.Option(10, min=2), groups_per_class: int = typer.Option(40),
              seed: int = typer.Option(0), as_json: bool = JSON_OPTION) -> None:
    """Write a synthetic features folder (class-structured, with a modality gap) for trials."""
    from unibind.features.folder import save_features
    from unibind.features.synthetic import SyntheticSpec, generate

    feats = generate(SyntheticSpec(n_classes=classes, groups_per_class=groups_per_class,
                                   seed=seed))
    save_features(out, feats.items, feats.arrays, feats.meta)
    summary = {"out": str(out), "items": int(len(feats.items)), "dims": feats.dims}
    emit(summary, as_json, f"{summary['items']} synthetic items -> {out}")

"""``unibind tune FEATURES``: search training hyper-parameters on validation data."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import FEATURES_ARG, JSON_OPTION, app, emit


@app.command("tune")
def tune(features: Path = FEATURES_ARG,
         trials: int = typer.Option(20, min=1, help="Number of Optuna trials."),
         out: Path = typer.Option(Path("tune-best.json"), "--out",
                                  help="Best config (JSON) for `unibind train --config`."),
         base: str = typer.Option("default", help="Preset the search starts from."),
         epochs: int = typer.Option(None, min=1, help="Epochs per trial (default: preset's)."),
         seed: int = typer.Option(0), timeout: float = typer.Option(None, help="Seconds."),
         as_json: bool = JSON_OPTION) -> None:
    """Search lr, D, temperature, pair weights, positives and MSE weight on validation data
    (the criterion the preset selects on; the bound start is not part of the search)."""
    from unibind.training.tune import tune as run_tune

    summary = run_tune(features, trials=trials, out=out, base=base, seed=seed, epochs=epochs,
                       timeout=timeout)
    best = summary["best"]
    emit(summary, as_json, f"best objective {best['objective']:.4f} (val score "
                           f"{best['val_score']:.4f}, val mAP@10 {best['val_mAP@10']:.4f}) after "
                           f"{summary['trials']} trials -> {out}")

"""``unibind evaluate RUN``: held-out metrics of a run."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, RUN_ARG, app, emit


@app.command("evaluate")
def evaluate(run: Path = RUN_ARG,
             split: str = typer.Option("test", help="train | val | test | all."),
             features: Path = typer.Option(None, help="Features folder (default: the run's)."),
             allow_split_mismatch: bool = typer.Option(
                 False, help="Evaluate even if the features no longer give the run's split."),
             versus: list[Path] = typer.Option(None, "--versus",
                                               help="Other run(s) to show side by side on the "
                                                    "same split (e.g. the bound run)."),
             as_json: bool = JSON_OPTION) -> None:
    """Held-out metrics: 3x3 query->target table, zero-shot, mixed-search shares, modality gap.

    Writes RUN/metrics.json and RUN/metrics.md (metrics-<split>.* for other splits)."""
    from unibind.eval.evaluate import evaluate as run_evaluate
    from unibind.eval.evaluate import metrics_markdown

    metrics = run_evaluate(run, split=split, features=features,
                           allow_split_mismatch=allow_split_mismatch, versus=versus)
    emit(metrics, as_json, metrics_markdown(metrics))

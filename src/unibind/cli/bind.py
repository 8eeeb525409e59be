"""``unibind bind``: a run with no training, from encoders already aligned with text."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, app, emit


@app.command("bind")
def bind(features: Path = typer.Argument(..., help="Features folder (from `unibind extract`, "
                                                    "--profile aligned or offline)."),
         out: Path = typer.Option(..., "--out", help="Run folder to write."),
         pivot: str = typer.Option(None, help="Shared space: clap (default) | clip for aligned "
                                              "features; text for offline ones."),
         method: str = typer.Option("auto", help="Text bridge: auto | ridge | procrustes."),
         temperature: float = typer.Option(1.0, min=1e-3, help="Offline class-name bridge: "
                                                                "softmax temperature."),
         generic: bool = typer.Option(True, "--generic/--no-generic",
                                      help="Fit the text bridge on the shipped generic "
                                           "sentences too (besides captions and labels)."),
         split_seed: int = typer.Option(0, help="Seed of the held-out split (as `train`)."),
         as_json: bool = JSON_OPTION) -> None:
    """Bind every modality into one space with NO training and no paired media.

    The collection needs no text: the profile's text encoder is recorded for queries. aligned
    profile: CLAP's joint space (or CLIP's, --pivot clip); the other tower's modality enters
    through a map fitted on text alone. offline profile: images enter MiniLM's text space through
    ImageNet class names; sounds get a space of their own (found by sound queries, not text)."""
    from unibind.binding.bind import bind as run_bind

    summary = run_bind(features, out, pivot=pivot, method=method, temperature=temperature,
                       generic_sentences=generic, split_seed=split_seed)
    lines = [f"bound run -> {summary['run']} ({summary['scheme']}, space: {summary['pivot']})"]
    lines += [f"  {m}: {how}" for m, how in summary["heads"].items()]
    lines += [f"  {m} queries reach: {', '.join(t)}" for m, t in summary["reach"].items()]
    lines += [f"  {m}: not reachable by text: {why}" for m, why in summary["unreachable"].items()]
    emit(summary, as_json, "\n".join(lines))

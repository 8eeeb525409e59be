"""``unibind search RUN --text ... --image ... --audio ...`` (one ``--<name>`` per registered
modality, from ``unibind.cli.modality_options``)."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, app, emit, fail
from unibind.cli.modality_options import query_flags, query_options, with_modality_options


@app.command("search")
@with_modality_options(query_options)
def search(run: Path = typer.Argument(..., help="Run folder (indexed with `unibind index`)."),
           k: int = typer.Option(10, "--k", "-k", min=1, help="Number of results."),
           modality: str = typer.Option(None, "--modality",
                                        help="Only these target modalities, e.g. audio,image."),
           balance: str = typer.Option(None, "--balance",
                                       help="Mixed-search mode: none | balanced | calibrated | "
                                            "centered (default: the run's recommendation)."),
           via_pairs: int = typer.Option(0, "--via-pairs", min=0,
                                         help="Also reach items paired (same group) with the "
                                              "query's N nearest same-modality items."),
           no_floor: bool = typer.Option(False, "--no-floor",
                                         help="Keep target modalities whose best score is at "
                                              "the noise floor (by default they get no slots "
                                              "in a mixed search)."),
           index: str = typer.Option(None, "--index", "--store",
                                     help="Index folder (default: RUN/index) or a Milvus store "
                                          "URI (milvus://PATH.db, http://HOST:19530)."),
           as_json: bool = JSON_OPTION, **queries: list) -> None:
    """Rank indexed items for a sentence, a picture, a sound, or several at once (their
    embeddings are summed and normalised: a compositional query)."""
    from unibind.search.space import Space, format_results

    given = {m: list(v) for m, v in queries.items() if v}
    if not given:
        fail(f"give at least one query: {query_flags()}")
    space = Space.load(run, index)
    result = space.search(k=k, modality=modality, balance=balance, via_pairs=via_pairs,
                          floor=not no_floor, **given)
    emit(result, as_json, format_results(result))

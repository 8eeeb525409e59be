"""``unibind scale plan``: a capacity plan recomputed from measured per-node figures."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, app, emit

scale_app = typer.Typer(no_args_is_help=True, help="Plans for collections beyond one machine.")
app.add_typer(scale_app, name="scale")


@scale_app.command("plan")
def plan(config: Path = typer.Option(None, "--config",
                                     help="JSON with any subset of the plan's inputs (see "
                                          "unibind.scale.plan.DEFAULTS), e.g. measured rates."),
         items: int = typer.Option(None, "--items", min=1,
                                   help="Total items, split in the default modality mix."),
         gpus: int = typer.Option(None, "--gpus", min=1, help="Extraction GPUs."),
         index_type: str = typer.Option(None, "--index-type",
                                        help="FLAT | HNSW | IVF_PQ | DISKANN | GPU_CAGRA"),
         show_inputs: bool = typer.Option(False, "--show-inputs",
                                          help="Print the inputs used (JSON) and stop."),
         as_json: bool = JSON_OPTION) -> None:
    """Feature storage, extraction GPUs and wall time, Milvus index memory, nodes, replicas,
    shards and the latency budget, from per-node figures (defaults: docs/scaling.md)."""
    import json

    from unibind.scale.plan import compute_plan, format_plan, load_inputs, scale_items

    inputs = load_inputs(config, gpus=gpus, index_type=index_type)
    if items is not None:
        inputs["items"] = scale_items(inputs["items"], items)
    if show_inputs:
        typer.echo(json.dumps(inputs, indent=2))
        return
    result = compute_plan(inputs)
    emit(result, as_json, format_plan(result))

"""``unibind index RUN`` and ``unibind index add RUN MANIFEST``."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, app, emit, fail


def _human(summary: dict) -> str:
    parts = ", ".join(f"{m} {p['count']} ({p['factory']}, {p['bytes_per_vector']:.0f} B/vector)"
                      for m, p in summary["parts"].items())
    extra = f"; added {summary['added']}" if "added" in summary else ""
    lines = [f"index -> {summary['index']}: {summary['count']} items: {parts}{extra}"]
    lines += [f"  {m}: {n} item(s)" for m, n in summary.get("modalities", {}).items()]
    lines += [f"  {m}: {why}" for m, why in summary.get("not_indexed", {}).items()]
    return "\n".join(lines)


@app.command("index")
def index(args: list[str] = typer.Argument(..., metavar="RUN | add RUN MANIFEST",
                                           help="RUN: build RUN's index; `add RUN MANIFEST`: "
                                                "append MANIFEST's new items without a rebuild."),
          out: str = typer.Option(None, "--out", "--index",
                                  help="Index folder (default: RUN/index) or store URI."),
          store: str = typer.Option(None, "--store",
                                    help="Write to Milvus instead of a faiss folder: "
                                         "milvus://PATH.db (Milvus Lite, a local file) or "
                                         "http://HOST:19530 (a Milvus server); "
                                         "?collection=NAME picks the collection."),
          factory: str = typer.Option(None, "--factory",
                                      help="Flat (exact) or a faiss factory string, e.g. "
                                           "HNSW32, 'PQ128x4fs,RFlat', IVF4096,PQ64 "
                                           "(default: chosen by size and memory budget); "
                                           "with --store a Milvus index type (default "
                                           "FLAT, exact; IVF_FLAT, HNSW, IVF_PQ, DISKANN...)."),
          memory_budget: float = typer.Option(4.0, "--memory-budget", min=0.01,
                                              help="GB the index may use in memory."),
          center: bool = typer.Option(None, "--center/--no-center",
                                      help="Index centred vectors (default: the run's "
                                           "recommendation)."),
          cache_dir: Path = typer.Option(None, "--cache-dir",
                                         help="Feature cache folder (add)."),
          as_json: bool = JSON_OPTION) -> None:
    """Project every item of RUN's features through its heads and index them (exact for small
    collections, approximate when large), or add new items to an existing index."""
    from unibind.search.index import add_items, build_index

    adding = args[0] == "add"
    if adding and len(args) != 3:
        fail("usage: unibind index add RUN MANIFEST")
    if not adding and len(args) != 1:
        fail("usage: unibind index RUN [--factory F] (or: unibind index add RUN MANIFEST)")
    if adding:
        summary = add_items(args[1], args[2], index_path=store or out, cache_dir=cache_dir)
    else:
        summary = build_index(args[0], out=out, factory=factory, memory_budget_gb=memory_budget,
                              center=center, store=store)
    emit(summary, as_json, _human(summary))

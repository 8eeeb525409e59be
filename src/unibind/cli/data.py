"""``unibind data ...``: builders that write manifests."""

from __future__ import annotations

from pathlib import Path

import typer

from ..data.folder import build_folder_manifest
from ..manifest import ManifestError, read_manifest
from ._app import JSON_OPTION, app, emit, fail

data_app = typer.Typer(no_args_is_help=True, help="Build dataset manifests.")
app.add_typer(data_app, name="data")


def manifest_summary(path: Path) -> dict:
    table = read_manifest(path).table
    return {"out": str(path), "items": len(table),
            "modalities": table["modality"].value_counts().to_dict(),
            "labels": int(table["label"].nunique())}


@data_app.command("folder")
def folder(src: Path = typer.Argument(..., help="Folder laid out as SRC/<label>/<files>."),
           out: Path = typer.Option(..., "--out", help="Manifest to write (.parquet/.csv/.jsonl)."),
           as_json: bool = JSON_OPTION) -> None:
    """Build a manifest from SRC/<label>/<files> (images, audio, .txt captions)."""
    try:
        path = build_folder_manifest(src, out)
    except (FileNotFoundError, ManifestError) as exc:
        fail(str(exc))
    emit(manifest_summary(path), as_json)

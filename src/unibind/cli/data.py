"""``unibind data ...``: builders that write manifests (folder, esc50, images, captions,
triplets, tuxpaint)."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, app, check_items, emit, fail

data_app = typer.Typer(no_args_is_help=True, help="Build dataset manifests.")
app.add_typer(data_app, name="data")


def key_values(summary: dict) -> str:
    """A summary as ``key: value`` lines (what the data commands print without ``--json``)."""
    def show(v: object) -> str:
        if isinstance(v, dict):
            return ", ".join(f"{k} {x}" for k, x in v.items()) or "none"
        if isinstance(v, (list, tuple)):
            return ", ".join(str(x) for x in v) or "none"
        return str(v)
    return "\n".join(f"{k}: {show(v)}" for k, v in summary.items())


def manifest_summary(path: Path) -> dict:
    from unibind.data.manifest import read_manifest

    table = read_manifest(path).table
    return {"out": str(path), "items": len(table),
            "modalities": table["modality"].value_counts().to_dict(),
            "labels": int(table.loc[table["label"].str.strip() != "", "label"].nunique()),
            "unlabelled": int((table["label"].str.strip() == "").sum())}


@data_app.command("folder")
def folder(src: Path = typer.Argument(..., help="Any folder tree of images, audio, .txt files."),
           out: Path = typer.Option(None, "--out", help="Default SRC/manifest.parquet."),
           labels: str = typer.Option("none", help="none: items without labels | dirs: "
                                                   "SRC/<label>/<files>, subfolder = label."),
           as_json: bool = JSON_OPTION) -> None:
    """Build a manifest from a folder tree (images, audio, .txt captions); files sharing a stem
    in one folder share a group. Labels only with --labels dirs."""
    from unibind.data.folder import SHOW_SKIPPED, build_folder_manifest

    skipped: list[str] = []
    summary = manifest_summary(build_folder_manifest(src, out, labels=labels, skipped=skipped))
    if skipped:  # files of no known type, named (the first SHOW_SKIPPED)
        summary["skipped"] = len(skipped)
        summary["skipped_files"] = skipped[:SHOW_SKIPPED]
    emit(summary, as_json, key_values(summary))


def _finish(summary: dict, as_json: bool) -> None:
    """Emit the summary; exit 1 when some items failed (they are listed in ``errors``)."""
    emit(summary, as_json, key_values(summary))
    check_items(summary, "the summary's errors")


@data_app.command("esc50")
def esc50(out: Path = typer.Option(..., "--out", help="Output folder (manifest.parquet inside)."),
          source: str = typer.Option(None, "--source",
                                     help="URL, local zip or extracted folder (default: the "
                                          "ESC-50 GitHub archive, ~600 MB)."),
          merge_folds: bool = typer.Option(False, "--merge-folds",
                                           help="Concatenate each class's clips per fold: "
                                                "5 files per class, as the reference did."),
          sha256: str = typer.Option(None, "--sha256", help="Expected sha256 of the download."),
          manifest: str = typer.Option("manifest.parquet", "--manifest",
                                       help="Manifest file name inside --out."),
          as_json: bool = JSON_OPTION) -> None:
    """ESC-50 (2,000 clips, 50 classes, 5 folds; licence CC BY-NC 3.0) as a manifest."""
    from unibind.data.esc50 import build_esc50

    summary = build_esc50(out, source=source, merge_folds=merge_folds, sha256=sha256,
                          manifest=manifest)
    typer.echo(f"licence: {summary['licence']}", err=True)
    _finish(summary, as_json)


@data_app.command("images")
def images(out: Path = typer.Option(..., "--out", help="Output folder (manifest.parquet inside)."),
           labels: Path = typer.Option(None, "--labels", help="Text file, one label a line."),
           from_manifest: Path = typer.Option(None, "--from",
                                              help="Take the labels of this manifest."),
           from_folder: Path = typer.Option(None, "--from-folder",
                                            help="Use SRC/<label>/<images> instead of the web."),
           per_class: int = typer.Option(None, "--per-class",
                                         help="Images kept per class (web default 5; "
                                              "--from-folder default: all)."),
           extra: int = typer.Option(None, "--extra",
                                     help="Spare web images per class (default: --per-class)."),
           min_side: int = typer.Option(64, "--min-side", help="Drop images smaller than this."),
           query: str = typer.Option("{label}", "--query",
                                     help="Web search query template, e.g. '{label} photo'."),
           manifest: str = typer.Option("manifest.parquet", "--manifest",
                                        help="Manifest file name inside --out."),
           as_json: bool = JSON_OPTION) -> None:
    """Images per class from the web ("web" extra) or a folder, cleaned of bad/duplicate/tiny."""
    from unibind.data.images import build_images, read_labels

    if from_folder is None and labels is None and from_manifest is None:
        fail("give --labels FILE, --from MANIFEST or --from-folder DIR")
    names = (read_labels(labels, from_manifest)
             if labels is not None or from_manifest is not None else None)
    if from_folder is None and per_class is None:
        per_class = 5
    summary = build_images(out, names, per_class, from_folder=from_folder, min_side=min_side,
                           extra=extra, query_template=query, manifest=manifest)
    emit(summary, as_json, key_values(summary))


@data_app.command("captions")
def captions(manifest: Path = typer.Argument(..., help="Manifest whose images are captioned."),
             model: str = typer.Option(..., "--model",
                                       help="Hub id or local folder of an image-to-text model "
                                            "(reference: openbmb/MiniCPM-Llama3-V-2_5-int4)."),
             prompt: str = typer.Option(None, "--prompt",
                                        help="Instruction/prefix (minicpm default: the reference "
                                             "prompt; generic default: none)."),
             revision: str = typer.Option(None, "--revision", help="Model revision to pin."),
             backend: str = typer.Option("auto", "--backend", help="auto | generic | minicpm."),
             out: Path = typer.Option(None, "--out",
                                      help="Manifest of captions (default: captions.parquet "
                                           "beside MANIFEST)."),
             batch_size: int = typer.Option(8, "--batch-size"),
             max_new_tokens: int = typer.Option(None, "--max-new-tokens",
                                                help="Default 64 (generic), 512 (minicpm)."),
             num_beams: int = typer.Option(1, "--num-beams"),
             trust_remote_code: bool = typer.Option(False, "--trust-remote-code",
                                                    help="Allow the model repository's own code "
                                                         "(needed by MiniCPM)."),
             cache_dir: Path = typer.Option(None, "--cache-dir",
                                            help="Caption cache (default: user cache)."),
             device: str = typer.Option(None, "--device", help="cpu, cuda, mps (default: best)."),
             dtype: str = typer.Option(None, "--dtype", help="float32, float16, bfloat16."),
             as_json: bool = JSON_OPTION) -> None:
    """One caption per image with a vision-language model; cached, resumable."""
    from unibind.data.captions import CaptionConfig, caption_manifest

    cfg = CaptionConfig(model=model, prompt=prompt, revision=revision, backend=backend,
                        max_new_tokens=max_new_tokens, num_beams=num_beams,
                        trust_remote_code=trust_remote_code)
    summary = caption_manifest(manifest, cfg, out, cache_dir=cache_dir, batch_size=batch_size,
                               device=device, dtype=dtype)
    _finish(summary, as_json)


@data_app.command("triplets")
def triplets(manifests: list[Path] = typer.Argument(..., help="Manifests to join (audio, "
                                                              "images, captions, ...)."),
             out: Path = typer.Option(..., "--out",
                                      help="Joined manifest; its folder must contain all media."),
             modality: list[str] = typer.Option(None, "--modality",
                                                help="Modalities to join (default: all present)."),
             keep_incomplete: bool = typer.Option(False, "--keep-incomplete",
                                                  help="Keep labels that lack a modality."),
             as_json: bool = JSON_OPTION) -> None:
    """Join audio, images and captions of each label: sample k = image k + caption k + audio k."""
    from unibind.data.triplets import build_triplets

    summary = build_triplets(manifests, out, modalities=modality or None,
                             keep_incomplete=keep_incomplete)
    emit(summary, as_json, key_values(summary))


@data_app.command("tuxpaint")
def tuxpaint(out: Path = typer.Option(None, "--out", help="Output folder (manifest.parquet "
                                                          "inside; default: the user cache)."),
             deb: Path = typer.Option(None, "--deb", help="Use this .deb instead of "
                                                          "`apt-get download`."),
             source: Path = typer.Option(None, "--source", help="An already unpacked package "
                                                                "(or its stamps folder)."),
             level: int = typer.Option(1, "--level", min=1,
                                       help="Label = this many folder levels (1: category)."),
             extras: bool = typer.Option(True, "--extras/--triples-only",
                                         help="Also keep stamps without a sound (image + "
                                              "caption)."),
             as_json: bool = JSON_OPTION) -> None:
    """Debian's tuxpaint-stamps-default (GPL-2): image + caption (+ sound) per stamp."""
    from unibind.data.tuxpaint import build_tuxpaint

    summary = build_tuxpaint(out=out, deb=deb, source=source, level=level, extras=extras)
    typer.echo(f"licence: {summary['licence']}", err=True)
    emit(summary, as_json, key_values(summary))

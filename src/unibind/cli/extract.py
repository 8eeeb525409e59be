"""``unibind extract`` and ``unibind encoders list``."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, app, emit, fail
from unibind.encoders import DESCRIPTIONS, PROFILES, backend_class, resolve_profile
from unibind.errors import UnibindError
from unibind.features.extract import extract as run_extract
from unibind.features.manifest import ManifestError

encoders_app = typer.Typer(no_args_is_help=True, help="Encoder profiles.")
app.add_typer(encoders_app, name="encoders")


@app.command("extract")
def extract(manifest: Path = typer.Argument(..., help="Manifest (.parquet/.csv/.jsonl)."),
            out: Path = typer.Option(..., "--out", help="Features folder to write."),
            profile: str = typer.Option("seed", help=f"Encoder profile: {', '.join(PROFILES)}."),
            text_encoder: str = typer.Option(None, help="Hub id or folder for text (BERT)."),
            image_encoder: str = typer.Option(None, help="Hub id or folder for images (CLIP)."),
            audio_encoder: str = typer.Option(None, help="Hub id or folder for audio (CLAP)."),
            batch_size: str = typer.Option("auto", help="auto (largest that fits on cuda, else "
                                           "32) or a number."),
            device: str = typer.Option("auto", help="auto (cuda > mps > cpu), cpu, cuda:0 ..."),
            dtype: str = typer.Option("auto", help="auto (bf16, else fp16 on cuda; fp32 off it),"
                                      " fp32, fp16, bf16."),
            workers: int = typer.Option(None, min=1, help="Decode threads (default: cores)."),
            preprocess: str = typer.Option("host", help="host, or device: image resize and "
                                           "CLAP log-mel on the model's device."),
            engine: str = typer.Option("local", help="local, or ray (needs unibind[ray])."),
            address: str = typer.Option(None, help="Ray cluster: auto, ray://HOST:PORT "
                                        "(default: a local one)."),
            cache_dir: Path = typer.Option(None, help="Feature cache (default: user cache)."),
            as_json: bool = JSON_OPTION) -> None:
    """Embed every item of MANIFEST with the profile's encoders (cached) into a features folder.

    Exit status 1 when any item failed (the others are still written)."""
    overrides = {"text": text_encoder, "image": image_encoder, "audio": audio_encoder}
    try:
        summary = run_extract(manifest, out, profile=profile, overrides=overrides,
                              cache_dir=cache_dir, batch_size=batch_size, device=device,
                              dtype=dtype, workers=workers, engine=engine,
                              address=address, preprocess=preprocess)
    except (ManifestError, KeyError, OSError, ValueError, UnibindError) as exc:
        fail(str(exc))
    lines = [f"{m}: {s['computed']} computed, {s['cached']} cached, dim {s['dim']}"
             for m, s in summary["modalities"].items()]
    lines += [f"FAILED {e['id']} ({e['path']}): {e['reason']}" for e in summary["errors"]]
    emit(summary, as_json, "\n".join(lines + [f"features -> {summary['out']}"]))
    if summary["errors"]:
        raise typer.Exit(1)


@encoders_app.command("list")
def list_profiles(as_json: bool = JSON_OPTION,
                  resolve: bool = typer.Option(False, help="Load models to report dims.")) -> None:
    """Show profiles, their encoders and (with --resolve) output dims."""
    out = {}
    for name in PROFILES:
        try:
            specs = resolve_profile(name)
        except Exception as exc:  # e.g. offline packages not installed
            out[name] = {"description": DESCRIPTIONS[name], "error": str(exc)}
            continue
        entry = {"description": DESCRIPTIONS[name], "encoders": {}}
        for m, spec in specs.items():
            enc = {"backend": spec.backend, "source": spec.source, "options": spec.options,
                   "dim": backend_class(spec.backend).config_dim(spec)
                   or KNOWN_DIMS.get(spec.source)}
            if resolve:
                from unibind.encoders import load_encoder

                enc["dim"] = load_encoder(spec).dim
            entry["encoders"][m] = enc
        out[name] = entry
    lines = []
    for name, entry in out.items():
        lines.append(f"{name}: {entry['description']}")
        for m, enc in entry.get("encoders", {}).items():
            lines.append(f"  {m:<6} {enc['backend']:<18} dim {enc['dim']}  {enc['source']}")
        if "error" in entry:
            lines.append(f"  unavailable: {entry['error']}")
    emit(out, as_json, "\n".join(lines))


KNOWN_DIMS = {"bert-base-uncased": 768, "openai/clip-vit-large-patch14": 768,
              "laion/larger_clap_general": 512}

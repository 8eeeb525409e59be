"""``unibind extract``: manifest -> features folder."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, app, check_items, emit
from unibind.cli.modality_options import encoder_options, with_modality_options
from unibind.encoders.profiles import PROFILES


@app.command("extract")
@with_modality_options(encoder_options, after="profile")
def extract(manifest: Path = typer.Argument(..., help="Manifest (.parquet/.csv/.jsonl)."),
            out: Path = typer.Option(..., "--out", help="Features folder to write."),
            profile: str = typer.Option("seed", help=f"Encoder profile: {', '.join(PROFILES)}."),
            batch_size: str = typer.Option("auto", help="auto (largest that fits on cuda, else "
                                           "32) or a number."),
            device: str = typer.Option("auto", help="auto (cuda > mps > cpu), cpu, cuda:0 ..."),
            dtype: str = typer.Option("auto", help="auto (bf16, else fp16 on cuda; fp32 off it),"
                                      " fp32, fp16, bf16."),
            workers: int = typer.Option(None, min=1, help="Decode threads (default: cores)."),
            preprocess: str = typer.Option("host", help="host, or device: image resize and "
                                           "CLAP log-mel on the model's device."),
            runtime: str = typer.Option("auto", help="auto (ONNX Runtime on the CPU where the "
                                        "model exports faithfully, torch on cuda), torch, onnx."),
            quantize: str = typer.Option(None, help="int8: dynamically quantized ONNX graphs "
                                         "(faster on the CPU, own cache entries)."),
            engine: str = typer.Option("local", help="local, or ray (needs unibind\\[ray])."),
            address: str = typer.Option(None, help="Ray cluster: auto, ray://HOST:PORT "
                                        "(default: a local one)."),
            cache_dir: Path = typer.Option(None, help="Feature cache (default: user cache)."),
            max_pixels: int = typer.Option(
                None, min=1, help="Largest image decoded, in pixels (default: Pillow's limit, "
                "89,478,485); bigger ones fail alone."),
            max_audio_seconds: float = typer.Option(
                None, min=0.001, help="Longest audio file decoded (default 600 s)."),
            allow_outside_paths: bool = typer.Option(
                False, help="Accept manifest paths outside its folder ('..', absolute)."),
            as_json: bool = JSON_OPTION, **encoders: str) -> None:
    """Embed every item of MANIFEST with the profile's encoders (cached) into a features folder.

    Exit status 1 when any item failed (the others are still written)."""
    from unibind.features.extract import extract as run_extract
    from unibind.media.decode import DEFAULT_LIMITS, MediaLimits

    overrides = {name.removesuffix("_encoder"): v for name, v in encoders.items() if v}
    limits = MediaLimits(max_pixels or DEFAULT_LIMITS.max_pixels,
                         max_audio_seconds or DEFAULT_LIMITS.max_audio_seconds)
    summary = run_extract(manifest, out, profile=profile, overrides=overrides,
                          cache_dir=cache_dir, batch_size=batch_size, device=device, dtype=dtype,
                          limits=limits, allow_outside=allow_outside_paths, workers=workers,
                          engine=engine, address=address, preprocess=preprocess,
                          runtime=runtime, quantize=quantize)
    lines = [f"{m}: {s['computed']} computed, {s['cached']} cached, dim {s['dim']}"
             for m, s in summary["modalities"].items()]
    lines += [f"FAILED {e['id']} ({e['path']}): {e['reason']}" for e in summary["errors"]]
    emit(summary, as_json, "\n".join(lines + [f"features -> {summary['out']}"]))
    check_items(summary, str(Path(summary["out"]) / "errors.jsonl"))

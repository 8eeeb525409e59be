"""``unibind train``: features -> run (heads only, or ``--finetune`` the encoders too)."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import FEATURES_ARG, JSON_OPTION, app, emit, fail


@app.command("train")
def train(features: Path = FEATURES_ARG,
          out: Path = typer.Option(..., "--out", help="Run folder to write."),
          preset: str = typer.Option("default", help="Recipe: default (finds the thing and its "
                                     "category) | class (categories only) | seed (the "
                                     "reference)."),
          config: Path = typer.Option(None, help="JSON config (e.g. from `unibind tune`)."),
          seed: int = typer.Option(0, help="Training seed (same seed on CPU: same weights)."),
          epochs: int = typer.Option(None, min=1, help="Override the preset's epochs."),
          embed_dim: int = typer.Option(None, min=1, help="Override the shared dim D."),
          lr: float = typer.Option(None, help="Override the learning rate."),
          batch_size: int = typer.Option(None, min=2, help="Override the batch size (with "
                                         "--finetune: the fine-tuning batch size)."),
          positives: str = typer.Option(None, help="Override positives: instance | class."),
          init: str = typer.Option("auto", "--init", help="auto: start from the bound run when "
                                   "the preset does and the features can be bound; none: new "
                                   "heads; or a bound run folder (`unibind bind`)."),
          finetune: bool = typer.Option(False, "--finetune",
                                        help="Train the encoders too, on raw inputs."),
          finetune_layers: int = typer.Option(None, min=0,
                                              help="Fine-tune only the last N layers (0: all)."),
          device: str = typer.Option("auto", help="Fine-tuning device: auto, cpu, cuda:0 .."),
          threads: int = typer.Option(None, min=1, help="torch CPU threads (default: heads-only "
                                                         "1, fine-tuning torch's default)."),
          as_json: bool = JSON_OPTION) -> None:
    """Train per-modality heads into one space on FEATURES' training split; write a run."""
    from unibind.training.config import load_train_config, override
    from unibind.training.config import preset as get_preset

    base = get_preset(preset)
    cfg = load_train_config(config, base) if config else base
    batch = {"finetune_batch_size" if finetune else "batch_size": batch_size}
    cfg = override(cfg, epochs=epochs, embed_dim=embed_dim, lr=lr, positives=positives,
                   finetune_layers=finetune_layers, **batch)
    if finetune and init not in ("auto", "none"):
        fail("--init and --finetune cannot be combined (yet)")
    if finetune:
        from unibind.training.finetune import finetune as run_finetune
        from unibind.util.runtime import pick_device

        summary = run_finetune(features, out, preset_name=preset, config=cfg, seed=seed,
                               device=pick_device(device), threads=threads)
    else:
        from unibind.training.trainer import train as run_train

        summary = run_train(features, out, preset_name=preset, config=cfg, seed=seed,
                            threads=threads or 1, init=init)
    kept = f"; kept {summary['kept']}" if "kept" in summary else ""
    score = summary.get("val_score")
    both = f", val score {score:.3f}" if score is not None else ""
    val = summary["val_mAP@10"]
    val_text = f"{val:.3f}" if val is not None else "not measured"
    note = f"\nnote: {summary['note']}" if summary.get("note") else ""
    emit(summary, as_json, f"run -> {summary['run']} (epochs {summary['epochs']}, best "
                           f"{summary['best_epoch']}, val mAP@10 {val_text}{both}{kept}){note}")

"""``unibind train``, ``unibind evaluate``, ``unibind tune`` and ``unibind synthetic``."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, app, emit, fail

FEATURES_ARG = typer.Argument(..., help="Features folder (from `unibind extract`).")


@app.command("train")
def train(features: Path = FEATURES_ARG,
          out: Path = typer.Option(..., "--out", help="Run folder to write."),
          preset: str = typer.Option("default", help="Recipe: seed (the reference) | default."),
          config: Path = typer.Option(None, help="JSON config (e.g. from `unibind tune`)."),
          seed: int = typer.Option(0, help="Training seed (same seed on CPU: same weights)."),
          epochs: int = typer.Option(None, min=1, help="Override the preset's epochs."),
          embed_dim: int = typer.Option(None, min=1, help="Override the shared dim D."),
          lr: float = typer.Option(None, help="Override the learning rate."),
          batch_size: int = typer.Option(None, min=2, help="Override the batch size."),
          positives: str = typer.Option(None, help="Override positives: instance | class."),
          init: Path = typer.Option(None, "--init", help="Start from a bound run (`unibind "
                                                          "bind`); keeps bound heads where "
                                                          "they score better on validation."),
          finetune: bool = typer.Option(False, "--finetune",
                                        help="Train the encoders too, on raw inputs."),
          finetune_layers: int = typer.Option(None, min=0,
                                              help="Fine-tune only the last N layers (0: all)."),
          device: str = typer.Option("auto", help="Fine-tuning device: auto, cpu, cuda:0 .."),
          threads: int = typer.Option(None, min=1, help="torch CPU threads (default: heads-only "
                                                         "1, fine-tuning torch's default)."),
          as_json: bool = JSON_OPTION) -> None:
    """Train per-modality heads into one space on FEATURES' training split; write a run."""
    from unibind.train.config import load_train_config, override
    from unibind.train.config import preset as get_preset

    try:
        base = get_preset(preset)
        cfg = load_train_config(config, base) if config else base
        cfg = override(cfg, epochs=epochs, embed_dim=embed_dim, lr=lr, batch_size=batch_size,
                       positives=positives, finetune_layers=finetune_layers)
        if finetune and init is not None:
            fail("--init and --finetune cannot be combined (yet)")
        if finetune:
            from unibind.train.finetune import finetune as run_finetune
            from unibind.util.runtime import pick_device

            summary = run_finetune(features, out, preset_name=preset, config=cfg, seed=seed,
                                   device=pick_device(device), threads=threads)
        else:
            from unibind.train.fit import train as run_train

            summary = run_train(features, out, preset_name=preset, config=cfg, seed=seed,
                                threads=threads or 1, init=init)
    except (ValueError, OSError, KeyError) as exc:
        fail(str(exc))
    emit(summary, as_json, f"run -> {summary['run']} (epochs {summary['epochs']}, best "
                           f"{summary['best_epoch']}, val mAP@10 {summary['val_mAP@10']})")


@app.command("evaluate")
def evaluate(run: Path = typer.Argument(..., help="Run folder (from `unibind train`)."),
             split: str = typer.Option("test", help="train | val | test | all."),
             features: Path = typer.Option(None, help="Features folder (default: the run's)."),
             versus: list[Path] = typer.Option(None, "--versus",
                                               help="Other run(s) to show side by side on the "
                                                    "same split (e.g. the bound run)."),
             as_json: bool = JSON_OPTION) -> None:
    """Held-out metrics: 3x3 query->target table, zero-shot, mixed-search shares, modality gap.

    Writes RUN/metrics.json and RUN/metrics.md (metrics-<split>.* for other splits)."""
    from unibind.eval.evaluate import evaluate as run_evaluate
    from unibind.eval.evaluate import metrics_markdown

    try:
        metrics = run_evaluate(run, split=split, features=features, versus=versus)
    except (ValueError, OSError, KeyError) as exc:
        fail(str(exc))
    emit(metrics, as_json, metrics_markdown(metrics))


@app.command("tune")
def tune(features: Path = FEATURES_ARG,
         trials: int = typer.Option(20, min=1, help="Number of Optuna trials."),
         out: Path = typer.Option(Path("tune-best.json"), "--out",
                                  help="Best config (JSON) for `unibind train --config`."),
         base: str = typer.Option("default", help="Preset the search starts from."),
         epochs: int = typer.Option(None, min=1, help="Epochs per trial (default: preset's)."),
         seed: int = typer.Option(0), timeout: float = typer.Option(None, help="Seconds."),
         as_json: bool = JSON_OPTION) -> None:
    """Search lr, D, temperature, pair weights, positives and MSE weight on validation data."""
    from unibind.train.tune import tune as run_tune

    try:
        summary = run_tune(features, trials=trials, out=out, base=base, seed=seed,
                           epochs=epochs, timeout=timeout)
    except (ValueError, OSError, KeyError) as exc:
        fail(str(exc))
    best = summary["best"]
    emit(summary, as_json, f"best objective {best['objective']:.4f} (val mAP@10 "
                           f"{best['val_mAP@10']:.4f}) after {summary['trials']} trials -> {out}")


@app.command("synthetic")
def synthetic(out: Path = typer.Argument(..., help="Features folder to write."),
              classes: int = typer.Option(10, min=2), groups_per_class: int = typer.Option(40),
              seed: int = typer.Option(0), as_json: bool = JSON_OPTION) -> None:
    """Write a synthetic features folder (class-structured, with a modality gap) for trials."""
    from unibind.features.store import save_features
    from unibind.train.synthetic import SyntheticSpec, generate

    feats = generate(SyntheticSpec(n_classes=classes, groups_per_class=groups_per_class,
                                   seed=seed))
    save_features(out, feats.items, feats.arrays, feats.meta)
    summary = {"out": str(out), "items": int(len(feats.items)), "dims": feats.dims}
    emit(summary, as_json, f"{summary['items']} synthetic items -> {out}")

"""The command line: lazy imports, and errors handled in one place (a UnibindError is one
``error:`` line with exit status 2, or 1 for failed items; any other exception is a bug and keeps
its traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unibind.cli import app

HEAVY = ("torch", "transformers", "faiss", "pandas", "umap", "matplotlib", "numpy")


def test_cli_import_loads_no_heavy_library() -> None:
    code = ("import sys, unibind.cli; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_every_help_renders() -> None:
    runner = CliRunner()
    groups = {"data": ["folder", "esc50", "images", "captions", "triplets", "tuxpaint"],
              "encoders": ["list"]}
    for cmd in ["demo", "extract", "index", "search", "train", "evaluate", "tune", "synthetic",
                "plot", "report", *groups]:
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output, (cmd, res.output)
        for sub in groups.get(cmd, []):
            res = runner.invoke(app, [cmd, sub, "--help"])
            assert res.exit_code == 0 and "Usage" in res.output, (cmd, sub, res.output)
    help_text = " ".join(runner.invoke(app, ["extract", "--help"]).output.split())
    assert "seed, tiny," in help_text and "offline" in help_text  # profile names, torch-free


def _error_line(res) -> str:  # noqa: ANN001
    """The one line a UnibindError leaves on stderr (no traceback)."""
    assert res.exit_code == 2, res.output
    assert res.stdout == "" and "Traceback" not in res.output
    lines = res.stderr.splitlines()  # (logging may precede it, e.g. faiss's loader)
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:], res.stderr
    return errors[0]


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-errors")
    runner = CliRunner()
    res = runner.invoke(app, ["synthetic", str(root / "f"), "--classes", "3",
                              "--groups-per-class", "8"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", str(root / "f"), "--out", str(root / "r"), "--epochs", "1"])
    assert res.exit_code == 0, res.output
    (root / "m.csv").write_text("id,modality,label,text\na,text,x,hello\n")
    return root


def test_unknown_names_list_the_allowed_values(synthetic_run: Path) -> None:
    runner = CliRunner()
    manifest, feats, run = (str(synthetic_run / n) for n in ("m.csv", "f", "r"))
    out = str(synthetic_run / "out")
    line = _error_line(runner.invoke(app, ["extract", manifest, "--out", out,
                                           "--profile", "nope"]))
    assert line == ("error: unknown profile 'nope'; choose from seed, tiny, offline, aligned, "
                    "tiny-aligned")
    line = _error_line(runner.invoke(app, ["extract", manifest, "--out", out, "--dtype", "fp8"]))
    assert "unknown dtype 'fp8'" in line and "fp16" in line and "bf16" in line
    line = _error_line(runner.invoke(app, ["extract", manifest, "--out", out,
                                           "--device", "nope"]))
    assert "unknown device 'nope'" in line and "cpu" in line and "cuda" in line
    line = _error_line(runner.invoke(app, ["train", feats, "--out", out, "--preset", "nope"]))
    assert line == "error: unknown preset 'nope'; choose from class, default, seed"
    line = _error_line(runner.invoke(app, ["evaluate", run, "--split", "nope"]))
    assert line == "error: unknown split 'nope'; choose from train, val, test, all"
    line = _error_line(runner.invoke(app, ["index", run, "--factory", "Nope99"]))
    assert "faiss cannot build the index factory 'Nope99'" in line
    assert runner.invoke(app, ["index", run]).exit_code == 0  # for the searches below
    line = _error_line(runner.invoke(app, ["search", run, "--text", "x", "--modality", "smell"]))
    assert line == "error: unknown modality 'smell'; choose from text, image, audio"
    line = _error_line(runner.invoke(app, ["search", run, "--text", "x", "--balance", "loud"]))
    assert "unknown balance mode 'loud'" in line and "calibrated" in line


def test_failed_items_exit_1(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("id,modality,label,path\na,image,x,a.png\n")
    res = CliRunner().invoke(app, ["extract", str(tmp_path / "m.csv"), "--out",
                                   str(tmp_path / "f"), "--profile", "tiny",
                                   "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 1, res.output
    assert "FAILED a" in res.stdout
    assert res.stderr.splitlines()[-1].startswith("error: 1 item(s) failed; see ")


def test_a_bug_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import unibind.features.synthetic as synthetic

    def broken(spec):  # noqa: ANN001, ANN202
        return {}["a key a bug forgot"]

    monkeypatch.setattr(synthetic, "generate", broken)
    res = CliRunner().invoke(app, ["synthetic", str(tmp_path / "f")])
    assert isinstance(res.exception, KeyError) and res.exit_code == 1
    assert "error:" not in res.output
    # the installed entry point prints the traceback (a subprocess, as users run it)
    code = ("import sys, unibind.features.synthetic as s; "
            "s.generate = lambda spec: {}['a key a bug forgot']; "
            "from unibind.cli import main; sys.argv = ['unibind', 'synthetic', sys.argv[1]]; "
            "main()")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "g")], capture_output=True,
                          text=True, env={**os.environ, "_TYPER_STANDARD_TRACEBACK": "1"},
                          timeout=120)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "KeyError" in proc.stderr
    assert "error:" not in proc.stderr


def test_missing_inputs_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    line = _error_line(runner.invoke(app, ["data", "folder", str(tmp_path / "none")]))
    assert line == f"error: dataset folder not found: {tmp_path / 'none'}"
    assert not (tmp_path / "none").exists()  # nothing created on the way
    line = _error_line(runner.invoke(app, ["extract", str(tmp_path / "m.parquet"), "--out",
                                           str(tmp_path / "f"), "--profile", "tiny"]))
    assert line == f"error: manifest not found: {tmp_path / 'm.parquet'}"

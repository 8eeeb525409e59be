"""Library calls leave global state alone (plot backend, torch threads/RNG, env)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from tests.fixtures.runs import clustered_run
from unibind.features.synthetic import SyntheticSpec, generate
from unibind.training.config import override, preset
from unibind.training.fit import fit


def _in_fresh_python(code: str, env: dict | None = None) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_plots_leave_the_matplotlib_backend_alone(tmp_path: Path) -> None:
    run = clustered_run(tmp_path)
    out = _in_fresh_python(f"""
        import sys, matplotlib
        matplotlib.use("svg")
        from unibind.report.plots import plot_run
        from unibind.report.html import curve_png
        plot_run({str(run)!r}, method="pca")
        assert curve_png([{{"epoch": 1, "loss": 2.0, "val_mAP@10": 0.5}}])[:4] == b"\\x89PNG"
        print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
    """)
    assert out == "svg False"


def test_fit_leaves_torch_threads_and_rng_alone() -> None:
    feats = generate(SyntheticSpec(n_classes=3, groups_per_class=8))
    cfg = override(preset("default"), epochs=2)
    before_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(123)
        expected = torch.rand(4)
        torch.manual_seed(123)
        first = fit(feats, cfg, seed=5, threads=1)
        assert torch.get_num_threads() == 2
        assert torch.equal(torch.rand(4), expected)  # the caller's random stream is untouched
        torch.manual_seed(999)
        second = fit(feats, cfg, seed=5, threads=1)
        for k, v in first.heads.state_dict().items():  # results depend on ``seed`` only
            assert torch.equal(v, second.heads.state_dict()[k]), k
    finally:
        torch.set_num_threads(before_threads)


def test_importing_the_cli_changes_no_environment() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = _in_fresh_python("""
        import os, sys
        import unibind, unibind.cli
        from unibind.cli import app
        before = os.environ.get("OMP_WAIT_POLICY")
        sys.argv = ["unibind", "--help"]
        try:
            unibind.cli.main()
        except SystemExit:
            pass
        print(before, os.environ.get("OMP_WAIT_POLICY"))
    """, env=env)
    assert out.splitlines()[-1] == "None PASSIVE"

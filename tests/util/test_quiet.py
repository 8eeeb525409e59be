"""Library use loads models without transformers' bars or reports, and gives the caller's
settings back."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from transformers.utils import logging as hf_logging

from unibind.util.quiet import quiet_loading


def test_quiet_loading_restores_the_callers_settings():
    hf_logging.enable_progress_bar()
    hf_logging.set_verbosity_warning()
    with quiet_loading():
        assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.get_verbosity() == logging.ERROR
    assert hf_logging.is_progress_bar_enabled()
    assert hf_logging.get_verbosity() == logging.WARNING


def test_loading_an_encoder_draws_no_bar():
    code = ("from unibind.encoders import load_encoder\n"
            "from unibind.encoders.profiles import resolve_profile\n"
            "for m, spec in resolve_profile('tiny', None).items():\n"
            "    load_encoder(spec).model\n")
    src = Path(__file__).resolve().parents[2] / "src"
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**env, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr
    assert "Loading weights" not in res.stderr and "LOAD REPORT" not in res.stderr

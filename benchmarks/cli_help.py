"""How long `unibind --help` and every `unibind CMD --help` take (a fresh process each).

    .venv/bin/python benchmarks/cli_help.py            # best of 5 per command
    .venv/bin/python benchmarks/cli_help.py --rounds 10

Commands are timed round-robin (so machine load hits them alike); the table shows the best and
median wall time per command, next to `python -c pass` (interpreter start) and
`python -c "import torch"` (what the CLI avoids at import time). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ["", "data", "data folder", "data esc50", "data images", "data captions",
            "data triplets", "data tuxpaint", "demo", "extract", "encoders", "encoders list",
            "index", "search", "train", "evaluate", "tune", "synthetic", "plot", "report"]


def entry_point() -> list[str]:
    script = Path(sys.executable).with_name("unibind")
    return [str(script)] if script.is_file() else [sys.executable, "-c",
                                                   "from unibind.cli import main; main()"]


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env={**os.environ, "COLUMNS": "100"})
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    runs = {"python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"]}
    runs.update({f"unibind {c} --help".replace("  ", " "): [*entry_point(), *c.split(), "--help"]
                 for c in COMMANDS})
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, argv in runs.items():
            times[name].append(wall(argv))
    print(f"| command | best (s) | median (s) |   ({args.rounds} rounds, load "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print("|---|---|---|")
    for name, ts in times.items():
        print(f"| `{name}` | {min(ts):.2f} | {statistics.median(ts):.2f} |")
    worst = max(min(ts) for n, ts in times.items() if n.startswith("unibind"))
    print(f"\nslowest `--help` (best of {args.rounds}): {worst:.2f} s")


if __name__ == "__main__":
    main()

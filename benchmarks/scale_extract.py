"""Extraction engines side by side: the local engine vs Ray Data on this machine.

Each engine extracts the same synthetic manifest (``--n`` and ``2 x --n`` items per modality,
fresh caches) in one run. Reported: end-to-end items/s at 2n (model loading, worker/actor start
included; the Ray cluster itself is started before timing) and the marginal throughput
``n / (t(2n) - t(n))``, which removes fixed start costs (each timing the best of ``--repeat``);
the fixed cost ``t(n) - n / marginal`` is shown too. Prints a Markdown table.

    python benchmarks/scale_extract.py                   # tiny models, local Ray on all CPUs
    python benchmarks/scale_extract.py --full --modalities text
"""

from __future__ import annotations

import os

# As the CLI does (unibind/cli/__init__.py): idle OpenMP threads sleep instead of spinning; set
# before torch loads. Measured here: CLAP e2e / bare 0.51 spinning vs 1.01 passive (2 cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from extract import full_size_specs, make_items  # noqa: E402
from unibind.data.manifest import write_manifest  # noqa: E402
from unibind.encoders import resolve_profile  # noqa: E402
from unibind.features.extract import extract  # noqa: E402


def timed(manifest: Path, out: Path, overrides: dict, engine: str, batch: int) -> float:
    start = time.perf_counter()
    summary = extract(manifest, out, profile="tiny", overrides=overrides, engine=engine,
                      cache_dir=out.with_suffix(".cache"), batch_size=batch, device="cpu")
    assert not summary["errors"], summary["errors"]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size random seed models")
    parser.add_argument("--n", type=int, default=128, help="items per modality (and 2n)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--cpus", type=int, default=None, help="Ray CPUs (default: all)")
    parser.add_argument("--modalities", default="text,image,audio")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray

    cpus = args.cpus or len(os.sched_getaffinity(0))
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    specs = full_size_specs() if args.full else resolve_profile("tiny")
    wanted = args.modalities.split(",")
    overrides = {m: (s if m in wanted else None) for m, s in specs.items()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = pd.read_parquet(make_items(tmp, 2 * args.n, audio_seconds=5.0))
        table = table[table.modality.isin(wanted)]
        half = table.groupby("modality", group_keys=False).head(args.n)
        small = write_manifest(half, tmp / "small.parquet")
        large = write_manifest(table, tmp / "large.parquet")
        times = {}
        for engine in ("local", "ray"):
            timed(small, tmp / f"warm-{engine}", overrides, engine, args.batch)  # imports
            times[engine] = tuple(
                min(timed(m, tmp / f"{m.stem}-{engine}-{r}", overrides, engine, args.batch)
                    for r in range(args.repeat)) for m in (small, large))
    ray.shutdown()
    items = len(wanted) * args.n
    rate = {e: (2 * items / t[1], items / max(t[1] - t[0], 1e-9)) for e, t in times.items()}
    fixed = {e: times[e][0] - items / rate[e][1] for e in times}
    print(f"\n{'full-size random' if args.full else 'tiny'} models ({', '.join(wanted)}), "
          f"{args.n} and {2 * args.n} items per modality, batch {args.batch}, "
          f"{cpus} CPUs (Ray: local cluster with {cpus} CPUs)\n")
    print(f"| engine | end-to-end items/s ({2 * items} items) | marginal items/s "
          "| fixed start cost s | vs local (e2e) | vs local (marginal) |")
    print("|---|---:|---:|---:|---:|---:|")
    for engine, (e2e, marginal) in rate.items():
        print(f"| {engine} | {e2e:.1f} | {marginal:.1f} | {fixed[engine]:.1f} "
              f"| {e2e / rate['local'][0]:.2f} | {marginal / rate['local'][1]:.2f} |")


if __name__ == "__main__":
    main()

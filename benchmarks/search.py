"""Search speed: unibind exact vs faiss IndexFlatIP vs an approximate index, side by side.

    .venv/bin/python benchmarks/search.py            # 1M x 256 random unit vectors
    .venv/bin/python benchmarks/search.py --n 200000 --rounds 1   # quicker

Per batch size (1, 16, 64, 256, 2048 queries): queries/s of each method (best of ``--rounds``,
methods interleaved so machine load hits them alike), whether unibind's exact results are
identical to faiss's (same ids; a differing id must be a float32 near-tie), recall@10 of the
approximate index against the exact top-10, and memory per vector. Prints a Markdown table.
"""

from __future__ import annotations

import os

# OpenMP threads that spin while waiting starve each other (and faiss's k-means) on a busy
# machine; passive waiting costs microseconds per parallel region. Must precede torch/faiss.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from unibind.search.knn import ExactKNN  # noqa: E402
from unibind.search.parts import Part  # noqa: E402


def unit(rng: np.random.Generator, n: int, d: int, chunk: int = 1 << 17) -> np.ndarray:
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, chunk):
        x = rng.standard_normal((min(chunk, n - s), d), dtype=np.float32)
        out[s:s + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def timed(fn, q: np.ndarray, batch: int, k: int, min_queries: int) -> tuple[float, tuple]:
    """Seconds per query over consecutive batches covering >= min_queries queries."""
    n_batches = max(1, -(-min_queries // batch))
    t = time.perf_counter()
    out = None
    for i in range(n_batches):
        start = (i * batch) % (len(q) - batch + 1)
        res = fn(q[start:start + batch], k)
        out = res if out is None else out
    return (time.perf_counter() - t) / (n_batches * batch), out


def identical(ours: tuple, theirs: tuple, tol: float = 1e-5) -> tuple[bool, int]:
    """(ids identical except float32 near-ties, number of near-tie swaps)."""
    (s1, i1), (s2, i2) = ours, theirs
    diff = i1 != i2
    ties = int(diff.sum())
    ok = bool(np.all(np.abs(s1[diff] - s2[diff]) <= tol)) and np.allclose(s1, s2, atol=tol)
    return ok, ties


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(found, truth)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batches", default="1,16,64,256,2048")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ann", default="PQ128x4fs,RFlat", help="faiss factory of the ANN row")
    ap.add_argument("--k-factor", type=float, default=32)
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    x = unit(rng, args.n, args.d)
    q = unit(rng, max(4096, max(batches)), args.d)
    print(f"data: {args.n} x {args.d} random unit vectors ({time.perf_counter() - t0:.1f}s); "
          f"threads: faiss {faiss.omp_get_max_threads()}, cpus {os.cpu_count()}; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)

    builds = {}
    t = time.perf_counter()
    flat = faiss.IndexFlatIP(args.d)
    flat.add(x)
    builds["faiss Flat"] = time.perf_counter() - t
    t = time.perf_counter()
    exact = ExactKNN(args.d)
    exact.add(x)
    builds["unibind exact"] = time.perf_counter() - t
    t = time.perf_counter()
    ann = Part.build(args.ann, x, np.arange(args.n))
    ann.params["k_factor"] = args.k_factor
    ann.apply_params()
    builds[args.ann] = time.perf_counter() - t
    print("build seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in builds.items()), flush=True)

    methods = {"faiss": lambda a, k: flat.search(a, k),
               "unibind": lambda a, k: exact.search(a, k),
               "ann": lambda a, k: ann.search(a, k)}
    rows = []
    for b in batches:
        best = {m: np.inf for m in methods}
        outs = {}
        for _ in range(args.rounds):
            for m, fn in methods.items():
                min_q = {"faiss": 16, "unibind": 32, "ann": 256}[m] if b < 256 else b
                sec, out = timed(fn, q, b, args.k, min_q)
                best[m] = min(best[m], sec)
                outs[m] = out
        same, ties = identical(outs["unibind"], outs["faiss"])
        rec = recall(outs["ann"][1], outs["unibind"][1])
        qps = {m: 1 / s for m, s in best.items()}
        rows.append((b, qps, same, ties, rec))
        print(f"batch {b}: " + ", ".join(f"{m} {v:.0f} q/s" for m, v in qps.items())
              + f", identical {same} ({ties} near-tie swaps), ANN recall@10 {rec:.3f}",
              flush=True)
    # recall on every query, not only the first batch's
    truth = exact.search(q[:2048], args.k)[1]
    rec_all = recall(ann.search(q[:2048], args.k)[1], truth)

    mem = {"faiss Flat": 4 * args.d, "unibind exact": exact.bytes_per_vector(),
           args.ann: ann.bytes_per_vector()}
    print(f"\n## Search on {args.n:,} x {args.d} random unit vectors, k={args.k} "
          f"({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})\n")
    print("| batch | faiss IndexFlatIP q/s | unibind exact q/s | speed-up | identical "
          f"| {args.ann} q/s | vs faiss Flat | vs unibind exact | recall@10 |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for b, qps, same, ties, rec in rows:
        print(f"| {b} | {qps['faiss']:.0f} | {qps['unibind']:.0f} | "
              f"{qps['unibind'] / qps['faiss']:.1f}x | {'yes' if same else 'NO'}"
              f"{f' ({ties} ties)' if ties else ''} | {qps['ann']:.0f} | "
              f"{qps['ann'] / qps['faiss']:.1f}x | {qps['ann'] / qps['unibind']:.1f}x | "
              f"{rec:.3f} |")
    print(f"\nANN recall@10 over 2048 queries: {rec_all:.3f} (k_factor {args.k_factor:g})")
    print("\n| index | bytes per vector | build s |\n|---|---:|---:|")
    for name, b in mem.items():
        print(f"| {name} | {b:.0f} | {builds[name]:.1f} |")


if __name__ == "__main__":
    main()

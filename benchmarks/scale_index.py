"""Milvus Lite vs unibind's exact search (search/knn.py): insert/build time, query latency and
recall@10, unfiltered and filtered to one of three modalities (``modality == "audio"``).

    python benchmarks/scale_index.py                       # 100k and 1M (1M: ~10+ minutes)
    python benchmarks/scale_index.py --sizes 100000        # quick run
    python benchmarks/scale_index.py --data clustered      # vectors with cluster structure

Data: unit vectors of dim 256, either ``random`` (isotropic Gaussian, normalised: the worst case
for approximate indexes) or ``clustered`` (4,096 random centres + noise, closer to real
embeddings); queries are fresh vectors from the same distribution. Items are spread over three
modalities round-robin. The vectors are inserted once per size; each Milvus index type is then
built on the same collection (drop index, create index, load). Latency is one query per call
(median and p95 over ``--queries`` calls); "batch q/s" sends all queries in one call.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

MODS = ("text", "image", "audio")


def make_data(n: int, dim: int, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "random":
        x = rng.standard_normal((n, dim), dtype=np.float32)
    else:
        centres = rng.standard_normal((4096, dim), dtype=np.float32)
        x = centres[rng.integers(0, len(centres), n)]
        x += 0.5 * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def exact_truth(x: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None):
    """Ground truth ids with unibind's exact search, and its per-query latency (ms)."""
    from unibind.search.knn import ExactKNN

    rows = np.flatnonzero(mask) if mask is not None else np.arange(len(x))
    knn = ExactKNN(x.shape[1])
    knn.add(x[rows])
    lat = []
    for qi in q:
        t = time.perf_counter()
        knn.search(qi[None], k)
        lat.append((time.perf_counter() - t) * 1e3)
    t = time.perf_counter()
    _, ids = knn.search(q, k)
    batch = len(q) / (time.perf_counter() - t)
    return rows[ids], np.array(lat), batch


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def milvus_search(client, q: np.ndarray, k: int, filt: str, params: dict):
    def call(data):
        hits = client.search("bench", data=list(data), limit=k, filter=filt,
                             output_fields=["row"], search_params=params)
        return np.array([[h["entity"]["row"] for h in found] + [-1] * (k - len(found))
                         for found in hits])
    lat = []
    for qi in q:
        t = time.perf_counter()
        call(qi[None])
        lat.append((time.perf_counter() - t) * 1e3)
    t = time.perf_counter()
    ids = call(q)
    return ids, np.array(lat), len(q) / (time.perf_counter() - t)


def index_params(client, index_type: str, n: int) -> tuple:
    params, search = {}, {}
    if index_type == "IVF_FLAT":
        nlist = int(2 ** round(np.log2(4 * np.sqrt(n))))
        params, search = {"nlist": nlist}, {"nprobe": 32}
    if index_type == "HNSW":  # the store's defaults (src/unibind/search/stores/milvus.py)
        params, search = {"M": 32, "efConstruction": 200}, {"ef": 192}
    ip = client.prepare_index_params()
    ip.add_index("vector", index_type=index_type, metric_type="IP", params=params)
    return ip, {"metric_type": "IP", "params": search}


def run_size(n: int, args, rows_out: list) -> None:
    from pymilvus import DataType, MilvusClient, MilvusException

    x = make_data(n, args.dim, args.data, seed=n)
    q = make_data(args.queries, args.dim, args.data, seed=n + 1)
    mods = np.array(MODS)[np.arange(n) % len(MODS)]
    audio = mods == "audio"
    truth, ex_lat, ex_batch = exact_truth(x, q, args.k, None)
    truth_f, exf_lat, exf_batch = exact_truth(x, q, args.k, audio)
    rows_out.append((n, "unibind exact", "-", "-", ex_lat, ex_batch, 1.0, exf_lat, 1.0))
    print(row_line(rows_out[-1]), flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="scale-index-"))
    try:
        client = MilvusClient(str(tmp / "bench.db"))
        schema = client.create_schema(auto_id=False)
        schema.add_field("row", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=args.dim)
        schema.add_field("modality", DataType.VARCHAR, max_length=16)
        ip, _ = index_params(client, "FLAT", n)
        client.create_collection("bench", schema=schema, index_params=ip)
        t = time.perf_counter()
        for lo in range(0, n, args.batch):
            client.insert("bench", [{"row": i, "vector": x[i], "modality": mods[i]}
                                    for i in range(lo, min(n, lo + args.batch))])
        client.flush("bench")
        insert_s = time.perf_counter() - t
        print(f"n={n}: inserted in {insert_s:.1f} s", flush=True)
        for index_type in args.index_types:
            t = time.perf_counter()
            client.release_collection("bench")
            client.drop_index("bench", "vector")
            ip, params = index_params(client, index_type, n)
            try:
                client.create_index("bench", ip, timeout=3600)
            except MilvusException as exc:  # a long build can outlive one gRPC call: retried
                if "already exists" not in str(exc):
                    raise
            client.load_collection("bench")
            client.search("bench", data=[q[0]], limit=args.k, search_params=params)  # warm
            build_s = time.perf_counter() - t
            ids, lat, batch = milvus_search(client, q, args.k, "", params)
            ids_f, lat_f, _ = milvus_search(client, q, args.k, 'modality == "audio"', params)
            rows_out.append((n, f"Milvus Lite {index_type}", f"{insert_s:.0f}", f"{build_s:.0f}",
                             lat, batch, recall(ids, truth), lat_f, recall(ids_f, truth_f)))
            print(row_line(rows_out[-1]), flush=True)
        client.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--data", choices=["random", "clustered"], default="random")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=5000, help="rows per insert call")
    ap.add_argument("--index-types", nargs="+", default=["FLAT", "HNSW", "IVF_FLAT"])
    args = ap.parse_args()
    rows: list = []
    for n in args.sizes:
        run_size(n, args, rows)
    print(f"\n{args.data} unit vectors, dim {args.dim}, k={args.k}, {args.queries} queries; "
          "filtered = modality == \"audio\" (1/3 of the items)\n")
    print("| n | search | insert s | index build s | latency ms p50 / p95 | batch q/s | "
          "recall@10 | filtered p50 ms | filtered recall@10 |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(row_line(row))


def row_line(row: tuple) -> str:
    n, name, ins, build, lat, batch, rec, lat_f, rec_f = row
    return (f"| {n:,} | {name} | {ins} | {build} | {np.median(lat):.1f} / "
            f"{np.percentile(lat, 95):.1f} | {batch:,.0f} | {rec:.3f} | "
            f"{np.median(lat_f):.1f} | {rec_f:.3f} |")


if __name__ == "__main__":
    main()

"""A capacity plan for a large collection, recomputed from measured per-node figures.

    unibind scale plan                                # the 1B-item plan of docs/scaling.md
    unibind scale plan --config measured.json --json  # your figures (any subset of DEFAULTS)

Every figure is an input (``DEFAULTS`` documents each one and says where it comes from);
``compute_plan`` only does arithmetic, so the plan follows the measurements:

- feature storage per modality = items x encoder dim x bytes per value;
- extraction: per-GPU items/s = min(GPU forward rate x pipeline efficiency, CPU cores per GPU x
  decode items/s per core); GPU-hours = items / that rate; wall time for a GPU count, and GPUs
  for a target wall time;
- index memory per vector for each Milvus index type (FLAT, HNSW, IVF_PQ, DiskANN, GPU CAGRA),
  then nodes per replica (RAM, or GPU memory for CAGRA, at a fill ratio), replicas for a target
  QPS, shards for the ingest rate;
- the query latency budget (a sum of stages; p95 target checked).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

from unibind.errors import UsageError

GB = 1e9
ID_BYTES = 8  # int64 primary key per vector

DEFAULTS: dict[str, Any] = {
    # what is indexed (assumed mix; 1B items)
    "items": {"image": 600_000_000, "text": 300_000_000, "audio": 100_000_000},
    # encoder output dims of the seed encoders (CLIP ViT-L/14, BERT-base, CLAP HTSAT) and the
    # bytes per stored value (unibind writes float32 features; float16 would halve them)
    "feature_dims": {"image": 768, "text": 768, "audio": 512},
    "feature_bytes": 4,
    "embed_dim": 256,  # the run's shared space (TrainConfig.embed_dim)
    # measured: bare fp16 forward on one NVIDIA H200 (16 cores), batch 32, before 2026-11-30;
    # remeasure with benchmarks/extract.py --full --device cuda
    "gpu_items_per_s": {"image": 1477, "text": 5836, "audio": 2395},
    # fraction of the bare forward the pipeline delivers. 1.0 = the bare-forward target reached;
    # measured today: image 0.09, text 0.14, audio 0.036 (unibind end-to-end on the H200)
    "pipeline_efficiency": {"image": 1.0, "text": 1.0, "audio": 1.0},
    # measured: decode + preprocess items/s on one core (same H200 box); text: tokenisation is
    # assumed not to limit (null)
    "decode_items_per_core_s": {"image": 123, "text": None, "audio": 136},
    "cpu_cores_per_gpu": 16,  # the measured H200 box: 16 cores per GPU
    "gpus": 64,  # extraction GPUs available
    "target_hours": 24.0,  # or: how many GPUs for this wall time
    # index (all assumed, Milvus defaults where they exist)
    "index_type": "DISKANN",
    "pq_bytes": 64,  # IVF_PQ m=64 sub-quantisers x 8 bits
    "hnsw_m": 32,
    "diskann_pq_ratio": 0.125,  # Milvus DiskANN: PQ codes in RAM = 1/8 of the raw vectors
    "diskann_degree": 56,
    "cagra_degree": 32,
    "cagra_vector_bytes": 2,  # float16 vectors in GPU memory
    "metadata_bytes_per_item": 200,  # id, modality, label, group, path/text fields
    "metadata_in_memory": True,  # Milvus loads scalar fields into query-node RAM (unless mmap)
    "node_ram_gb": 256,  # RAM per Milvus query node
    "gpu_mem_gb": 141,  # one H200 (GPU CAGRA)
    "fill": 0.7,  # fraction of RAM / GPU memory the index may fill
    "target_qps": 1000,
    "qps_per_replica": 250,  # assumed; measure with benchmarks/scale_index.py on the real index
    "min_replicas": 2,  # one node may fail
    "inserts_per_shard_s": 10_000,  # assumed per-shard (DML channel) ingest rate
    "max_shards": 16,
    # p95 latency budget in ms, one entry per stage (assumed; the query embed is measured
    # as the bare BERT-base forward at batch 1 order of magnitude)
    "latency_ms": {"embed query (GPU)": 10, "network + proxy": 5,
                   "ANN search, 3 modality filters in parallel": 40, "refine / re-rank": 10,
                   "fetch metadata": 10, "merge + balance": 1},
    "latency_target_ms": 100,
}

INDEX_TYPES = ("FLAT", "HNSW", "IVF_PQ", "DISKANN", "GPU_CAGRA")


def load_inputs(config: str | Path | dict | None = None, **overrides: Any) -> dict[str, Any]:
    """DEFAULTS updated by a JSON file (or dict) and then by keyword overrides; nested dicts
    (items, rates ...) are merged key by key. Unknown keys are refused."""
    inputs = copy.deepcopy(DEFAULTS)
    given: dict[str, Any] = {}
    if isinstance(config, dict):
        given = copy.deepcopy(config)
    elif config is not None:
        try:
            given = json.loads(Path(config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"cannot read plan config {config}: {exc}") from exc
    given.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise UsageError(f"unknown plan input(s) {', '.join(unknown)}; known: "
                         f"{', '.join(DEFAULTS)}")
    for key, value in given.items():
        if isinstance(DEFAULTS[key], dict) and isinstance(value, dict) and key != "items" \
                and key != "latency_ms":
            inputs[key].update(value)
        else:
            inputs[key] = value
    if inputs["index_type"] not in INDEX_TYPES:
        raise UsageError(f"index_type must be one of {', '.join(INDEX_TYPES)}")
    return inputs


def index_bytes_per_vector(inp: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per index type: bytes per vector in memory (RAM or GPU) and on local disk."""
    d = inp["embed_dim"]
    raw = 4 * d
    return {
        "FLAT": {"memory": raw + ID_BYTES, "disk": 0.0},
        "HNSW": {"memory": raw + 2 * inp["hnsw_m"] * 4 + ID_BYTES, "disk": 0.0},
        "IVF_PQ": {"memory": inp["pq_bytes"] + ID_BYTES, "disk": 0.0},
        "DISKANN": {"memory": inp["diskann_pq_ratio"] * raw + ID_BYTES,
                    "disk": raw + 4 * inp["diskann_degree"]},
        "GPU_CAGRA": {"memory": d * inp["cagra_vector_bytes"] + 4 * inp["cagra_degree"]
                      + ID_BYTES, "disk": 0.0},
    }


def compute_plan(inp: dict[str, Any]) -> dict[str, Any]:
    """The plan (plain numbers) for one set of inputs."""
    n = sum(inp["items"].values())
    features = {m: count * inp["feature_dims"][m] * inp["feature_bytes"] / GB
                for m, count in inp["items"].items()}
    extraction = {}
    for m, count in inp["items"].items():
        gpu_rate = inp["gpu_items_per_s"][m] * inp["pipeline_efficiency"].get(m, 1.0)
        per_core = inp["decode_items_per_core_s"].get(m)
        cpu_rate = math.inf if per_core is None else per_core * inp["cpu_cores_per_gpu"]
        rate = min(gpu_rate, cpu_rate)
        extraction[m] = {"items": count, "items_per_s_per_gpu": rate,
                         "bound": "gpu" if gpu_rate <= cpu_rate else "cpu decode",
                         "gpu_hours": count / rate / 3600}
    gpu_hours = sum(e["gpu_hours"] for e in extraction.values())
    wall_hours = gpu_hours / inp["gpus"]
    gpus_for_target = math.ceil(gpu_hours / inp["target_hours"] - 1e-9)

    per_vector = index_bytes_per_vector(inp)
    metadata_gb = n * inp["metadata_bytes_per_item"] / GB
    capacity = {t: inp["gpu_mem_gb"] if t == "GPU_CAGRA" else inp["node_ram_gb"]
                for t in INDEX_TYPES}
    index = {}
    for t, b in per_vector.items():
        mem_gb = n * b["memory"] / GB
        # query nodes hold the index and (unless mmap) the scalar fields; CAGRA GPUs the index
        held = mem_gb + (metadata_gb if inp["metadata_in_memory"] and t != "GPU_CAGRA" else 0)
        index[t] = {"bytes_per_vector": b["memory"], "memory_gb": mem_gb,
                    "disk_gb": n * b["disk"] / GB,
                    "nodes_per_replica": math.ceil(held / (capacity[t] * inp["fill"]) - 1e-9),
                    "node": "GPU" if t == "GPU_CAGRA" else "query node"}
    chosen = index[inp["index_type"]]
    replicas = max(inp["min_replicas"], math.ceil(inp["target_qps"] / inp["qps_per_replica"]))
    ingest_per_s = n / (wall_hours * 3600)  # vectors/s while extraction runs
    shards = min(inp["max_shards"], max(1, math.ceil(ingest_per_s / inp["inserts_per_shard_s"])))
    latency_total = sum(inp["latency_ms"].values())
    return {
        "items": n,
        "feature_storage_gb": features,
        "feature_storage_total_gb": sum(features.values()),
        "embeddings_gb": n * inp["embed_dim"] * 4 / GB,
        "extraction": extraction,
        "gpu_hours": gpu_hours,
        "gpus": inp["gpus"],
        "wall_hours": wall_hours,
        "target_hours": inp["target_hours"],
        "gpus_for_target": gpus_for_target,
        "index": index,
        "index_type": inp["index_type"],
        "metadata_gb": metadata_gb,
        "replicas": replicas,
        "nodes_per_replica": chosen["nodes_per_replica"],
        "nodes_total": replicas * chosen["nodes_per_replica"],
        "memory_per_replica_gb": chosen["memory_gb"],
        "ingest_vectors_per_s": ingest_per_s,
        "shards": shards,
        "latency_ms": inp["latency_ms"],
        "latency_total_ms": latency_total,
        "latency_target_ms": inp["latency_target_ms"],
        "latency_ok": latency_total <= inp["latency_target_ms"],
    }


def format_plan(plan: dict[str, Any]) -> str:
    """Markdown tables of a plan (what docs/scaling.md shows)."""
    out = [f"Items: {plan['items']:,}", "",
           "| modality | items | feature storage GB | items/s per GPU | bound | GPU-hours |",
           "|---|---:|---:|---:|---|---:|"]
    for m, e in plan["extraction"].items():
        out.append(f"| {m} | {e['items']:,} | {plan['feature_storage_gb'][m]:,.1f} | "
                   f"{e['items_per_s_per_gpu']:,.0f} | {e['bound']} | {e['gpu_hours']:,.1f} |")
    out += [f"| total | {plan['items']:,} | {plan['feature_storage_total_gb']:,.1f} | | | "
            f"{plan['gpu_hours']:,.1f} |", "",
            f"Extraction: {plan['gpus']} GPUs -> {plan['wall_hours']:,.1f} h wall; "
            f"{plan['gpus_for_target']} GPUs for {plan['target_hours']:g} h. "
            f"Shared-space embeddings: {plan['embeddings_gb']:,.1f} GB (float32).", "",
            "| index type | bytes/vector in memory | index memory GB | local disk GB | "
            "nodes per replica |", "|---|---:|---:|---:|---:|"]
    for t, i in plan["index"].items():
        mark = " (chosen)" if t == plan["index_type"] else ""
        out.append(f"| {t}{mark} | {i['bytes_per_vector']:,.0f} | {i['memory_gb']:,.1f} | "
                   f"{i['disk_gb']:,.1f} | {i['nodes_per_replica']} {i['node']}(s) |")
    out += ["", f"{plan['index_type']}: {plan['replicas']} replicas x "
            f"{plan['nodes_per_replica']} nodes = {plan['nodes_total']} nodes; "
            f"{plan['shards']} shards (ingest {plan['ingest_vectors_per_s']:,.0f} vectors/s); "
            f"metadata {plan['metadata_gb']:,.1f} GB.", "",
            "| latency stage | p95 ms |", "|---|---:|"]
    out += [f"| {stage} | {ms:g} |" for stage, ms in plan["latency_ms"].items()]
    verdict = "within" if plan["latency_ok"] else "OVER"
    out.append(f"| total ({verdict} the {plan['latency_target_ms']:g} ms target) | "
               f"{plan['latency_total_ms']:g} |")
    return "\n".join(out)


def scale_items(mix: dict[str, int], total: int) -> dict[str, int]:
    """The same modality mix scaled to ``total`` items (rounding goes to the largest part)."""
    base = sum(mix.values())
    if base <= 0:
        raise UsageError("the modality mix has no items")
    out = {m: int(total * c // base) for m, c in mix.items()}
    out[max(mix, key=mix.get)] += total - sum(out.values())
    return out

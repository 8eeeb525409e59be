"""The scale plan's arithmetic on a small example computed by hand, its inputs and its CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unibind.cli import app
from unibind.errors import UsageError
from unibind.scale.plan import DEFAULTS, compute_plan, format_plan, load_inputs, scale_items

SMALL = {
    "items": {"image": 1000, "text": 2000},
    "feature_dims": {"image": 10, "text": 5},
    "feature_bytes": 2,
    "embed_dim": 8,
    "gpu_items_per_s": {"image": 10, "text": 100},
    "pipeline_efficiency": {"image": 0.5, "text": 1.0},
    "decode_items_per_core_s": {"image": 2, "text": None},
    "cpu_cores_per_gpu": 2,
    "gpus": 3,
    "target_hours": 0.05,
    "index_type": "IVF_PQ",
    "pq_bytes": 4, "hnsw_m": 2, "diskann_pq_ratio": 0.125, "diskann_degree": 2,
    "cagra_degree": 4, "cagra_vector_bytes": 2,
    "metadata_bytes_per_item": 10, "metadata_in_memory": True,
    "node_ram_gb": 1e-4, "gpu_mem_gb": 4e-5, "fill": 0.5,
    "target_qps": 100, "qps_per_replica": 30, "min_replicas": 2,
    "inserts_per_shard_s": 10, "max_shards": 3,
    "latency_ms": {"a": 1, "b": 2}, "latency_target_ms": 2,
}


def test_small_plan_matches_hand_arithmetic():
    plan = compute_plan(load_inputs(SMALL))
    # features: 1000 x 10 x 2 B and 2000 x 5 x 2 B
    assert plan["feature_storage_gb"] == pytest.approx({"image": 2e-5, "text": 2e-5})
    # image: GPU 10 x 0.5 = 5/s but 2 cores x 2/s decode = 4/s -> CPU-bound; 1000/4 = 250 s
    image, text = plan["extraction"]["image"], plan["extraction"]["text"]
    assert image["items_per_s_per_gpu"] == 4 and image["bound"] == "cpu decode"
    assert image["gpu_hours"] == pytest.approx(250 / 3600)
    assert text["items_per_s_per_gpu"] == 100 and text["bound"] == "gpu"  # 2000/100 = 20 s
    assert plan["gpu_hours"] == pytest.approx(270 / 3600)
    assert plan["wall_hours"] == pytest.approx(90 / 3600)  # 270 GPU-s over 3 GPUs
    assert plan["gpus_for_target"] == 2  # 270 s within 180 s: ceil(1.5)
    # bytes per vector (dim 8, raw 32 B, +8 B id)
    ix = plan["index"]
    assert {t: v["bytes_per_vector"] for t, v in ix.items()} == {
        "FLAT": 40, "HNSW": 32 + 2 * 2 * 4 + 8, "IVF_PQ": 12, "DISKANN": 4 + 8,
        "GPU_CAGRA": 16 + 16 + 8}
    assert ix["DISKANN"]["disk_gb"] == pytest.approx(3000 * 40 / 1e9)
    # nodes: (3000 x 40 B + 30000 B metadata) / (1e5 B x 0.5) = 3; IVF_PQ 66000/50000 -> 2
    assert ix["FLAT"]["nodes_per_replica"] == 3 and ix["IVF_PQ"]["nodes_per_replica"] == 2
    assert ix["GPU_CAGRA"]["nodes_per_replica"] == 6  # 120000 B / (40000 B x 0.5), no metadata
    assert plan["replicas"] == 4 and plan["nodes_total"] == 8  # ceil(100 / 30) = 4 replicas
    # ingest 3000 vectors in 90 s = 33.3/s over 10/s per shard -> 4, capped at 3
    assert plan["shards"] == 3
    assert plan["latency_total_ms"] == 3 and not plan["latency_ok"]
    assert "OVER the 2 ms target" in format_plan(plan)


def test_inputs_merge_and_refuse_unknown(tmp_path: Path):
    merged = load_inputs({"gpu_items_per_s": {"image": 136}})
    assert merged["gpu_items_per_s"] == {**DEFAULTS["gpu_items_per_s"], "image": 136}
    assert load_inputs({"items": {"text": 5}})["items"] == {"text": 5}  # the mix is replaced
    with pytest.raises(UsageError, match="unknown plan input"):
        load_inputs({"gpu_speed": 1})
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(UsageError, match="cannot read plan config"):
        load_inputs(bad)
    assert scale_items({"image": 6, "text": 3, "audio": 1}, 100) == \
        {"image": 60, "text": 30, "audio": 10}


def test_cli_plan(tmp_path: Path):
    config = tmp_path / "measured.json"
    config.write_text(json.dumps({"pipeline_efficiency": {"image": 0.09}}))
    res = CliRunner().invoke(app, ["scale", "plan", "--config", str(config), "--gpus", "10",
                                   "--json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout.strip().splitlines()[-1])
    assert plan["gpus"] == 10
    rate = plan["extraction"]["image"]["items_per_s_per_gpu"]
    assert rate == pytest.approx(1477 * 0.09)
    res = CliRunner().invoke(app, ["scale", "plan", "--index-type", "ANNOY"])
    assert res.exit_code == 2 and "index_type must be one of" in res.output

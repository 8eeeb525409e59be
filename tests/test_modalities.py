"""The modality registry: a toy fourth modality ("vector": items are .npy files) with its own toy
encoder backend goes manifest -> extract -> train -> evaluate -> index -> search -> plot -> report
through the registries alone, without any other module knowing about it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.fixtures.media import LABELS, make_media_folder
from unibind.encoders import register_backend, unregister_backend
from unibind.encoders.base import Encoder, ItemError
from unibind.errors import UnknownName, UsageError
from unibind.modalities import (
    MODALITIES,
    Modality,
    check_modality,
    get_modality,
    modality_names,
    modality_of_extension,
    register_modality,
    unregister_modality,
)

IN_DIM = 8


class ToyVectorEncoder(Encoder):
    """A fixed random linear map of an 8-d vector stored as ``.npy`` (weights from config.json)."""

    modality = "vector"

    def _load_model(self) -> torch.nn.Module:
        cfg = json.loads((Path(self.spec.source) / "config.json").read_text())
        gen = torch.Generator().manual_seed(cfg["seed"])
        model = torch.nn.Linear(cfg["in_dim"], cfg["dim"])
        with torch.no_grad():
            model.weight.copy_(torch.randn(cfg["dim"], cfg["in_dim"], generator=gen))
            model.bias.zero_()
        return model

    def load(self, item: Any) -> np.ndarray:
        try:
            vec = np.load(item, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise ItemError(item, f"not a .npy vector: {exc}") from exc
        if vec.shape != (self.model.in_features,):
            raise ItemError(item, f"expected shape ({self.model.in_features},), got {vec.shape}")
        return vec

    def forward(self, decoded: Sequence[np.ndarray]) -> torch.Tensor:
        x = torch.from_numpy(np.stack(decoded)).to(self.device, self.dtype)
        return self.model(x)

    @property
    def dim(self) -> int:
        return self.model.out_features

    @classmethod
    def config_dim(cls, spec: Any) -> int | None:
        return json.loads((Path(spec.source) / "config.json").read_text())["dim"]


@pytest.fixture
def vector_modality(tmp_path: Path) -> Iterator[Modality]:
    """Register "vector" + its backend for one test; both are removed afterwards."""
    model = tmp_path / "toy-vector-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"in_dim": IN_DIM, "dim": 12, "seed": 3}))
    register_backend("toy-vector", ToyVectorEncoder)
    spec = register_modality(Modality(
        "vector", extensions=frozenset({".npy"}), color="#9467bd", marker="D",
        default_encoder={"backend": "toy-vector", "source": str(model)}, sniff=sniff_npy))
    try:
        yield spec
    finally:
        unregister_modality("vector")
        unregister_backend("toy-vector")


def sniff_npy(path: Path) -> dict[str, float] | None:
    """An uploaded file is a "vector" if it starts with numpy's magic bytes (no decode cost)."""
    with open(path, "rb") as fh:
        return {} if fh.read(6) == b"\x93NUMPY" else None


def add_vectors(root: Path, per_label: int) -> None:
    """``root/<label>/<k>.npy``: a class centre plus a little noise (same stem = same group)."""
    rng = np.random.default_rng(0)
    centres = {label: rng.standard_normal(IN_DIM) * 3 for label in LABELS}
    for label, centre in centres.items():
        for k in range(per_label):
            np.save(root / label / f"{k}.npy",
                    (centre + 0.1 * rng.standard_normal(IN_DIM)).astype(np.float32))


def test_builtin_registry() -> None:
    assert modality_names() == ("text", "image", "audio") == tuple(MODALITIES)
    assert get_modality("text").inline and not get_modality("image").inline
    assert modality_of_extension(".JPG") == "image" and modality_of_extension(".xyz") is None
    with pytest.raises(UnknownName, match="unknown modality 'smell'; choose from text, image, "
                                          "audio"):
        check_modality("smell")
    with pytest.raises(UsageError, match="already registered"):
        register_modality(Modality("text"))
    with pytest.raises(UsageError, match="already belong"):
        register_modality(Modality("photo", extensions=frozenset({".png"})))
    assert "photo" not in MODALITIES


def test_fourth_modality_end_to_end(vector_modality: Modality, tmp_path: Path) -> None:
    from unibind.data.folder import build_folder_manifest
    from unibind.eval.evaluate import evaluate
    from unibind.features.extract import extract
    from unibind.features.folder import load_features
    from unibind.report.html import build_report
    from unibind.report.plots import plot_run
    from unibind.run.folder import Run
    from unibind.search.index import build_index
    from unibind.search.space import Space
    from unibind.training.config import override, preset
    from unibind.training.trainer import train

    assert list(MODALITIES) == ["text", "image", "audio", "vector"]
    data = make_media_folder(tmp_path / "data", per_label=3)
    add_vectors(data, per_label=3)
    (data / "dog" / "broken.npy").write_bytes(b"not numpy")
    manifest = build_folder_manifest(data, tmp_path / "manifest.parquet")

    summary = extract(manifest, tmp_path / "features", profile="tiny", cache_dir=tmp_path / "c")
    assert summary["modalities"]["vector"]["computed"] == 9
    assert summary["modalities"]["vector"]["dim"] == 12
    assert [e["id"] for e in summary["errors"]] == ["dog/broken.npy"]
    feats = load_features(tmp_path / "features")
    assert feats.modalities == ["text", "image", "audio", "vector"]

    train(tmp_path / "features", tmp_path / "run", config=override(preset("default"), epochs=3))
    run = Run.load(tmp_path / "run")
    assert run.modalities == ["text", "image", "audio", "vector"]
    assert run.info["config"]["pair_weights"]["image-vector"] == 1.0  # presets extend
    metrics = evaluate(tmp_path / "run")  # held-out test split, written to metrics.json
    assert {"vector->text", "text->vector", "vector->vector"} <= set(metrics["pairs"])

    build_index(tmp_path / "run")
    space = Space.load(tmp_path / "run")
    item = feats.table("vector").iloc[0]
    query = manifest.parent / item["path"]
    hits = space.search(vector=str(query), k=3, modality="vector", balance="none")
    assert hits["query"] == {"vector": [str(query)]}
    top = hits["results"][0]
    assert top["id"] == item["id"] and top["path"].endswith(item["path"])
    assert top["score"] == pytest.approx(1.0, abs=1e-4)
    mixed = space.search(text="a dog barking", vector=str(query), k=40, balance="none")
    assert {r["modality"] for r in mixed["results"]} == {"text", "image", "audio", "vector"}
    assert mixed["modality"] == ["text", "image", "audio", "vector"]
    with pytest.raises(UnknownName, match="smell"):
        space.search(smell="roses")
    # the CLI takes the registered modality's options from the registry
    from typer.testing import CliRunner

    from unibind.cli import app

    runner = CliRunner()
    found = runner.invoke(app, ["search", str(tmp_path / "run"), "--vector", str(query), "-k",
                                "3", "--modality", "vector", "--balance", "none", "--json"])
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout.strip().splitlines()[-1])["results"][0]["id"] == item["id"]
    assert "--vector-encoder" in runner.invoke(app, ["extract", "--help"],
                                               env={"COLUMNS": "200"}).output
    check_http(space, query, item["id"])

    plots = plot_run(tmp_path / "run", method="pca")
    assert Path(plots["by_modality"]).is_file() and plots["points"] == 36
    page = build_report(tmp_path / "run", examples=[hits])
    assert "<th>vector</th>" in Path(page["report"]).read_text()


def check_http(space: Any, query: Path, item_id: str) -> None:
    """Over HTTP the fourth modality has its own upload field (from the registry's sniff hook),
    is recognised by content in ``file``, and its results match ``Space.search``."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from unibind.serve.app import UPLOAD_FIELDS, create_app

    assert UPLOAD_FIELDS == {"image": "image", "audio": "audio", "vector": "vector", "file": "any"}
    client = TestClient(create_app(space), base_url="http://127.0.0.1")
    want = space.search(vector=str(query), k=5, balance="none")
    for field in ("vector", "file"):
        r = client.post("/api/search", files={field: ("q.npy", query.read_bytes())},
                        data={"k": "5", "balance": "none"})
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["query"] == {"vector": ["q.npy"]} and got["results"][0]["id"] == item_id
        assert [x["id"] for x in got["results"]] == [x["id"] for x in want["results"]]
    r = client.post("/api/search", files={"image": ("q.npy", query.read_bytes())})
    assert r.status_code == 422 and "its content is vector" in r.json()["error"]
    client.app.state.service.close()


def test_unregistered_modality_is_gone(tmp_path: Path) -> None:
    """Teardown left the registry as it was: a manifest row of "vector" is refused again."""
    from unibind.data.manifest import ManifestError, write_manifest

    assert "vector" not in MODALITIES
    from unibind.modalities import uploadable

    assert uploadable() == ("image", "audio")  # the service's upload fields follow
    import pandas as pd
    from typer.testing import CliRunner

    from unibind.cli import app

    assert "--vector" not in CliRunner().invoke(app, ["search", "--help"],
                                                env={"COLUMNS": "200"}).output

    (tmp_path / "a.npy").write_bytes(b"")
    with pytest.raises(ManifestError, match="unknown modality"):
        write_manifest(pd.DataFrame([{"id": "a", "modality": "vector", "label": "x",
                                      "path": "a.npy"}]), tmp_path / "m.parquet")

"""A hub id is pinned to its commit once, before download; the identity never drifts.

No network: ``tests/hub_stub.py`` stands in for the hub (``HF_ENDPOINT``) and the hub cache is a
fresh folder ("not downloaded yet"); the search then runs offline on the downloaded snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fixtures.hub_stub import HubStub
from tests.fixtures.media import make_media_folder
from unibind.encoders.spec import EncoderSpec, HubRevisionError, fingerprint, pin
from unibind.encoders.tiny import tiny_model_dir

REPO = "unibind-test/tiny-bert"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

EXTRACT = textwrap.dedent("""
    import json, sys
    from unibind.features.extract import extract
    from unibind.training.config import override, preset
    from unibind.training.trainer import train
    from unibind.search.index import build_index
    manifest, root = sys.argv[1], sys.argv[2]
    s = extract(manifest, root + "/features", profile="tiny", overrides={"text": sys.argv[3]},
                cache_dir=root + "/cache")
    assert s["errors"] == [], s["errors"]
    train(root + "/features", root + "/run", config=override(preset("default"), epochs=2))
    build_index(root + "/run")
""")

SEARCH = textwrap.dedent("""
    import json, sys
    from unibind.encoders.spec import EncoderSpec, fingerprint, pin
    from unibind.search.space import Space
    space = Space.load(sys.argv[1] + "/run")
    hits = space.search(text="a dog barking", k=3)["results"]
    spec = EncoderSpec("text", "hf-text", sys.argv[2], options={"pooling": "pooler",
                                                              "max_length": 64})
    print(json.dumps({"hits": len(hits), "fingerprint": fingerprint(pin(spec))}))
""")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_ENDPOINT")}
    return {**env, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_DISABLE_XET": "1", **extra}


def test_hub_model_identity_does_not_drift(tmp_path: Path) -> None:
    data = make_media_folder(tmp_path / "data", per_label=2)
    from unibind.data.folder import build_folder_manifest

    manifest = build_folder_manifest(data, tmp_path / "manifest.parquet")
    with HubStub(REPO, tiny_model_dir("bert"), COMMIT) as hub:  # not downloaded yet: online
        proc = subprocess.run([sys.executable, "-c", EXTRACT, str(manifest), str(tmp_path), REPO],
                              env=_env(tmp_path, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0"),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert any(r.startswith("GET /api/models/") for r in hub.requests)
    meta = json.loads((tmp_path / "features" / "features.json").read_text())
    text = meta["encoders"]["text"]
    assert text["spec"]["revision"] == COMMIT and text["identity"]["revision"] == COMMIT
    assert (tmp_path / "hub" / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT
            ).is_dir()
    # later, offline, from the downloaded snapshot: same fingerprint, the index is accepted
    proc = subprocess.run([sys.executable, "-c", SEARCH, str(tmp_path), REPO],
                          env=_env(tmp_path, HF_HUB_OFFLINE="1"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"hits": 3, "fingerprint": text["fingerprint"]}


def test_pin_uses_the_cache_offline_and_refuses_clearly(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    spec = EncoderSpec("text", "hf-text", REPO)
    with pytest.raises(HubRevisionError, match="not in the local Hugging Face cache"):
        pin(spec)
    refs = tmp_path / f"models--{REPO.replace('/', '--')}" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(COMMIT)
    pinned = pin(spec)
    assert pinned.revision == COMMIT
    assert fingerprint(pinned) == fingerprint(spec)  # downloaded: "main" and its commit agree
    assert pin(pinned) is pinned  # a commit stays as it is, no lookup
    with HubStub(REPO, tiny_model_dir("bert"), "f" * 40) as hub:  # the hub moved on: the pin
        monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)           # of a commit never changes
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert pin(pinned).revision == COMMIT
        assert pin(EncoderSpec("text", "hf-text", REPO, revision="dev")).revision == "f" * 40

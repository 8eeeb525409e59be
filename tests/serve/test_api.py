"""The HTTP API over a tiny-profile run: every endpoint, every limit and bad input, paths that
try to leave the run, bearer auth, the timeout, and concurrent clients against a real server."""

from __future__ import annotations

import io
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

try:  # the client TestClient itself uses
    import httpx
except ImportError:
    import httpx2 as httpx

from tests.fixtures.serve import build_tiny_run, running_server  # noqa: E402
from unibind.cli import app as cli_app  # noqa: E402
from unibind.search.space import Space  # noqa: E402
from unibind.serve.app import create_app  # noqa: E402
from unibind.serve.limits import ServeLimits  # noqa: E402
from unibind.serve.service import Service  # noqa: E402


@pytest.fixture(scope="module")
def run_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_run(tmp_path_factory.mktemp("serve-api"))


@pytest.fixture(scope="module")
def service(run_path: Path) -> Service:
    svc = Service(Space.load(run_path))
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def client(service: Service) -> TestClient:
    return TestClient(create_app(service), base_url=LOCAL)


LOCAL = "http://127.0.0.1"  # the service answers loopback Host names only


def limited(run_path: Path, **caps) -> TestClient:
    return TestClient(create_app(run_path, limits=ServeLimits(**caps)), base_url=LOCAL)


def data(run_path: Path) -> Path:
    return run_path.parent / "data"


def ids(result: dict) -> list[str]:
    return [r["id"] for r in result["results"]]


def test_health_and_info(client: TestClient):
    assert client.get("/api/health").json() == {"status": "ok", "items": 27}
    info = client.get("/api/info").json()
    assert info["items"] == {"text": 9, "image": 9, "audio": 9} and info["count"] == 27
    assert info["previews"] == {"text": "none", "image": "image", "audio": "audio"}
    assert set(info["encoders"]) == {"text", "image", "audio"}
    assert all(e["status"] == "ready" for e in info["encoders"].values())
    assert info["balance"]["default"] in info["balance"]["modes"]
    assert info["limits"]["max_upload_mb"] == 20.0
    assert "cross_modal" in info["metrics"]


def test_openapi_docs(client: TestClient):
    page = client.get("/docs")
    assert page.status_code == 200
    # served from the package's own files: the docs work offline (no CDN)
    assert "cdn." not in page.text and "/docs-assets/swagger-ui-bundle.js" in page.text
    asset = client.get("/docs-assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
    spec = client.get("/openapi.json").json()
    for path in ("/api/search", "/api/items/{item_id}/media", "/api/items/{item_id}/similar"):
        assert path in spec["paths"], path
    body = spec["paths"]["/api/search"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}


def test_text_search_matches_cli_json(client: TestClient, run_path: Path):
    got = client.post("/api/search", json={"text": "a dog barking", "k": 5,
                                           "modality": ["audio", "image"], "balance": "none"})
    assert got.status_code == 200
    cli = CliRunner().invoke(cli_app, ["search", str(run_path), "--text", "a dog barking",
                                       "--k", "5", "--modality", "audio,image",
                                       "--balance", "none", "--json"])
    assert cli.exit_code == 0, cli.output
    want = json.loads(cli.stdout.strip().splitlines()[-1])
    for r in want["results"]:  # the service names files relative to the data folder
        if "path" in r:
            r["path"] = Path(r["path"]).relative_to(data(run_path)).as_posix()
    assert got.json() == want


def test_search_options(client: TestClient, service: Service):
    r = client.post("/api/search", json={"text": "rain", "k": 4, "modality": "text",
                                         "balance": "balanced"}).json()
    assert r["modality"] == ["text"] and r["mode"] == "balanced" and len(r["results"]) == 4
    assert {x["modality"] for x in r["results"]} == {"text"}
    r = client.post("/api/search", json={"text": "rain", "k": 3, "via_pairs": 2,
                                         "modality": ["image"]}).json()
    assert r["mode"].endswith("+pairs") and len(r["results"]) == 3
    want = service.space.search(text="rain", k=3, via_pairs=2, modality=["image"])
    assert ids(r) == ids(want)


def test_multipart_image_audio_and_combined(client: TestClient, service: Service,
                                            run_path: Path):
    png, wav = data(run_path) / "dog" / "1.png", data(run_path) / "rain" / "2.wav"
    r = client.post("/api/search", files={"image": ("q.png", png.read_bytes())},
                    data={"k": "5", "modality": "audio,text"})
    assert r.status_code == 200, r.text
    assert r.json()["query"] == {"image": ["q.png"]}
    assert ids(r.json()) == ids(service.space.search(image=png, k=5, modality="audio,text"))
    r = client.post("/api/search", files={"audio": ("q.wav", wav.read_bytes())},
                    data={"text": "a dog barking", "k": "6"})
    assert r.status_code == 200, r.text
    assert r.json()["query"] == {"text": ["a dog barking"], "audio": ["q.wav"]}
    assert ids(r.json()) == ids(service.space.search(text="a dog barking", audio=wav, k=6))


def test_content_is_sniffed_not_the_name(client: TestClient, run_path: Path):
    png = (data(run_path) / "bell" / "0.png").read_bytes()
    r = client.post("/api/search", files={"file": ("sound.wav", png, "audio/wav")})
    assert r.status_code == 200 and r.json()["query"] == {"image": ["sound.wav"]}
    r = client.post("/api/search", files={"audio": ("x.wav", png, "audio/wav")})
    assert r.status_code == 422 and "content is image" in r.json()["error"]
    r = client.post("/api/search", files={"image": ("x.png", b"just some text\n" * 50)})
    assert r.status_code == 422 and "not a file this service can read" in r.json()["error"]


@pytest.mark.parametrize("name,make,reason", [
    ("empty", lambda d: b"", "empty file"),
    ("truncated png", lambda d: (d / "dog" / "0.png").read_bytes()[:300], "corrupt image"),
    ("truncated wav header", lambda d: (d / "dog" / "0.wav").read_bytes()[:30],
     "not a file this service can read"),
    ("garbage after RIFF", lambda d: b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4,
     "not a file this service can read"),
])
def test_corrupt_uploads_are_422(client: TestClient, run_path: Path, name, make, reason):
    r = client.post("/api/search", files={"file": ("q.bin", make(data(run_path)))})
    assert r.status_code == 422, (name, r.text)
    assert reason in r.json()["error"]


@pytest.mark.parametrize("body,needle", [
    ({}, "at least one query"),
    ({"text": "   "}, "at least one query"),
    ({"text": "x", "modality": ["smell"]}, "unknown modality"),
    ({"text": "x", "balance": "loudest"}, "unknown balance mode"),
    ({"text": "x", "balance": "centered"}, "centred vectors"),
    ({"text": "x", "k": 0}, "k:"),
    ({"text": "x", "k": "many"}, "k:"),
    ({"text": "x", "via_pairs": -1}, "via_pairs"),
    ({"text": ["x"] * 17}, "text:"),
    ([1, 2], "JSON object"),
])
def test_bad_json_requests(client: TestClient, body, needle):
    r = client.post("/api/search", json=body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]


def test_non_json_body(client: TestClient):
    r = client.post("/api/search", content=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not JSON" in r.json()["error"]
    r = client.post("/api/search", content=b"--x\r\nnonsense",
                    headers={"content-type": "multipart/form-data"})  # no boundary
    assert r.status_code == 400 and r.json()["error"]


def test_one_error_shape(client: TestClient, service: Service):
    assert client.get("/api/nowhere").json() == {"error": "Not Found"}
    image_id = service.space.index.items.query("modality == 'image'")["id"].iloc[0]
    r = client.get(f"/api/items/{image_id}/media", params={"size": "big"})
    assert r.status_code == 422 and r.json()["error"].startswith("size:")
    r = client.post("/api/search", files={"sound": ("q.wav", b"RIFF")})
    assert r.status_code == 422 and "unknown file field 'sound'" in r.json()["error"]


def test_limits_name_themselves(run_path: Path, client: TestClient):
    r = client.post("/api/search", json={"text": "x", "k": 201})
    assert r.status_code == 422 and r.json()["limit"] == "max_k"
    r = client.post("/api/search", json={"text": "x" * 2001})
    assert r.status_code == 413 and r.json()["limit"] == "max_text_chars"
    small = limited(run_path, max_upload_mb=0.01, max_json_kb=8)  # ~10 KB, JSON 8 KB
    big = io.BytesIO()
    Image.new("RGB", (400, 400), (10, 200, 30)).save(big, format="BMP")  # ~480 KB
    r = small.post("/api/search", files={"image": ("big.bmp", big.getvalue())})
    assert r.status_code == 413 and r.json()["limit"] == "max_upload_mb"
    chunks = (b"x" * 4096 for _ in range(10))  # no Content-Length: counted while streaming
    r = small.post("/api/search", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["limit"] == "max_json_kb"
    png = (data(run_path) / "dog" / "0.png").read_bytes()  # 48 x 40 = 1920 pixels
    r = limited(run_path, max_pixels=1000).post("/api/search", files={"image": ("q.png", png)})
    assert r.status_code == 413 and r.json()["limit"] == "max_pixels"
    assert "1920 pixels" in r.json()["error"]
    wav = (data(run_path) / "dog" / "0.wav").read_bytes()  # 1.5 s
    r = limited(run_path, max_audio_seconds=1).post("/api/search",
                                                    files={"audio": ("q.wav", wav)})
    assert r.status_code == 413 and r.json()["limit"] == "max_audio_seconds"


def test_uploads_are_deleted(client: TestClient, run_path: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    wav = (data(run_path) / "bell" / "0.wav").read_bytes()
    assert client.post("/api/search", files={"audio": ("q.wav", wav)}).status_code == 200
    assert client.post("/api/search", files={"image": ("q.png", wav)}).status_code == 422
    assert client.post("/api/search", files={"audio": ("q.wav", wav)},
                       data={"k": "0"}).status_code == 422
    assert list(tmp_path.iterdir()) == []


def test_items_and_media(client: TestClient, service: Service, run_path: Path):
    table = service.space.index.items
    image_id = table[table["modality"] == "image"]["id"].iloc[0]
    audio_id = table[table["modality"] == "audio"]["id"].iloc[0]
    text_id = table[table["modality"] == "text"]["id"].iloc[0]
    item = client.get(f"/api/items/{image_id}").json()
    assert item["id"] == image_id and item["modality"] == "image"
    assert (data(run_path) / item["path"]).is_file()  # relative to the data folder
    assert "text" in client.get(f"/api/items/{text_id}").json()
    thumb = client.get(f"/api/items/{image_id}/media", params={"size": 24})
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 24
    original = client.get(f"/api/items/{image_id}/media", params={"size": 0})
    assert original.content == (data(run_path) / item["path"]).read_bytes()
    r = client.get(f"/api/items/{image_id}/media", params={"size": 5000})
    assert r.status_code == 422 and r.json()["limit"] == "size"
    path = data(run_path) / client.get(f"/api/items/{audio_id}").json()["path"]
    sound = client.get(f"/api/items/{audio_id}/media")
    assert sound.headers["content-type"] == "audio/wav" and sound.content == path.read_bytes()
    assert sound.headers["accept-ranges"] == "bytes"
    part = client.get(f"/api/items/{audio_id}/media", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == path.read_bytes()[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{path.stat().st_size}"
    assert client.get(f"/api/items/{text_id}/media").status_code == 404
    encoded = client.get("/api/items/" + image_id.replace("/", "%2F")).json()
    assert encoded["id"] == image_id


@pytest.mark.parametrize("bad", [
    "../../../../etc/passwd", "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "%252e%252e%252fetc%252fpasswd",
    "/etc/passwd", "%2Fetc%2Fpasswd", "dog/../../../../etc/passwd", "..", "dog/0.png/../../run",
])
def test_ids_never_reach_other_paths(client: TestClient, bad: str):
    for tail in ("", "/media", "/media?size=0"):
        r = client.get(f"/api/items/{bad}{tail}")
        assert r.status_code == 404, (bad, tail, r.status_code)
        assert b"root:" not in r.content
    assert client.post(f"/api/items/{bad}/similar", json={}).status_code == 404


def test_absolute_path_of_an_item_is_not_an_id(client: TestClient, service: Service):
    path = service.space.index.items.query("modality == 'audio'")["path"].iloc[0]
    assert client.get(f"/api/items/{path}/media").status_code == 404
    assert client.get(f"/api/items/{Path(path).name}/media").status_code == 404


def test_similar(client: TestClient, service: Service):
    table = service.space.index.items
    item_id = table[table["modality"] == "audio"]["id"].iloc[2]
    r = client.post(f"/api/items/{item_id}/similar", json={"k": 5, "modality": "image,audio"})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["query"] == {"item": [item_id]} and len(res["results"]) == 5
    assert item_id not in ids(res)
    assert [x["rank"] for x in res["results"]] == [1, 2, 3, 4, 5]
    assert {x["modality"] for x in res["results"]} <= {"image", "audio"}
    assert client.post(f"/api/items/{item_id}/similar").status_code == 200  # no body
    assert client.post("/api/items/nope/similar", json={}).status_code == 404


def test_bearer_token(run_path: Path):
    c = TestClient(create_app(run_path, token="s3cret"), base_url=LOCAL)
    assert c.get("/api/health").status_code == 200
    assert c.get("/").status_code == 200
    r = c.get("/api/info")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert c.get("/api/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = c.get("/api/info", headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and "unibind_token" in r.cookies
    assert c.get("/api/info").status_code == 200  # the cookie it set (for <img>/<audio>)
    c.cookies.clear()
    assert c.post("/api/search", json={"text": "x"}).status_code == 401


def test_timeout_is_504(run_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    svc = Service(Space.load(run_path), ServeLimits(timeout_s=0.2))
    monkeypatch.setattr(svc, "search", lambda *a: time.sleep(1))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    c = TestClient(create_app(svc), base_url=LOCAL)
    r = c.post("/api/search", json={"text": "x"})
    assert r.status_code == 504 and r.json()["limit"] == "timeout_s"
    wav = (data(run_path) / "bell" / "0.wav").read_bytes()
    r = c.post("/api/search", files={"audio": ("q.wav", wav)})
    assert r.status_code == 504
    deadline = time.monotonic() + 5  # the late job ends (its own 1 s), then its upload is gone
    while list(tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.iterdir()) == []
    svc.close()


def test_page_and_static(client: TestClient):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    for name in ("app.js", "style.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and "https://" not in r.text
    assert client.get("/static/../app.py").status_code == 404


def test_concurrent_clients_get_sequential_answers(service: Service, run_path: Path):
    """32 threads against a real server: text, upload and similar queries at once; every
    answer equals the one a lone client gets (uploads retried on 503 as Retry-After says;
    two upload workers keep the test short)."""
    service = Service(service.space, ServeLimits(media_workers=2))
    wav = (data(run_path) / "dog" / "2.wav").read_bytes()
    png = (data(run_path) / "rain" / "0.png").read_bytes()
    table = service.space.index.items
    jobs = [("text", f"{w} {n}") for n in range(8) for w in ("dog", "rain", "bell", "barking")]
    jobs += [("audio", wav)] * 16 + [("image", png)] * 16
    jobs += [("similar", i) for i in table["id"].iloc[:16]]

    def ask(c: httpx.Client, job: tuple) -> tuple[int, list]:
        kind, value = job
        if kind == "text":
            r = c.post("/api/search", json={"text": value, "k": 5})
        elif kind == "similar":
            r = c.post(f"/api/items/{value}/similar", json={"k": 5})
        else:  # uploads queue in a small pool of their own: a full queue answers 503
            for _ in range(400):
                r = c.post("/api/search", files={kind: ("q", value)}, data={"k": "5"})
                if r.status_code != 503:
                    break
                assert r.headers["retry-after"]
                time.sleep(0.02)
        if r.status_code != 200:
            return r.status_code, r.text
        return 200, [(x["id"], x["score"]) for x in r.json()["results"]]

    with running_server(create_app(service)) as url:
        local = threading.local()

        def concurrent(job: tuple) -> tuple[int, list]:
            if not hasattr(local, "c"):
                local.c = httpx.Client(base_url=url, timeout=60)
            return ask(local.c, job)

        with httpx.Client(base_url=url, timeout=60) as c:
            want = [ask(c, job) for job in jobs]
        text = service.embed["text"]
        before = (text.forwards, text.requests)
        with ThreadPoolExecutor(32) as pool:
            got = list(pool.map(concurrent, jobs * 2))
    service.close()
    assert all(code == 200 for code, _ in want), want
    assert [code for code, _ in got] == [200] * len(got)
    for (_, a), (_, b) in zip(want * 2, got):
        same_ranking(a, b)
    forwards, requests = text.forwards - before[0], text.requests - before[1]
    assert requests == 2 * 32 and forwards < requests  # concurrent text queries shared forwards


def same_ranking(a: list, b: list, tol: float = 1e-5) -> None:
    """Equal rankings up to float noise (a batched forward may differ in the last bits): the
    same scores, and the same ids except among near-tied scores."""
    np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=tol)
    scores = dict(a)
    for (ia, sa), (ib, _) in zip(a, b):
        assert ia == ib or abs(scores.get(ib, np.inf) - sa) <= tol, (a, b)


def test_cli_serve_warns_off_loopback(run_path: Path, monkeypatch: pytest.MonkeyPatch):
    import unibind.serve.server as server

    seen = {}
    monkeypatch.setattr(server, "serve", lambda app, host, port, limits, **kw: seen.update(
        host=host, port=port, app=app, limits=limits))
    runner = CliRunner()
    r = runner.invoke(cli_app, ["serve", str(run_path), "--port", "8123"])
    assert r.exit_code == 0, r.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123 and "warning" not in r.output
    r = runner.invoke(cli_app, ["serve", str(run_path), "--host", "0.0.0.0"])
    assert r.exit_code == 0 and seen["host"] == "0.0.0.0"
    assert "warning: binding 0.0.0.0" in r.output and "--token-file" in r.output
    r = runner.invoke(cli_app, ["serve", str(run_path), "--host", "127.0.0.2"])
    assert r.exit_code == 0 and "warning" not in r.output  # all of 127/8 is loopback
    r = runner.invoke(cli_app, ["serve", str(run_path.parent / "nope")])
    assert r.exit_code == 2 and "error:" in r.output
    import torch

    before = torch.get_num_threads()
    try:
        r = runner.invoke(cli_app, ["serve", str(run_path), "--threads", "1"])
        assert r.exit_code == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_token_from_file_or_environment(run_path: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch):
    """The token never has to be on the command line (where the process list shows it)."""
    import unibind.serve.server as server

    seen = {}
    monkeypatch.setattr(server, "serve", lambda app, host, port, limits, **kw: seen.update(
        app=app, limits=limits))
    monkeypatch.delenv("UNIBIND_TOKEN", raising=False)
    (tmp_path / "token").write_text("from-file\n")
    runner = CliRunner()
    for args, env, token in ((["--token-file", str(tmp_path / "token")], {}, "from-file"),
                             ([], {"UNIBIND_TOKEN": "from-env"}, "from-env")):
        r = runner.invoke(cli_app, ["serve", str(run_path), "--allowed-host", "box.lan", *args],
                          env=env)
        assert r.exit_code == 0, r.output
        c = TestClient(seen["app"], base_url="http://box.lan")
        assert c.get("/api/info").status_code == 401
        assert c.get("/api/info", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert seen["limits"].allowed_hosts == ("box.lan",)
        seen["app"].state.service.close()
    (tmp_path / "empty").write_text("")
    r = runner.invoke(cli_app, ["serve", str(run_path), "--token-file", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "is empty" in r.output
    assert "--token " not in runner.invoke(cli_app, ["serve", "--help"]).output


def test_demo_serve_serves_the_demo_run(run_path: Path, monkeypatch: pytest.MonkeyPatch):
    import unibind.demo as demo
    import unibind.serve.server as server

    seen = {}
    monkeypatch.setattr(demo, "run_demo", lambda **kw: {"out": str(run_path.parent)})
    monkeypatch.setattr(demo, "demo_text", lambda summary: "demo done")
    monkeypatch.setattr(server, "serve", lambda app, host, port, limits, **kw: seen.update(
        host=host, port=port, run=app.state.service.space.run.path))
    r = CliRunner().invoke(cli_app, ["demo", "--serve", "--port", "8765"])
    assert r.exit_code == 0, r.output
    assert seen == {"host": "127.0.0.1", "port": 8765, "run": run_path}


def test_app_closes_its_own_service_at_shutdown(run_path: Path, service: Service):
    with TestClient(create_app(run_path), base_url=LOCAL) as c:
        own = c.app.state.service
        assert c.get("/api/health").status_code == 200
    assert own.pool.executor._shutdown
    with TestClient(create_app(service), base_url=LOCAL):
        pass
    assert not service.pool.executor._shutdown  # a Service handed in stays the caller's


def test_package_and_cli_module_import_no_web_stack():
    import subprocess
    import sys

    code = ("import sys, unibind.serve, unibind.cli.serve; "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

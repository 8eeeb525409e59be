"""The search page in a real browser (Debian chromium driven by playwright) against uvicorn on
127.0.0.1: type -> results; drop a sound -> results; click a result -> its neighbours; the
keyboard; a screenshot."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.fixtures.browser import ARGS, CHROMIUM, needs_chromium, sync_playwright
from tests.fixtures.serve import build_tiny_run, running_server

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory):
    from unibind.serve.app import create_app

    run = build_tiny_run(tmp_path_factory.mktemp("serve-page"))
    with running_server(create_app(run)) as url:
        yield url, run


def launch(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def drop_file(page, selector: str, path: Path, mime: str) -> None:
    """A real drop event carrying ``path`` (a DataTransfer built in the page)."""
    data = page.evaluate_handle(
        """([b64, name, mime]) => {
             const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             const dt = new DataTransfer();
             dt.items.add(new File([bytes], name, { type: mime }));
             return dt;
           }""", [base64.b64encode(path.read_bytes()).decode(), path.name, mime])
    page.dispatch_event(selector, "dragover", {"dataTransfer": data})
    page.dispatch_event(selector, "drop", {"dataTransfer": data})


def first_ids(page, n: int = 5) -> list[str]:
    return page.eval_on_selector_all(".result", f"els => els.slice(0, {n}).map(e => e.dataset.id)")


def test_type_drop_click_and_keyboard(page_url, tmp_path: Path):
    url, run = page_url
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready='1']")
            assert "9 sounds" in page.inner_text("#run-info")

            # typing: debounced, one search for the whole phrase
            with page.expect_response(lambda r: r.url.endswith("/api/search")) as resp:
                page.click("#q")
                page.keyboard.type("a dog barking", delay=20)
            assert resp.value.json()["query"] == {"text": ["a dog barking"]}
            page.wait_for_selector(".result")
            assert page.locator(".result").count() == 20  # the page asks for k=20
            assert "results in" in page.inner_text("#status")
            page.wait_for_function(
                "[...document.querySelectorAll('.result img')].some(i => i.naturalWidth > 0)")
            assert first_ids(page) == [r["id"] for r in resp.value.json()["results"][:5]]

            # dropping a sound: a multipart search by the sound
            with page.expect_response(lambda r: r.url.endswith("/api/search")) as resp:
                drop_file(page, "#drop", run.parent / "data" / "rain" / "1.wav", "audio/wav")
            body = resp.value.json()
            assert body["query"]["audio"] == ["1.wav"], body["query"]
            page.wait_for_function("document.querySelector('#chips').textContent"
                                   ".includes('1.wav')")
            page.wait_for_function("id => document.querySelector('.result').dataset.id === id",
                                   arg=body["results"][0]["id"])
            assert page.locator(".result").count() > 0
            assert page.locator(".result audio").count() > 0  # sound results have players
            dropped = first_ids(page)
            assert dropped == [r["id"] for r in body["results"][:5]]

            # clicking a result searches by it
            target = page.locator(".result").nth(1)
            clicked = target.get_attribute("data-id")
            with page.expect_response(lambda r: r.url.endswith("/similar")) as resp:
                target.click()
            assert resp.value.json()["query"] == {"item": [clicked]}
            page.wait_for_function("document.querySelector('#status').textContent"
                                   ".includes('similar to')")
            assert clicked not in first_ids(page, 50)
            page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
            assert (tmp_path / "serve.png").stat().st_size > 10_000

            # the keyboard: '/' focuses the box, Enter on a focused result searches by it
            page.locator("body").press("/")
            assert page.evaluate("document.activeElement.id") == "q"
            page.locator(".result").nth(0).focus()
            focused = page.evaluate("document.activeElement.dataset.id")
            with page.expect_response(lambda r: r.url.endswith("/similar")) as resp:
                page.keyboard.press("Enter")
            assert resp.value.json()["query"] == {"item": [focused]}

            # the modality filter narrows the results
            page.locator("#q").fill("")
            page.locator("#q").focus()
            page.keyboard.type("rain", delay=10)
            page.wait_for_selector(".result")
            with page.expect_response(lambda r: r.url.endswith("/api/search")) as resp:
                page.uncheck("#modalities input[value='text']")
            assert "text" not in resp.value.json()["modality"]
            page.wait_for_function("![...document.querySelectorAll('.result')]"
                                   ".some(e => e.dataset.modality === 'text')")
            assert errors == []
        finally:
            browser.close()


def test_group_by_modality_toggle(page_url):
    url, _ = page_url
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready='1']")
            page.fill("#q", "rain")
            page.keyboard.press("Enter")
            page.wait_for_selector(".result")
            assert not page.query_selector(".group-head")
            with page.expect_response(lambda r: r.url.endswith("/api/search")):
                page.check("#group")
            page.wait_for_selector(".group-head")
            seq = page.eval_on_selector_all(
                "#results > li", "els => els.map(e => e.className + ':' + e.dataset.modality)")
            heads = [s.split(":")[1] for s in seq if s.startswith("group-head")]
            mods = [s.split(":")[1] for s in seq if s.startswith("result")]
            assert len(heads) == len(set(heads)) >= 1
            # every result sits under its own modality's heading, rank order kept inside
            assert mods == [m for h in heads for m in mods if m == h]
            page.reload()
            page.wait_for_selector("body[data-ready='1']")
            assert page.is_checked("#group")  # remembered
        finally:
            browser.close()

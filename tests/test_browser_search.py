"""The search page in a real headless Chromium (playwright): search, play, upload errors."""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
uvicorn = pytest.importorskip("uvicorn")

from index_helpers import make_audio_folder, write_manifest  # noqa: E402
from soundseek.index import HashEmbedder, build_index  # noqa: E402
from soundseek.service.app import create_app  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    root = tmp / "sounds"
    freqs = make_audio_folder(root, n=8, bad=False)
    build_index(write_manifest(root, freqs), HashEmbedder(), tmp / "idx", progress=False)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(tmp / "idx", HashEmbedder()), host="127.0.0.1", port=port,
                                        log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    t0 = time.time()
    while not srv.started and time.time() - t0 < 20:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}", tmp
    srv.should_exit = True
    th.join(10)


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1000, "height": 900})
        yield pg
        browser.close()


def test_search_play_upload_error(server, page, tmp_path):
    base, tmp = server
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/")
    page.fill("#q", "low tone")
    page.press("#q", "Enter")
    rows = page.locator("#results li.hit")
    rows.first.wait_for(timeout=10_000)
    assert rows.count() == 8 and page.url.endswith("/?q=low+tone")
    assert "a low tone" in rows.first.inner_text()
    # play the first clip and watch it progress
    page.eval_on_selector("#results li.hit audio", "a => { a.muted = true; return a.play(); }")
    page.wait_for_function("() => { const a = document.querySelector('#results li.hit audio');"
                           " return a.readyState >= 2 && a.currentTime > 0 && !a.error; }", timeout=10_000)
    # keyboard: results reachable with Tab from the search box
    page.focus("#q")
    tags = []
    for _ in range(8):
        page.keyboard.press("Tab")
        tags.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert "AUDIO" in tags or "search-button" in tags
    page.screenshot(path=str(tmp_path / "search.png"), full_page=False)
    if os.environ.get("SOUNDSEEK_SCREENSHOT"):
        shutil.copy(tmp_path / "search.png", os.environ["SOUNDSEEK_SCREENSHOT"])
    # upload a non-audio file -> visible error message, no results replaced
    bad = tmp_path / "notes.wav"
    bad.write_text("definitely not audio\n" * 50)
    page.set_input_files("#file", str(bad))
    page.click("#upload-button")
    page.wait_for_selector("#error:not([hidden])", timeout=10_000)
    assert "not a readable audio file" in page.inner_text("#error")
    # empty query -> client-side message
    page.fill("#q", "")
    page.press("#q", "Enter")
    assert "Type a few words" in page.inner_text("#error")
    assert not errors, errors


def test_shareable_url_runs_search_on_load(server, page):
    base, _ = server
    page.goto(base + "/?q=high+tone&k=20")
    page.locator("#results li.hit").first.wait_for(timeout=10_000)
    assert page.input_value("#q") == "high tone" and page.input_value("#k") == "20"
    assert "high" in page.locator("#results li.hit").first.inner_text()

"""The search page in a real headless Chromium (playwright): search, waveforms, play (from a
moment), find similar, history (Back), keyboard, upload errors (test_browser_library.py: the
library-browser flow). A failing test leaves a
screenshot (path printed in the test output)."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
uvicorn = pytest.importorskip("uvicorn")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from index_helpers import SR, make_audio_folder, tone, write_manifest  # noqa: E402
from server_helpers import running_server  # noqa: E402
from soundseek.index import HashEmbedder, build_index  # noqa: E402
from soundseek.service.app import create_app  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    root = tmp / "sounds"
    freqs = make_audio_folder(root, n=8, bad=False)
    # a long take: four tones not otherwise in the library, 1 s each
    long_freqs = (150.0, 2500.0, 620.0, 4800.0)
    sf.write(root / "long_take.wav", np.concatenate([tone(f, 1.0, seed=30 + i) for i, f in enumerate(long_freqs)]), SR)
    man = write_manifest(root, freqs)
    with open(man, "a") as f:
        f.write('{"audio": "long_take.wav", "captions": ["a long take of four tones"], "tags": ["take"]}\n')
    build_index(man, HashEmbedder(), tmp / "idx", progress=False, window=1.0, hop=0.5)
    sf.write(tmp / "third_tone.wav", tone(long_freqs[2], 1.0, seed=32), SR)
    with running_server(create_app(tmp / "idx", HashEmbedder())) as url:
        yield url, tmp


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
    assert rows.count() == 9 and page.url.endswith("/?q=low+tone")
    # play the first clip (its play button) and watch it progress
    page.evaluate("document.getElementById('player').muted = true")
    rows.first.locator("button.play").click()
    page.wait_for_function("() => { const a = document.getElementById('player');"
                           " return a.readyState >= 2 && a.currentTime > 0 && !a.error; }", timeout=10_000)
    page.screenshot(path=str(tmp_path / "search.png"), full_page=False)
    if os.environ.get("SOUNDSEEK_SCREENSHOT"):
        shutil.copy(tmp_path / "search.png", os.environ["SOUNDSEEK_SCREENSHOT"])
    # upload a non-audio file -> visible error message
    bad = tmp_path / "notes.wav"
    bad.write_text("definitely not audio\n" * 50)
    page.set_input_files("#file", str(bad))
    page.click("#upload-button")
    page.wait_for_selector("#error:not([hidden])", timeout=10_000)
    assert "not a readable audio file" in page.inner_text("#error")
    assert "q=" not in page.url and "example=" in page.url  # an upload search replaces the text query
    # empty query -> client-side message
    page.fill("#q", "")
    page.press("#q", "Enter")
    assert "Type a few words" in page.inner_text("#error")
    assert not errors, errors


def test_shareable_url_runs_search_on_load(server, page):
    base, _ = server
    page.goto(base + "/?q=high+tone&k=25")
    page.locator("#results li.hit").first.wait_for(timeout=10_000)
    assert page.input_value("#q") == "high tone" and page.input_value("#k") == "25"
    assert "high" in page.locator("#results li.hit").first.inner_text()


def _nonblank_pixels(page, selector: str) -> int:
    return page.eval_on_selector(selector, """c => {
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n; }""")


@contextlib.contextmanager
def screenshot_on_failure(page, tmp_path):
    """On a failure inside the block, save a full-page screenshot and print its path (pytest
    shows it with the failure)."""
    try:
        yield
    except BaseException:
        path = tmp_path / "failure.png"
        try:
            page.screenshot(path=str(path), full_page=True)
            print(f"screenshot of the page at the failure: {path}")
        finally:
            raise


def test_waveform_moment_similar_back(server, page, tmp_path):
    with screenshot_on_failure(page, tmp_path):
        _waveform_moment_similar_back(server, page)


def _status_has(page, text: str) -> None:
    page.wait_for_function("t => (document.querySelector('#status').textContent || '').includes(t)", arg=text,
                           timeout=10_000)


def _waveform_moment_similar_back(server, page):
    base, tmp = server
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/")
    page.fill("#q", "high tone")
    page.press("#q", "Enter")
    first = page.locator("#results li.hit").first
    first.wait_for(timeout=10_000)
    assert page.url.endswith("/?q=high+tone")
    # waveform thumbnails drawn on a canvas, durations shown
    page.wait_for_function("() => document.querySelectorAll('#results canvas.wave').length > 0")
    page.wait_for_timeout(200)
    assert _nonblank_pixels(page, "#results li.hit canvas.wave") > 50
    assert first.locator(".dur").inner_text().endswith(" s")
    # query by example: the third tone of the long take -> that file, played from its moment
    page.set_input_files("#file", str(tmp / "third_tone.wav"))
    page.click("#upload-button")
    _status_has(page, "sounds like third_tone")
    top = page.locator("#results li.hit").first
    assert "long_take.wav" in top.inner_text()
    hit = top.evaluate("li => li.hit")
    assert 1.5 <= hit["start"] <= 2.25
    page.evaluate("document.getElementById('player').muted = true")
    top.locator("button.play").click()
    page.wait_for_function(f"() => {{ const a = document.getElementById('player');"
                           f" return !a.paused && a.currentTime >= {hit['start'] - 0.05} && !a.error; }}", timeout=10_000)
    # find similar (k kept) -> a new history entry; Back restores the earlier query and its results
    page.goto(base + "/?q=low+tone&k=25")
    page.locator("#results li.hit").first.wait_for(timeout=10_000)
    first_id = page.locator("#results li.hit").first.get_attribute("data-id")
    page.locator("#results li.hit button.similar").first.click()
    page.wait_for_function("() => location.search.includes('similar=')")
    _status_has(page, "similar to ")
    assert f"similar={first_id}" in page.url and "k=25" in page.url
    ids = page.eval_on_selector_all("#results li.hit", "els => els.map(e => e.dataset.id)")
    assert ids and first_id not in ids
    page.go_back()
    _status_has(page, "low tone")
    assert page.input_value("#q") == "low tone" and page.input_value("#k") == "25"
    assert page.url.endswith("/?q=low+tone&k=25")
    # keyboard: j moves into the results, s finds similar from the focused row
    page.locator("#status").click()
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.classList.contains('hit')")
    page.keyboard.press("j")
    second = page.evaluate("document.activeElement.dataset.id")
    page.keyboard.press("s")
    page.wait_for_function(f"() => location.search.includes('similar={second}')")
    # an error clears stale results
    page.goto(base + "/?q=low+tone")
    page.locator("#results li.hit").first.wait_for(timeout=10_000)
    page.goto(base + "/?q=low+tone&mode=bogus")
    page.wait_for_selector("#error:not([hidden])", timeout=10_000)
    assert page.locator("#results li.hit").count() == 0
    assert not errors, errors


def test_docs_work_offline(server, page):
    base, _ = server
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(base) else None)
    page.goto(base + "/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    assert "/api/search" in page.inner_text(".swagger-ui")
    assert not external, external

"""The page as a library browser, in a real headless Chromium (playwright), driven by the
keyboard: from the search box to playing the third result and copying its path; 20+ rows
visible at 1280x900; filters, "more" pages and the total; a row's drag data (a file drag for
the desktop or a DAW); favourites and collections; reload and Back restore every view."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
pytest.importorskip("uvicorn")

import soundfile as sf  # noqa: E402

from index_helpers import SR, make_audio_folder, tone  # noqa: E402
from server_helpers import running_server  # noqa: E402
from soundseek.index import HashEmbedder, build_index  # noqa: E402
from soundseek.service.app import create_app  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
N = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lib")
    root = tmp / "sounds"
    freqs = make_audio_folder(root, n=N, bad=False)
    with open(root / "manifest.jsonl", "w") as f:
        for i, key in enumerate(sorted(freqs)):
            f.write(json.dumps({"audio": key, "captions": [f"a tone of {freqs[key]:.0f} hz"],
                                "tags": ["tone", "odd" if i % 2 else "even"]}) + "\n")
    build_index(root / "manifest.jsonl", HashEmbedder(), tmp / "idx", progress=False)
    sf.write(tmp / "example.wav", tone(300.0, 0.5, seed=3), SR)
    with running_server(create_app(tmp / "idx", HashEmbedder())) as url:
        yield url, tmp, root, freqs


@pytest.fixture()
def page(server):
    base = server[0]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        pg = ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.errors = errors
        yield pg
        browser.close()


def _api(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.loads(r.read())


def _ids(page) -> list[str]:
    return page.eval_on_selector_all("#results li.hit", "els => els.map(e => e.dataset.id)")


def _status_has(page, text: str) -> None:
    page.wait_for_function("t => (document.querySelector('#status').textContent || '').includes(t)", arg=text,
                           timeout=10_000)


def test_keyboard_only_from_the_box_to_playing_and_copying_the_third_result(server, page):
    base, tmp, root, freqs = server
    page.goto(base + "/")
    assert page.evaluate("document.activeElement.id") == "q"  # the box has the focus on load
    page.keyboard.type("tone")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement.classList.contains('hit')", timeout=10_000)
    assert page.url.endswith("/?q=tone")
    ids = _ids(page)
    assert page.evaluate("document.activeElement.dataset.id") == ids[0]  # Enter: box -> first result
    # 20+ rows fully visible at 1280x900
    visible = page.eval_on_selector_all("#results li.hit", """els => els.filter(e => {
        const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; }).length""")
    assert visible >= 20, visible
    page.evaluate("document.getElementById('player').muted = true")  # a silent test, not a key press
    page.keyboard.press("j")
    page.keyboard.press("j")
    third = page.evaluate("document.activeElement.dataset.id")
    assert third == ids[2]
    page.keyboard.press(" ")
    page.wait_for_function("id => { const a = document.getElementById('player');"
                           " return a.dataset.id === id && !a.paused && a.currentTime > 0 && !a.error; }",
                           arg=third, timeout=10_000)
    assert page.locator("#results li.hit").nth(2).get_attribute("class").split() == ["hit", "playing"]
    assert page.locator("#player").count() == 1 and page.locator("#results audio").count() == 0  # one player
    page.keyboard.press("c")
    hit = _api(base, "/api/search?q=tone&k=3")["hits"][2]
    assert str(hit["id"]) == third and hit["abs_path"] == str(root / hit["path"])
    _status_has(page, "Copied " + hit["abs_path"])
    assert page.evaluate("navigator.clipboard.readText()") == hit["abs_path"]
    # the path is shown once per row (name and folder columns; the absolute path as a tooltip)
    row = page.locator("#results li.hit").nth(2).inner_text()
    assert row.count(Path(hit["path"]).name) == 1 and hit["abs_path"] not in row
    # / back to the box, Escape leaves it (the query stays), ArrowDown goes to the first result
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.id") != "q" and page.input_value("#q") == "tone"
    page.keyboard.press("/")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.id") == ids[0]
    # s: similar to <file name>, in the URL
    page.keyboard.press("j")
    page.keyboard.press("s")
    page.wait_for_function(f"() => location.search.includes('similar={ids[1]}')")
    name = _api(base, f"/api/clips/{ids[1]}")["name"]
    _status_has(page, "similar to " + name)
    assert ids[1] not in _ids(page)
    page.go_back()
    _status_has(page, "“tone”")
    assert page.input_value("#q") == "tone"
    assert not page.errors, page.errors


def test_pages_filters_and_reload(server, page):
    base, tmp, root, freqs = server
    page.goto(base + "/?q=tone&k=25")
    _status_has(page, "25 of 40")
    assert len(_ids(page)) == 25 and page.is_visible("#more")
    page.click("#more")
    _status_has(page, "40 of 40")
    assert len(_ids(page)) == 40 and not page.is_visible("#more")
    assert "page=2" in page.url
    whole = [str(h["id"]) for h in _api(base, "/api/search?q=tone&k=40")["hits"]]
    assert _ids(page) == whole  # the two pages are the ranking, once
    page.reload()
    _status_has(page, "40 of 40")
    assert _ids(page) == whole
    # filters: a control changes the URL and the results; reload restores both
    page.select_option("#f-format", "flac")
    page.wait_for_function("() => location.search.includes('format=flac')")
    flac = sorted(k for k in freqs if k.endswith(".flac"))
    _status_has(page, f"{len(flac)} of {len(flac)}")
    assert set(page.eval_on_selector_all("#results .fmt", "els => els.map(e => e.textContent)")) == {"FLAC"}
    assert "page=" not in page.url  # new filters start at page 1
    page.fill("#f-tag", "odd")
    page.press("#f-tag", "Enter")
    page.wait_for_function("() => location.search.includes('tag=odd')")
    n = _api(base, "/api/search?q=tone&format=flac&tag=odd&k=1")["total"]
    _status_has(page, f"{n} of {n}")
    page.reload()
    _status_has(page, f"{n} of {n}")
    assert page.input_value("#f-format") == "flac" and page.input_value("#f-tag") == "odd"
    page.go_back()
    page.go_back()
    _status_has(page, "of 40")
    assert page.input_value("#f-format") == ""
    # the verdict in words, as the API says it
    msg = _api(base, "/api/search?q=tone&k=25")["message"]
    assert (page.inner_text("#message") if page.is_visible("#message") else None) == msg
    assert not page.errors, page.errors


def test_drag_data_and_download(server, page):
    base, tmp, root, freqs = server
    page.goto(base + "/?q=tone")
    page.locator("#results li.hit").first.wait_for(timeout=10_000)
    first = page.locator("#results li.hit").first
    assert first.get_attribute("draggable") == "true"
    data = first.evaluate("""li => { const dt = new DataTransfer();
        li.dispatchEvent(new DragEvent('dragstart', {dataTransfer: dt, bubbles: true}));
        return [dt.getData('DownloadURL'), dt.getData('text/uri-list'), dt.getData('text/plain')]; }""")
    hit = _api(base, "/api/search?q=tone&k=1")["hits"][0]
    url = f"{base}/api/clips/{hit['id']}/audio?download=true"
    mime = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg"}[hit["format"]]
    assert data == [f"{mime}:{Path(hit['path']).name}:{url}", url, hit["abs_path"]]
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.read() == (root / hit["path"]).read_bytes()
        assert r.headers["Content-Disposition"].startswith("attachment;")
    assert first.locator("a.dl").get_attribute("href") == f"/api/clips/{hit['id']}/audio?download=true"
    assert first.locator("a.dl").get_attribute("download") == Path(hit["path"]).name
    # the favicon is served (no 404 logged on every load)
    with urllib.request.urlopen(base + "/favicon.ico", timeout=10) as r:
        assert r.status == 200
    assert not page.errors, page.errors


def test_favourites_collections_and_example_upload(server, page):
    base, tmp, root, freqs = server
    page.goto(base + "/?q=tone")
    page.locator("#results li.hit").first.wait_for(timeout=10_000)
    ids = _ids(page)
    page.locator("#results li.hit").nth(1).focus()
    page.keyboard.press("f")
    page.wait_for_function("() => document.querySelectorAll('#results li.hit')[1]"
                           ".querySelector('button.star').getAttribute('aria-pressed') === 'true'")
    page.fill("#target", "door ideas")
    page.locator("#results li.hit").nth(3).focus()
    page.keyboard.press("a")
    _status_has(page, "to door ideas")
    page.locator("#results li.hit").nth(4).locator("button.add").click()
    _status_has(page, "to door ideas")
    names = {c["name"]: c["count"] for c in _api(base, "/api/collections")["collections"]}
    assert names == {"favourites": 1, "door ideas": 2}
    page.wait_for_function("() => document.querySelectorAll('#collection-view option').length === 3")
    page.select_option("#collection-view", "door ideas")
    _status_has(page, "Collection door ideas: 2 files")
    assert _ids(page) == [ids[3], ids[4]] and "collection=door+ideas" in page.url
    page.reload()
    _status_has(page, "Collection door ideas: 2 files")
    # an example upload: the text query leaves the URL; reload searches the same file again
    page.goto(base + "/?q=tone&format=wav")
    page.locator("#results li.hit").first.wait_for(timeout=10_000)
    page.set_input_files("#file", str(tmp / "example.wav"))
    page.click("#upload-button")
    _status_has(page, "sounds like example.wav")
    assert "example=" in page.url and "q=" not in page.url and "format=wav" in page.url
    got = _ids(page)
    assert got and set(page.eval_on_selector_all("#results .fmt", "els => els.map(e => e.textContent)")) == {"WAV"}
    page.reload()
    _status_has(page, "sounds like example.wav")
    assert _ids(page) == got
    # favourite toggled off again by its star
    page.goto(base + "/?collection=favourites")
    _status_has(page, "Collection favourites: 1 files")
    page.locator("#results li.hit button.star").first.click()
    page.wait_for_function("() => document.querySelector('#results li.hit button.star').textContent === '☆'")
    assert {c["name"]: c["count"] for c in _api(base, "/api/collections")["collections"]}["favourites"] == 0
    assert not page.errors, page.errors

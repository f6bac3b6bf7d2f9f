"""The page with authentication on (headless Chromium): it asks once for the token when the
API answers 401, keeps it (localStorage), searches and plays audio with it."""
from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
uvicorn = pytest.importorskip("uvicorn")

from index_helpers import make_audio_folder  # noqa: E402
from server_helpers import running_server  # noqa: E402
from soundseek.index import HashEmbedder, build_index  # noqa: E402
from soundseek.service.app import create_app  # noqa: E402
from soundseek.service.auth import TokenFile  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def test_page_asks_once_and_keeps_the_token(tmp_path):
    make_audio_folder(tmp_path / "s", n=5, bad=False)
    build_index(tmp_path / "s", HashEmbedder(), tmp_path / "idx", progress=False)
    tf = TokenFile(tmp_path / "tokens.json")
    token = tf.add("browser", ["read"])
    prompts: list[str] = []
    with running_server(create_app(tmp_path / "idx", HashEmbedder(), tokens=tf.path)) as url, \
            sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        def on_dialog(d):
            prompts.append(d.message)
            d.accept(token)

        page.on("dialog", on_dialog)
        page.goto(url + "/")
        page.fill("#q", "low tone")
        page.press("#q", "Enter")
        rows = page.locator("#results li.hit")
        rows.first.wait_for(timeout=15_000)
        assert rows.count() == 5
        page.evaluate("document.getElementById('player').muted = true")  # a silent test
        page.wait_for_function("() => document.activeElement.classList.contains('hit')", timeout=10_000)
        page.keyboard.press(" ")  # plays the focused hit through the one player, with the token's cookie
        page.wait_for_function("() => { const a = document.getElementById('player');"
                               " return a.readyState >= 2 && !a.error; }", timeout=10_000)
        page.reload()  # kept: no second question
        page.fill("#q", "high tone")
        page.press("#q", "Enter")
        page.locator("#results li.hit").first.wait_for(timeout=15_000)
        assert page.evaluate("localStorage.getItem('soundseek-token')") == token
        browser.close()
    assert len(prompts) == 1 and "access token" in prompts[0]
    assert not errors, errors

"""Authentication for ``serve``: every route except a bare health check refuses a missing or
wrong token; scopes and the per-token upload rate hold; tokens are stored hashed and never
logged; a non-loopback bind refuses to start without tokens unless --no-auth."""
from __future__ import annotations

import io
import logging
import os
import re

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
from fastapi.routing import APIRoute  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from index_helpers import make_audio_folder  # noqa: E402
from soundseek.index import HashEmbedder, build_index  # noqa: E402
from soundseek.service.app import create_app  # noqa: E402
from soundseek.service.auth import TokenFile, require_auth  # noqa: E402


@pytest.fixture()
def env(tmp_path):
    make_audio_folder(tmp_path / "s", n=4, bad=False)
    build_index(tmp_path / "s", HashEmbedder(), tmp_path / "idx", progress=False)
    tf = TokenFile(tmp_path / "tokens.json")
    read = tf.add("reader", ["read"])
    up = tf.add("uploader", ["read", "upload"])
    app = create_app(tmp_path / "idx", HashEmbedder(), tokens=tf.path, uploads_per_minute=2)
    return app, tf, read, up


def _wav() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.sin(np.arange(8000) / 5).astype(np.float32), 16000, format="WAV")
    return buf.getvalue()


def _call(c, method, path, token=None):
    path = re.sub(r"\{[^}]+\}", "1", path)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method == "POST":
        return c.post(path, headers=headers, files={"file": ("a.wav", _wav(), "audio/wav")})
    return c.request(method, path, headers=headers, params={"q": "tone"})


def _api_routes(routes):
    """Every APIRoute, also those of included routers (FastAPI may keep them wrapped)."""
    for r in routes:
        if isinstance(r, APIRoute):
            yield r
        inner = getattr(r, "original_router", None)
        if inner is not None:
            yield from _api_routes(inner.routes)


def test_every_route_but_bare_health_needs_a_valid_token(env, caplog):
    app, tf, read, up = env
    caplog.set_level(logging.DEBUG)
    c = TestClient(app)
    routes = [(m, r.path) for r in _api_routes(app.routes) for m in r.methods]
    routes += [("GET", "/openapi.json"), ("GET", "/docs")]
    assert len(routes) >= 7
    for method, path in routes:
        if path in ("/api/health", "/", "/favicon.ico"):  # no data: the page and its icon
            continue
        for token in (None, "ss_wrong", read + "x", "Bearer"):
            r = _call(c, method, path, token)
            assert r.status_code == 401, (method, path, token, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
        r = _call(c, method, path, up)
        assert r.status_code not in (401, 403), (method, path, r.status_code)
    assert c.get("/api/health").json() == {"status": "ok"}  # bare: no counts, no fingerprint
    assert "items" in c.get("/api/health", headers={"Authorization": f"Bearer {read}"}).json()
    assert c.get("/").status_code == 200 and c.get("/static/auth.js").status_code == 200  # the page, no data
    for secret in (read, up, read + "x"):
        assert secret not in caplog.text
    assert "missing or invalid token" in caplog.text


def test_scopes_rate_limit_cookie_and_revocation(env):
    app, tf, read, up = env
    c = TestClient(app)
    assert _call(c, "POST", "/api/search/audio", read).status_code == 403
    assert [_call(c, "POST", "/api/search/audio", up).status_code for _ in range(3)] == [200, 200, 429]
    r = _call(c, "POST", "/api/search/audio", up)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    hit = c.get("/api/search", params={"q": "tone"}, headers={"Authorization": f"Bearer {read}"}).json()["hits"][0]
    c.cookies.set("soundseek_token", read)  # the page's cookie, for <audio> elements
    assert c.get(f"/api/clips/{hit['id']}/audio").status_code == 200
    c.cookies.clear()
    tf.revoke("reader")
    assert c.get("/api/search", params={"q": "tone"}, headers={"Authorization": f"Bearer {read}"}).status_code == 401
    with pytest.raises(KeyError, match="uploader"):
        tf.revoke("reader")


def test_token_file_is_hashed_and_private(tmp_path):
    tf = TokenFile(tmp_path / "t.json")
    tok = tf.add("a", ["read"])
    text = tf.path.read_text()
    assert tok not in text and len(tok) > 40
    assert oct(os.stat(tf.path).st_mode & 0o777) == "0o600"
    with pytest.raises(ValueError, match="Valid: read, upload"):
        tf.add("b", ["admin"])
    with pytest.raises(ValueError, match="exists"):
        tf.add("a", ["read"])


def test_non_loopback_needs_tokens_or_no_auth(tmp_path, capsys):
    for host in ("127.0.0.1", "localhost", "::1"):
        assert require_auth(host, None, False) is None
    for host in ("0.0.0.0", "192.168.1.5", "::", "sounds.lan"):
        with pytest.raises(ValueError, match="needs access tokens"):
            require_auth(host, None, False)
        assert require_auth(host, None, True) is None
    from soundseek.cli.main import main

    make_audio_folder(tmp_path / "s", n=2, bad=False)
    build_index(tmp_path / "s", HashEmbedder(), tmp_path / "idx", progress=False)
    assert main(["serve", str(tmp_path / "idx"), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "needs access tokens" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1

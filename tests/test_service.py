"""HTTP service (METHODS.md §8): every bad input gets a JSON 4xx; no request reads a file
outside the index."""
from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from index_helpers import make_audio_folder, tone  # noqa: E402
from soundseek.index import HashEmbedder, build_index  # noqa: E402
from soundseek.service.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("svc")
    root = tmp / "sounds"
    freqs = make_audio_folder(root, n=9)
    secret = tmp / "secret.wav"
    sf.write(secret, tone(440.0), 16000)
    os.symlink(secret, root / "link_outside.wav")  # planted before indexing -> not indexed
    build_index(root, HashEmbedder(), tmp / "idx", progress=False)
    client = TestClient(create_app(tmp / "idx", HashEmbedder(), max_upload_bytes=200_000))
    return client, root, freqs, tmp


def _wav_bytes(freq=300.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(freq), 16000, format="WAV")
    return buf.getvalue()


def test_search_health_metadata_openapi(env):
    c, root, freqs, _ = env
    h = c.get("/api/health").json()
    assert h["status"] == "ok" and h["items"] == len(freqs) and h["kind"] == "clips"
    r = c.get("/api/search", params={"q": "low tone", "k": 3})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert len(hits) == 3 and set(hits[0]) >= {"id", "score", "path", "duration", "captions", "tags"}
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    meta = c.get(f"/api/clips/{hits[0]['id']}").json()
    assert meta["path"] == hits[0]["path"] and meta["sha1"] and "realpath" not in meta
    schema = c.get("/openapi.json").json()
    assert {"/api/search", "/api/search/audio", "/api/clips/{clip_id}/audio"} <= set(schema["paths"])
    page = c.get("/")
    assert page.status_code == 200 and 'id="q"' in page.text and "app.js" in page.text
    assert c.get("/static/app.js").status_code == 200


@pytest.mark.parametrize("params, status, msg", [
    ({"q": ""}, 400, "empty query"),
    ({"q": "   "}, 400, "empty query"),
    ({}, 400, "empty query"),
    ({"q": "x" * 1001}, 400, "too long"),
    ({"q": "y" * 10_000}, 400, "too long"),
    ({"q": "dog", "k": 0}, 400, "k must be at least 1, got '0'"),
    ({"q": "dog", "k": -3}, 400, "k must be at least 1"),
    ({"q": "dog", "k": 1001}, 400, "k must be at most 1000"),
    ({"q": "dog", "k": "ten"}, 422, "k: Input should be a valid integer"),
    ({"q": "dog", "rerank": -1}, 400, "rerank must be at least 0"),
    ({"q": "dog", "offset": -1}, 400, "offset must be at least 0"),
    ({"q": "dog", "min_duration": "long"}, 422, "min_duration: Input should be a valid number"),
    ({"q": "dog", "channels": 0}, 400, "channels must be at least 1"),
    ({"q": "dog", "format": "../wav"}, 422, "format: String should match pattern"),
    ({"q": "dog", "min_duration": 3, "max_duration": 1}, 400, "above max_duration"),
    ({"q": "dog", "min_duraton": 1}, 400, "unknown parameter 'min_duraton'; valid: channels, folder, format, k, "
                                         "max_duration, min_duration, mode, offset, q, rerank, sample_rate, tag, "
                                         "text_weight"),
])
def test_bad_search_inputs(env, params, status, msg):
    c = env[0]
    r = c.get("/api/search", params=params)
    assert r.status_code == status
    body = r.json()
    assert "detail" in body and msg in str(body["detail"])


def test_audio_upload(env):
    c, root, freqs, _ = env
    data = (root / "low" / "tone_00.wav").read_bytes()
    r = c.post("/api/search/audio", files={"file": ("q.wav", data, "audio/wav")}, data={"k": "2"})
    assert r.status_code == 200
    assert r.json()["hits"][0]["path"] == "low/tone_00.wav" and len(r.json()["hits"]) == 2
    r = c.post("/api/search/audio", files={"file": ("noext", _wav_bytes(), "application/octet-stream")})
    assert r.status_code == 200  # decoded by content, not by name


@pytest.mark.parametrize("name, payload, status, msg", [
    ("notes.txt", b"hello, not audio" * 10, 415, "not a readable audio file"),
    ("fake.wav", b"RIFF\x00\x00\x00\x00WAVEjunk", 415, "not a readable audio file"),
    ("empty.wav", b"", 400, "empty upload"),
    ("big.wav", b"\0" * 300_000, 413, "too large"),  # refused from Content-Length
    ("big2.wav", b"\0" * 230_000, 413, "too large"),  # under the header slack: refused while reading
])
def test_bad_uploads(env, name, payload, status, msg):
    c = env[0]
    r = c.post("/api/search/audio", files={"file": (name, payload, "audio/wav")})
    assert r.status_code == status and msg in r.json()["detail"]
    assert "/tmp" not in r.json()["detail"]  # no server paths leaked


def test_missing_upload_and_bad_k(env):
    c = env[0]
    assert c.post("/api/search/audio").status_code == 422
    r = c.post("/api/search/audio", files={"file": ("a.wav", _wav_bytes(), "audio/wav")}, data={"k": "0"})
    assert r.status_code == 400 and "k must be at least 1" in r.json()["detail"]


def test_audio_streaming_with_ranges(env):
    c, root, freqs, _ = env
    hit = c.get("/api/search", params={"q": "tone", "k": 1}).json()["hits"][0]
    full = (root / hit["path"]).read_bytes()
    r = c.get(f"/api/clips/{hit['id']}/audio")
    assert r.status_code == 200 and r.content == full
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"].startswith({"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg"}[hit["path"].rsplit(".", 1)[1]])
    r = c.get(f"/api/clips/{hit['id']}/audio", headers={"Range": "bytes=10-109"})
    assert r.status_code == 206 and r.content == full[10:110]
    assert r.headers["content-range"] == f"bytes 10-109/{len(full)}"
    r = c.get(f"/api/clips/{hit['id']}/audio", headers={"Range": "bytes=-20"})
    assert r.status_code == 206 and r.content == full[-20:]
    r = c.get(f"/api/clips/{hit['id']}/audio", headers={"Range": f"bytes={len(full) + 5}-"})
    assert r.status_code == 416


@pytest.mark.parametrize("clip_id", [
    "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%2e%2e%2fsecret.wav", "/etc/passwd",
    "%2Fetc%2Fpasswd", "1%00", "-1", "999999", "1e3", "0x1", " 1", "abc", "link_outside.wav",
    "99999999999999999999999",
])
def test_traversal_ids_never_read_files(env, clip_id):
    c = env[0]
    for url in (f"/api/clips/{clip_id}/audio", f"/api/clips/{clip_id}"):
        r = c.get(url)
        assert r.status_code == 404, (url, r.status_code)
        assert b"root:" not in r.content and b"RIFF" not in r.content


def test_symlinks_and_replaced_files_are_not_served(env):
    c, root, freqs, tmp = env
    ids = {h["path"]: h["id"] for h in c.get("/api/search", params={"q": "tone", "k": 100}).json()["hits"]}
    assert "link_outside.wav" not in ids and len(ids) == len(freqs)  # planted link never indexed
    victim = "high/tone_08.flac" if "high/tone_08.flac" in ids else sorted(ids)[-1]
    p = root / victim
    backup = p.read_bytes()
    p.unlink()
    os.symlink(tmp / "secret.wav", p)  # swapped for a link after indexing
    try:
        r = c.get(f"/api/clips/{ids[victim]}/audio")
        assert r.status_code == 404
    finally:
        p.unlink()
        p.write_bytes(backup)
    # same bytes in a new file: its inode is recorded again by the next index run, then served
    build_index(root, HashEmbedder(), tmp / "idx", progress=False)
    r = c.get(f"/api/clips/{ids[victim]}/audio")
    assert r.status_code == 200 and r.content == backup


def test_concurrent_requests(env):
    c = env[0]
    qs = [f"tone {i} low high" for i in range(40)]
    with ThreadPoolExecutor(8) as ex:
        res = list(ex.map(lambda q: c.get("/api/search", params={"q": q, "k": 5}), qs))
    assert all(r.status_code == 200 for r in res)
    again = [c.get("/api/search", params={"q": q, "k": 5}).json()["hits"] for q in qs[:5]]
    assert [r.json()["hits"] for r in res[:5]] == again

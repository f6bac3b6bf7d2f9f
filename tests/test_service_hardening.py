"""The HTTP service under hostile input: one JSON error shape, access log of refusals, Host
and CORS checks, meaningless queries, HEAD and ranges served from one verified descriptor,
the symlink race, chunked uploads counted while received, decode bombs bounded in memory."""
from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
from fastapi.testclient import TestClient  # noqa: E402

from hostile_helpers import bombs  # noqa: E402
from index_helpers import make_audio_folder, tone  # noqa: E402
from server_helpers import free_port, running_server  # noqa: E402
from soundseek.index import HashEmbedder, build_index  # noqa: E402
from soundseek.service.app import create_app  # noqa: E402
from soundseek.service.limits import default_allowed_hosts  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
SHAPE = {"status", "error", "detail"}


def _index(tmp: Path, n: int = 4) -> tuple[Path, Path]:
    root = tmp / "sounds"
    make_audio_folder(root, n=n, bad=False)
    build_index(root, HashEmbedder(), tmp / "idx", progress=False)
    return root, tmp / "idx"


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hard")
    root, idx = _index(tmp)
    secret = tmp / "secret.wav"
    secret.write_bytes(b"TOP-SECRET" * 100)
    c = TestClient(create_app(idx, HashEmbedder(), max_upload_bytes=100_000))
    hits = c.get("/api/search", params={"q": "tone", "k": 10}).json()["hits"]
    return c, root, idx, secret, {h["path"]: h["id"] for h in hits}


def _is_error(r, status):
    body = r.json()
    assert r.status_code == status and set(body) == SHAPE and body["status"] == status, (r.status_code, body)
    assert isinstance(body["detail"], str) and "\n" not in body["detail"]
    return body["detail"]


# --- one error shape, access log -------------------------------------------------------------
@pytest.mark.parametrize("method, url, kw, status", [
    ("get", "/api/search", {"params": {"q": "dog", "k": "ten"}}, 422),
    ("get", "/api/search", {"params": {"q": "dog", "k": 0}}, 400),
    ("get", "/api/search", {"params": {"q": "dog", "bogus": 1}}, 400),
    ("get", "/api/search", {"params": {"q": ""}}, 400),
    ("get", "/api/nothing-here", {}, 404),
    ("delete", "/api/search", {}, 405),
    ("get", "/api/clips/..%2F..%2Fetc%2Fpasswd/audio", {}, 404),
    ("get", "/api/clips/999999/audio", {}, 404),
    ("post", "/api/search/audio", {}, 422),
    ("post", "/api/search/audio", {"files": {"file": ("a.wav", b"x" * 200_000, "audio/wav")}}, 413),
    ("post", "/api/search/audio", {"files": {"file": ("a.txt", b"hello" * 10, "text/plain")}}, 415),
])
def test_every_error_has_one_json_shape_and_is_logged(svc, caplog, method, url, kw, status):
    c = svc[0]
    with caplog.at_level(logging.WARNING, logger="soundseek.access"):
        r = getattr(c, method)(url, **kw)
    _is_error(r, status)
    recs = [x for x in caplog.records if x.name == "soundseek.access"]
    assert len(recs) == 1 and f"-> {status}" in recs[0].getMessage() and recs[0].exc_info is None


def test_range_errors_are_json_and_bad_ranges_ignored(svc):
    c, root, _, _, ids = svc
    key = sorted(ids)[0]
    full = (root / key).read_bytes()
    r = c.get(f"/api/clips/{ids[key]}/audio", headers={"Range": f"bytes={len(full)}-"})
    assert "range not satisfiable" in _is_error(r, 416) and r.headers["content-range"] == f"bytes */{len(full)}"
    for bad in ("bytes=abc", "items=0-3", "bytes=0-1,5-9", "bytes=-"):  # ignored: whole file
        r = c.get(f"/api/clips/{ids[key]}/audio", headers={"Range": bad})
        assert r.status_code == 200 and r.content == full, bad
    r = c.get(f"/api/clips/{ids[key]}/audio", headers={"Range": "bytes=5-999999999"})
    assert r.status_code == 206 and r.content == full[5:]


def test_head_on_audio(svc):
    c, root, _, _, ids = svc
    key = sorted(ids)[0]
    size = (root / key).stat().st_size
    r = c.head(f"/api/clips/{ids[key]}/audio")
    assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) == size
    assert r.headers["accept-ranges"] == "bytes"
    r = c.head(f"/api/clips/{ids[key]}/audio", headers={"Range": "bytes=0-9"})
    assert r.status_code == 206 and r.headers["content-range"] == f"bytes 0-9/{size}"
    assert c.head("/api/clips/424242/audio").status_code == 404


def test_file_names_with_newlines_cannot_forge_access_log_lines(svc, caplog):
    c = svc[0]
    with caplog.at_level(logging.WARNING, logger="soundseek.access"):
        c.get("/api/clips/1%0A2026-01-01%20GET%20/ok%20->%20200/audio")
    msg = caplog.records[-1].getMessage()
    assert "\n" not in msg and "\\n2026" in msg


# --- Host and CORS --------------------------------------------------------------------------
def test_allowed_hosts_defeat_dns_rebinding(tmp_path):
    _, idx = _index(tmp_path, n=2)
    app = create_app(idx, HashEmbedder(), allowed_hosts=default_allowed_hosts("127.0.0.1"))
    c = TestClient(app, base_url="http://127.0.0.1:8000")
    assert c.get("/api/health").status_code == 200
    for host in ("localhost:8000", "[::1]:8000", "127.0.0.1"):
        assert c.get("/api/health", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "", "localhost.evil",
                 "127.0.0.1:1@evil.example", "localhost@evil.example", "127.0.0.1/evil", "127.0.0.1:80:80"):
        r = c.get("/api/health", headers={"Host": host})
        assert "invalid Host header" in _is_error(r, 400), host
    assert default_allowed_hosts("0.0.0.0") == ["localhost", "127.0.0.1", "::1"]
    assert "sounds.lan" in default_allowed_hosts("sounds.lan")


def test_cors_is_off_by_default_and_explicit_when_on(tmp_path):
    _, idx = _index(tmp_path, n=2)
    origin = {"Origin": "http://other.example"}
    c = TestClient(create_app(idx, HashEmbedder()))
    r = c.get("/api/health", headers=origin)
    assert "access-control-allow-origin" not in r.headers
    c = TestClient(create_app(idx, HashEmbedder(), cors_origins=["http://other.example"]))
    r = c.get("/api/health", headers=origin)
    assert r.headers["access-control-allow-origin"] == "http://other.example"
    r = c.get("/api/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


# --- queries, health ------------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["%00", "%00%00%00", "%E2%80%8B%E2%80%8B", "%EF%BB%BF", "%FF%FE", "dog%FF",
                                 "%E2%80%8B%00%20%09"])
def test_meaningless_queries_are_400(svc, raw):
    r = svc[0].get(f"/api/search?q={raw}&k=5")
    detail = _is_error(r, 400)
    assert "UTF-8" in detail or "no visible characters" in detail or "empty query" in detail


def test_queries_with_stray_control_characters_still_search(svc):
    r = svc[0].get("/api/search?q=low%00%20tone%E2%80%8B&k=2")
    assert r.status_code == 200 and r.json()["query"] == "low tone" and len(r.json()["hits"]) == 2


def test_health_reports_the_live_item_count(tmp_path):
    root, idx = _index(tmp_path, n=2)
    c = TestClient(create_app(idx, HashEmbedder()))
    assert c.get("/api/health").json()["items"] == 2
    sf.write(root / "new.wav", tone(900.0), 16000)
    build_index(root, HashEmbedder(), idx, progress=False)  # an indexer run while serving
    assert c.get("/api/health").json()["items"] == 3


# --- files: opened once, verified, streamed from the descriptor -----------------------------
def test_swapped_vanished_and_special_files_are_clean_404s(tmp_path, caplog):
    root, idx = _index(tmp_path, n=3)
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"TOP-SECRET" * 100)
    c = TestClient(create_app(idx, HashEmbedder()))
    ids = {h["path"]: h["id"] for h in c.get("/api/search", params={"q": "tone", "k": 10}).json()["hits"]}
    a, b, d = sorted(ids)
    # a directory on the path swapped for a symlink to a look-alike tree outside
    sub = (root / a).parent
    outside = tmp_path / "elsewhere"
    shutil.copytree(sub, outside)
    (outside / Path(a).name).write_bytes(b"TOP-SECRET" * 100)
    sub.rename(tmp_path / "moved")
    os.symlink(outside, sub)
    with caplog.at_level(logging.WARNING, logger="soundseek.access"):
        r = c.get(f"/api/clips/{ids[a]}/audio")
        assert b"TOP-SECRET" not in r.content
        _is_error(r, 404)
        os.unlink(sub)
        (tmp_path / "moved").rename(sub)
        assert c.get(f"/api/clips/{ids[a]}/audio").status_code == 200
        # replaced by another file with the same bytes (the old inode kept alive: a new inode)
        os.rename(root / d, tmp_path / "old-inode")
        shutil.copyfile(tmp_path / "old-inode", root / d)
        assert "no audio" in _is_error(c.get(f"/api/clips/{ids[d]}/audio"), 404)
        os.replace(tmp_path / "old-inode", root / d)
        assert c.get(f"/api/clips/{ids[d]}/audio").status_code == 200
        # vanished
        keep = (root / b).read_bytes()
        (root / b).unlink()
        assert "no longer available" in _is_error(c.get(f"/api/clips/{ids[b]}/audio"), 404)
        # a FIFO put in its place: refused without blocking
        os.mkfifo(root / b)
        _is_error(c.get(f"/api/clips/{ids[b]}/audio"), 404)
        os.unlink(root / b)
        (root / b).write_bytes(keep)
    assert not any(r.exc_info for r in caplog.records)


def _race(c, root: Path, key: str, item: int, secret: Path, n_requests: int) -> tuple[int, int]:
    p = root / key
    full = p.read_bytes()
    keep = root.parent / "keep.hardlink"
    os.link(p, keep)  # the indexed inode survives the flips
    stop = threading.Event()

    def flipper():
        i = 0
        while not stop.is_set():
            tmp = root.parent / f"flip{i % 2}"
            if i % 2 == 0:
                os.symlink(secret, tmp)
            else:
                os.link(keep, tmp)
            os.replace(tmp, p)
            i += 1

    th = threading.Thread(target=flipper, daemon=True)
    th.start()

    def get(j):
        hdr = {"Range": "bytes=0-99"} if j % 3 == 0 else {}
        return c.get(f"/api/clips/{item}/audio", headers=hdr)

    try:
        with ThreadPoolExecutor(4) as ex:
            res = list(ex.map(get, range(n_requests)))
    finally:
        stop.set()
        th.join()
        os.replace(keep, p)
    ok = 0
    for j, r in enumerate(res):
        assert b"TOP-SECRET" not in r.content
        if r.status_code in (200, 206):
            assert r.content == (full[:100] if j % 3 == 0 else full)
            ok += 1
        else:
            _is_error(r, 404)
    return ok, len(res) - ok


@pytest.mark.parametrize("server, n_requests", [("testclient", 200),
                                                pytest.param("uvicorn", 3000, marks=pytest.mark.slow)])
def test_symlink_race_leaks_nothing_and_logs_no_traceback(tmp_path, caplog, capfd, server, n_requests):
    root, idx = _index(tmp_path, n=2)
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"TOP-SECRET" * 1000)
    app = create_app(idx, HashEmbedder())
    with contextlib.ExitStack() as stack:
        if server == "testclient":
            c = TestClient(app, raise_server_exceptions=True)
        else:  # a real server, as deployed: its own error log must stay free of tracebacks too
            import httpx

            url = stack.enter_context(running_server(app, log_config=None, log_level="info"))
            c = stack.enter_context(httpx.Client(base_url=url, timeout=30))
        hit = c.get("/api/search", params={"q": "tone", "k": 1}).json()["hits"][0]
        with caplog.at_level(logging.DEBUG):
            served, refused = _race(c, root, hit["path"], hit["id"], secret, n_requests)
    assert served + refused == n_requests and refused > 0  # the race really happened
    assert not any(r.exc_info or "Traceback" in r.getMessage() for r in caplog.records)
    assert "Traceback" not in capfd.readouterr().err
    print(f"{server}: {served} served (the indexed bytes), {refused} refused (404), nothing leaked")


# --- uploads through a real server ----------------------------------------------------------
class _CountBody:
    """Test instrument around the whole app: every body message the server read, per request."""

    def __init__(self, app):
        self.app, self.requests = app, []

    async def __call__(self, scope, receive, send):
        sizes: list[int] = []
        self.requests.append(sizes)

        async def counted():
            msg = await receive()
            if msg["type"] == "http.request":
                sizes.append(len(msg.get("body", b"")))
            return msg

        await self.app(scope, counted, send)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    _, idx = _index(tmp, n=2)
    app = _CountBody(create_app(idx, HashEmbedder(), max_upload_bytes=200_000))
    with running_server(app) as url:
        yield int(url.rsplit(":", 1)[1]), app


def _chunked_post(port: int, total: int, chunk: int = 64 << 10) -> tuple[int, dict, int]:
    """POST a multipart body of ``total`` bytes with chunked transfer (no Content-Length);
    returns (status, json, bytes the client managed to send)."""
    boundary = "xBOUNDARYx"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    con.putrequest("POST", "/api/search/audio")
    con.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    con.putheader("Transfer-Encoding", "chunked")
    con.endheaders()
    sent = 0
    try:
        con.send(b"%x\r\n%s\r\n" % (len(head), head))
        block = b"\0" * chunk
        while sent < total:
            con.send(b"%x\r\n%s\r\n" % (len(block), block))
            sent += len(block)
        con.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server refused and closed: expected
    r = con.getresponse()
    body = json.loads(r.read())
    con.close()
    return r.status, body, sent


def test_chunked_upload_is_refused_at_the_limit(live):
    port, counter = live
    status, body, sent = _chunked_post(port, 100 << 20)
    assert status == 413 and set(body) == SHAPE and "too large" in body["detail"]
    sizes = counter.requests[-1]
    n_read = sum(sizes)
    assert f"refused after reading {n_read} bytes" in body["detail"]
    limit = 200_000 + (16 << 10)  # max_upload_bytes + multipart framing allowance
    assert n_read - sizes[-1] <= limit < n_read  # stopped at the first chunk that crossed the limit
    assert n_read <= limit + max(sizes) and max(sizes) <= 1 << 20, sizes
    assert sent < 100 << 20
    print(f"chunked 100 MiB upload: server read {n_read} bytes in {len(sizes)} chunks "
          f"(largest {max(sizes)}), client sent {sent} before the refusal")


# --- decode bombs against a server in its own process ---------------------------------------
_SERVER = r"""
import sys, uvicorn
from soundseek.index import HashEmbedder
from soundseek.service.app import create_app
uvicorn.run(create_app(sys.argv[1], HashEmbedder()), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def _vmhwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


@pytest.mark.slow
def test_upload_bombs_are_refused_fast_in_bounded_memory(tmp_path):
    import httpx

    _, idx = _index(tmp_path, n=2)
    files = bombs(tmp_path / "bombs")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(idx), str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        warm = io.BytesIO()
        sf.write(warm, tone(440.0), 16000, format="WAV")
        r = httpx.post(f"http://127.0.0.1:{port}/api/search/audio", files={"file": ("ok.wav", warm.getvalue())},
                       timeout=120)
        assert r.status_code == 200, r.text
        base = _vmhwm_mib(proc.pid)
        results = {}
        for name, path in files.items():
            t0 = time.monotonic()
            r = httpx.post(f"http://127.0.0.1:{port}/api/search/audio",
                           files={"file": (path.name, path.read_bytes(), "audio/wav")}, timeout=60)
            results[name] = (r.status_code, r.json()["detail"], time.monotonic() - t0)
        peak = _vmhwm_mib(proc.pid)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    print(f"server RSS at start {base:.0f} MiB, peak {peak:.0f} MiB; {results}")
    for name, (status, detail, secs) in results.items():
        assert 400 <= status < 500 and secs < 5, (name, status, detail, secs)
    assert "implausible sample rate 2 Hz" in results["wav_2hz"][1]
    assert "implausible sample rate 10 Hz" in results["wav_10hz"][1]
    assert results["flac_2h"][0] == 413 and "too long" in results["flac_2h"][1]
    assert peak < 1024
    assert "Traceback" not in err


def test_serve_defaults_to_bind_and_loopback_hosts_and_logs_refusals(tmp_path, monkeypatch, capsys):
    import argparse

    import soundseek.service.app as app_mod
    from soundseek.cli.serve import add_serve_parser, run_serve

    _, idx = _index(tmp_path, n=2)
    ran = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.update(app=app, **kw))
    app_mod.serve(idx, HashEmbedder(), host="10.1.2.3", port=8123)
    assert "accepted Host names: localhost, 127.0.0.1, ::1, 10.1.2.3" in capsys.readouterr().out
    c = TestClient(ran["app"], base_url="http://10.1.2.3:8123")
    assert c.get("/api/health").status_code == 200
    assert c.get("/api/health", headers={"Host": "rebound.example"}).status_code == 400
    assert logging.getLogger("soundseek.access").handlers  # refusals reach stderr at the default level
    # the CLI passes --allowed-host / --cors-origin through
    seen = {}
    monkeypatch.setattr(app_mod, "serve", lambda index, emb=None, **kw: seen.update(kw))
    p = argparse.ArgumentParser()
    add_serve_parser(p.add_subparsers())
    args = p.parse_args(["serve", str(idx), "--allowed-host", "sounds.lan", "--allowed-host", "*.lab.example",
                         "--cors-origin", "https://ui.example"])
    assert run_serve(args, lambda m: HashEmbedder()) == 0
    assert seen["allowed_hosts"] == ["sounds.lan", "*.lab.example"] and seen["cors_origins"] == ["https://ui.example"]

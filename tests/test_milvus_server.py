"""The Milvus backend against a real Milvus server (the standalone binary of the ``milvus`` PyPI
package, started once per session on a free port under a temporary directory): build, update,
delete, filtered search, every clip its own top hit, a SIGKILLed indexer resumed, two search
processes sharing one collection while an indexer updates it, and a down server as a one-line
error within a bounded time."""
from __future__ import annotations

import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from index_helpers import SR, make_audio_folder, tone
from server_helpers import free_port
from soundseek.index import HashEmbedder, Searcher, build_index

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory):
    """``http://127.0.0.1:PORT`` of a Milvus standalone server started for this session."""
    try:
        import pymilvus  # noqa: F401
        from milvus import default_server
    except ImportError as e:
        pytest.skip(f"the Milvus server tests need the `milvus` and `pymilvus` packages ({e})")
    default_server.set_base_dir(str(tmp_path_factory.mktemp("milvus-server")))
    default_server.listen_port = free_port()
    try:
        default_server.start()
    except Exception as e:  # noqa: BLE001 - any failure to start is a skip with its reason
        default_server.stop()
        pytest.skip(f"the Milvus server binary did not start here ({type(e).__name__}: {e})")
    yield f"http://127.0.0.1:{default_server.listen_port}"
    default_server.stop()


def _client(uri):
    from pymilvus import MilvusClient

    return MilvusClient(uri=uri)


def _collection(uri: str, name: str) -> dict[int, np.ndarray]:
    """id -> vector of every row of a server collection."""
    c = _client(uri)
    rows = c.query(name, filter="id >= 0", output_fields=["id", "vector"], limit=16384)
    c.close()
    return {int(r["id"]): np.asarray(r["vector"], np.float32) for r in rows}


def _store_ids(idx: Path) -> list[int]:
    con = sqlite3.connect(idx / "index.sqlite")
    ids = [r[0] for r in con.execute("SELECT id FROM items ORDER BY id")]
    con.close()
    return ids


def _opts(uri: str, name: str) -> dict:
    return {"uri": uri, "collection": name}


@pytest.mark.milvus
@pytest.mark.slow
def test_build_update_delete_and_each_clip_is_its_own_top_hit(milvus_uri, tmp_path):
    root = tmp_path / "sounds"
    freqs = make_audio_folder(root, n=16, bad=False)
    idx, ref = tmp_path / "idx", tmp_path / "ref"
    rep = build_index(root, HashEmbedder(), idx, backend="milvus", backend_options=_opts(milvus_uri, "build"),
                      progress=False)
    assert rep.added == len(freqs)
    build_index(root, HashEmbedder(), ref, progress=False)  # FAISS on the same clips
    m, f = Searcher(idx, HashEmbedder()), Searcher(ref, HashEmbedder())
    assert len(m) == len(freqs) and sorted(_collection(milvus_uri, "build")) == _store_ids(idx)
    for key in freqs:
        wave = sf.read(root / key, dtype="float32")[0]
        hm, hf = m.search_audio(wave, k=5), f.search_audio(wave, k=5)
        assert hm[0]["path"] == key and hm[0]["score"] == pytest.approx(1.0, abs=1e-5)
        assert [h["path"] for h in hm] == [h["path"] for h in hf]
        np.testing.assert_allclose([h["score"] for h in hm], [h["score"] for h in hf], atol=1e-5)
    # incremental: two new clips, one removed, one changed
    sf.write(root / "new_a.wav", tone(3100.0, 0.6, seed=40), SR)
    sf.write(root / "new_b.wav", tone(90.0, 0.7, seed=41), SR)
    gone = sorted(freqs)[0]
    (root / gone).unlink()
    changed = sorted(freqs)[1]
    sf.write(root / changed, tone(5000.0, 0.5, seed=42), SR, format=Path(changed).suffix[1:].upper())
    rep = build_index(root, HashEmbedder(), idx, backend="milvus", backend_options=_opts(milvus_uri, "build"),
                      progress=False)
    assert (rep.added, rep.removed) == (2, 1) and rep.updated == 1
    coll = _collection(milvus_uri, "build")
    assert sorted(coll) == _store_ids(idx) and len(coll) == len(freqs) + 1
    m2 = Searcher(idx, HashEmbedder())
    for key in ("new_a.wav", "new_b.wav", changed):
        hits = m2.search_audio(sf.read(root / key, dtype="float32")[0], k=3)
        assert hits[0]["path"] == key and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert all(h["path"] != gone for h in m2.search_text("low tone", k=50))
    for s in (m, m2):
        s.backend.close()


@pytest.mark.milvus
@pytest.mark.slow
def test_filter_expressions_at_the_backend(milvus_uri):
    from soundseek.index.backends.base import build_backend

    rng = np.random.default_rng(0)
    v = rng.standard_normal((300, 17)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    tags = ["dog", "rain", "bell"]
    meta = [{"tag": tags[i % 3], "seconds": float(i % 7)} for i in range(300)]
    b = build_backend("milvus", 17, uri=milvus_uri, collection="filters", drop_existing=True)
    b.add(np.arange(300) + 1000, v, metadata=meta)
    q = rng.standard_normal((4, 17)).astype(np.float32)
    for expr, keep in ((' metadata["tag"] == "dog" ', lambda i, m: m["tag"] == "dog"),
                       ('metadata["seconds"] >= 5 and id < 1200', lambda i, m: m["seconds"] >= 5 and i < 200),
                       ('metadata["tag"] in ["rain", "bell"]', lambda i, m: m["tag"] != "dog")):
        scores, ids = b.search_arrays(q, 10, filter=expr)
        allowed = np.array([keep(i, m) for i, m in enumerate(meta)])
        exact = q @ v.T
        exact[:, ~allowed] = -np.inf
        want = np.argsort(-exact, axis=1)[:, :10] + 1000  # brute force over the matching rows
        np.testing.assert_array_equal(ids, want)
        np.testing.assert_allclose(scores, np.take_along_axis(exact, want - 1000, 1), atol=1e-5)
    scores, ids = b.search_arrays(q[:1], 5, filter='metadata["tag"] == "cat"')
    assert (ids == -1).all() and np.isneginf(scores).all()  # nothing matches: no hits
    assert b.metadata([1001, 1002]) == meta[1:3]
    b.close()


_CRASH_SCRIPT = """
import sys
from soundseek.index import HashEmbedder, build_index
build_index(sys.argv[1], HashEmbedder(delay=float(sys.argv[3])), sys.argv[2], batch_size=2, progress=False,
            backend="milvus", backend_options={"uri": sys.argv[4], "collection": sys.argv[5]})
"""


def _count(idx: Path) -> int:
    try:
        con = sqlite3.connect(idx / "index.sqlite", timeout=1)
        n = con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        con.close()
        return n
    except sqlite3.Error:
        return 0


@pytest.mark.milvus
@pytest.mark.slow
def test_sigkill_mid_build_then_rerun_gives_the_uninterrupted_collection(milvus_uri, tmp_path):
    root = tmp_path / "sounds"
    freqs = make_audio_folder(root, n=20, bad=False)
    extra = sorted(freqs)[10:]
    held = tmp_path / "held"
    for key in extra:  # first a synced collection of half the clips, then the rest added and killed
        (held / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).rename(held / key)
    ref, idx = tmp_path / "ref", tmp_path / "idx"
    for d, name in ((ref, "uninterrupted"), (idx, "killed")):
        build_index(root, HashEmbedder(), d, batch_size=2, progress=False, backend="milvus",
                    backend_options=_opts(milvus_uri, name))
    for key in extra:
        (held / key).rename(root / key)
    build_index(root, HashEmbedder(), ref, batch_size=2, progress=False, backend="milvus",
                backend_options=_opts(milvus_uri, "uninterrupted"))
    for target in (12, 16):  # killed twice while committing batches
        p = subprocess.Popen([sys.executable, "-c", _CRASH_SCRIPT, str(root), str(idx), "0.3", milvus_uri, "killed"],
                             env=ENV)
        t0 = time.time()
        while _count(idx) < target and time.time() - t0 < 120 and p.poll() is None:
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert target <= _count(idx) < len(freqs)
    rep = build_index(root, HashEmbedder(), idx, batch_size=2, progress=False, backend="milvus",
                      backend_options=_opts(milvus_uri, "killed"))
    assert rep.total == len(freqs)
    got, want = _collection(milvus_uri, "killed"), _collection(milvus_uri, "uninterrupted")
    assert sorted(got) == sorted(want) == _store_ids(idx) == _store_ids(ref)  # no duplicates, none missing
    for i in want:
        np.testing.assert_array_equal(got[i], want[i])
    s = Searcher(idx, HashEmbedder())
    for key in extra:
        assert s.search_audio(sf.read(root / key, dtype="float32")[0], k=1)[0]["path"] == key
    s.backend.close()


_SERVER = r"""
import sys, uvicorn
from soundseek.index import HashEmbedder
from soundseek.service.app import create_app
uvicorn.run(create_app(sys.argv[1], HashEmbedder()), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def _top(base: str, wave: np.ndarray) -> dict:
    import httpx

    buf = io.BytesIO()
    sf.write(buf, wave, SR, format="WAV")
    r = httpx.post(f"{base}/api/search/audio", files={"file": ("q.wav", buf.getvalue(), "audio/wav")},
                   data={"k": 1}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["hits"][0]


@pytest.mark.milvus
@pytest.mark.slow
def test_two_search_servers_share_a_collection_while_it_is_updated(milvus_uri, tmp_path):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    root = tmp_path / "sounds"
    make_audio_folder(root, n=8, bad=False)
    idx = tmp_path / "idx"
    opts = _opts(milvus_uri, "shared")
    build_index(root, HashEmbedder(), idx, progress=False, backend="milvus", backend_options=opts)
    procs, bases = [], []
    try:
        for _ in range(2):
            port = free_port()
            procs.append(subprocess.Popen([sys.executable, "-c", _SERVER, str(idx), str(port)], env=ENV,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            bases.append(f"http://127.0.0.1:{port}")
        for base, p in zip(bases, procs):
            for _ in range(600):
                assert p.poll() is None, p.communicate()[1][-2000:]
                try:
                    if httpx.get(f"{base}/api/health", timeout=10).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
        old = sf.read(root / "low" / "tone_00.wav", dtype="float32")[0]
        assert all(_top(b, old)["path"] == "low/tone_00.wav" for b in bases)
        # an indexer adds clips while both serve; both see them
        new = {f"new/n{i}.wav": tone(2500.0 + 700 * i, 0.5, seed=60 + i) for i in range(3)}
        for key, w in new.items():
            (root / key).parent.mkdir(exist_ok=True)
            sf.write(root / key, w, SR)
        build_index(root, HashEmbedder(), idx, progress=False, backend="milvus", backend_options=opts)
        time.sleep(1.2)  # searchers look for a new store generation at most once a second
        for base in bases:
            for key, w in new.items():
                hit = _top(base, w)
                assert hit["path"] == key and hit["score"] == pytest.approx(1.0, abs=1e-4)
        assert sorted(_collection(milvus_uri, "shared")) == _store_ids(idx)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.communicate(timeout=30)


def _silent_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


@pytest.mark.parametrize("where", ["closed", "silent"])
@pytest.mark.parametrize("command", ["index", "search"])
def test_a_server_that_is_down_is_a_one_line_error_in_bounded_time(tmp_path, capsys, monkeypatch, where, command):
    """A closed port fails at once; a port that accepts but never answers (not Milvus) fails after
    $SOUNDSEEK_MILVUS_TIMEOUT seconds; both a one-line error naming the URI, no traceback."""
    pytest.importorskip("pymilvus")
    from soundseek.cli import indexing
    from soundseek.cli.main import main

    monkeypatch.setattr(indexing, "embedder_factory", lambda model: HashEmbedder())
    root = tmp_path / "sounds"
    make_audio_folder(root, n=2, bad=False)
    idx = tmp_path / "idx"
    if command == "search":  # an index whose collection lived on a server that is gone now
        build_index(root, HashEmbedder(), idx, progress=False)
    sock, port = _silent_port()
    if where == "closed":
        sock.close()
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("SOUNDSEEK_MILVUS_TIMEOUT", "2")
    argv = (["index", str(root), "--index", str(idx), "--backend", "milvus", "--uri", uri, "--no-progress"]
            if command == "index" else ["search", str(idx), "a low tone", "--uri", uri])
    capsys.readouterr()
    try:
        t0 = time.monotonic()
        code = main(argv)
        secs = time.monotonic() - t0
    finally:
        sock.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert uri in err[0] and "Milvus server" in err[0], err
    assert secs < (5 if where == "closed" else 2 + 5), secs  # generous bounds on a loaded machine
    if where == "silent":
        assert secs >= 1.9  # it waited for the timeout, no longer


@pytest.mark.parametrize("uri, match", [
    ("ftp://host:19530", "scheme 'ftp' is not served"),
    ("https://user:secret@host:443", r"credentials do not go in the URI.*SOUNDSEEK_MILVUS_TOKEN"),
    ("http://host:notaport", "port"),
    ("http://:19530", "names no host"),
    ("vectors.sqlite", "must end in .db"),
])
def test_uris_that_are_not_milvus_are_refused(uri, match):
    pytest.importorskip("pymilvus")
    from soundseek.index.backends.milvus_backend import MilvusBackend

    with pytest.raises(ValueError, match=match) as e:
        MilvusBackend(4, uri=uri)
    assert "secret" not in str(e.value)


def test_token_comes_from_the_environment(monkeypatch):
    pytest.importorskip("pymilvus")
    import pymilvus

    from soundseek.index.backends import milvus_backend

    seen = {}

    class Fake:
        def __init__(self, **kw):
            seen.update(kw)

    monkeypatch.setattr(pymilvus, "MilvusClient", Fake)
    monkeypatch.setenv("SOUNDSEEK_MILVUS_TOKEN", "root:Milvus")
    milvus_backend._client("https://milvus.example.org:443", None)
    assert seen["token"] == "root:Milvus" and seen["timeout"] == milvus_backend.DEFAULT_TIMEOUT
    monkeypatch.setenv("SOUNDSEEK_MILVUS_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="SOUNDSEEK_MILVUS_TIMEOUT"):
        milvus_backend._client("https://milvus.example.org:443", None)

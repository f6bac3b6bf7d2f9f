"""A running service and an open ``soundseek.Index`` follow rebuilds of their index: they pick
up the new index, and no answer maps an id to a file of the other index."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from index_helpers import make_audio_folder  # noqa: E402
from soundseek.index import HashEmbedder, build_index  # noqa: E402
from soundseek.index.api import Index  # noqa: E402
from soundseek.index.store import Store  # noqa: E402
from soundseek.service.app import create_app  # noqa: E402


def _truth(idx: Path) -> dict[int, str]:
    s = Store(idx)
    try:
        return {int(r["id"]): r["key"] for r in s.known().values()}
    finally:
        s.close()


def _folders(tmp: Path) -> tuple[Path, Path]:
    """Two folders whose files have different names (hits carry paths relative to the folder)."""
    a, b = tmp / "a", tmp / "b"
    make_audio_folder(a, n=9, bad=False)
    make_audio_folder(b, n=5, bad=False)
    for p in list(b.rglob("*.*")):
        p.rename(p.with_name("b_" + p.name))
    return a, b


def _which(path: str) -> str:
    return "b" if Path(path).name.startswith("b_") else "a"


def _wait_for(pred, seconds: float = 20.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_service_follows_a_rebuild_under_load(tmp_path):
    a, b = _folders(tmp_path)
    idx = tmp_path / "idx"
    build_index(a, HashEmbedder(), idx, progress=False)
    truth = {"a": _truth(idx)}
    answers: list[tuple[str, list[tuple[int, str]]]] = []
    refused: list[int] = []
    stop = threading.Event()
    with TestClient(create_app(idx, HashEmbedder())) as client:

        errors: list[BaseException] = []

        def load() -> None:
            try:
                ask()
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)
                raise

        def ask() -> None:
            while not stop.is_set():
                r = client.get("/api/search", params={"q": "tone", "k": 20, "mode": "semantic"})
                if r.status_code == 503:
                    assert r.headers.get("retry-after")
                    refused.append(1)
                    continue
                assert r.status_code == 200, r.text
                hits = [(h["id"], h["path"]) for h in r.json()["hits"]]
                roots = {_which(p) for _, p in hits}
                assert len(roots) == 1, roots  # one index per answer
                answers.append((roots.pop(), hits))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            _wait_for(lambda: len(answers) >= 8)
            build_index(b, HashEmbedder(), idx, progress=False, rebuild=True)
            truth["b"] = _truth(idx)
            n = len(answers)
            assert _wait_for(lambda: len(answers) > n + 8 and answers[-1][0] == "b")
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors[0]
        assert client.get("/api/health").json()["items"] == 5
        first = min(truth["b"])
        clip = client.get(f"/api/clips/{first}").json()
        assert clip["path"] == truth["b"][first]
    for root, hits in answers:
        for i, p in hits:
            assert truth[root][i] == p  # never an id of one index with a file of the other
    assert answers[0][0] == "a" and answers[-1][0] == "b"
    assert all(r == "b" for r, _ in answers[-4:])


def test_open_index_follows_a_rebuild(tmp_path):
    a, b = _folders(tmp_path)
    idx = tmp_path / "idx"
    build_index(a, HashEmbedder(), idx, progress=False)
    index = Index.open(idx, embedder=HashEmbedder())
    assert len(index) == 9
    build_index(b, HashEmbedder(), idx, progress=False, rebuild=True)
    assert _wait_for(lambda: len(index) == 5)
    truth = _truth(idx)
    hits = index.search("tone", k=20, mode="semantic")
    assert len(hits) == 5 and all(truth[h["id"]] == h["path"] for h in hits)


def test_a_rebuilt_index_is_reopened_with_the_options_it_was_opened_with(tmp_path):
    """The default reopen goes through ``Searcher.open`` with the searcher's own backend options
    (a Milvus ``uri``, FAISS search widths), not the directory's defaults."""
    from soundseek.index.live import LiveSearcher
    from soundseek.index.search import Searcher

    a, b = _folders(tmp_path)
    idx = tmp_path / "idx"
    build_index(a, HashEmbedder(), idx, progress=False)
    from soundseek.index import calibration as cal

    mine = cal.UNCALIBRATED
    first = Searcher.open(idx, embedder=HashEmbedder(), backend_options={"nprobe": 3}, calibration=mine)
    assert first.backend_options == {"nprobe": 3} and first.backend.opts["nprobe"] == 3
    live = LiveSearcher(first, every=0.0)
    text_only = LiveSearcher(Searcher(idx, None), every=0.0)
    build_index(b, HashEmbedder(), idx, progress=False, rebuild=True)
    again = live.current()
    assert again is not first and len(again) == 5
    assert again.backend_options == {"nprobe": 3} and again.backend.opts["nprobe"] == 3
    assert again.calibration is mine  # the calibration it was given, not the model's own
    plain = text_only.current()  # a text-mode searcher stays one (no model is loaded)
    assert len(plain) == 5 and plain.embedder is None and plain.backend.opts["nprobe"] == 16

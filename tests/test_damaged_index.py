"""Damaged index files: each gives a one-line error naming the file and the repair command, or
a silent repair verified against the undamaged results; never a traceback or a wrong score."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from index_helpers import make_audio_folder
from soundseek.index import HashEmbedder, Searcher, build_index
from soundseek.index import cli as index_cli
from soundseek.index.cli import add_index_parser, add_search_parser
from soundseek.index.check import check_index
from soundseek.index.integrity import IndexDamagedError

QUERIES = ["low tone", "high tone", "tone"]


def EMB():
    return HashEmbedder(dim=512)  # 12 items x 2 KiB: 8 KiB of garbage lands inside the vectors


def _garble(p: Path, byte: int | None = None) -> None:
    """Overwrite 8 KiB inside the file (past its header, before its tail), size unchanged."""
    size = p.stat().st_size
    assert size > 8192 + 2048, size
    data = np.random.default_rng(0).bytes(8192) if byte is None else bytes([byte]) * 8192
    with open(p, "r+b") as f:
        f.seek(1024)
        f.write(data)
    assert p.stat().st_size == size


@pytest.fixture()
def built(tmp_path):
    root = tmp_path / "sounds"
    make_audio_folder(root, n=12, bad=False)
    idx = tmp_path / "idx"
    build_index(root, EMB(), idx, progress=False)
    s = Searcher(idx, EMB())
    ref = s.search_batch(QUERIES, k=12)
    s.store.close()
    return root, idx, ref


def _parser():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    add_index_parser(sub)
    add_search_parser(sub)
    return p


def _cli(argv, capsys):
    args = _parser().parse_args(argv)
    rc = getattr(index_cli, f"run_{args.command}")(args, lambda model: EMB())
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return rc, out


def _same(hits_a, hits_b):
    for a, b in zip(hits_a, hits_b):
        assert [h["id"] for h in a] == [h["id"] for h in b]
        assert [h["score"] for h in a] == pytest.approx([h["score"] for h in b], abs=1e-5)
        assert all(abs(h["score"]) <= 1.0 + 1e-4 for h in a)


def _one_line_error(err: str, name: str, rebuild: bool = True) -> None:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0] and "damaged" in lines[0], err
    if rebuild:
        assert "--rebuild" in lines[0]


def _search_and_index_fail(root, idx, capsys, damaged: str):
    """``search`` and a normal ``index`` run both exit 2 with one line naming ``damaged``;
    returns the ``index`` run's captured output."""
    for args in (["search", str(idx), "tone"], ["index", str(root), "--index", str(idx), "--no-progress"]):
        rc, out = _cli(args, capsys)
        assert rc == 2
        _one_line_error(out.err, damaged)
    return out


def test_garbage_inside_vectors_is_detected_and_rebuilt_from_sqlite(built, capsys):
    root, idx, ref = built
    _garble(idx / "vectors.faiss")
    rc, out = _cli(["index", "--index", str(idx), "--check"], capsys)
    assert rc == 1 and "vectors.faiss: DAMAGED: checksum mismatch" in out.out
    s = Searcher(idx, EMB())  # verified repair on open
    _same(s.search_batch(QUERIES, k=12), ref)
    rc, out = _cli(["index", "--index", str(idx), "--check"], capsys)
    assert rc == 0 and "vectors.faiss: ok (checksum verified)" in out.out


def test_damaged_vectors_are_repaired_by_an_index_rerun(built, capsys):
    root, idx, ref = built
    _garble(idx / "vectors.faiss", byte=0x7E)  # 0x7e7e7e7e = 8.4e37 as float32
    rc, _ = _cli(["index", str(root), "--index", str(idx), "--no-progress"], capsys)
    assert rc == 0
    _same(Searcher(idx, EMB()).search_batch(QUERIES, k=12), ref)
    assert all(not s.startswith("DAMAGED") for _, s in check_index(idx))


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "not-a-manifest"])
def test_damaged_manifest_gives_one_line_error_and_rebuild_repairs(built, capsys, damage):
    root, idx, ref = built
    m = idx / "manifest.json"
    text = m.read_text()
    m.write_text({"empty": "", "truncated": text[: len(text) // 2], "garbage": "\x00\x01garbage",
                  "not-a-manifest": "[1, 2]"}[damage])
    with pytest.raises(IndexDamagedError, match="manifest.json is damaged"):
        Searcher(idx, EMB())
    out = _search_and_index_fail(root, idx, capsys, "manifest.json")
    rc, out = _cli(["index", "--index", str(idx), "--check"], capsys)
    assert rc == 1 and "manifest.json: DAMAGED" in out.out
    rc, out = _cli(["index", str(root), "--index", str(idx), "--no-progress", "--rebuild"], capsys)
    assert rc == 0
    _same(Searcher(idx, EMB()).search_batch(QUERIES, k=12), ref)


@pytest.mark.parametrize("garbage", ["", "{", "\x00" * 64, "[]", '{"generation": "x", "checksums": 3}'])
def test_damaged_backend_state_is_a_silent_verified_repair(built, capsys, garbage):
    root, idx, ref = built
    (idx / "backend_state.json").write_text(garbage)
    _same(Searcher(idx, EMB()).search_batch(QUERIES, k=12), ref)
    state = json.loads((idx / "backend_state.json").read_text())  # rewritten whole
    assert state["count"] == 12 and set(state["checksums"]) == {"vectors.faiss", "vectors.faiss.meta.json"}
    (idx / "backend_state.json").write_text(garbage)
    rc, out = _cli(["search", str(idx), "tone", "--json"], capsys)
    assert rc == 0 and len(json.loads(out.out.splitlines()[0])["hits"]) == 10


@pytest.mark.parametrize("keep", [0.5, 0.9, 100])
def test_truncated_sqlite_gives_one_line_errors_and_rebuild_repairs(built, capsys, keep):
    root, idx, ref = built
    db = idx / "index.sqlite"
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        (idx / extra).unlink(missing_ok=True)
    data = db.read_bytes()
    db.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:keep])
    with pytest.raises(IndexDamagedError, match="index.sqlite is damaged"):
        Searcher(idx, EMB())
    out = _search_and_index_fail(root, idx, capsys, "index.sqlite")
    assert f"soundseek index '{root.absolute()}' --index '{idx}' --rebuild" in out.err
    rc, out = _cli(["index", "--index", str(idx), "--check"], capsys)
    assert rc == 1 and "index.sqlite: DAMAGED" in out.out
    rc, out = _cli(["index", str(root), "--index", str(idx), "--no-progress", "--rebuild"], capsys)
    assert rc == 0
    _same(Searcher(idx, EMB()).search_batch(QUERIES, k=12), ref)


def test_check_on_a_healthy_index(built, capsys):
    _, idx, _ = built
    rc, out = _cli(["index", "--index", str(idx), "--check"], capsys)
    lines = out.out.splitlines()
    assert rc == 0 and "index ok" in out.err
    assert "index.sqlite: ok (12 files, 0 windows)" in lines and "vectors.faiss: ok (checksum verified)" in lines
    rc, out = _cli(["index", "--index", str(Path(idx).parent / "nothing"), "--check"], capsys)
    assert rc == 1 and "no index" in out.out


def test_service_answers_503_without_traceback_when_sqlite_breaks_while_serving(built, caplog):
    pytest.importorskip("fastapi")
    import logging
    import sqlite3

    from fastapi.testclient import TestClient

    from soundseek.service.app import create_app

    _, idx, _ = built
    app = create_app(idx, EMB())
    c = TestClient(app, raise_server_exceptions=False)
    assert c.get("/api/clips/1").status_code == 200

    def broken(ids):
        raise sqlite3.DatabaseError("database disk image is malformed")

    app.state.searcher.store.items = broken
    with caplog.at_level(logging.WARNING):
        r = c.get("/api/clips/1")
    assert r.status_code == 503 and r.json()["error"] == "service_unavailable"
    assert not any(x.exc_info for x in caplog.records)
    assert any("index.sqlite is damaged" in x.getMessage() for x in caplog.records)

"""The quiet, fast search CLI and the Python API: only soundseek's logger configured, -q/-v,
a summary line always, ``search --server`` answering through a running service without
loading torch or the model, ``soundseek.Index``, and missing extras naming the extra."""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import soundseek
from index_helpers import make_audio_folder, write_manifest
from soundseek.cli import main as cli_main
from soundseek.extras import MissingExtraError, require
from soundseek.index import HashEmbedder, build_index
from soundseek.index import cli as index_cli

REPO = Path(__file__).resolve().parents[1]
ENV = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}


@pytest.fixture(scope="module")
def idx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    root = tmp / "sounds"
    freqs = make_audio_folder(root, n=6, bad=False)
    build_index(write_manifest(root, freqs), HashEmbedder(), tmp / "idx", progress=False)
    return tmp / "idx", root


def _run(args, capsys):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    index_cli.add_index_parser(sub)
    index_cli.add_search_parser(sub)
    a = parser.parse_args(args)
    rc = a.run(a, lambda model: HashEmbedder())
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def restore_logging():
    """configure_logging changes process-wide state: put the soundseek logger back after."""
    log = logging.getLogger("soundseek")
    saved = (list(log.handlers), log.level, log.propagate)
    yield
    log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]


def test_only_the_soundseek_logger_is_configured(restore_logging):
    root_handlers = list(logging.getLogger().handlers)
    cli_main.configure_logging()
    cli_main.configure_logging()  # idempotent: one handler
    log = logging.getLogger("soundseek")
    assert sum(isinstance(h, cli_main._StderrHandler) for h in log.handlers) == 1 and log.level == logging.INFO
    assert logging.getLogger().handlers == root_handlers and logging.getLogger("faiss.loader").level == logging.NOTSET
    own = logging.getLogger("soundseek.access")  # a logger with its own handler prints once, there
    mine = next(h for h in log.handlers if isinstance(h, cli_main._StderrHandler))
    rec = lambda name: logging.LogRecord(name, logging.WARNING, __file__, 1, "x", None, None)  # noqa: E731
    had = list(own.handlers)
    own.handlers[:] = [logging.NullHandler()]
    try:
        assert not mine.filter(rec("soundseek.access")) and mine.filter(rec("soundseek.index"))
    finally:
        own.handlers[:] = had
    cli_main.configure_logging(quiet=True)
    assert log.level == logging.WARNING
    cli_main.configure_logging(verbose=True)
    assert log.level == logging.DEBUG
    # faiss' loader logs INFO lines at import; with only our logger configured none reach stderr
    code = ("from soundseek.cli.main import configure_logging; configure_logging(); import faiss; "
            "import logging; logging.getLogger('soundseek.x').info('visible')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0 and r.stderr.strip() == "visible", r.stderr


def test_summary_line_always(idx, capsys, tmp_path):
    _, root = idx
    rc, out, err = _run(["index", str(root), "--index", str(tmp_path / "i"), "--no-progress"], capsys)
    assert rc == 0 and "items (+6 new" in err and "indexing" not in err


def test_index_window_flags(idx, capsys, tmp_path):
    _, root = idx
    rc, _, err = _run(["index", str(root), "--index", str(tmp_path / "w"), "--no-progress", "--window", "0.3",
                       "--hop", "0.1"], capsys)
    assert rc == 0, err
    s = soundseek.Index.open(tmp_path / "w", embedder=HashEmbedder())
    assert len(s.searcher) > len(s) == 6  # the 0.4-0.65 s files got windows
    hit = s.search(root / "low" / "tone_05.ogg", k=1)[0]
    assert hit["path"] == "low/tone_05.ogg"
    rc, _, err = _run(["index", str(root), "--index", str(tmp_path / "w2"), "--window", "0.3", "--hop", "0.5"], capsys)
    assert rc == 2 and "hop" in err


@pytest.fixture(scope="module")
def server(idx):
    pytest.importorskip("uvicorn")
    from server_helpers import running_server
    from soundseek.service.app import create_app

    with running_server(create_app(idx[0], HashEmbedder())) as url:
        yield url


def test_search_through_a_running_server(idx, server, capsys):
    index_dir, root = idx
    rc, out, _ = _run(["search", str(index_dir), "low tone", "-k", "3", "--json"], capsys)
    local = json.loads(out)["hits"]
    rc, out, err = _run(["search", "-", "low tone", "-k", "3", "--json", "--server", server], capsys)
    assert rc == 0, err
    remote = json.loads(out)["hits"]
    assert [h["id"] for h in remote] == [h["id"] for h in local] and {"start", "end", "why"} <= set(remote[0])
    rc, out, _ = _run(["search", "-", "--audio", str(root / "low" / "tone_00.wav"), "-k", "2", "--server", server],
                      capsys)
    assert rc == 0 and "low/tone_00.wav" in out.splitlines()[1]
    rc, _, err = _run(["search", "-", "x", "--mode", "text", "-k", "0", "--server", server], capsys)
    assert rc == 2 and "server answered 400" in err and "k must be" in err
    rc, _, err = _run(["search", "-", "x", "--server", "http://127.0.0.1:9"], capsys)
    assert rc == 2 and "cannot reach" in err
    # the whole command in a fresh process: neither torch nor faiss is imported
    code = ("import sys; from soundseek.cli.main import main; rc = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules and 'faiss' not in sys.modules, 'heavy import'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, "search", "-", "high tone", "--server", server], capture_output=True,
                       text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# high tone") and r.stderr == ""


def test_python_index_api(idx):
    index_dir, root = idx
    ix = soundseek.Index.open(index_dir, embedder=HashEmbedder())
    assert len(ix) == 6 and "6 items" in repr(ix)
    hits = ix.search("low tone", k=3)
    assert len(hits) == 3 and hits[0]["why"]["matched"]
    assert ix.search("low tone", k=3, mode="semantic")[0]["why"]["matched"] == []
    assert ix.search(root / "low" / "tone_00.wav", k=1)[0]["path"] == "low/tone_00.wav"
    assert ix.search(str(root / "low" / "tone_00.wav"), k=1)[0]["path"] == "low/tone_00.wav"
    assert hits[0]["id"] not in [h["id"] for h in ix.similar(hits[0]["id"], k=3)]
    with pytest.raises(KeyError):
        ix.similar(10**9)
    with pytest.raises(TypeError, match="str, Path or numpy"):
        ix.search(3)
    with pytest.raises(FileNotFoundError, match="Index.build"):
        soundseek.Index.open(root)
    r = subprocess.run([sys.executable, "-c", "import sys, soundseek; assert 'numpy' not in sys.modules"],
                       env=ENV, timeout=60)
    assert r.returncode == 0  # ``import soundseek`` stays light


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fails as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'soundseek\[serve\]'"):
        require("fastapi")
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(MissingExtraError, match=r"soundseek\[milvus\]"):
        require("pymilvus")
    with pytest.raises(ImportError):
        require("surely_not_a_module_name")

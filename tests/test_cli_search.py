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
    rc = getattr(index_cli, f"run_{a.command}")(a, lambda model: HashEmbedder())
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
    local_line = json.loads(out)
    local = local_line["hits"]
    rc, out, err = _run(["search", "-", "low tone", "-k", "3", "--json", "--server", server], capsys)
    assert rc == 0, err
    remote_line = json.loads(out)
    remote = remote_line["hits"]
    assert [h["id"] for h in remote] == [h["id"] for h in local] and {"start", "end", "why"} <= set(remote[0])
    # the same keys locally and through --server (the server's base64 peaks were extra)
    assert set(remote_line) == set(local_line) == {"query", "hits", "total", "message"}
    assert [set(h) for h in remote] == [set(h) for h in local]
    assert remote_line["total"] == local_line["total"] == 6
    rc, out, _ = _run(["search", "-", "--audio", str(root / "low" / "tone_00.wav"), "-k", "2", "--server", server],
                      capsys)
    first = [ln for ln in out.splitlines() if ln.startswith("   1 ")]
    assert rc == 0 and "low/tone_00.wav" in first[0]
    rc, _, err = _run(["search", "-", "x", "--mode", "text", "-k", "0", "--server", server], capsys)
    assert rc == 2 and "server answered 4" in err and "k" in err
    rc, out, err = _run(["search", "-", "low", "--mode", "text", "--format", "flac", "--json", "--server", server],
                        capsys)
    assert rc == 0, err
    assert {h["format"] for h in json.loads(out)["hits"]} == {"flac"}
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


def test_search_cli_filters_index_option_confidence_and_pages(idx, capsys):
    index_dir, root = idx
    rc, out, err = _run(["search", "--index", str(index_dir), "low tone", "-k", "10", "--json", "--format", "wav",
                         "--max-duration", "0.6"], capsys)
    assert rc == 0, err
    line = json.loads(out)
    assert line["hits"] and all(h["format"] == "wav" and h["duration"] <= 0.6 for h in line["hits"])
    assert line["total"] == len(line["hits"])
    assert all(h["confidence"] in ("strong", "possible", "weak") and h["abs_path"].startswith(str(root))
               for h in line["hits"])
    rc, out, _ = _run(["search", str(index_dir), "low tone", "-k", "2"], capsys)
    assert rc == 0 and "(2 of 6 files)" in out.splitlines()[0]
    rc, out2, _ = _run(["search", str(index_dir), "low tone", "-k", "2", "--offset", "2"], capsys)
    assert [ln.split()[0] for ln in out2.splitlines() if ln.startswith("   ")] == ["3", "4"]
    rc, _, err = _run(["search", str(index_dir), "low tone", "--channels", "0"], capsys)
    assert rc == 2 and "channels" in err


def test_search_cli_one_line_errors_with_the_fix(idx, tmp_path, capsys):
    """`search` on a folder without an index gave no hint; `search IDX "???"` returned 10 hits."""
    index_dir, root = idx
    rc, _, err = _run(["search", str(root), "door"], capsys)
    assert rc == 2 and f"run `soundseek index FOLDER --index {root}` first" in err and len(err.splitlines()) == 1
    rc, _, err = _run(["search", str(index_dir), "???"], capsys)
    assert rc == 2 and "no words" in err
    rc, _, err = _run(["search", str(index_dir), "rain " * 2000], capsys)
    assert rc == 2 and "too long" in err
    f = tmp_path / "existing.wav"
    f.write_bytes(b"x")
    rc, _, err = _run(["index", str(root), "--index", str(f)], capsys)
    assert rc == 2 and "is a file, not an index directory" in err and "Errno" not in err


def test_text_mode_search_loads_no_model(idx, capsys):
    index_dir, _ = idx
    parser = argparse.ArgumentParser()
    index_cli.add_search_parser(parser.add_subparsers(dest="command"))
    a = parser.parse_args(["search", str(index_dir), "low", "--mode", "text"])

    def no_model(model):
        raise AssertionError("a model was loaded for --mode text")

    assert index_cli.run_search(a, no_model) == 0
    assert "low/" in capsys.readouterr().out


def test_main_help_groups_library_commands_first(capsys):
    with pytest.raises(SystemExit):
        cli_main.main(["--help"])
    out = capsys.readouterr().out
    lib, res = out.index("library commands:"), out.index("research commands:")
    assert lib < out.index("  search ") < out.index("  collections ") < res < out.index("  train ")
    with pytest.raises(SystemExit):
        cli_main.main(["search", "--help"])
    out = capsys.readouterr().out
    assert "(default: 10)" in out and "--min-duration" in out and "--index DIR" in out
    assert "Search an index by text" in out
    with pytest.raises(SystemExit):
        cli_main.main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "(default: 8000)" in out and "--index DIR" in out


def test_search_through_a_server_with_tokens(idx, tmp_path, capsys, monkeypatch):
    """`search --server` sent no token, so a server started with --tokens answered every query 401."""
    pytest.importorskip("uvicorn")
    from server_helpers import running_server
    from soundseek.service.app import create_app
    from soundseek.service.auth import TokenFile

    tf = TokenFile(tmp_path / "tokens.json")
    token = tf.add("cli", ["read", "upload"])
    with running_server(create_app(idx[0], HashEmbedder(), tokens=tf.path)) as url:
        monkeypatch.delenv("SOUNDSEEK_TOKEN", raising=False)
        rc, _, err = _run(["search", "-", "low tone", "-k", "2", "--server", url], capsys)
        assert rc == 2 and "401" in err and "SOUNDSEEK_TOKEN" in err
        monkeypatch.setenv("SOUNDSEEK_TOKEN", "ss_wrong")
        rc, _, err = _run(["search", "-", "low tone", "-k", "2", "--server", url], capsys)
        assert rc == 2 and "refused" in err
        monkeypatch.setenv("SOUNDSEEK_TOKEN", token)
        rc, out, err = _run(["search", "-", "low tone", "-k", "2", "--json", "--server", url], capsys)
        assert rc == 0, err
        assert len(json.loads(out)["hits"]) == 2
        rc, out, err = _run(["search", "-", "--audio", str(idx[1] / "low" / "tone_00.wav"), "-k", "1", "--server", url],
                            capsys)
        assert rc == 0 and "low/tone_00.wav" in out, err

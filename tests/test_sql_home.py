"""SQL has one home: the store package (``index/store/``). Every other module of the package
asks the store for its rows; none calls ``.execute``, ``.executemany`` or ``.executescript``
itself, nor opens a database (``sqlite3.connect``). Read from the sources with ``ast`` (nothing
is imported or run)."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "soundseek"
HOME = SRC / "index" / "store"
SQL_CALLS = {"execute", "executemany", "executescript"}


def sql_calls(root: Path, home: Path) -> list[str]:
    """``path:line .name(...)`` of every SQL call in ``root``'s sources outside ``home``."""
    out = []
    for p in sorted(root.rglob("*.py")):
        if home in p.parents:
            continue
        tree = ast.parse(p.read_text(encoding="utf-8"), str(p))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            f = node.func
            opens = f.attr == "connect" and isinstance(f.value, ast.Name) and f.value.id == "sqlite3"
            if f.attr in SQL_CALLS or opens:
                out.append(f"{p.relative_to(root)}:{node.lineno} .{node.func.attr}(...)")
    return out


def test_only_the_store_runs_sql():
    assert HOME.is_dir(), "the store package index/store/ is missing"
    found = sql_calls(SRC, HOME)
    assert not found, "SQL outside index/store/ (move it into the store):\n" + "\n".join(found)


def test_the_checker_sees_sql_calls(tmp_path):
    (tmp_path / "index" / "store").mkdir(parents=True)
    (tmp_path / "index" / "store" / "ok.py").write_text("con.execute('SELECT 1')\n")
    (tmp_path / "a.py").write_text("def f(con):\n    return [con.execute('SELECT 1'), x.y.executemany('', [])]\n")
    (tmp_path / "b.py").write_text("(lambda con: con.executescript(''))(c)\nexecute = 1\n")
    (tmp_path / "c.py").write_text("import sqlite3\ncon = sqlite3.connect(':memory:')\nsock.connect(addr)\n")
    found = sql_calls(tmp_path, tmp_path / "index" / "store")
    assert found == ["a.py:2 .execute(...)", "a.py:2 .executemany(...)", "b.py:1 .executescript(...)",
                     "c.py:2 .connect(...)"]


def con_reads(root: Path) -> list[str]:
    """``path:line`` of every ``<x>.store.con`` read in ``root``'s sources: a connection
    taken from a searcher's store outside the index package."""
    out = []
    for p in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"), str(p))):
            if (isinstance(node, ast.Attribute) and node.attr == "con" and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "store"):
                out.append(f"{p.relative_to(root)}:{node.lineno}")
    return out


def test_the_service_never_holds_the_database_connection():
    found = con_reads(SRC / "service")
    assert not found, "the service reaches into searcher.store.con (ask the Searcher instead):\n" + "\n".join(found)


def test_the_connection_checker_sees_reads(tmp_path):
    (tmp_path / "a.py").write_text("x = ctx.searcher.store.con\ny = store.con\ncon = 1\n")
    assert con_reads(tmp_path) == ["a.py:1"]

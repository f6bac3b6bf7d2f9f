"""Atomic writes (soundseek.fileio): a failed write leaves the old file and no temp file behind."""
from __future__ import annotations

import pytest

from soundseek.fileio import atomic_replace_via, atomic_write_bytes, atomic_write_data, atomic_write_text


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_replace_the_whole_file(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write_text(path, "first")
    atomic_write_data(path, b"second, longer")
    assert path.read_bytes() == b"second, longer"
    atomic_write_bytes(path, lambda f: (f.write(b"x"), f.write(b"y")))
    assert path.read_bytes() == b"xy"
    atomic_replace_via(path, lambda tmp: tmp.write_bytes(b"via a path"))
    assert path.read_text() == "via a path" and _leftovers(path.parent) == []


@pytest.mark.parametrize("how", ["bytes", "via"])
def test_a_failing_writer_keeps_the_old_file(tmp_path, how):
    path = tmp_path / "index.faiss"
    path.write_bytes(b"old")

    def boom_stream(f):
        f.write(b"half")
        raise OSError("disk full")

    def boom_path(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        if how == "bytes":
            atomic_write_bytes(path, boom_stream)
        else:
            atomic_replace_via(path, boom_path)
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_permissions_are_those_of_a_plain_write_or_the_old_file(tmp_path):
    """A temp file is created 0600; the file put in place must not silently become private."""
    import os
    import stat

    plain = tmp_path / "plain.json"
    plain.write_text("x")  # what open() gives under this umask
    atomic = tmp_path / "atomic.json"
    atomic_write_text(atomic, "x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    os.chmod(atomic, 0o640)
    atomic_write_text(atomic, "y")
    assert stat.S_IMODE(atomic.stat().st_mode) == 0o640

"""A folder or file that cannot be read for a while keeps its entries and ids (reported as
unreadable, retried on the next run); only files that are gone are removed."""
from __future__ import annotations

import errno
import os
from pathlib import Path

from index_helpers import make_audio_folder
from soundseek.index import HashEmbedder, build_index
from soundseek.index.store import Store


def _ids(idx: Path) -> dict[str, int]:
    s = Store(idx)
    try:
        return {k: int(r["id"]) for k, r in s.known().items()}
    finally:
        s.close()


def _deny(monkeypatch, target: Path, scandir: bool) -> None:
    """Permission denied on ``target`` as for ``chmod 000`` by a user that is not root."""
    if scandir:
        real = os.scandir

        def fake(path="."):
            if Path(os.fsdecode(path)) == target:
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", fake)
    else:
        real_open = os.open

        def fake_open(path, flags, *a, **k):
            if Path(os.fsdecode(path)) == target:
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real_open(path, flags, *a, **k)

        monkeypatch.setattr(os, "open", fake_open)


def test_unreadable_folder_keeps_its_entries_and_ids(tmp_path, monkeypatch):
    root, idx = tmp_path / "sounds", tmp_path / "idx"
    make_audio_folder(root, n=8, bad=False)
    build_index(root, HashEmbedder(), idx, progress=False)
    before = _ids(idx)
    gone = [k for k in before if k.startswith("high/")][:1]
    (root / gone[0]).unlink()
    with monkeypatch.context() as m:
        _deny(m, root / "low", scandir=True)
        rep = build_index(root, HashEmbedder(), idx, progress=False)
    assert rep.removed == 1  # the deleted file only (was: every file of low/)
    assert any(k == "low/" and "unreadable folder" in why for k, why in rep.skipped)
    assert _ids(idx) == {k: i for k, i in before.items() if k not in gone}
    rep = build_index(root, HashEmbedder(), idx, progress=False)  # readable again: same ids
    assert rep.removed == 0 and rep.added == 0
    assert _ids(idx) == {k: i for k, i in before.items() if k not in gone}


def test_unreadable_file_keeps_its_entry_and_is_retried(tmp_path, monkeypatch):
    root, idx = tmp_path / "sounds", tmp_path / "idx"
    make_audio_folder(root, n=6, bad=False)
    build_index(root, HashEmbedder(), idx, progress=False)
    before = _ids(idx)
    target = root / "low" / "tone_01.flac"
    os.utime(target, ns=(1, 1))  # changed: must be read again
    with monkeypatch.context() as m:
        _deny(m, target, scandir=False)
        rep = build_index(root, HashEmbedder(), idx, progress=False)
    assert rep.removed == 0 and _ids(idx) == before
    assert [(k, why.split(" (")[0]) for k, why in rep.skipped] == [("low/tone_01.flac", "unreadable: no permission")]
    rep = build_index(root, HashEmbedder(), idx, progress=False)  # retried although unchanged since
    assert not rep.skipped and _ids(idx) == before
    assert not Store(idx).problems()

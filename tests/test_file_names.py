"""File names are bytes: a name that is not UTF-8 is indexed, stored losslessly, found and
served; a file that cannot be stored is named and skipped without stopping the run."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from index_helpers import make_audio_folder
from soundseek.index import HashEmbedder, build_index, itemdata
from soundseek.index.store import Store

BAD = os.fsdecode(b"bad\xff\xfe.wav")  # not UTF-8: os.walk gives it with surrogate escapes


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "sounds"
    make_audio_folder(root, n=6, bad=False)
    shutil.copy(root / "low" / "tone_00.wav", root / BAD)
    shutil.copy(root / "low" / "tone_03.wav", root / "zzz_after.wav")  # sorted after the bad name
    return root


def test_a_name_that_is_not_utf8_is_indexed_found_and_served(folder, tmp_path):
    idx = tmp_path / "idx"
    rep = build_index(folder, HashEmbedder(), idx, progress=False)
    assert not rep.skipped and rep.total == 8  # failed before: 'surrogates not allowed', exit 2
    store = Store(idx)
    row = store.known()[BAD]
    assert os.fsencode(Path(store.items([row["id"]])[row["id"]]["path"]).name) == b"bad\xff\xfe.wav"
    store.close()
    rep = build_index(folder, HashEmbedder(), idx, progress=False)
    assert rep.unchanged == 8 and rep.added == 0 and rep.removed == 0  # the stored name matches losslessly
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from soundseek.service.app import create_app

    c = TestClient(create_app(idx, HashEmbedder()))
    hits = c.get("/api/search", params={"q": "bad", "k": 8, "mode": "text"}).json()["hits"]
    hit = next(h for h in hits if h["id"] == row["id"])
    assert hit["path"] == "bad\\xff\\xfe.wav"
    r = c.get(f"/api/clips/{row['id']}/audio")
    assert r.status_code == 200 and r.content == (folder / BAD).read_bytes()
    assert "bad%FF%FE.wav" in r.headers["content-disposition"]
    assert c.get(f"/api/clips/{row['id']}").json()["path"] == "bad\\xff\\xfe.wav"


def test_a_file_that_cannot_be_stored_is_named_and_skipped(folder, tmp_path, monkeypatch):
    real = itemdata.attach

    def attach(con, item_id, gen, data):
        if any("02" in t for t in data.text or ()):
            raise ValueError("simulated failure")
        return real(con, item_id, gen, data)

    monkeypatch.setattr(itemdata, "attach", attach)
    idx = tmp_path / "idx"
    rep = build_index(folder, HashEmbedder(), idx, progress=False, batch_size=4)
    assert rep.total == 7 and [k for k, _ in rep.skipped] == ["low/tone_02.ogg"]
    assert "simulated failure" in rep.skipped[0][1]
    assert "low/tone_02.ogg" in (idx / "index.log").read_text()
    assert "zzz_after.wav" in Store(idx).known()

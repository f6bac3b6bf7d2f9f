"""An index built by an earlier computation of the same model's audio encoder is detected by its
fingerprint and rebuilt on the next indexing run, with a message saying why."""
from __future__ import annotations

import json
import logging

import pytest

from index_helpers import make_audio_folder
from soundseek.index import Searcher, build_index
from soundseek.index.manifest import MANIFEST, IndexMismatchError, outdated_encoder


@pytest.fixture(scope="module")
def pipe():
    from soundseek.pipeline import Pipeline

    return Pipeline.default()


def _set_fingerprint(index_dir, fp):
    p = index_dir / MANIFEST
    man = json.loads(p.read_text())
    man["fingerprint"] = fp
    p.write_text(json.dumps(man))


def test_index_from_earlier_encoder_computation_is_rebuilt(pipe, tmp_path, caplog):
    src = tmp_path / "sounds"
    make_audio_folder(src, n=4, bad=False)
    idx = tmp_path / "index"
    first = build_index(src, pipe, idx, progress=False)
    assert first.added == 4
    old = [pipe.fingerprint(c) for c in pipe.audio_encoder.previous_configs()]
    assert old and pipe.fingerprint() not in old  # the version is part of the fingerprint
    _set_fingerprint(idx, old[0])  # as written before the encoder's batched computation was exact

    with pytest.raises(IndexMismatchError, match="must be rebuilt.*earlier computation.*soundseek index"):
        Searcher(idx, pipe)
    # the CLI may have configured the ``soundseek`` logger not to propagate: listen on it directly
    log = logging.getLogger("soundseek.index.indexer")
    caplog.set_level(logging.WARNING, logger=log.name)
    log.addHandler(caplog.handler)
    try:
        again = build_index(src, pipe, idx, progress=False)
    finally:
        log.removeHandler(caplog.handler)
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "Rebuilding the index" in msg and "earlier computation of the AisfxEncoder encoder" in msg
    assert "no longer depends on the other clips" in msg
    assert again.added == 4 and again.unchanged == 0  # every vector recomputed
    assert json.loads((idx / MANIFEST).read_text())["fingerprint"] == pipe.fingerprint()
    assert len(Searcher(idx, pipe).search_text("a tone", k=2)) == 2


def test_other_model_is_still_an_error_not_a_silent_rebuild(pipe, tmp_path):
    src = tmp_path / "sounds"
    make_audio_folder(src, n=2, bad=False)
    idx = tmp_path / "index"
    build_index(src, pipe, idx, progress=False)
    _set_fingerprint(idx, "0123456789abcdef0123")  # some other model
    assert outdated_encoder(json.loads((idx / MANIFEST).read_text()), pipe) is None
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        build_index(src, pipe, idx, progress=False)

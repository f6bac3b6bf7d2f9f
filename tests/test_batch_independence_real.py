"""Every clip of real-sfx-dev gets the same vector from the shipped default model alone and inside
shuffled batches of mixed lengths (as the indexer embeds them), and query-by-example with a
clip of the index returns that very clip first with score >= 0.999."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

TOL = 1e-5


class _Recorder:
    """Delegates to an embedder and keeps the audio embeddings it returns (query vectors)."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.audio: list[np.ndarray] = []

    def embed_audio(self, waves):
        emb, frames = self._inner.embed_audio(waves)
        self.audio.extend(np.asarray(emb, np.float32))
        return emb, frames

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.mark.slow
def test_real_sfx_alone_equals_batched_and_every_clip_finds_itself(real_sfx, tmp_path):
    from soundseek.index import Searcher, build_index
    from soundseek.index.indexer import load_wave
    from soundseek.index.store import Store
    from soundseek.pipeline import Pipeline

    pipe = Pipeline.default()
    rows = [json.loads(line) for line in (real_sfx / "manifest.jsonl").read_text().splitlines() if line.strip()]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(rows))
    # a shuffled manifest: the indexer embeds it in batches of mixed lengths, in this order
    shuffled = [{**rows[i], "audio": str(real_sfx / rows[i]["audio"])} for i in order]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in shuffled) + "\n")
    rep = build_index(tmp_path / "manifest.jsonl", pipe, tmp_path / "index", batch_size=8, progress=False)
    assert rep.added == len(rows) and not rep.skipped

    store = Store(tmp_path / "index")
    vectors = {int(i): e for ids, emb, _ in store.iter_vectors() for i, e in zip(ids, emb)}
    stored = {Path(item["path"]).resolve(): vectors[item_id] for item_id, item in store.items(list(vectors)).items()}
    store.close()
    assert len(stored) == len(rows)

    queries = set(rng.choice(len(rows), size=100, replace=False).tolist())
    rec = _Recorder(pipe)
    searcher = Searcher(tmp_path / "index", rec)
    worst, misses = 0.0, []
    for i, r in enumerate(rows):
        path = (real_sfx / r["audio"]).resolve()
        if i in queries:  # query by example, as `soundseek search --audio` does: embedded alone
            hits = searcher.search_audio(path, k=3)
            alone = rec.audio[-1]
            top = hits[0]
            if Path(top["path"]).resolve() != path or top["score"] < 0.999:
                misses.append((r["audio"], top["path"], round(top["score"], 4)))
        else:
            alone = pipe.embed_audio([load_wave(path, pipe.sample_rate)[0]])[0][0]
        d = float(np.abs(stored[path] - alone).max())
        worst = max(worst, d)
        assert d <= TOL, f"{r['audio']}: alone vs batched max |diff| {d:.3g}"
    assert not misses, misses
    assert len(rec.audio) == 100

"""DCASE retrieval submission files: layout, order, quoting, atomic writes, bad inputs."""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from soundseek.metrics.submission import submission_csv, submission_header, top_k, write_submission


def _read(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_header_is_the_task_baselines():
    assert submission_header() == ["caption"] + [f"file_name_{i}" for i in range(1, 11)]


def test_top_k_is_a_stable_descending_argsort():
    g = np.random.default_rng(0)
    s = g.integers(0, 4, size=(7, 15)).astype(float)  # many ties
    idx = top_k(s, 10)
    for i in range(7):
        expected = sorted(range(15), key=lambda j: (-s[i, j], j))[:10]  # slow obvious reference
        assert idx[i].tolist() == expected


def test_hostile_captions_survive_the_csv_round_trip_and_pandas_reads_them_back():
    captions = ['a dog, then a cat', 'she said "stop"', "two\nlines", "  spaces  ", "ünïcødé ☃", "=cmd|' /C calc'!A0"]
    names = [f"clip {j}, take \"{j}\".wav" for j in range(12)]
    s = np.random.default_rng(1).standard_normal((len(captions), len(names)))
    rows = _read(submission_csv(captions, names, s))
    assert rows[0] == submission_header()
    assert [r[0] for r in rows[1:]] == captions
    for i, r in enumerate(rows[1:]):
        assert r[1:] == [names[j] for j in np.argsort(-s[i], kind="stable")[:10]]
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(io.StringIO(submission_csv(captions, names, s)), keep_default_na=False)
    assert list(df.columns) == submission_header() and df["caption"].tolist() == captions


def test_write_is_atomic_and_keeps_the_old_file_on_error(tmp_path, monkeypatch):
    out = tmp_path / "sub.csv"
    s = np.eye(3, 11)
    write_submission(out, ["a", "b", "c"], [f"{j}.wav" for j in range(11)], s)
    before = out.read_text()
    assert _read(before)[1][1] == "0.wav"
    import soundseek.fileio as fileio

    def boom(path):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "fsync", boom)
    with pytest.raises(OSError):
        write_submission(out, ["x", "y", "z"], [f"{j}.wav" for j in range(11)], s)
    assert out.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["sub.csv"]


@pytest.mark.parametrize("captions,names,scores,msg", [
    (["a"], [f"{j}" for j in range(5)], np.zeros((1, 5)), "only 5 clips"),
    (["a", "b"], [f"{j}" for j in range(10)], np.zeros((1, 10)), "2 captions"),
    (["a"], [f"{j}" for j in range(11)], np.zeros((1, 10)), "11 clip names"),
    (["a"], [f"{j}" for j in range(10)], np.full((1, 10), np.nan), "finite"),
    (["a"], [f"{j}" for j in range(10)], np.zeros(10), "matrix"),
    (["a"], ["x\ny"] + [f"{j}" for j in range(9)], np.zeros((1, 10)), "one CSV field"),
    (["a"], [""] + [f"{j}" for j in range(9)], np.zeros((1, 10)), "one CSV field"),
])
def test_bad_inputs_are_refused(captions, names, scores, msg):
    with pytest.raises(ValueError, match=msg):
        submission_csv(captions, names, scores)


def test_eval_submission_on_a_toy_corpus_matches_a_direct_argsort(tmp_path, monkeypatch):
    """`soundseek eval CKPT --submission FILE`: file names and order are those of an argsort of
    the model's score matrix on the split; captions with commas and quotes come back intact."""
    from test_train import toy_config, toy_prepared

    import soundseek.train.data as train_data
    from soundseek.cli import evaluate as cli_eval
    from soundseek.train.evaluate import score_view
    from soundseek.train.loop import Trainer, load_run

    data = toy_prepared()
    view = data.view("test")
    view.captions[0] = 'a door slams, then "bang"'
    view.captions[1] = "rain\non a roof"
    Trainer(toy_config(tmp_path), data).fit()
    monkeypatch.setattr(train_data, "prepare", lambda cfg, progress=True, towers=None: data)
    out = tmp_path / "sub" / "test.csv"
    p = argparse.ArgumentParser()
    cli_eval.add_arguments(p)
    args = p.parse_args([str(tmp_path / "run" / "best.pt"), "--split", "test", "--submission", str(out), "--json"])
    assert cli_eval.run(args) == 0
    rows = list(csv.reader(out.open(newline="", encoding="utf-8")))
    assert rows[0] == submission_header()
    assert len(rows) == 1 + view.n_captions
    model, _, _ = load_run(tmp_path / "run" / "best.pt")
    scores = score_view(model, data, view).numpy()
    for i, r in enumerate(rows[1:]):
        assert r[0] == view.captions[i]
        assert r[1:] == [view.clips[j].audio.name for j in np.argsort(-scores[i], kind="stable")[:10]]
    # the first listed clip of a caption is its top-1: R@1 from the file equals the metric's
    from soundseek import metrics

    hits = np.mean([r[1] == view.clips[view.caption_audio[i]].audio.name for i, r in enumerate(rows[1:])])
    assert hits == pytest.approx(metrics.t2a(torch.as_tensor(scores), view.caption_audio)["R1"])


def test_clips_sharing_a_file_name_are_listed_by_their_ids():
    from soundseek.cli.evaluate import submission_names
    from soundseek.data.types import Clip

    a = [Clip(id="x/a.wav", audio=Path("/d/x/a.wav"), captions=[]), Clip(id="y/b.wav", audio=Path("/d/y/b.wav"), captions=[])]
    assert submission_names(a) == ["a.wav", "b.wav"]
    b = a + [Clip(id="z/a.wav", audio=Path("/d/z/a.wav"), captions=[])]
    assert submission_names(b) == ["x/a.wav", "y/b.wav", "z/a.wav"]

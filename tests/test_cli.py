"""End to end through the `soundseek` command with the real offline encoders (aisfx + MiniLM)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from soundseek.cli.main import main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("demo", "train", "eval", "distill", "features", "data", "experiment", "analyze", "index", "search", "serve", "prepare"):
        assert cmd in out


def test_bad_config_key_is_a_clear_error(capsys):
    code = main(["features", "--set", "train.epoch=3"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Unknown key 'train.epoch'" in err and "epochs" in err


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    wd = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--workdir", str(wd), "--set", "data.synthetic_clips=48", "--set", "train.epochs=2",
                 "--set", "train.progress=false", "--set", "train.batch_size=16", "--query", "a low hum"])
    assert code == 0
    return wd


def test_demo_runs_end_to_end(tiny_demo, capsys):
    assert (tiny_demo / "run" / "best.pt").is_file()
    assert (tiny_demo / "run" / "metrics.jsonl").read_text().count("\n") == 2


def test_demo_serve_indexes_the_corpus_and_serves_it(tiny_demo, monkeypatch, capsys):
    import soundseek.service.app as app

    served = {}
    monkeypatch.setattr(app, "serve", lambda index_dir, embedder, host, port: served.update(index=index_dir, port=port))
    code = main(["demo", "--workdir", str(tiny_demo), "--set", "data.synthetic_clips=48", "--set", "train.epochs=2",
                 "--set", "train.progress=false", "--set", "train.batch_size=16", "--serve", "--port", "8123"])
    assert code == 0 and served["port"] == 8123
    from soundseek.index import Searcher
    from soundseek.pipeline import Pipeline

    hits = Searcher(served["index"], Pipeline.from_checkpoint(tiny_demo / "run" / "best.pt")).search_text("a low hum", k=3)
    assert len(hits) == 3 and all(h["captions"] for h in hits)


def test_eval_json_and_resume_is_a_no_op(tiny_demo, capsys):
    ckpt = tiny_demo / "run" / "best.pt"
    assert main(["eval", str(ckpt), "--json", "--random", "--sk"]) == 0
    out = json.loads(capsys.readouterr().out)
    for d in ("t2a", "a2t", "a2t_sk"):
        assert set(out[d]) == {"R1", "R5", "R10", "R50", "mAP10", "medR", "meanR"}
        assert 0.0 <= out[d]["R1"] <= out[d]["R10"] <= 1.0
    assert "random" in out and "sk_bias" not in out
    bias = tiny_demo / "bias.npy"
    assert main(["eval", str(ckpt), "--json", "--sk", "--export-bias", str(bias)]) == 0
    out = json.loads(capsys.readouterr().out)
    b = np.load(bias)
    assert b.shape == (out["n_captions"],) and np.isfinite(b).all() and abs(b.mean()) < 1e-3 * out["sk_tau"] + 1e-6
    assert main(["eval", str(ckpt), "--export-bias", str(bias)]) == 2  # needs --sk


def test_eval_multi_positive_relevance(tiny_demo, tmp_path, capsys):
    import csv

    from soundseek.train.data import prepare
    from soundseek.train.evaluate import relevance_table
    from soundseek.train.loop import load_run

    _, cfg, _ = load_run(tiny_demo / "run" / "best.pt")
    view = prepare(cfg, progress=False).view("test")
    table = tmp_path / "rel.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["caption", "clip"])
        w.writerow([view.captions[0], view.clips[-1].id])  # one extra relevant clip for caption 0
    rel = relevance_table(view, str(table))
    assert rel.sum() == view.n_captions + (view.caption_audio[0] != view.n_clips - 1)
    assert rel[0, view.n_clips - 1] and rel[np.arange(view.n_captions), view.caption_audio].all()
    assert main(["eval", str(tiny_demo / "run" / "best.pt"), "--json", "--relevance", str(table)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0.0 <= out["t2a_mAP16"] <= 1.0
    (tmp_path / "bad.csv").write_text("query,file\na,b\n")
    with pytest.raises(ValueError, match="caption,clip"):
        relevance_table(view, str(tmp_path / "bad.csv"))


def test_corrupt_clip_is_left_out_not_fatal(tmp_path, capsys):
    audio = tmp_path / "audio"
    audio.mkdir()
    rows = []
    g = np.random.default_rng(0)
    for i in range(24):
        sf.write(audio / f"tone{i}.wav", 0.3 * np.sin(np.arange(8000) * (0.02 + 0.01 * (i % 6))) + 0.01 * g.standard_normal(8000), 16000)
        rows.append({"audio": f"audio/tone{i}.wav", "captions": [f"tone number {i % 6}"], "split": ["train", "val", "test"][i % 3]})
    (audio / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    rows.append({"audio": "audio/broken.wav", "captions": ["broken"], "split": "train"})
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code = main(["data", "check", str(tmp_path / "m.jsonl"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 1 and "broken.wav" in out
    code = main(["features", "--set", f"data.path={tmp_path / 'm.jsonl'}", "--set", f"data.cache_dir={tmp_path / 'c'}"])
    out = capsys.readouterr().out
    assert code == 0 and "(1 failed)" in out and "broken.wav" in out
    assert "train: 8 clips" in out


def test_analyze_captions_writes_report_and_plot(tmp_path, capsys):
    a = tmp_path / "a.txt"
    b = tmp_path / "b.txt"
    a.write_text("a dog barks twice in the distance\nrain falls on a tin roof\nthe wind howls through trees\n")
    b.write_text("dog\nrain\nwind\n")
    code = main(["analyze", "captions", str(a), str(b), "--out", str(tmp_path / "lex"), "--labels", "long", "short"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sets"]["long"]["vocabulary_size"] > report["sets"]["short"]["vocabulary_size"] == 3
    assert (tmp_path / "lex" / "lexical.png").stat().st_size > 10_000


@pytest.mark.parametrize("model", ["demo", "default"])
def test_eval_zero_shot_on_esc50_layout(tiny_demo, tmp_path, capsys, model):
    root = tmp_path / "ESC-50"
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    g = np.random.default_rng(1)
    sr = 22050
    for i in range(8):
        cat = ["low_hum", "noise_burst"][i % 2]
        t = np.arange(sr) / sr
        x = 0.4 * np.sin(2 * np.pi * 110 * t) if i % 2 == 0 else 0.4 * g.standard_normal(sr)
        name = f"{1 + i % 2}-{100 + i}-A-{i % 2}.wav"
        sf.write(root / "audio" / name, x.astype(np.float32), sr)
        rows.append(f"{name},{1 + i // 4},{i % 2},{cat},False,{100 + i},A")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    spec = "default" if model == "default" else str(tiny_demo / "run" / "best.pt")  # `eval default` as `search --model default`
    code = main(["eval", spec, "--zeroshot", "--json",
                 "--set", f"data.path={root}", "--set", "data.format=esc50", "--set", f"data.cache_dir={tmp_path / 'c'}"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert 0.0 <= out["top1"] <= 1.0 and 0.5 <= out["mAP"] <= 1.0  # 2 classes: reciprocal rank >= 1/2
    assert len(out["per_fold"]) == 2


def test_distill_writes_the_teachers_mean_logits(tiny_demo, tmp_path, capsys):
    import torch

    from soundseek.models import load
    from soundseek.train.data import prepare
    from soundseek.train.distill import Targets, caption_keys
    from soundseek.train.evaluate import score_view

    ckpt = str(tiny_demo / "run" / "best.pt")
    out = tmp_path / "teachers.pt"
    assert main(["distill", ckpt, ckpt, "--out", str(out)]) == 0
    assert "2 teacher(s)" in capsys.readouterr().out
    obj = torch.load(out, weights_only=True)
    model = load(ckpt)
    data = prepare(model.cfg, progress=False, towers=(model.audio_encoder, model.text_encoder))
    view = data.view("train")
    ref = score_view(model, data, view) * model.logit_scale()  # two equal teachers: their mean is one
    torch.testing.assert_close(obj["logits"], ref.float(), rtol=1e-5, atol=1e-4)
    assert [tuple(k) for k in obj["captions"]] == caption_keys(view)
    t = Targets(out, view)
    rows = np.array([3, 0, 5])
    torch.testing.assert_close(t.block(rows, view.caption_audio[rows]), obj["logits"][rows][:, view.caption_audio[rows]])

"""Ensembles of global scorers as one dual encoder: scores are the mean of the members' cosines
(forward and gradient against a loop over members), checkpoints join into a loadable model, and
members that cannot be joined are refused."""
from __future__ import annotations

import pytest
import torch
from model_helpers import tiny_sets

from soundseek.config import ConfigError, apply_overrides
from soundseek.models import Config, create_model, load_model
from soundseek.models.checkpoint import save_checkpoint
from soundseek.models.ensemble import combine
from soundseek.models.factory import checkpoint_payload
from soundseek.scoring import EnsembleScorer, build_scorer

DA, DT = 6, 5
MEMBERS = [{"scorer": "global", "embed_dim": 4, "options": {"pooling": "meanmax"}},
           {"scorer": "global", "embed_dim": 3, "options": {"pooling": "max", "hidden": 9}},
           {"scorer": "global", "embed_dim": 4, "options": {"pooling": "attention", "text_head": "linear"}}]


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(5, 7, DA, generator=g)
    mask = torch.ones(5, 7, dtype=torch.bool)
    mask[1, 4:] = False
    return frames, mask, torch.randn(4, DT, generator=g)


def test_scores_are_the_mean_of_member_cosines_forward_and_gradient():
    torch.manual_seed(0)
    ens = EnsembleScorer(DA, DT, 11, members=MEMBERS).eval()
    frames, mask, sent = inputs()
    t, a = ens.encode_text(None, None, sent), ens.encode_audio(frames, mask)
    got = ens.score(t, a)
    want = sum(m.score(m.encode_text(None, None, sent), m.encode_audio(frames, mask)) for m in ens.members) / 3
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(ens.score(t, a, chunk=1), got, rtol=0, atol=1e-6)
    torch.testing.assert_close(ens.score_reference(t, a), got, rtol=0, atol=1e-6)
    assert torch.allclose(t["emb"].norm(dim=-1), torch.ones(4)) and torch.allclose(a["emb"].norm(dim=-1), torch.ones(5))
    # gradient of every member parameter equals that of the loop over members
    w = torch.randn(got.shape)
    g1 = torch.autograd.grad((ens.score(ens.encode_text(None, None, sent), ens.encode_audio(frames, mask)) * w).sum(),
                             list(ens.parameters()))
    loop = sum(m.score(m.encode_text(None, None, sent), m.encode_audio(frames, mask)) for m in ens.members) / 3
    g2 = torch.autograd.grad((loop * w).sum(), list(ens.parameters()))
    for x, y in zip(g1, g2):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_bad_members_are_refused_with_clear_errors():
    with pytest.raises(ConfigError, match="at least 2 members"):
        EnsembleScorer(DA, DT, 4, members=MEMBERS[:1])
    with pytest.raises(ConfigError, match="sum of its members' \\(11\\)"):
        EnsembleScorer(DA, DT, 12, members=MEMBERS)
    with pytest.raises(ConfigError, match="only global scorers with cosine similarity"):
        EnsembleScorer(DA, DT, 8, members=[MEMBERS[0], {"scorer": "tap", "embed_dim": 4, "options": {}}])
    with pytest.raises(ConfigError, match="only global scorers with cosine similarity"):
        EnsembleScorer(DA, DT, 8, members=[MEMBERS[0], {"embed_dim": 4, "options": {"similarity": "mahalanobis"}}])
    with pytest.raises(ConfigError, match="Unknown key 'dim' in ensemble member 1"):
        EnsembleScorer(DA, DT, 8, members=[MEMBERS[0], {"dim": 4}])
    with pytest.raises(ConfigError, match="Unknown key ensemble member 0 options.'poolin'"):
        EnsembleScorer(DA, DT, 8, members=[{"embed_dim": 4, "options": {"poolin": "max"}}, MEMBERS[0]])
    with pytest.raises(KeyError, match="Valid: clap, ensemble, global, gpa, tap"):
        EnsembleScorer(DA, DT, 8, members=[MEMBERS[0], {"scorer": "globl", "embed_dim": 4}])
    assert isinstance(build_scorer("ensemble", audio_dim=DA, text_dim=DT, embed_dim=11, members=MEMBERS), EnsembleScorer)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny")


def member_checkpoint(root, path, seed, *sets, tower_seed=0):
    """A member with frozen random towers of ``tower_seed`` and heads of ``seed``."""
    cfg = apply_overrides(Config(), tiny_sets(root) + list(sets))
    torch.manual_seed(tower_seed)
    towers = create_model(cfg)
    torch.manual_seed(seed)
    model = create_model(cfg, towers=(towers.audio_encoder, towers.text_encoder))
    save_checkpoint(path, checkpoint_payload(model))
    return model.eval()


def test_combined_checkpoints_load_as_one_model_that_averages_the_members(tiny_root, tmp_path):
    m1 = member_checkpoint(tiny_root, tmp_path / "a.pt", 1)
    m2 = member_checkpoint(tiny_root, tmp_path / "b.pt", 2, "model.embed_dim=6", "model.options={pooling: max}")
    combine([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "ens.pt")
    ens = load_model(tmp_path / "ens.pt", towers=False)  # random frozen towers are not rebuilt equal: heads
    a, b = load_model(tmp_path / "a.pt", towers=False), load_model(tmp_path / "b.pt", towers=False)
    assert ens.cfg.model.scorer == "ensemble" and ens.scorer.embed_dim == 8 + 6
    g = torch.Generator().manual_seed(3)
    frames, sent = torch.randn(3, 5, m1.scorer.audio_dim, generator=g), torch.randn(4, m1.scorer.text_dim, generator=g)

    def scores(model):
        return model.score(model.encode_text(None, None, sent), model.encode_audio(frames, None))

    with torch.no_grad():
        torch.testing.assert_close(scores(a), scores(m1), rtol=0, atol=1e-6)  # the members came back
        torch.testing.assert_close(scores(ens), (scores(a) + scores(b)) / 2, rtol=0, atol=1e-6)
        assert not torch.allclose(scores(a), scores(b), atol=1e-3)


def test_members_that_do_not_share_frozen_towers_are_refused(tiny_root, tmp_path):
    member_checkpoint(tiny_root, tmp_path / "a.pt", 1)
    member_checkpoint(tiny_root, tmp_path / "w.pt", 2, "encoders.max_tokens=6")
    member_checkpoint(tiny_root, tmp_path / "r.pt", 2, tower_seed=5)  # same recipe, other random weights
    member_checkpoint(tiny_root, tmp_path / "t.pt", 3, "encoders.lock_audio=false")
    member_checkpoint(tiny_root, tmp_path / "g.pt", 4, "model.scorer=tap", "model.options={}")
    with pytest.raises(ConfigError, match="w.pt: its encoders"):
        combine([tmp_path / "a.pt", tmp_path / "w.pt"], tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="encoders \\(recipe or weights\\) differ"):
        combine([tmp_path / "a.pt", tmp_path / "r.pt"], tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="trained towers"):
        combine([tmp_path / "a.pt", tmp_path / "t.pt"], tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="only global scorers"):
        combine([tmp_path / "a.pt", tmp_path / "g.pt"], tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="at least 2"):
        combine([tmp_path / "a.pt"], tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_a_member_taken_out_of_an_ensemble_is_that_member(tiny_root, tmp_path, capsys):
    import math

    from soundseek.cli.main import main
    from soundseek.models.checkpoint import load_checkpoint

    m1 = member_checkpoint(tiny_root, tmp_path / "a.pt", 1)
    m2 = member_checkpoint(tiny_root, tmp_path / "b.pt", 2, "model.embed_dim=6", "model.options={pooling: max}")
    combine([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "ens.pt")
    assert main(["ensemble", str(tmp_path / "ens.pt"), "--member", "1", "--out", str(tmp_path / "m1.pt")]) == 0
    one = load_model(tmp_path / "m1.pt", towers=False)
    ens = load_model(tmp_path / "ens.pt", towers=False)
    assert one.cfg.model.scorer == "global" and one.scorer.embed_dim == 6 and one.cfg.model.options["pooling"] == "max"
    assert load_checkpoint(tmp_path / "m1.pt")["member_of"]["trained_as"] == str(tmp_path / "b.pt")
    g = torch.Generator().manual_seed(4)
    frames, sent = torch.randn(3, 5, m1.scorer.audio_dim, generator=g), torch.randn(4, m1.scorer.text_dim, generator=g)
    with torch.no_grad():
        a_one, a_ens = one.encode_audio(frames, None)["emb"], ens.encode_audio(frames, None)["emb"]
        t_one = one.encode_text(None, None, sent)["emb"]
        torch.testing.assert_close(a_one, a_ens[:, 8:] * math.sqrt(2), rtol=0, atol=1e-6)  # the ensemble's slice
        torch.testing.assert_close(one.score({"emb": t_one}, {"emb": a_one}),
                                   m2.score(m2.encode_text(None, None, sent), m2.encode_audio(frames, None)),
                                   rtol=0, atol=1e-6)  # and the model trained as member 1
    for more, argv, why in (([], ["--member", "2"], "members 0..1, got --member 2"),
                            ([str(tmp_path / "a.pt")], ["--member", "0"], "one ensemble checkpoint, got 2")):
        assert main(["ensemble", str(tmp_path / "ens.pt"), *more, "--out", str(tmp_path / "x.pt"), *argv]) == 2
        assert why in capsys.readouterr().err
    assert main(["ensemble", str(tmp_path / "a.pt"), "--member", "0", "--out", str(tmp_path / "x.pt")]) == 2
    assert "not an ensemble" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_fit_projection_is_the_leading_right_singular_subspace():
    import numpy as np

    from soundseek.models.ensemble import fit_projection

    g = np.random.default_rng(0)
    x = g.standard_normal((60, 9)) @ np.diag([5, 4, 3, 2, 1, 0.5, 0.2, 0.1, 0.05])
    p = fit_projection(torch.tensor(x), 3).double().numpy()
    np.testing.assert_allclose(p @ p.T, np.eye(3), atol=1e-6)  # orthonormal rows
    v = np.linalg.svd(x, full_matrices=False)[2][:3]  # numpy's SVD: the reference
    np.testing.assert_allclose(p.T @ p, v.T @ v, atol=1e-5)  # the same subspace
    with pytest.raises(ValueError, match="width"):
        fit_projection(torch.tensor(x), 10)
    with pytest.raises(ValueError, match="NaN"):
        fit_projection(torch.tensor(np.full((4, 3), np.nan)), 2)


def _projected(tiny_root, tmp_path, width, fit=None):
    from soundseek.models.ensemble import ensemble_payload, fit_projection, project_payload, write

    member_checkpoint(tiny_root, tmp_path / "a.pt", 1)
    member_checkpoint(tiny_root, tmp_path / "b.pt", 2, "model.embed_dim=6")
    payload = ensemble_payload([tmp_path / "a.pt", tmp_path / "b.pt"])
    g = torch.Generator().manual_seed(5)
    vectors = fit if fit is not None else torch.randn(40, 14, generator=g)
    write(project_payload(payload, fit_projection(vectors, width)), tmp_path / f"p{width}.pt")
    combine([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "ens.pt")
    return load_model(tmp_path / f"p{width}.pt", towers=False), load_model(tmp_path / "ens.pt", towers=False)


def test_a_full_width_projection_keeps_every_score_and_a_narrow_one_is_narrow(tiny_root, tmp_path):
    proj, ens = _projected(tiny_root, tmp_path, 14)  # a rotation of the 14-d concatenation
    g = torch.Generator().manual_seed(3)
    frames, sent = torch.randn(3, 5, ens.scorer.audio_dim, generator=g), torch.randn(4, ens.scorer.text_dim, generator=g)

    def scores(model):
        return model.score(model.encode_text(None, None, sent), model.encode_audio(frames, None))

    with torch.no_grad():
        torch.testing.assert_close(scores(proj), scores(ens), rtol=0, atol=1e-5)
        narrow, _ = _projected(tiny_root, tmp_path, 5)
        emb = narrow.encode_audio(frames, None)["emb"]
    assert narrow.scorer.embed_dim == 5 and emb.shape == (3, 5)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))


def test_a_projection_that_does_not_fit_is_refused(tiny_root, tmp_path):
    from soundseek.models.checkpoint import load_checkpoint
    from soundseek.models.ensemble import ensemble_payload, project_payload

    _projected(tiny_root, tmp_path, 4)
    ck = load_checkpoint(tmp_path / "p4.pt")
    ck["model"]["scorer.projection"] = torch.zeros(4, 13)
    save_checkpoint(tmp_path / "bad.pt", ck)
    with pytest.raises(ConfigError, match="scorer.projection is shape"):
        load_model(tmp_path / "bad.pt", towers=False)
    with pytest.raises(ConfigError, match="does not fit this ensemble"):
        project_payload(ensemble_payload([tmp_path / "a.pt", tmp_path / "b.pt"]), torch.zeros(4, 13))
    for bad in (-1, 15, True, 2.5):
        with pytest.raises(ConfigError, match="project must be 0"):
            EnsembleScorer(DA, DT, 11, members=MEMBERS, project=bad)


def test_cli_fits_the_projection_on_the_training_split(tiny_root, tmp_path, capsys):
    import json

    from index_helpers import make_audio_folder

    from soundseek.cli.main import main

    freqs = make_audio_folder(tmp_path / "lib", n=12, bad=False)
    with open(tmp_path / "lib" / "manifest.jsonl", "w") as f:
        for i, key in enumerate(sorted(freqs)):
            f.write(json.dumps({"audio": key, "captions": [f"tone {freqs[key]:.0f}"],
                                "split": "test" if i % 4 == 0 else "train"}) + "\n")
    sets = [f"data.path={tmp_path / 'lib' / 'manifest.jsonl'}", f"data.cache_dir={tmp_path / 'cache'}"]
    member_checkpoint(tiny_root, tmp_path / "a.pt", 1, *sets)
    member_checkpoint(tiny_root, tmp_path / "b.pt", 2, *sets)
    assert main(["ensemble", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", str(tmp_path / "p.pt"),
                 "--project", "6"]) == 0
    out = capsys.readouterr().out
    assert "6-d vectors projected from 16-d (fitted on 18 train clips and captions)" in out
    model = load_model(tmp_path / "p.pt", towers=False)
    assert model.scorer.embed_dim == 6 and model.scorer.projection.abs().sum() > 0

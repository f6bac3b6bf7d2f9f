"""The API as a library browser uses it: pages (offset, total), filters as typed parameters,
unknown parameters refused by name, hits with the keys of a local search, the verdict
message, downloads, the favicon, and collections."""
from __future__ import annotations

import io
import json
import logging
import shutil

import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from index_helpers import make_audio_folder, tone  # noqa: E402
from soundseek.index import HashEmbedder, build_index  # noqa: E402
from soundseek.index.search import Searcher  # noqa: E402
from soundseek.service.app import create_app  # noqa: E402

N = 15


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    root = tmp / "sounds"
    freqs = make_audio_folder(root, n=N, bad=False)
    build_index(root, HashEmbedder(), tmp / "idx", progress=False)
    searcher = Searcher(tmp / "idx", HashEmbedder())
    return TestClient(create_app(searcher)), searcher, root, freqs, tmp


def _json(x):
    return json.loads(json.dumps(x))


def test_hits_have_the_keys_of_a_local_search(env):
    c, searcher, *_ = env
    for mode in ("semantic", "hybrid", "text"):
        local = _json(searcher.search_text("low tone", k=5, mode=mode))
        body = c.get("/api/search", params={"q": "low tone", "k": 5, "mode": mode}).json()
        assert [h["id"] for h in body["hits"]] == [h["id"] for h in local], mode
        for remote, mine in zip(body["hits"], local):
            assert set(remote) == set(mine), (mode, set(remote) ^ set(mine))  # no peaks/audio_url in hits
            assert remote == mine
    assert set(body["peaks"]) <= {str(h["id"]) for h in body["hits"]}  # thumbnails beside the hits


def test_pages_cover_the_ranking_once_with_the_total(env):
    c, searcher, _, freqs, _ = env
    whole = c.get("/api/search", params={"q": "tone", "k": N, "mode": "semantic"}).json()
    assert whole["total"] == len(freqs) == N and whole["offset"] == 0
    got = []
    for offset in range(0, N, 4):
        body = c.get("/api/search", params={"q": "tone", "k": 4, "offset": offset, "mode": "semantic"}).json()
        assert body["offset"] == offset and body["k"] == 4 and body["total"] == N
        got += [h["id"] for h in body["hits"]]
    assert got == [h["id"] for h in whole["hits"]]
    past = c.get("/api/search", params={"q": "tone", "k": 4, "offset": 40}).json()
    assert past["hits"] == [] and past["total"] == N


def test_filters_apply_to_every_search_and_the_total(env):
    c, searcher, root, freqs, tmp = env
    flac = sorted(k for k in freqs if k.endswith(".flac"))
    body = c.get("/api/search", params={"q": "tone", "k": 50, "format": "flac", "mode": "semantic"}).json()
    assert sorted(h["path"] for h in body["hits"]) == flac and body["total"] == len(flac)
    assert body["filters"] == {"format": "flac"}
    high = sorted(k for k in freqs if k.startswith("high/"))
    body = c.get("/api/search", params={"q": "tone", "k": 50, "folder": "high"}).json()
    assert sorted(h["path"] for h in body["hits"]) == high and body["total"] == len(high)
    body = c.get("/api/search", params={"q": "tone", "k": 50, "min_duration": 0.8, "mode": "semantic"}).json()
    assert body["hits"] and all(h["duration"] >= 0.8 for h in body["hits"])
    assert body["total"] == sum(1 for i in range(N) if 0.4 + 0.05 * i >= 0.8 - 1e-9)
    some = body["hits"][0]["id"]
    sim = c.get(f"/api/clips/{some}/similar", params={"k": 50, "format": "ogg"}).json()
    assert sim["hits"] and all(h["format"] == "ogg" for h in sim["hits"]) and some not in [h["id"] for h in sim["hits"]]
    buf = io.BytesIO()
    sf.write(buf, tone(300.0), 16000, format="WAV")
    up = c.post("/api/search/audio", params={"format": "wav", "offset": 1}, data={"k": "50"},
                files={"file": ("q.wav", buf.getvalue(), "audio/wav")}).json()
    wav = [k for k in freqs if k.endswith(".wav")]
    assert up["total"] == len(wav) and len(up["hits"]) == len(wav) - 1 and up["offset"] == 1
    assert all(h["format"] == "wav" for h in up["hits"])
    assert c.get("/api/search", params={"q": "tone", "sample_rate": 44100}).json()["total"] == 0


@pytest.mark.parametrize("url, bad", [("/api/search?q=tone", "min_duraton"), ("/api/clips/1/similar", "q"),
                                      ("/api/health", "x"), ("/api/collections", "name"),
                                      ("/api/clips/1", "verbose")])
def test_unknown_parameters_are_refused_by_name(env, url, bad):
    r = env[0].get(url + ("&" if "?" in url else "?") + f"{bad}=1")
    assert r.status_code == 400 and f"unknown parameter '{bad}'; valid:" in r.json()["detail"]


def test_message_says_when_nothing_matches_well(env):
    c = env[0]
    body = c.get("/api/search", params={"q": "tone", "k": 3}).json()
    assert "message" in body
    try:
        from soundseek.index.calibration import verdict
    except ImportError:
        pytest.skip("no calibration in this index package")
    assert body["message"] == verdict(body["hits"])


def test_similar_names_the_file_and_download_is_an_attachment(env):
    c, searcher, root, *_ = env
    hit = c.get("/api/search", params={"q": "tone", "k": 1}).json()["hits"][0]
    sim = c.get(f"/api/clips/{hit['id']}/similar", params={"k": 3}).json()
    assert sim["name"] == hit["path"].rsplit("/", 1)[-1] and sim["id"] == hit["id"]
    assert sim["total"] == N - 1  # every file but the clip itself
    fmt = hit["format"]
    same = c.get(f"/api/clips/{hit['id']}/similar", params={"k": 50, "format": fmt}).json()
    other_fmt = "ogg" if fmt != "ogg" else "wav"
    other = c.get(f"/api/clips/{hit['id']}/similar", params={"k": 50, "format": other_fmt}).json()
    assert same["total"] == len(same["hits"]) and other["total"] == len(other["hits"])
    r = c.get(f"/api/clips/{hit['id']}/audio", params={"download": "true"})
    assert r.status_code == 200 and r.content == (root / hit["path"]).read_bytes()
    assert r.headers["content-disposition"] == f"attachment; filename*=UTF-8''{sim['name']}"


def test_favicon_is_served_without_a_warning(env, caplog):
    with caplog.at_level(logging.WARNING, logger="soundseek.access"):
        r = env[0].get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml") and b"<svg" in r.content
    assert not [x for x in caplog.records if "favicon" in x.getMessage()]


def test_collections_api(env):
    c, searcher, root, freqs, tmp = env
    hits = c.get("/api/search", params={"q": "tone", "k": 3, "mode": "semantic"}).json()["hits"]
    a, b = hits[0]["id"], hits[1]["id"]
    assert c.get("/api/collections").json() == {"collections": []}
    r = c.put(f"/api/collections/favourites/items/{a}")
    assert r.status_code == 200 and r.json() == {"id": a, "collections": ["favourites"]}
    assert c.put("/api/collections/door ideas/items/" + str(a)).json()["collections"] == ["door ideas", "favourites"]
    c.put(f"/api/collections/door ideas/items/{b}")
    names = {x["name"]: x["count"] for x in c.get("/api/collections").json()["collections"]}
    assert names == {"favourites": 1, "door ideas": 2}
    view = c.get("/api/collections/door ideas").json()
    assert [h["id"] for h in view["hits"]] == [a, b] and view["missing"] == [] and view["total"] == 2
    assert view["collections"][str(a)] == ["door ideas", "favourites"]
    second = c.get("/api/collections/door ideas", params={"k": 1, "offset": 1}).json()
    assert [h["id"] for h in second["hits"]] == [b] and second["total"] == 2 and second["offset"] == 1
    # a search says which collections hold each hit (the page's star)
    body = c.get("/api/search", params={"q": "tone", "k": 3, "mode": "semantic"}).json()
    assert body["collections"][str(a)] == ["door ideas", "favourites"]
    assert c.delete(f"/api/collections/favourites/items/{a}").json()["collections"] == ["door ideas"]
    assert c.put("/api/collections/empty one").status_code == 200
    assert c.delete("/api/collections/empty one").status_code == 200
    # bad input
    assert c.get("/api/collections/nope").status_code == 404
    assert "no collection 'nope'" in c.get("/api/collections/nope").json()["detail"]
    assert c.put("/api/collections/x/items/999999").status_code == 404
    assert c.put("/api/collections/x/items/..%2Fetc").status_code == 404
    assert c.put("/api/collections/" + "n" * 81 + f"/items/{a}").status_code == 400
    assert c.put("/api/collections/a%5Cb/items/" + str(a)).status_code == 400
    assert c.put("/api/collections/bell%07name").status_code == 400
    assert c.post(f"/api/collections/favourites/items/{a}").status_code == 405  # changes are PUT/DELETE only


def test_collections_read_only_index_is_a_clear_403(tmp_path):
    root = tmp_path / "s"
    make_audio_folder(root, n=3, bad=False)
    build_index(root, HashEmbedder(), tmp_path / "idx", progress=False)
    s = Searcher(tmp_path / "idx", HashEmbedder())
    c = TestClient(create_app(s))
    i = c.get("/api/search", params={"q": "tone", "k": 1}).json()["hits"][0]["id"]
    (tmp_path / "idx").chmod(0o555)
    try:
        import os
        if os.access(tmp_path / "idx", os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        r = c.put(f"/api/collections/favourites/items/{i}")
        assert r.status_code == 403 and "cannot be changed" in r.json()["detail"]
    finally:
        (tmp_path / "idx").chmod(0o755)
    shutil.rmtree(tmp_path / "idx")


@pytest.mark.parametrize("params", [{"q": "tone", "k": 600, "offset": 500}, {"q": "tone", "offset": 1000}])
def test_pages_past_the_deepest_are_a_400(env, params):
    c = env[0]
    r = c.get("/api/search", params=params)
    assert r.status_code == 400 and ("offset + k must be at most 1000" in r.json()["detail"]
                                     or "offset must be at most 999" in r.json()["detail"])
    r = c.get("/api/clips/1/similar", params={k: v for k, v in params.items() if k != "q"})
    assert r.status_code == 400


def test_cli_json_is_the_same_locally_and_through_the_server(env, capsys):
    pytest.importorskip("uvicorn")
    import argparse

    from server_helpers import running_server
    from soundseek.index import cli as index_cli

    c, searcher, root, freqs, tmp = env

    def run(args):
        parser = argparse.ArgumentParser()
        index_cli.add_search_parser(parser.add_subparsers(dest="command"))
        a = parser.parse_args(args)
        assert index_cli.run_search(a, lambda model: HashEmbedder()) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    with running_server(create_app(searcher)) as url:
        for mode in ("semantic", "hybrid"):
            local = run(["search", str(tmp / "idx"), "low tone", "-k", "4", "--json", "--mode", mode])
            remote = run(["search", str(tmp / "idx"), "low tone", "-k", "4", "--json", "--mode", mode, "--server", url])
            assert remote == local and local[0]["hits"]


def test_filter_parameters_are_the_index_filters():
    import inspect

    from soundseek.index.filters import FILTER_KEYS
    from soundseek.service.deps import filters

    assert list(inspect.signature(filters).parameters) == [k for k, _, _ in FILTER_KEYS]


def test_serve_counts_files_as_the_page_does(tmp_path, monkeypatch, capsys):
    uvicorn = pytest.importorskip("uvicorn")
    import numpy as np

    import soundseek.service.app as app_mod

    root = tmp_path / "s"
    make_audio_folder(root, n=3, bad=False)
    sf.write(root / "long.wav", np.concatenate([tone(f, 1.0) for f in (300.0, 900.0, 2000.0)]), 16000)
    build_index(root, HashEmbedder(), tmp_path / "idx", progress=False, window=1.0, hop=0.5)
    ran = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.update(app=app))
    for name in ("soundseek.access", "soundseek.service"):  # serve() adds stderr handlers: undone after
        log = logging.getLogger(name)
        monkeypatch.setattr(log, "handlers", list(log.handlers))
        monkeypatch.setattr(log, "level", log.level)
    app_mod.serve(tmp_path / "idx", HashEmbedder())
    out = capsys.readouterr().out
    health = TestClient(ran["app"], base_url="http://127.0.0.1:8000").get("/api/health").json()
    assert health["items"] == 4 and health["vectors"] > 4
    assert f"(4 files, {health['vectors'] - 4} windows of long files)" in out

"""A built wheel works on its own: installed non-editable in a fresh virtual environment, run
from outside the repository, it trains a packaged recipe and indexes and searches real clips."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, env: dict, timeout: float = 900) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def test_wheel_installs_and_runs_train_index_search_from_a_packaged_recipe(tmp_path, real_sfx):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
        cwd=tmp_path, env=env)
    (whl,) = wheels.glob("soundseek-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=tmp_path, env=env)
    py, exe = venv / "bin" / "python", venv / "bin" / "soundseek"
    run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(whl)], cwd=tmp_path, env=env)
    work = tmp_path / "work"  # outside the repository: nothing but the installed wheel is importable
    work.mkdir()
    where = run([str(py), "-c", "import soundseek, soundseek.cli.common as c; print(soundseek.__file__); "
                 "print(c.RECIPES)"], cwd=work, env=env).split()
    assert all(Path(w).is_relative_to(venv) for w in where), where  # not the editable checkout
    assert (Path(where[1]) / "default.yaml").is_file() and (Path(where[1]) / "paper").is_dir()

    assert "usage: soundseek demo" in run([str(exe), "demo", "--help"], cwd=work, env=env)
    run([str(exe), "train", "default", "--no-eval", "--set", "train.epochs=1", "--set", "data.synthetic_clips=24",
         "--set", "train.batch_size=8", "--set", "train.progress=false", "--set", "train.tensorboard=false",
         "--set", f"data.cache_dir={work / 'cache'}", "--set", f"train.out_dir={work / 'run'}"], cwd=work, env=env)
    assert (work / "run" / "best.pt").is_file()

    clips = work / "clips"  # a few real sound effects
    clips.mkdir()
    for f in sorted((real_sfx / "audio").rglob("*.flac"))[:6]:
        shutil.copy(f, clips / f.name)
    run([str(exe), "index", str(clips), "--index", str(work / "idx"), "--model", str(work / "run" / "best.pt"),
         "--no-progress"], cwd=work, env=env)
    out = json.loads(run([str(exe), "search", str(work / "idx"), "ambient choir", "-k", "3", "--json"], cwd=work, env=env))
    hits = out["hits"]
    assert len(hits) == 3 and {Path(h["path"]).name for h in hits} <= {f.name for f in clips.iterdir()}, hits

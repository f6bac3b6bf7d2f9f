"""The README's "Use a CLAP model you downloaded" commands run as written (on a tiny random
CLAP saved where the README puts the real one; `serve` is left out: it blocks)."""
from __future__ import annotations

import os
import re
import shlex
import shutil

import soundfile as sf
import torch

from conftest import REPO
from hf_helpers import make_tiny_clap, tone


def _section_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    sec = text.split("## Use a CLAP model you downloaded", 1)[1].split("\n## ", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", sec)
    cmds = []
    for line in joined.splitlines():
        if line.startswith("    soundseek "):  # indented code lines only
            cmds.append(shlex.split(line.strip().split("  #")[0])[1:])
    return cmds


def test_readme_clap_commands_run(tmp_path, monkeypatch, capsys):
    from soundseek.cli.main import main
    from test_hf_clap import _write_corpus
    from test_laion_clap_convert import hf_to_laion
    from transformers import ClapModel

    clap = make_tiny_clap(tmp_path / "models" / "clap-htsat-unfused")
    _write_corpus(tmp_path / "my-corpus")
    shutil.copytree(tmp_path / "my-corpus", tmp_path / "ESC-50")
    work = tmp_path / "work"
    work.mkdir()
    (work / "models").symlink_to(tmp_path / "models")
    sf.write(work / "query.wav", tone(0.5, 300.0), 48000)
    torch.save({"state_dict": hf_to_laion(ClapModel.from_pretrained(str(clap)).state_dict())},
               work / "630k-audioset-best.pt")
    monkeypatch.chdir(work)
    cmds = _section_commands()
    names = [c[0] for c in cmds]
    assert {"index", "search", "serve", "eval", "convert"} <= set(names)
    for cmd in cmds:
        if cmd[0] == "serve":
            continue
        cmd = [str(tmp_path / "my-corpus" / "audio") if a == "~/sounds" else a for a in cmd]
        assert main(cmd + (["--no-progress"] if cmd[0] == "index" else [])) == 0, cmd
    out = capsys.readouterr().out
    assert "| t2a |" in out and "zero-shot" in out and os.path.isdir(work / "models" / "clap-630k")

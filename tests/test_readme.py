"""The README's Python example runs as written (STYLE: README examples run as tests)."""
from __future__ import annotations

import re

from conftest import REPO


def test_readme_python_example_runs(capsys):
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has a Python example"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "R1" in out and "mAP10" in out


def test_readme_names_the_two_commands_ci_runs():
    text = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    test_cmd = "bash scripts/setup.sh --test && python3 -m pytest"
    assert test_cmd in text and test_cmd in ci
    assert "bash scripts/setup.sh && python3 -m soundseek demo" in text

"""Every "METHODS §N" a source file cites is a section of docs/methods.md, which cites the papers."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_cited_methods_section_exists():
    text = (REPO / "docs" / "methods.md").read_text(encoding="utf-8")
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", text, flags=re.M)}
    assert sections == set(range(1, 11))
    cited = set()
    for p in (REPO / "src").rglob("*.py"):
        for m in re.finditer(r"METHODS(?:\.md)? ?§ ?(\d+)(?:\s*-\s*(\d+))?", p.read_text(encoding="utf-8")):
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            cited |= {(n, p.name) for n in range(lo, hi + 1)}
    missing = sorted((n, f) for n, f in cited if n not in sections)
    assert cited and not missing, missing
    for paper in ("[GPA]", "[Thesis]", "[TAP]", "[m-LTM]"):
        assert text.count(paper) >= 2, paper  # listed with its reference and cited in a section
    assert "docs/methods.md" in (REPO / "README.md").read_text(encoding="utf-8")

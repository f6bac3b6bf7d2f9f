"""The import contract of the package: data flows one way through the layers, and no two files
import each other (directly or round a longer loop).

Read from the sources with ``ast`` (nothing is imported or run): every ``import`` /
``from ... import`` of ``soundseek`` counts, at module level and inside functions alike; only
imports under ``if TYPE_CHECKING:`` are exempt. ``from pkg import name`` is an import of the
module ``pkg.name`` when that is a module, else of ``pkg`` (its ``__init__.py``).

The layer order is written here and in README's "Layout" section, lowest first; a module may
import its own layer and the layers below it, never one above.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "soundseek"

LAYERS: list[tuple[str, tuple[str, ...]]] = [  # (layer, its sub-packages and top-level modules)
    # distributed: process-group primitives, importing nothing of soundseek but config and device
    ("primitives", ("config", "device", "fileio", "safe_open", "registry", "padding", "metrics", "ot",
                    "distributed", "extras", "words")),
    ("audio", ("audio",)),
    ("encoders", ("encoders", "pooling", "losses")),
    ("scoring", ("scoring",)),
    ("models", ("models", "model")),  # model.py: the historical ``from soundseek.model import RetrievalModel``
    ("pipeline", ("pipeline", "data")),  # data: corpus readers, splits, the training corpus of a recipe
    ("index", ("index",)),
    ("service", ("service",)),
    ("train", ("train", "analysis")),  # analysis: lexical statistics and plots of corpora and results
    ("cli", ("cli", "__main__", "")),  # "": the package's own __init__.py (``soundseek.Index``)
]
DISTRIBUTED_MAY_IMPORT = {"config", "device", "distributed"}

# Imports that break the contract in parts of the package being restructured elsewhere; each
# entry names why it is allowed for now. Remove an entry once its import is gone (the test then
# fails on a stale entry, so the list only ever shrinks).
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = p
    return mods


MODULES = _modules()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def imports_of(mod: str) -> list[tuple[str, int]]:
    """(imported soundseek module, line) for every import in ``mod``'s source."""
    path = MODULES[mod]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skip = _type_checking_nodes(tree)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for t in targets:
            if t == PACKAGE or t.startswith(PACKAGE + "."):
                while t not in MODULES:  # import a.b.c of a name defined in a.b
                    t = t.rpartition(".")[0]
                if t != mod:
                    out.append((t, node.lineno))
    return out


def top(mod: str) -> str:
    """The sub-package or top-level module a module belongs to ("" for the package itself)."""
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(mod: str) -> int:
    for k, (_, names) in enumerate(LAYERS):
        if top(mod) in names:
            return k
    raise AssertionError(f"{mod} is in no layer of the import contract: add {top(mod)!r} to LAYERS")


def upward_imports() -> dict[tuple[str, str], int]:
    bad = {}
    for mod in MODULES:
        for target, line in imports_of(mod):
            if layer(target) > layer(mod) or (top(mod) == "distributed" and top(target) not in DISTRIBUTED_MAY_IMPORT):
                bad.setdefault((mod, target), line)
    return bad


def circles() -> list[frozenset[str]]:
    """Strongly connected groups of two or more modules (Tarjan)."""
    graph = {m: sorted({t for t, _ in imports_of(m)}) for m in MODULES}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(frozenset(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    for mod in MODULES:
        layer(mod)


def test_no_layer_imports_a_higher_one():
    bad = upward_imports()
    new = {k: v for k, v in bad.items() if k not in ALLOWED_UPWARD}
    lines = [f"{MODULES[m].relative_to(SRC)}:{line} imports {t} ({LAYERS[layer(m)][0]} layer < {LAYERS[layer(t)][0]} layer)"
             for (m, t), line in sorted(new.items())]
    assert not lines, "imports that run up the layers:\n" + "\n".join(lines)
    stale = sorted(set(ALLOWED_UPWARD) - set(bad))
    assert not stale, f"allowed upward imports that are gone (remove them from ALLOWED_UPWARD): {stale}"


def test_no_import_circles():
    """No two files of the package import each other, directly or round a longer loop; no exceptions."""
    found = [sorted(c) for c in circles()]
    assert not found, "files that import each other:\n" + "\n".join(" <-> ".join(c) for c in found)


# -- the checker itself ------------------------------------------------------------------------
def _check(tmp_path, monkeypatch, files: dict[str, str]):
    for rel, text in files.items():
        p = tmp_path / PACKAGE / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "MODULES", _modules())
    return upward_imports(), circles()


@pytest.mark.parametrize("text", [
    "from soundseek.models.retrieval import X\n",
    "def f():\n    from ..models import retrieval\n",
    "import soundseek.models.retrieval as r\n",
])
def test_the_checker_sees_module_and_function_level_upward_imports(tmp_path, monkeypatch, text):
    bad, _ = _check(tmp_path, monkeypatch, {
        "__init__.py": "", "models/__init__.py": "", "models/retrieval.py": "X = 1\n",
        "encoders/__init__.py": "", "encoders/clap.py": text,
    })
    assert ("soundseek.encoders.clap", "soundseek.models.retrieval") in bad or \
        ("soundseek.encoders.clap", "soundseek.models") in bad


def test_the_checker_sees_circles_and_exempts_type_checking(tmp_path, monkeypatch):
    _, found = _check(tmp_path, monkeypatch, {
        "__init__.py": "", "models/__init__.py": "",
        "models/a.py": "from soundseek.models import b\n",
        "models/b.py": "def f():\n    from .a import g\n",
        "models/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import x\n",
        "models/d.py": "from soundseek.models.c import y\n",
        "distributed/__init__.py": "from soundseek.device import z\n", "device.py": "",
    })
    assert found == [frozenset({"soundseek.models.a", "soundseek.models.b"})]
    bad, _ = _check(tmp_path, monkeypatch, {"distributed/shard.py": "from soundseek.fileio import w\n",
                                            "fileio.py": ""})
    assert ("soundseek.distributed.shard", "soundseek.fileio") in bad  # distributed: config/device only
    assert not any(m.startswith("soundseek.distributed") and t == "soundseek.device" for m, t in bad)

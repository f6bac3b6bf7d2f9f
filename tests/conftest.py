from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL_SFX = SHARED / "data" / "real-sfx-dev"


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def real_sfx() -> Path:
    if not (REAL_SFX / "manifest.jsonl").is_file():
        pytest.skip("../shared/data/real-sfx-dev is not beside the repository")
    return REAL_SFX


@pytest.fixture(autouse=True)
def _restore_soundseek_logger():
    """``soundseek.cli.main`` configures the ``soundseek`` logger (own handler, no propagation);
    a test that runs the CLI in-process must not hide later tests' records from ``caplog``."""
    import logging

    log = logging.getLogger("soundseek")
    state = (log.level, log.propagate, list(log.handlers))
    yield
    log.setLevel(state[0])
    log.propagate = state[1]
    log.handlers[:] = state[2]

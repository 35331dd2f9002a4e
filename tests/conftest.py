"""Shared test setup.

- litellm must read its cost map locally (no network at import).
- One hypothesis profile for the whole suite, chosen here rather than by whichever test
  module happens to be imported first: 150 examples, no per-example deadline (these
  machines are shared and slow; speed targets live in benchmark scripts).
"""

from __future__ import annotations

import os

from hypothesis import settings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
settings.register_profile("thinkstop", max_examples=150, deadline=None)


def pytest_configure() -> None:
    settings.load_profile("thinkstop")

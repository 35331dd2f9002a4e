"""Shared test setup: litellm must read its cost map locally (no network at import)."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

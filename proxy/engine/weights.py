"""Reading a learned policy's weights file (``learned:weights=PATH``).

The scheduler reads no files, so the layers that do I/O install this reader
(:func:`install`) before they build policies: the proxy's config loading and the CLIs.
Relative paths are read from the working directory (the proxy's, or the shell's).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from thinkstop.scheduler.learned import use_loader


def read_weights(path: str) -> dict[str, Any]:
    data = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("the weights file must hold a JSON object")
    return data


def install() -> None:
    """Let ``learned:weights=PATH`` specs read their file (idempotent)."""
    use_loader(read_weights)

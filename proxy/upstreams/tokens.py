"""Token counting for upstreams whose tokenizer the proxy does not have.

The documented approximation: OpenAI's ``cl100k_base`` BPE (tiktoken, whose vocabulary
file ships inside litellm, so no download is needed), or about four characters per token
when tiktoken is unavailable. Exact counts from an upstream's usage report replace the
estimate whenever a call completes; the estimate stands only for streams the proxy cut.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

TokenCounter = Callable[[str], int]


def _litellm_tokenizer_dir() -> str | None:
    """The folder where litellm keeps tiktoken's vocabulary files, without importing it."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return str(folder) if folder.is_dir() else None


def approximate_tokens(text: str) -> int:
    """About four characters per token; at least one for any non-empty text."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


@lru_cache(maxsize=1)
def _tiktoken_counter() -> TokenCounter | None:
    try:
        import tiktoken
    except ImportError:
        return None
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        folder = _litellm_tokenizer_dir()
        if folder is None:
            return None
        # Without this tiktoken tries to download the vocabulary.
        os.environ["TIKTOKEN_CACHE_DIR"] = folder
    try:
        encoding = tiktoken.get_encoding("cl100k_base")
    except (OSError, ValueError):  # no cached vocabulary and no network: approximate
        return None

    def count(text: str) -> int:
        return len(encoding.encode_ordinary(text)) if text else 0

    return count


def default_counter() -> TokenCounter:
    """cl100k_base when available, else :func:`approximate_tokens`."""
    return _tiktoken_counter() or approximate_tokens

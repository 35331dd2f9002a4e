"""Secrets never leave the proxy: every configured key is masked in logs and errors.

Upstream error messages can echo what was sent (an ``Authorization`` header, a URL with a
``?key=`` query); the proxy masks every secret it knows, wherever text leaves it: the log
processor masks every field of every line, and upstream failures are masked before they
become client errors or in-band frames.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final

from thinkstop.proxy.config import ProxyConfig

MASK: Final = "[redacted]"
# litellm_params entries whose values are credentials.
_SECRET_NAME: Final = re.compile(r"key|secret|token|password|credential|auth", re.IGNORECASE)
_MIN_SECRET: Final = 6  # shorter values would mask ordinary words


def _secret_values(params: Mapping[str, Any]) -> Iterable[str]:
    for name, value in params.items():
        if isinstance(value, Mapping):
            yield from _secret_values(value)  # extra_headers, extra_body
        elif isinstance(value, str) and _SECRET_NAME.search(str(name)):
            yield value


def config_secrets(config: ProxyConfig) -> list[str]:
    """Every secret in ``config``: master and client keys, upstream credentials."""
    general = config.general_settings
    found = [general.master_key or "", *(k.key for k in general.client_keys)]
    if general.redis_url and "@" in general.redis_url:
        found.append(general.redis_url)  # redis://user:password@host
    for entry in config.model_list:
        found.extend(_secret_values(entry.litellm_params))
    return found


class Redactor:
    """Masks a fixed set of secrets in text (longest first, so no fragment survives)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        unique = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, unique))) if unique else None

    def __call__(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(MASK, text)

    def processor(self, logger: Any, method: str,
                  event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """A structlog processor masking every string field of a log line."""
        if self._pattern is not None:
            for key, value in event.items():
                if isinstance(value, str):
                    event[key] = self(value)
                elif not isinstance(value, int | float | bool | type(None)):
                    event[key] = self(str(value)) if self._pattern.search(str(value)) else value
        return event

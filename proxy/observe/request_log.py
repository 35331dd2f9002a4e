"""One structured JSON log line per request (structlog), with no secrets and no prompt.

The logger is built per app (``structlog.wrap_logger``), so nothing global is configured.
Prompt text appears only at debug level, in its own line.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from thinkstop.proxy.engine.accounting import RunResult
from thinkstop.proxy.observe.redaction import Redactor

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}


def make_logger(level: str = "info", stream: TextIO | None = None,
                redactor: Redactor | None = None) -> Any:
    """A JSON-lines logger writing to ``stream`` (stderr by default), secrets masked."""
    masking: list[Any] = [redactor.processor] if redactor is not None else []
    return structlog.wrap_logger(
        structlog.PrintLogger(file=stream or sys.stderr),
        processors=[
            *masking,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)),
        cache_logger_on_first_use=True,
    )


def request_fields(result: RunResult | None) -> dict[str, Any]:
    """Decision and token counts for the request line (no text of any kind)."""
    if result is None:
        return {}
    usage = result.usage()
    return {
        "halted": result.halted,
        "reason": result.reason,
        "policy": result.policy,
        "strategy": result.strategy,
        "reasoning_tokens": result.reasoning_tokens,
        "probe_tokens": result.probe_tokens,
        "answer_tokens": result.answer_tokens,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "probes": result.probes,
        "probes_failed": result.probes_failed,
        "probes_skipped": result.probes_skipped,
    }

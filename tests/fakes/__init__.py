"""The shipped test doubles (:mod:`thinkstop.proxy.testing`), plus an in-process upstream
for orchestrator tests (:mod:`tests.fakes.memory_upstream`)."""

from thinkstop.proxy.testing import (
    PROBE_LIMIT,
    VOCABULARY,
    FakeReasoningServer,
    FakeStats,
    RequestRecord,
    Script,
    ServerThread,
    free_port,
    words,
)

__all__ = [
    "PROBE_LIMIT",
    "VOCABULARY",
    "FakeReasoningServer",
    "FakeStats",
    "RequestRecord",
    "Script",
    "ServerThread",
    "free_port",
    "words",
]

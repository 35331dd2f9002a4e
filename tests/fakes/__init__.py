"""Test doubles at the seams thinkstop owns: a scripted OpenAI-compatible reasoning server.

``FakeReasoningServer`` is a real HTTP server on loopback (uvicorn in a thread) speaking
the chat-completions and completions wire formats; ``Script`` says what it thinks and
answers. Reusable by any test suite (and by ``benchmarks.proxy_latency``).
"""

from tests.fakes.reasoning_server import PROBE_LIMIT, FakeReasoningServer, FakeStats, RequestRecord
from tests.fakes.script import VOCABULARY, Script, words
from tests.fakes.server_thread import ServerThread, free_port

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

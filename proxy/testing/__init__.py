"""Test doubles at the seams thinkstop owns, shipped with the package (as inspect_ai ships
its mock model): a scripted OpenAI-compatible reasoning server.

``FakeReasoningServer`` is a real HTTP server on loopback (uvicorn in a thread) speaking
the chat-completions and completions wire formats (tool calls and logprobs included);
``Script`` says what it thinks, answers and calls. thinkstop's own tests and benchmark
scripts use it, and so can yours.
"""

from thinkstop.proxy.testing.reasoning_server import (
    PROBE_LIMIT,
    FakeReasoningServer,
    FakeStats,
    RequestRecord,
)
from thinkstop.proxy.testing.script import VOCABULARY, Script, ScriptedToolCall, words
from thinkstop.proxy.testing.server_thread import ServerThread, free_port

__all__ = [
    "PROBE_LIMIT",
    "VOCABULARY",
    "FakeReasoningServer",
    "FakeStats",
    "RequestRecord",
    "Script",
    "ScriptedToolCall",
    "ServerThread",
    "free_port",
    "words",
]

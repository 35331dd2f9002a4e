"""thinkstop's halting brain: pure, synchronous and deterministic.

No asyncio, HTTP, litellm or FastAPI here (a test scans the imports): the proxy and the
benchmark feed observations in and act on the decisions that come out.
"""

from thinkstop.scheduler.answers import answers_match, extract_answer, normalize_answer
from thinkstop.scheduler.policy import Decision, Guarded, GuardRails, Policy
from thinkstop.scheduler.registry import (
    DEFAULT_POLICY,
    PolicySpecError,
    create_policy,
    parse_spec,
    policy_names,
    register_policy,
)
from thinkstop.scheduler.replay import Outcome, replay, replay_one
from thinkstop.scheduler.signals import Observation, Signals, SignalTracker, is_hedging
from thinkstop.scheduler.trace import TRACE_FORMAT, Natural, Step, Trace, TraceError, parse_traces

__all__ = [
    "DEFAULT_POLICY",
    "TRACE_FORMAT",
    "Decision",
    "GuardRails",
    "Guarded",
    "Natural",
    "Observation",
    "Outcome",
    "Policy",
    "PolicySpecError",
    "SignalTracker",
    "Signals",
    "Step",
    "Trace",
    "TraceError",
    "answers_match",
    "create_policy",
    "extract_answer",
    "is_hedging",
    "normalize_answer",
    "parse_spec",
    "parse_traces",
    "policy_names",
    "register_policy",
    "replay",
    "replay_one",
]

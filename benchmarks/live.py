"""``--live``: each policy run end to end through the proxy's halting loop.

Replay predicts what a policy does from one recorded trace; a live run streams the model
again under the policy (probes, halt, continuation) with
:class:`thinkstop.proxy.engine.run.HaltingRun`, the loop the proxy serves requests with. The
summary reports how far live results differ from replay on the same items (sampling
makes some difference expected at temperature > 0).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from thinkstop.benchmarks.rows import make_row
from thinkstop.scheduler.answers import extract_answer
from thinkstop.scheduler.policy import GuardRails
from thinkstop.scheduler.registry import create_policy

if TYPE_CHECKING:
    from thinkstop.benchmarks.config import BenchConfig
    from thinkstop.benchmarks.runner import Unit
    from thinkstop.proxy.upstreams.base import Upstream

# The local model can take far longer per probe than a hosted API; a probe that times
# out is skipped by the loop, which would make live results differ from replay for the
# wrong reason.
PROBE_TIMEOUT_S = 600.0


def live_runner(
    config: BenchConfig, upstream: Upstream
) -> Callable[[Unit], Awaitable[dict[str, Any]]]:
    """A coroutine function running one (item, policy) unit live; returns its row."""
    from thinkstop.proxy.engine.run import HaltingRun, RunOptions

    options = RunOptions(
        chunk_tokens=config.chunk_tokens,
        probe_tokens=config.probe_tokens,
        probe_timeout=PROBE_TIMEOUT_S,
        continuation=upstream.capabilities.continuations[0]
        if upstream.capabilities.continuations
        else None,
    )
    # The same cap the recorder runs under, so live and replay rows compare.
    rails = GuardRails(max_tokens=config.reasoning_cap(None))

    async def run(unit: Unit) -> dict[str, Any]:
        started = time.perf_counter()
        policy = create_policy(unit.setting, rails)
        halting = HaltingRun(upstream, config.request(unit.item, None), policy, options)
        await halting.start()
        try:
            _, content = await halting.collect()
        finally:
            await halting.aclose()
        result = halting.result
        return make_row(
            unit.item,
            "live",
            unit.setting,
            answer=extract_answer(content),
            reasoning_tokens=result.reasoning_tokens,
            probe_tokens=result.probe_tokens,
            extra={
                "halted": result.halted,
                "reason": result.reason,
                "probes": result.probes,
                "wall_s": round(time.perf_counter() - started, 3),
            },
        )

    return run

"""Provider facts with one home: which models hide their reasoning, and the budget ->
``reasoning_effort`` map. The proxy and the benchmark both read them here, so they
cannot disagree (they once did on azure/o3 and on budgets 7000 and 8192)."""

from __future__ import annotations

import pytest

from tests.fakes import Script
from tests.fakes.memory_upstream import MemoryUpstream
from thinkstop.benchmarks.prompts import native_params, provider
from thinkstop.proxy.engine.run import HaltingRun, RunOptions
from thinkstop.proxy.upstreams.base import ChatRequest
from thinkstop.proxy.upstreams.providers import (
    capabilities_for,
    hides_reasoning,
    reasoning_effort,
)
from thinkstop.scheduler import GuardRails, create_policy

HIDDEN = ["o1", "o3-mini", "openai/o4-mini", "azure/o3", "azure/gpt-5", "gpt-5-mini"]
VISIBLE = ["gpt-4o", "openai/qwen3", "deepseek/deepseek-reasoner", "azure/gpt-4.1",
           "anthropic/claude-sonnet-4", "hosted_vllm/o3-like-but-not"]


@pytest.mark.parametrize("model", HIDDEN)
def test_openai_reasoning_models_hide_their_reasoning_everywhere(model: str) -> None:
    assert hides_reasoning(model) and capabilities_for(model).hides_reasoning
    assert provider(model) == "openai-reasoning"


@pytest.mark.parametrize("model", VISIBLE)
def test_other_models_show_it(model: str) -> None:
    assert not hides_reasoning(model) and not capabilities_for(model).hides_reasoning
    assert provider(model) != "openai-reasoning"


@pytest.mark.parametrize(("budget", "effort"), [
    (0, "low"), (1024, "low"), (2047, "low"), (2048, "medium"), (4096, "medium"),
    (6143, "medium"), (7000, "high"), (8192, "high"), (16384, "high"), (None, "high"),
])
def test_one_budget_to_effort_map(budget: int | None, effort: str) -> None:
    assert reasoning_effort(budget) == effort
    assert native_params("o3", budget) == {"reasoning_effort": effort}


@pytest.mark.parametrize("budget", [1024, 4096, 7000, 8192])
def test_the_proxy_sends_the_benchmarks_effort(budget: int) -> None:
    upstream = MemoryUpstream(Script(), hides_reasoning=True)
    run = HaltingRun(upstream, ChatRequest("o3", [{"role": "user", "content": "q"}]),
                     create_policy("plateau", GuardRails(max_tokens=budget)), RunOptions())
    assert run._main_request().params["reasoning_effort"] == native_params(
        "o3", budget)["reasoning_effort"]


def test_continuation_names_have_one_home() -> None:
    from typing import get_args

    from thinkstop.proxy.config import ContinuationChoice
    from thinkstop.proxy.upstreams.base import Continuation
    from thinkstop.proxy.upstreams.providers import PROVIDERS, choose_continuation
    from thinkstop.proxy.upstreams.strategies import STRATEGIES

    def names(hint: object) -> set[object]:
        args = get_args(hint)
        return set().union(*map(names, args)) if args else {hint}

    assert tuple(STRATEGIES) == get_args(Continuation) == ("raw", "prefix", "prefill", "reask")
    assert names(ContinuationChoice) == {"auto", *STRATEGIES}
    for caps in PROVIDERS.values():
        assert set(caps.continuations) <= set(STRATEGIES)
    with pytest.raises(ValueError, match="valid: auto, raw, prefix, prefill, reask"):
        choose_continuation(capabilities_for("openai/x"), "magic")

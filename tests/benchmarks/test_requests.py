"""The requests a benchmark run sends: the paper's budget grid, token limits and the
budget-0 empty think block for open-weight models."""

from __future__ import annotations

import argparse

import pytest

from thinkstop.benchmarks.cli import add_bench_parser
from thinkstop.benchmarks.config import BenchConfig
from thinkstop.benchmarks.prompts import EMPTY_THINK, resolve_think_prefill
from thinkstop.benchmarks.tasks.base import Item

ITEM = Item("i", "misleading_math", "How many?", "2", "open", "1")
PAPER_GRID = (0, 1024, 2048, 4096, 8192, 16384)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="thinkstop")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_default_budgets_are_the_papers_grid():
    from thinkstop.benchmarks.cli import _config

    assert BenchConfig(model="m", tasks=("misleading_math",)).budgets == PAPER_GRID
    args = _parse(["bench", "run", "--model", "openai/x", "--out", "o"])
    assert _config(args).budgets == PAPER_GRID


@pytest.mark.parametrize("budget", PAPER_GRID)
def test_open_weight_max_tokens_is_the_budget_plus_16384(budget):
    config = BenchConfig(model="openai/qwq-32b", tasks=("misleading_math",),
                         api_base="http://h/v1")
    assert config.request(ITEM, budget).params["max_tokens"] == budget + 16384
    # Reasoning is cut where that limit would stop it, not at a fixed 16,384.
    assert config.reasoning_cap(budget) == budget + 16384


def test_open_weight_natural_thinking_gets_32768_tokens():
    config = BenchConfig(model="local/qwen", tasks=("misleading_math",))
    assert config.request(ITEM, None).params["max_tokens"] == 32768
    assert config.reasoning_cap(None) == 32768
    assert config.record.max_reasoning == 32768


def test_max_reasoning_still_caps_every_run():
    config = BenchConfig(model="local/qwen", tasks=("misleading_math",), max_reasoning=512)
    assert config.reasoning_cap(None) == 512 and config.reasoning_cap(4096) == 512
    assert config.record.max_reasoning == 512
    assert config.request(ITEM, 4096).params["max_tokens"] == 4096 + 16384


def test_claude_natural_thinking_uses_the_papers_16k_budget():
    config = BenchConfig(model="anthropic/claude-opus-4", tasks=("misleading_math",))
    params = config.request(ITEM, None).params
    assert params["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert params["max_tokens"] == 26384
    assert config.request(ITEM, 4096).params["max_tokens"] == 14096


@pytest.mark.parametrize(
    ("model", "api_base", "style"),
    [
        ("openai/qwq-32b", "http://localhost:8000/v1", "vllm"),
        ("hosted_vllm/deepseek-r1", None, "vllm"),
        ("deepseek/deepseek-reasoner", None, "deepseek"),
        ("ollama_chat/qwq", None, "assistant"),
        ("local/qwen2.5-coder-1.5b", None, "none"),
        ("anthropic/claude-sonnet-4", None, "none"),
        ("openai/o3", None, "none"),
    ],
)
def test_auto_think_prefill_by_server(model, api_base, style):
    assert resolve_think_prefill(model, "auto", api_base=api_base) == style


def test_budget_zero_prefills_an_empty_think_block_for_vllm():
    config = BenchConfig(model="openai/qwq-32b", tasks=("misleading_math",),
                         api_base="http://localhost:8000/v1")
    request = config.request(ITEM, 0)
    last = request.messages[-1]
    assert last["role"] == "assistant" and last["content"] == EMPTY_THINK
    assert last["content"].startswith("<think>") and last["content"].strip().endswith("</think>")
    assert last["content"][len("<think>"):].strip() == "</think>"  # nothing inside
    assert request.params["continue_final_message"] is True
    assert request.params["add_generation_prompt"] is False
    assert "Don't think" in request.messages[0]["content"]
    # Only budget 0 is pre-filled: every other budget and natural thinking may think.
    for budget in (None, 1024):
        other = config.request(ITEM, budget)
        assert other.messages[-1]["role"] == "user"
        assert "continue_final_message" not in other.params


@pytest.mark.parametrize(
    ("style", "prefix", "continue_flag"),
    [("assistant", None, None), ("deepseek", True, None), ("vllm", None, True)],
)
def test_each_prefill_style_has_its_message_shape(style, prefix, continue_flag):
    config = BenchConfig(model="openai/r1", tasks=("misleading_math",), think_prefill=style)
    request = config.request(ITEM, 0)
    assert request.messages[-1]["content"] == EMPTY_THINK
    assert request.messages[-1].get("prefix") is prefix
    assert request.params.get("continue_final_message") is continue_flag


def test_think_prefill_none_sends_the_prompt_only_and_bad_styles_are_refused():
    config = BenchConfig(model="openai/r1", tasks=("misleading_math",), api_base="http://h",
                         think_prefill="none")
    assert config.request(ITEM, 0).messages[-1]["role"] == "user"
    with pytest.raises(ValueError, match="think prefill"):
        BenchConfig(model="openai/r1", tasks=("misleading_math",), think_prefill="maybe")


def test_run_json_keeps_the_resolved_prefill():
    config = BenchConfig(model="local/qwen", tasks=("misleading_math",))
    assert config.to_json()["think_prefill"] == "none"
    served = BenchConfig(model="openai/qwq", tasks=("misleading_math",), api_base="http://h")
    assert served.to_json()["think_prefill"] == "vllm"


def test_an_old_run_folder_is_refused_with_the_settings_to_pass(tmp_path):
    import asyncio
    import json

    from tests.benchmarks.scripted import ScriptedUpstream
    from thinkstop.benchmarks.runner import ResumeError, run_units

    saved = BenchConfig(model="openai/scripted", tasks=("misleading_math",)).to_json()
    saved.update(max_reasoning=16384, budgets=[0, 1024, 2048, 4096])
    del saved["think_prefill"], saved["runs"], saved["items_sha256"]
    (tmp_path / "run.json").write_text(json.dumps(saved))
    config = BenchConfig(model="openai/scripted", tasks=("misleading_math",), n=1,
                         api_base="http://h/v1", regimes=("truncate",))
    with pytest.raises(ResumeError) as caught:
        asyncio.run(run_units(config, ScriptedUpstream(), tmp_path, progress=False))
    message = str(caught.value)
    assert "max_reasoning: saved 16384, now None" in message
    assert "think_prefill: saved 'none', now 'vllm'" in message
    assert "pass the saved settings" in message

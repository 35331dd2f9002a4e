"""Small pure pieces: logprob parsing, providers, config, factory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from thinkstop.proxy.config import ConfigError, default_config, load_config, parse_config, with_gguf
from thinkstop.proxy.upstreams.base import Capabilities, UpstreamConfigError
from thinkstop.proxy.upstreams.openai_chat import OpenAIChatUpstream
from thinkstop.proxy.upstreams.parsing import chat_logprobs, completion_logprobs
from thinkstop.proxy.upstreams.providers import (
    capabilities_for,
    choose_continuation,
    hides_reasoning,
)
from thinkstop.proxy.upstreams.raw_completion import RawCompletionUpstream
from thinkstop.proxy.upstreams.registry import build_upstream


def test_logprobs_cover_all_answer_tokens() -> None:
    chat = {"content": [
        {"token": "<answer>", "logprob": 0.0, "top_logprobs": []},
        {"token": "4", "logprob": -0.1, "top_logprobs": [{"token": "4", "logprob": -0.1}]},
        {"token": "2", "logprob": -0.2, "top_logprobs": []},
    ]}
    total, alternatives = chat_logprobs(chat)
    assert total == pytest.approx(-0.3) and alternatives is None  # multi-token: no alts
    raw = {"tokens": ["B", "</answer>"], "token_logprobs": [-0.5, 0.0],
           "top_logprobs": [{"B": -0.5, "C": -1.2}, {}]}
    total, alternatives = completion_logprobs(raw)
    assert total == -0.5 and alternatives == {"B": -0.5, "C": -1.2}


def test_provider_table() -> None:
    assert hides_reasoning("openai/o3-mini") and hides_reasoning("o1")
    assert not hides_reasoning("openai/qwen3") and not hides_reasoning("deepseek/deepseek-reasoner")
    assert choose_continuation(capabilities_for("deepseek/deepseek-reasoner")) == "prefix"
    assert choose_continuation(capabilities_for("anthropic/claude")) == "prefill"
    assert choose_continuation(capabilities_for("openai/x")) == "reask"
    assert choose_continuation(capabilities_for("text-completion-openai/x")) == "raw"
    assert choose_continuation(capabilities_for("openai/o3")) is None
    assert choose_continuation(Capabilities(), "prefill") == "prefill"
    with pytest.raises(ValueError, match="unknown continuation"):
        choose_continuation(Capabilities(), "telepathy")


def test_factory_picks_adapters() -> None:
    base = "http://127.0.0.1:9/v1"
    assert isinstance(build_upstream("a", {"model": "openai/x", "api_base": base}),
                      OpenAIChatUpstream)
    raw = build_upstream("b", {"model": "openai/x", "api_base": base, "raw_completion": True,
                               "chat_template": "deepseek-r1"})
    assert isinstance(raw, RawCompletionUpstream) and raw.capabilities.continuations == ("raw",)
    lite = build_upstream("c", {"model": "deepseek/deepseek-reasoner", "api_key": "k"})
    assert type(lite).__name__ == "LiteLLMChatUpstream"
    assert lite.capabilities.continuations[0] == "prefix"
    with pytest.raises(UpstreamConfigError, match="api_base"):
        build_upstream("d", {"model": "text-completion-openai/x"})
    with pytest.raises(UpstreamConfigError, match="chat_template"):
        build_upstream("e", {"model": "openai/x", "api_base": base, "adapter": "raw",
                             "chat_template": "nonsense"})


def test_config_file_env_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: r1\n"
        "    litellm_params: {model: deepseek/deepseek-reasoner, api_key: os.environ/DS_KEY}\n"
        "    thinkstop: {policy: \"plateau:window=3\", chunk_tokens: 64, continuation: auto}\n"
        "thinkstop_settings: {policy: plateau, chunk_tokens: 32, max_tokens: 16384}\n"
        "general_settings: {master_key: os.environ/MASTER}\n"
    )
    config = load_config(path, environ={"DS_KEY": "k1", "MASTER": "m1"})
    assert config.model_list[0].litellm_params["api_key"] == "k1"
    assert config.general_settings.master_key == "m1"
    options = config.options_for(config.model_list[0])
    assert options.policy == "plateau:window=3" and options.chunk_tokens == 64
    assert options.max_tokens == 16384 and options.probe_tokens is None
    # what no layer sets comes from the halting run's own defaults (their one home)
    from thinkstop.proxy.engine.run import RunOptions
    run = RunOptions(**options.run_fields())
    assert (run.chunk_tokens, run.probe_tokens) == (64, RunOptions().probe_tokens)
    with pytest.raises(ConfigError, match=r"model_list\[0\].litellm_params.api_key: .*DS_KEY"):
        load_config(path, environ={"MASTER": "m1"})
    bad = {"model_list": [{"model_name": "x", "litellm_params": {"model": "openai/x"},
                           "thinkstop": {"chunk_tokens": -1, "continuation": "magic"}}]}
    with pytest.raises(ConfigError) as info:
        parse_config(bad)
    assert "model_list[0].thinkstop.chunk_tokens" in str(info.value)
    assert "model_list[0].thinkstop.continuation" in str(info.value)


def test_default_config_serves_the_local_model() -> None:
    config = with_gguf(default_config(), "/models/m.gguf")
    entry = config.model_list[0]
    assert entry.model_name == "thinkstop-local"
    assert entry.litellm_params == {"model": "local/qwen2.5-coder-1.5b", "gguf": "/models/m.gguf"}


def test_serve_cli_is_light_and_reports_bad_config(tmp_path: Path) -> None:
    code = ("import sys, argparse; import thinkstop.proxy.entrypoints.serve as s; "
            "assert 'fastapi' not in sys.modules and 'litellm' not in sys.modules; "
            "p = argparse.ArgumentParser(); sub = p.add_subparsers(); s.add_serve_parser(sub); "
            "a = p.parse_args(['serve', '--gguf', 'x.gguf']); "
            "assert (a.host, a.port, a.gguf, a.config) == ('127.0.0.1', 4000, 'x.gguf', None)")
    subprocess.run([sys.executable, "-c", code], check=True)
    from thinkstop.proxy.entrypoints.serve import run_serve

    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list: []\n")
    args = type("Args", (), {"config": str(bad), "gguf": None, "host": "127.0.0.1",
                             "port": 0})()
    assert run_serve(args) == 2

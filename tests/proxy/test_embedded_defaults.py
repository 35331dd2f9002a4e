"""The embedded model's tuned defaults: where they apply, what overrides them, and that
they halt on the model's own committed traces where the proxy-wide default does not."""

from __future__ import annotations

from pathlib import Path

from thinkstop.proxy.config import parse_config
from thinkstop.proxy.upstreams.local.recommended import RECOMMENDED
from thinkstop.scheduler import DEFAULT_POLICY, parse_traces
from thinkstop.scheduler.replay import natural_outcomes, replay

TRACES = (Path(__file__).resolve().parents[2]
          / "benchmarks/results/local-qwen1.5b/traces.jsonl")
QWEN = "local/qwen2.5-coder-1.5b"


def _options(entry: dict[str, object], settings: dict[str, object] | None = None
             ) -> tuple[str | None, int | None]:
    raw: dict[str, object] = {"model_list": [{"model_name": "m", **entry}]}
    if settings:
        raw["thinkstop_settings"] = settings
    config = parse_config(raw, environ={})
    options = config.options_for(config.model_list[0])
    return options.policy, options.chunk_tokens


def test_the_embedded_default_model_gets_its_tuned_options() -> None:
    tuned = RECOMMENDED[QWEN]
    assert _options({"litellm_params": {"model": QWEN}}) == (
        tuned["policy"], tuned["chunk_tokens"])


def test_the_users_settings_override_the_tuned_options() -> None:
    assert _options({"litellm_params": {"model": QWEN}},
                    {"policy": "plateau"})[0] == "plateau"
    assert _options({"litellm_params": {"model": QWEN},
                     "thinkstop": {"policy": "sprt", "chunk_tokens": 8}}) == ("sprt", 8)


def test_other_files_and_other_models_get_no_tuned_options() -> None:
    proxy_wide = _options({"litellm_params": {"model": "openai/x"}})
    assert proxy_wide[0] == DEFAULT_POLICY != RECOMMENDED[QWEN]["policy"]
    assert _options({"litellm_params": {"model": QWEN, "gguf": "/x.gguf"}}) == proxy_wide


def test_the_tuned_policy_halts_on_the_models_own_traces_where_the_default_does_not() -> None:
    traces = list(parse_traces(TRACES.read_text(encoding="utf-8").splitlines()))
    assert len(traces) >= 120  # the evidence set: 30 items per family
    natural = sum(o.tokens for o in natural_outcomes(traces))
    tuned = replay(traces, str(RECOMMENDED[QWEN]["policy"]))
    default = replay(traces, DEFAULT_POLICY)
    tuned_halts = sum(o.halted for o in tuned)
    default_halts = sum(o.halted for o in default)
    assert tuned_halts >= len(traces) // 2 > default_halts
    assert sum(o.tokens for o in tuned) < 0.6 * natural  # probes not counted here

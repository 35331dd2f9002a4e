"""Halting options tuned for each embedded model on that model's own recorded traces.

The proxy-wide defaults (``plateau``, probes every 64 tokens) were set on synthetic traces;
on the embedded 1.5B model, whose probe probabilities are low (median about 0.1),
``plateau`` waits for confidence that never comes and never halts. These options sit
between the proxy's defaults and the user's own settings (``thinkstop_settings``, a
model's ``thinkstop`` block and a request all override them).

Derived with (traces committed under ``benchmarks/results/local-qwen1.5b/``, output in
its ``tune.txt``)::

    thinkstop tune benchmarks/results/local-qwen1.5b/traces.jsonl --by task --max-loss 0.02

On the 120 committed traces (30 per family) that run recommends a fixed reasoning
budget of 160 tokens: held out, accuracy 0.167 [0.111, 0.243] at 169 tokens, against
natural's 0.133 [0.084, 0.206] at 309 and no thinking's 0.142. It halves the
tokens at natural's accuracy and needs no probes; it does not beat no thinking
significantly on this model, which the README says plainly. No probing policy did better
here: the model's probe answers are too poorly calibrated to tell when to stop. A model served
from another ``gguf`` file gets no recommendation: these were fitted to this file only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

RECOMMENDED: Final[Mapping[str, Mapping[str, Any]]] = {
    "local/qwen2.5-coder-1.5b": {
        "policy": "fixed:budget=160",
        "chunk_tokens": 32,
    },
}


def recommended_options(litellm_params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The tuned options for an embedded model's ``litellm_params`` (empty when none)."""
    if litellm_params.get("gguf"):
        return {}
    return RECOMMENDED.get(str(litellm_params.get("model", "")), {})

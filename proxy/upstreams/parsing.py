"""Reading upstream replies (already decoded to dicts): usage, probe logprobs, tool calls,
the answer's token logprobs.

The chat and completions formats differ in where text and logprobs live; these helpers
turn both into the contract's :class:`Usage` and :class:`ProbeResult` pieces.
"""

from __future__ import annotations

from typing import Any

from thinkstop.proxy.upstreams.base import ToolCallDelta, Usage
from thinkstop.proxy.upstreams.prompts import ANSWER_CLOSE


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def parse_usage(raw: Any) -> Usage | None:
    """A chat or completions ``usage`` object, or None when absent."""
    if not isinstance(raw, dict):
        return None
    details = raw.get("completion_tokens_details") or {}
    reasoning = _int(details.get("reasoning_tokens")) if isinstance(details, dict) else 0
    prompt_details = raw.get("prompt_tokens_details") or {}
    cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    return Usage(
        prompt_tokens=_int(raw.get("prompt_tokens")),
        completion_tokens=_int(raw.get("completion_tokens")),
        reasoning_tokens=reasoning,
        cached_prompt_tokens=cached,
    )


def _answer_span(tokens: list[str]) -> tuple[int, int]:
    """Indices of the answer's tokens: after an ``<answer>`` token, before ``</answer>``."""
    start, end = 0, len(tokens)
    for i, tok in enumerate(tokens):
        if "<answer>" in tok:
            start = i + 1
        elif ANSWER_CLOSE in tok or tok.strip() == "</":
            end = i
            break
    return start, end


def answer_logprobs(
    tokens: list[str], logprobs: list[float | None], tops: list[dict[str, float]]
) -> tuple[float | None, dict[str, float] | None]:
    """Total log probability of the answer's tokens (all of them), and alternatives.

    Alternatives are only given for a one-token answer (an option letter, a digit), where
    the top alternatives of that token are whole alternative answers; for longer answers
    the first token's alternatives would be fragments, so none are claimed.
    """
    start, end = _answer_span(tokens)
    span = [(tokens[i], logprobs[i]) for i in range(start, end) if tokens[i].strip()]
    if not span or any(lp is None for _, lp in span):
        return None, None
    total = float(sum(lp for _, lp in span if lp is not None))
    alternatives: dict[str, float] | None = None
    first = next(i for i in range(start, end) if tokens[i].strip())
    if len(span) == 1 and first < len(tops) and tops[first]:
        alternatives = {tok.strip(): lp for tok, lp in tops[first].items() if tok.strip()}
    return total, alternatives


def chat_logprobs(raw: Any) -> tuple[float | None, dict[str, float] | None]:
    """From a chat choice's ``logprobs`` (``content``: per-token entries)."""
    content = raw.get("content") if isinstance(raw, dict) else None
    if not isinstance(content, list) or not content:
        return None, None
    tokens = [str(e.get("token", "")) for e in content]
    lps = [e.get("logprob") for e in content]
    tops = [
        {str(t.get("token", "")): float(t.get("logprob", -100.0))
         for t in e.get("top_logprobs") or []}
        for e in content
    ]
    return answer_logprobs(tokens, lps, tops)


def completion_logprobs(raw: Any) -> tuple[float | None, dict[str, float] | None]:
    """From a completions choice's ``logprobs`` (parallel ``tokens`` / ``token_logprobs``)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("tokens"), list):
        return None, None
    tokens = [str(t) for t in raw["tokens"]]
    lps = list(raw.get("token_logprobs") or [None] * len(tokens))
    tops = [dict(t or {}) for t in raw.get("top_logprobs") or [{}] * len(tokens)]
    return answer_logprobs(tokens, lps, tops)


def parse_tool_calls(delta: Any) -> list[ToolCallDelta]:
    """The tool-call pieces of one streamed chat ``delta`` (``delta.tool_calls``).

    Also reads a whole message's ``tool_calls`` (non-streamed replies), whose entries have
    no ``index``: their position is the index.
    """
    calls = delta.get("tool_calls") if isinstance(delta, dict) else None
    if not isinstance(calls, list):
        return []
    out = []
    for position, call in enumerate(calls):
        if not isinstance(call, dict):
            continue
        raw = call.get("function")
        function: dict[str, Any] = raw if isinstance(raw, dict) else {}
        index = call.get("index")
        name = function.get("name")
        arguments = function.get("arguments")
        out.append(ToolCallDelta(
            index=index if isinstance(index, int) else position,
            id=call["id"] if isinstance(call.get("id"), str) else None,
            name=name if isinstance(name, str) else None,
            arguments=arguments if isinstance(arguments, str) else "",
        ))
    return out


def chat_token_entries(raw: Any) -> list[dict[str, Any]]:
    """A chat choice's ``logprobs.content`` entries as they are (for relaying them)."""
    content = raw.get("content") if isinstance(raw, dict) else None
    if not isinstance(content, list):
        return []
    return [entry for entry in content if isinstance(entry, dict)]


def _entry(token: str, logprob: Any) -> dict[str, Any]:
    value = float(logprob) if isinstance(logprob, int | float) else -9999.0
    return {"token": token, "logprob": value, "bytes": list(token.encode())}


def completion_token_entries(raw: Any) -> list[dict[str, Any]]:
    """A completions choice's ``logprobs`` (parallel lists) as OpenAI chat entries, the
    shape every endpoint of the proxy relays."""
    if not isinstance(raw, dict) or not isinstance(raw.get("tokens"), list):
        return []
    tokens = [str(t) for t in raw["tokens"]]
    lps = list(raw.get("token_logprobs") or [None] * len(tokens))
    tops = list(raw.get("top_logprobs") or [None] * len(tokens))
    entries = []
    for i, token in enumerate(tokens):
        entry = _entry(token, lps[i] if i < len(lps) else None)
        top = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        entry["top_logprobs"] = [_entry(str(t), lp) for t, lp in top.items()]
        entries.append(entry)
    return entries

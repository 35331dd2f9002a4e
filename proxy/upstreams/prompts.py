"""The words the proxy adds to a conversation: probe prompts and continuation prompts.

Pure string and message builders, shared by every adapter (chat, raw completion, the
embedded model), so that every strategy phrases the same request the same way. A probe
forces a short answer inside ``<answer>`` tags (stopped at ``</answer>``); a continuation
lets the model write its real final answer after the truncated reasoning.
"""

from __future__ import annotations

from typing import Any, Final

from thinkstop.proxy.upstreams.thinking import THINK_OPEN, closing

ANSWER_OPEN: Final = "<answer>"
ANSWER_CLOSE: Final = "</answer>"
PROBE_STOP: Final = [ANSWER_CLOSE]

# Written after the closing think tag, in the model's own voice, so the next tokens are
# the answer itself.
PROBE_LEAD: Final = "The final answer is " + ANSWER_OPEN

REASK_CONTINUE: Final = (
    "Here is your reasoning so far about the request above; it was cut short:\n"
    "<reasoning>\n{reasoning}\n</reasoning>\n"
    "Stop reasoning now. Using that reasoning, write your final reply to the request above."
)
# With tools on offer, the model's next step may be a tool call rather than a reply.
REASK_CONTINUE_TOOLS: Final = (
    "Here is your reasoning so far about the request above; it was cut short:\n"
    "<reasoning>\n{reasoning}\n</reasoning>\n"
    "Stop reasoning now. Using that reasoning, take your next step: call a tool if one is "
    "needed, otherwise write your final reply to the request above."
)
REASK_PROBE: Final = (
    "Here is your reasoning so far about the request above; it was cut short:\n"
    "<reasoning>\n{reasoning}\n</reasoning>\n"
    "Stop reasoning now. Reply with only your final answer inside "
    + ANSWER_OPEN
    + ANSWER_CLOSE
    + ", nothing else."
)

Messages = list[dict[str, Any]]


def closed_thinking(reasoning: str) -> str:
    """The reasoning as a finished think block, ready for the answer to follow."""
    return reasoning + closing(reasoning)


# A soft halt's cue, in the model's own voice, inside its reasoning: the model winds up
# its thought instead of being cut mid-thought.
WRAP_UP: Final = "I have enough to answer now."


def wrap_up(reasoning: str) -> str:
    """What follows the reasoning at a soft halt: the cue, on a paragraph of its own."""
    lead = "" if reasoning.endswith("\n\n") else ("\n" if reasoning.endswith("\n") else "\n\n")
    return f"{lead}{WRAP_UP}\n"


def probe_suffix(reasoning: str) -> str:
    """What follows the reasoning in a probe that continues the model's own text (raw
    completion, the embedded model): the closed block and the answer's opening words."""
    return closing(reasoning) + PROBE_LEAD


def answer_before_close(output: str) -> str:
    """A probe's output up to the closing ``</answer>`` (when it wrote one), stripped."""
    return output.split(ANSWER_CLOSE, 1)[0].strip()


def raw_continuation(prompt: str, reasoning: str) -> str:
    """Raw completion: the rendered prompt (which opened the think block) + reasoning."""
    return prompt + closed_thinking(reasoning)


def raw_probe(prompt: str, reasoning: str) -> str:
    return raw_continuation(prompt, reasoning) + PROBE_LEAD


def prefill_continuation(messages: Messages, reasoning: str) -> Messages:
    """Assistant prefill: the model continues its own partial assistant turn."""
    content = f"{THINK_OPEN}\n{closed_thinking(reasoning)}"
    return [*messages, {"role": "assistant", "content": content}]


def prefill_probe(messages: Messages, reasoning: str) -> Messages:
    content = f"{THINK_OPEN}\n{closed_thinking(reasoning)}{PROBE_LEAD}"
    return [*messages, {"role": "assistant", "content": content}]


def prefix_continuation(messages: Messages, reasoning: str) -> Messages:
    """DeepSeek-style prefix completion: the reasoning rides in ``reasoning_content``."""
    last = {"role": "assistant", "content": "", "reasoning_content": reasoning, "prefix": True}
    return [*messages, last]


def prefix_probe(messages: Messages, reasoning: str) -> Messages:
    last = {
        "role": "assistant",
        "content": PROBE_LEAD,
        "reasoning_content": reasoning,
        "prefix": True,
    }
    return [*messages, last]


def reask_continuation(messages: Messages, reasoning: str) -> Messages:
    """Re-ask: the reasoning quoted back in a user turn; works with any chat API."""
    return [*messages, {"role": "user", "content": REASK_CONTINUE.format(reasoning=reasoning)}]


def reask_tools_continuation(messages: Messages, reasoning: str) -> Messages:
    """Re-ask when the request offers tools: the model's next step may be a tool call."""
    text = REASK_CONTINUE_TOOLS.format(reasoning=reasoning)
    return [*messages, {"role": "user", "content": text}]


def reask_probe(messages: Messages, reasoning: str) -> Messages:
    return [*messages, {"role": "user", "content": REASK_PROBE.format(reasoning=reasoning)}]


def probe_answer_text(output: str, *, prefilled: bool) -> str:
    """The probe's output as text that :func:`thinkstop.scheduler.extract_answer` reads.

    When the prompt already opened ``<answer>``, the output is the bare answer (the stop
    sequence ate ``</answer>``), so the tags are put back around it.
    """
    if prefilled:
        return f"{ANSWER_OPEN}{answer_before_close(output)}{ANSWER_CLOSE}"
    return output

"""Chat templates for the raw-completion adapter: messages -> the model's prompt text.

Built-in templates cover the common reasoning-model families; any other model takes its
own Jinja template (the ``chat_template`` string from its tokenizer config) in the
config, rendered in a sandbox with ``messages`` and ``add_generation_prompt=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from thinkstop.proxy.upstreams.thinking import message_text

Messages = list[dict[str, Any]]
Template = Callable[[Messages], str]


def _text(message: dict[str, Any]) -> str:
    return message_text(message.get("content"))


def chatml(messages: Messages) -> str:
    """Qwen / ChatML: ``<|im_start|>role\\ntext<|im_end|>`` turns."""
    turns = [f"<|im_start|>{m.get('role', 'user')}\n{_text(m)}<|im_end|>\n" for m in messages]
    return "".join(turns) + "<|im_start|>assistant\n"


def deepseek_r1(messages: Messages) -> str:
    """DeepSeek-R1 and its distills."""
    system = "".join(_text(m) for m in messages if m.get("role") == "system")
    out = ["<｜begin▁of▁sentence｜>", system]
    for m in messages:
        if m.get("role") == "user":
            out.append(f"<｜User｜>{_text(m)}")
        elif m.get("role") == "assistant":
            out.append(f"<｜Assistant｜>{_text(m)}<｜end▁of▁sentence｜>")
    out.append("<｜Assistant｜>")
    return "".join(out)


def llama3(messages: Messages) -> str:
    parts = ["<|begin_of_text|>"]
    for m in messages:
        parts.append(f"<|start_header_id|>{m.get('role', 'user')}<|end_header_id|>\n\n"
                     f"{_text(m)}<|eot_id|>")
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def gemma(messages: Messages) -> str:
    """Gemma: ``<start_of_turn>user|model`` turns; a system message opens the first user
    turn (Gemma has no system role)."""
    system = "\n\n".join(_text(m) for m in messages if m.get("role") in ("system", "developer"))
    parts: list[str] = []
    for m in messages:
        role = m.get("role", "user")
        if role in ("system", "developer"):
            continue
        text = _text(m).strip()
        if system and not parts:
            text = f"{system}\n\n{text}"
        parts.append(f"<start_of_turn>{'model' if role == 'assistant' else role}\n"
                     f"{text}<end_of_turn>\n")
    return "".join(parts) + "<start_of_turn>model\n"


BUILTIN: Final[dict[str, Template]] = {
    "chatml": chatml,
    "gemma": gemma,
    "qwen": chatml,
    "deepseek-r1": deepseek_r1,
    "llama3": llama3,
}


def jinja_template(source: str) -> Template:
    """A Hugging Face style Jinja chat template, rendered in a sandbox."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    compiled = env.from_string(source)

    def render(messages: Messages) -> str:
        return compiled.render(messages=messages, add_generation_prompt=True, bos_token="",
                               eos_token="")

    return render


def resolve_template(spec: str | None) -> Template:
    """A built-in name (default ``chatml``) or a Jinja template string."""
    if spec is None:
        return chatml
    if spec in BUILTIN:
        return BUILTIN[spec]
    if "{%" in spec or "{{" in spec:
        return jinja_template(spec)
    raise ValueError(
        f"unknown chat_template {spec!r}; use one of {', '.join(BUILTIN)} or a Jinja template"
    )

"""The request body of ``POST /v1/responses``, and what it means as a chat request.

The halting loop runs on chat messages, so a Responses request is translated:

- ``instructions`` -> a leading system message (not carried over from a previous
  response, as the API says);
- ``input``: a string (one user message) or items: messages (``developer`` becomes
  ``system``, which every chat server knows; text and image parts), ``function_call``
  items -> an assistant message's ``tool_calls``, ``function_call_output`` -> ``tool``
  messages; ``reasoning`` items are dropped (chat APIs take no reasoning back, and
  DeepSeek's refuses it);
- function ``tools`` and ``tool_choice`` -> their chat forms; hosted tools (web search,
  file search, computer use, ...) run inside OpenAI and cannot be served: 400;
- ``max_output_tokens`` -> ``max_completion_tokens`` (the cap on everything billed),
  ``reasoning.effort`` -> ``reasoning_effort``, ``text.format`` -> ``response_format``,
  ``top_logprobs`` (or ``include: ["message.output_text.logprobs"]``) -> ``logprobs``.

Fields with no meaning here (``include`` otherwise, ``truncation``, ``service_tier``,
``prompt_cache_key``, ``safety_identifier``, ...) are accepted and ignored; ``background``,
``conversation`` and ``prompt`` (server-side features of OpenAI's) get a 400.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thinkstop.proxy.config import RequestOptions, ThinkstopOptions
from thinkstop.proxy.errors import ProxyError
from thinkstop.proxy.http.protocol import MAX_TOKENS_LIMIT, reject_lone_surrogates
from thinkstop.proxy.upstreams.thinking import message_text

if TYPE_CHECKING:
    _Options = ThinkstopOptions
else:
    _Options = RequestOptions

Messages = list[dict[str, Any]]
LOGPROBS_INCLUDE: Final = "message.output_text.logprobs"
_ROLES: Final = {"user": "user", "assistant": "assistant", "system": "system",
                 "developer": "system"}
_TOOL_CHOICES: Final = frozenset({"auto", "none", "required"})


class ReasoningParam(BaseModel):
    model_config = ConfigDict(extra="allow")

    effort: str | None = None
    summary: str | None = None


class ResponsesRequest(BaseModel):
    """An OpenAI Responses API request (plus ``thinkstop``)."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def check_text(cls, data: Any) -> Any:
        return reject_lone_surrogates(data)

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, gt=0, le=MAX_TOKENS_LIMIT)
    reasoning: ReasoningParam | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    stream: bool = False
    previous_response_id: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    text: dict[str, Any] | None = None
    include: list[str] | None = None
    truncation: str | None = None
    user: str | None = None
    background: bool | None = None
    conversation: Any = None
    prompt: Any = None
    thinkstop: _Options | None = None

    def check_supported(self) -> None:
        if self.background:
            raise _unsupported("background", "background responses are not supported; "
                               "stream the response instead")
        for name in ("conversation", "prompt"):
            if getattr(self, name) is not None:
                raise _unsupported(name, f"{name} objects live on OpenAI's servers; send "
                                   "the input items themselves (or previous_response_id)")

    @property
    def wants_logprobs(self) -> bool:
        return self.top_logprobs is not None or LOGPROBS_INCLUDE in (self.include or ())


def _unsupported(param: str, message: str) -> ProxyError:
    return ProxyError(400, f"{param}: {message}", param=param, code="unsupported_parameter")


def chat_messages(request: ResponsesRequest, prior: Messages) -> Messages:
    """The conversation as chat messages: instructions, a previous response's turns,
    then this request's input."""
    messages: Messages = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    messages.extend(prior)
    messages.extend(input_messages(request.input))
    if not messages:
        raise ProxyError(400, "input: no messages to answer", param="input")
    return messages


def input_messages(items: str | list[dict[str, Any]]) -> Messages:
    """``input`` (a string or items) as chat messages."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: Messages = []
    for i, item in enumerate(items):
        kind = item.get("type") or ("message" if "role" in item else None)
        where = f"input[{i}]"
        if kind == "message":
            out.append(_message(item, where))
        elif kind == "function_call":
            _add_call(out, item, where)
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": _text_field(item, "call_id", where),
                        "content": _output_text(item.get("output"))})
        elif kind == "reasoning":
            continue  # see the module docstring
        else:
            raise _unsupported(f"{where}.type", f"input items of type {kind!r} are not "
                               "supported (messages, function_call, function_call_output "
                               "and reasoning items are)")
    return out


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = _ROLES.get(str(item.get("role")))
    if role is None:
        raise ProxyError(400, f"{where}.role: must be user, assistant, system or developer",
                         param=f"{where}.role")
    content = item.get("content")
    if role == "assistant" or isinstance(content, str) or content is None:
        return {"role": role, "content": message_text(content)}
    return {"role": role, "content": [_part(p, f"{where}.content[{j}]")
                                      for j, p in enumerate(content)]}


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": str(part.get("text", ""))}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise _unsupported(f"{where}.type", f"content parts of type {kind!r} are not supported "
                       "(text, and images given by URL, are)")


def _add_call(out: Messages, item: dict[str, Any], where: str) -> None:
    call = {"id": _text_field(item, "call_id", where), "type": "function",
            "function": {"name": _text_field(item, "name", where),
                         "arguments": str(item.get("arguments") or "")}}
    last = out[-1] if out else None
    # Calls made in one turn (and the text before them) are one assistant message.
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
        if not last.get("content"):
            last["content"] = None
        return
    out.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _text_field(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise ProxyError(400, f"{where}.{name}: required", param=f"{where}.{name}")
    return value


def _output_text(output: Any) -> str:
    return output if isinstance(output, str) else message_text(output)


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Function tools in the chat form; any other kind is a 400."""
    if not tools:
        return None
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise _unsupported(f"tools[{i}].type", f"{tool.get('type')!r} tools run inside "
                               "OpenAI's service; thinkstop serves function tools")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise ProxyError(400, f"tools[{i}].name: required", param=f"tools[{i}].name")
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict")
                    if tool.get(k) is not None}
        out.append({"type": "function", "function": function})
    return out


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if choice is None or (isinstance(choice, str) and choice in _TOOL_CHOICES):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _unsupported("tool_choice", "only auto, none, required or a function by name")


def response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """``text.format`` as a chat ``response_format`` (None for plain text)."""
    fmt = (text or {}).get("format")
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise _unsupported("text.format", f"format {fmt.get('type')!r} is not supported")


def chat_params(request: ResponsesRequest) -> dict[str, Any]:
    """The chat request's parameters (sampling, tools, limits) for this request."""
    params: dict[str, Any] = {
        "tools": chat_tools(request.tools),
        "tool_choice": chat_tool_choice(request.tool_choice),
        "parallel_tool_calls": request.parallel_tool_calls,
        "max_completion_tokens": request.max_output_tokens,
        "reasoning_effort": request.reasoning.effort if request.reasoning else None,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "response_format": response_format(request.text),
        "user": request.user,
    }
    if not params["tools"]:
        params["tool_choice"] = params["parallel_tool_calls"] = None
    if request.wants_logprobs:
        params["logprobs"] = True
        params["top_logprobs"] = request.top_logprobs or 0
    return {k: v for k, v in params.items() if v is not None}

"""The request body of ``POST /v1/chat/completions``, in the OpenAI docs' order.

Unknown fields are tolerated and passed on to the upstream unchanged; thinkstop's own
options live in one typed ``thinkstop`` sub-model. Messages and tools are typed as far as
the halting loop relies on them (roles, tool calls, the tool a ``tool`` message answers),
so that a malformed one is a 400 naming the field, not an upstream error later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thinkstop.proxy.config import RequestOptions, ThinkstopOptions

# RequestOptions is built from ThinkstopOptions' own fields at import time; the type
# checker reads it as the model it restricts.
if TYPE_CHECKING:
    _Options = ThinkstopOptions
else:
    _Options = RequestOptions

# Fields the proxy itself handles; everything else is passed to the upstream.
OWN_FIELDS: Final = frozenset({"model", "messages", "stream", "stream_options", "n",
                               "thinkstop"})
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
# No model has a window near this; a larger cap is a client bug, not a request to relay.
MAX_TOKENS_LIMIT: Final = 10_000_000


def _lone_surrogate(value: Any, path: str) -> str | None:
    """The path of the first string in ``value`` holding a lone UTF-16 surrogate (valid
    JSON, ``"\\ud800"``, but not Unicode: it cannot be encoded to send upstream)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _lone_surrogate(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _lone_surrogate(item, f"{path}[{i}]")
            if found:
                return found
    return None


def reject_lone_surrogates(data: Any) -> Any:
    """A ``mode="before"`` check for every request body: a 400 naming the field instead
    of a failure (a 500) when the text is encoded for the upstream."""
    where = _lone_surrogate(data, "")
    if where:
        raise ValueError(f"{where}: contains a lone surrogate (e.g. \\ud800), which is not "
                         "valid Unicode; send the text as UTF-8")
    return data


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    arguments: str


class ToolCall(BaseModel):
    """A tool call of an earlier assistant turn (multi-turn conversations)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    type: str = "function"
    function: FunctionCall | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _tool_reply_names_its_call(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id it answers")
        return self


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)  # the upstream checks its own naming rules
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(BaseModel):
    """A tool offered to the model. Function tools are followed by the halting loop; other
    kinds (``custom``) are passed through untouched (see :mod:`.passthrough`)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1)
    function: FunctionDefinition | None = None

    @model_validator(mode="after")
    def _function_defined(self) -> ToolDefinition:
        if self.type == "function" and self.function is None:
            raise ValueError("a function tool needs its function definition")
        return self


class ChatCompletionRequest(BaseModel):
    """An OpenAI chat completion request (plus ``thinkstop``)."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def check_text(cls, data: Any) -> Any:
        return reject_lone_surrogates(data)

    messages: list[ChatMessage] = Field(min_length=1)
    model: str = Field(min_length=1)
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(default=None, gt=0, le=MAX_TOKENS_LIMIT)
    max_tokens: int | None = Field(default=None, gt=0, le=MAX_TOKENS_LIMIT)
    n: int | None = Field(default=None, ge=1, le=128,
                          description="n independent halting runs, one per choice")
    parallel_tool_calls: bool | None = None
    presence_penalty: float | None = None
    reasoning_effort: str | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    tool_choice: str | dict[str, Any] | None = None
    tools: list[ToolDefinition] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    top_p: float | None = Field(default=None, ge=0, le=1)
    user: str | None = None
    thinkstop: _Options | None = Field(
        None, description="thinkstop's per-request options (extra_body={'thinkstop': {...}})"
    )

    def upstream_params(self) -> dict[str, Any]:
        """Sampling, tools and other fields to pass to the upstream unchanged."""
        return self.model_dump(exclude_none=True, exclude=set(OWN_FIELDS))

    def message_dicts(self) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in self.messages]

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def choices(self) -> int:
        return self.n or 1


def completion_cap(params: dict[str, Any]) -> int | None:
    """The client's cap on completion tokens: the tighter of ``max_completion_tokens`` and
    ``max_tokens`` (every token the request is billed for fits in it)."""
    caps = [v for k in ("max_completion_tokens", "max_tokens")
            if isinstance(v := params.get(k), int) and not isinstance(v, bool)]
    return min(caps) if caps else None

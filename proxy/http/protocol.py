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

    messages: list[ChatMessage] = Field(min_length=1)
    model: str = Field(min_length=1)
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)
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

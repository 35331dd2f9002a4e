"""The request body of ``POST /v1/chat/completions``, in the OpenAI docs' order.

Unknown fields are tolerated and passed on to the upstream unchanged; thinkstop's own
options live in one typed ``thinkstop`` sub-model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict, Field

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


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str = Field(min_length=1)
    content: str | list[dict[str, Any]] | None = None


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
    n: int | None = Field(default=None, ge=1, description="only n=1 is supported (else 400)")
    presence_penalty: float | None = None
    reasoning_effort: str | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    user: str | None = None
    thinkstop: _Options | None = Field(
        None, description="thinkstop's per-request options (extra_body={'thinkstop': {...}})"
    )

    def upstream_params(self) -> dict[str, Any]:
        """Sampling and other fields to pass to the upstream unchanged."""
        data = self.model_dump(exclude_none=True, exclude=set(OWN_FIELDS))
        return data

    def message_dicts(self) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in self.messages]

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

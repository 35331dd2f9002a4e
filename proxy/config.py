"""The proxy's YAML configuration, in the style of LiteLLM's proxy config.

::

    model_list:
      - model_name: r1
        litellm_params: {model: deepseek/deepseek-reasoner, api_key: os.environ/DEEPSEEK_API_KEY}
        thinkstop: {policy: "plateau:window=3", chunk_tokens: 64, continuation: auto}
    thinkstop_settings: {policy: plateau, chunk_tokens: 64, max_tokens: 16384}
    general_settings: {master_key: os.environ/THINKSTOP_MASTER_KEY}

Any string ``os.environ/NAME`` is replaced by that environment variable. Validation
happens at start; a :class:`ConfigError` names the offending field. When the file sets
no ``master_key`` or ``redis_url``, ``THINKSTOP_MASTER_KEY`` / ``THINKSTOP_REDIS_URL``
supply them. Keys and budgets (``general_settings.client_keys``, ``model_list[].budgets``)
are described in :mod:`thinkstop.proxy.guard.keys` and :mod:`thinkstop.proxy.guard.budgets`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from thinkstop.proxy.engine import weights
from thinkstop.proxy.upstreams.base import Continuation
from thinkstop.proxy.upstreams.deadlines import (
    FIRST_BYTE_KEY,
    FIRST_BYTE_TIMEOUT,
    IDLE_KEY,
    IDLE_TIMEOUT,
)
from thinkstop.proxy.upstreams.http_sse import LINE_KEY, MAX_LINE_BYTES
from thinkstop.proxy.upstreams.local.recommended import recommended_options
from thinkstop.scheduler import DEFAULT_POLICY, PolicySpecError, create_policy
from thinkstop.scheduler.schedule import create_schedule

DEFAULT_LOCAL_MODEL = "local/qwen2.5-coder-1.5b"
DEFAULT_LOCAL_NAME = "thinkstop-local"
ENV_PREFIX = "os.environ/"
# The default cap on probes in flight per replica, per CPU core (GeneralSettings).
PROBES_PER_CORE: Final = 8

ContinuationChoice = Literal["auto"] | Continuation


class ConfigError(ValueError):
    """The configuration is invalid; the message names the field."""


def _policy_field(cls: type, value: str | None) -> str | None:
    return _check_policy(value)


def _check_policy(spec: str | None) -> str | None:
    if spec is not None:
        weights.install()  # a learned policy reads its weights file here
        try:
            create_policy(spec)
        except PolicySpecError as exc:
            raise ValueError(str(exc)) from None
    return spec


class ThinkstopOptions(BaseModel):
    """Halting options; every field optional so that layers can be merged.

    Order of precedence: request ``thinkstop`` > model ``thinkstop`` > ``thinkstop_settings``.
    """

    model_config = ConfigDict(extra="forbid")

    policy: str | None = Field(default=None, description="policy spec, e.g. plateau:window=3")
    chunk_tokens: int | None = Field(default=None, gt=0, description="probe every N tokens")
    min_tokens: int | None = Field(default=None, ge=0, description="never halt before this")
    max_tokens: int | None = Field(default=None, gt=0, description="reasoning budget (hard cut)")
    max_probes: int | None = Field(default=None, ge=0)
    probe_tokens: int | None = Field(default=None, gt=0, le=64, description="max tokens per probe")
    probe_concurrency: int | None = Field(default=None, gt=0, le=16, description="probes in flight")
    probe_timeout: float | None = Field(
        default=None, gt=0,
        description="seconds per probe (default: 10, or the embedded engine's own estimate)")
    continuation: ContinuationChoice | None = None
    hidden_reasoning: bool | None = Field(default=None, description="force budget-only mode")
    enabled: bool | None = Field(default=None, description="false: pass the upstream through")
    stream_reasoning: bool | None = Field(default=None, description="false: hide reasoning")
    probe_model: str | None = Field(
        default=None, description="another configured model that answers the probes")
    probe_schedule: str | None = Field(
        default=None, description="where to probe: fixed, geometric:..., transitions:...")
    loop: float | None = Field(
        default=None, gt=0, le=1,
        description="halt (reason loop) when the reasoning repeats itself this much (0-1)")
    halt: Literal["hard", "soft"] | None = Field(
        default=None, description="soft: a wrap-up cue and grace_tokens more reasoning")
    grace_tokens: int | None = Field(default=None, ge=0, le=4096,
                                     description="reasoning allowed after a soft halt")
    shadow: bool | float | None = Field(
        default=None, description="probe and record, never halt: true, or a share 0-1")
    anchors: str | bool | None = Field(
        default=None,
        description="a file of worked examples added to every request (per request: false "
        "turns them off)")
    anchors_mode: Literal["turns", "system"] | None = Field(
        default=None, description="turns: few-shot user/assistant turns; system: system text")
    anchors_max: int | None = Field(default=None, ge=1, le=64,
                                    description="examples taken from the file (default 8)")
    expose_probe_answers: bool | None = Field(
        default=None, description="true: the decision's signals carry the probes' answer "
        "text (off by default: a probe may echo what the client must not see)")

    _valid_policy = field_validator("policy")(_policy_field)

    @field_validator("probe_schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                create_schedule(value)
            except PolicySpecError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("shadow")
    @classmethod
    def _valid_shadow(cls, value: bool | float | None) -> bool | float | None:
        if isinstance(value, float) and not 0.0 <= value <= 1.0:
            raise ValueError("shadow is true, false, or a share of requests from 0 to 1")
        return value

    def run_fields(self) -> dict[str, Any]:
        """The halting run's settings that are set here; :class:`RunOptions` defaults
        the rest (one home for those defaults)."""
        names = ("chunk_tokens", "probe_tokens", "probe_concurrency", "probe_timeout",
                 "probe_schedule", "halt", "grace_tokens")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def merged(self, *others: BaseModel | None) -> ThinkstopOptions:
        """These options overridden by each of ``others`` in turn (set fields only; the
        proxy-wide fields of :class:`ThinkstopSettings` are not per-model options)."""
        names = ThinkstopOptions.model_fields
        data = {k: v for k, v in self.model_dump().items() if k in names}
        for other in others:
            if other is not None:
                data.update({k: v for k, v in other.model_dump(exclude_none=True).items()
                             if k in names})
        return ThinkstopOptions.model_validate(data)


class ThinkstopSettings(ThinkstopOptions):
    """``thinkstop_settings``: the defaults of every model's options, plus where
    shadow-mode traces go (proxy-wide)."""

    trace_dir: str | None = Field(
        default=None, description="folder for shadow-mode trace files (JSONL, rotated)")
    trace_sink: str | None = Field(
        default=None, description="redis://... : send shadow traces to a Redis stream instead")
    trace_prompts: bool = Field(
        default=False, description="include the request's messages in shadow traces")
    trace_max_mb: float = Field(default=64.0, gt=0, description="rotate trace files past this")
    trace_max_seconds: float = Field(default=3600.0, gt=0,
                                     description="rotate trace files after this long")

    @field_validator("trace_sink")
    @classmethod
    def _valid_sink(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("trace_sink must be a Redis URL (redis://, rediss://, unix://); "
                             "for files use trace_dir")
        return value


# The options a client may set per request (``extra_body={"thinkstop": {...}}``); the
# others (probe sizing, timeouts, continuation) are the operator's.
REQUEST_FIELDS: Final = ("policy", "chunk_tokens", "min_tokens", "max_tokens", "max_probes",
                         "enabled", "stream_reasoning", "shadow", "probe_schedule", "anchors")


def _request_anchors(value: str | bool | None) -> str | bool | None:
    # A client turns the model's anchors off (or back on); naming a file would let it read
    # the server's files.
    if isinstance(value, str):
        raise ValueError("a request may only set anchors to false (or true); the file is "
                         "the operator's")
    return value


def _request_model() -> type[BaseModel]:
    """:class:`ThinkstopOptions` restricted to ``REQUEST_FIELDS``: the same field
    definitions (one home), and pydantic's own error for any other field."""
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in ThinkstopOptions.model_fields.items()
        if name in REQUEST_FIELDS
    }
    return create_model(
        "RequestOptions", __config__=ConfigDict(extra="forbid"),
        __validators__={"_valid_policy": field_validator("policy")(_policy_field),
                        "_valid_anchors": field_validator("anchors")(_request_anchors)},
        **fields,
    )


RequestOptions = _request_model()


# Only what the halting run itself does not default (see RunOptions for the rest).
DEFAULTS = ThinkstopOptions(
    policy=DEFAULT_POLICY,
    min_tokens=0,
    max_tokens=16384,
    continuation="auto",
    enabled=True,
    stream_reasoning=True,
)


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(min_length=1)
    litellm_params: dict[str, Any]
    thinkstop: ThinkstopOptions = Field(default_factory=ThinkstopOptions)
    budgets: BudgetSettings | None = None

    @field_validator("litellm_params")
    @classmethod
    def _has_model(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("model"), str) or not value["model"]:
            raise ValueError("litellm_params.model is required (e.g. openai/my-model)")
        return value


class BudgetSettings(BaseModel):
    """Budget guard-rails of one scope (a model or a client key)."""

    model_config = ConfigDict(extra="forbid")

    max_reasoning_tokens: int | None = Field(
        default=None, ge=0, description="per-request reasoning cap: cut there, then answer")
    tokens_per_window: int | None = Field(
        default=None, ge=0, description="all tokens per window; over it: 429 + Retry-After")
    window_seconds: int = Field(default=60, ge=1)


class ClientKey(BaseModel):
    """A key a client may send as ``Authorization: Bearer <key>``; ``name`` is what logs,
    metrics and errors show (never the key)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.@-]+$")
    key: str = Field(min_length=1)
    budgets: BudgetSettings | None = None


class GeneralSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    master_key: str | None = None
    client_keys: list[ClientKey] = Field(default_factory=list)
    redis_url: str | None = Field(default=None, description="share budget counters")
    max_request_bytes: int = Field(default=4 * 1024 * 1024, gt=0, description="else 413")
    upstream_retries: int = Field(default=1, ge=0, le=5,
                                  description="retries before the first byte reaches the client")
    graceful_shutdown_seconds: int = Field(default=30, ge=0,
                                           description="SIGTERM: drain streams this long")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    keepalive_seconds: float = Field(
        default=15.0, ge=0, description="SSE comment after this long with nothing sent; 0: off")
    cors_origins: list[str] = Field(
        default_factory=list, description="browser origins allowed (CORS); empty: off")
    responses_store_size: int = Field(
        default=1000, ge=0,
        description="recent Responses kept in memory for previous_response_id; 0: off")
    # Slow and hostile clients (thinkstop.proxy.http.connections, .body_limit).
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a request's line and headers must arrive within "
        "this long (of the connection opening, or of its next request's first byte); else "
        "the connection is closed")
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="the whole request body within this long of its "
        "headers; else 408 request_timeout and the connection is closed")
    max_header_bytes: int = Field(
        default=64 * 1024, ge=1024, description="request line and headers past this size: "
        "the connection is closed")
    max_connections: int | None = Field(
        default=None, ge=1, description="client connections held at once (default: half "
        "the open-file limit, at most 4096); past it the one waiting longest for its "
        "headers is closed")
    idle_connection_seconds: int = Field(
        default=5, ge=1, description="a kept-alive connection with no new request for "
        "this long is closed")
    max_probes_in_flight: int | None = Field(
        default=None, ge=0, description="probes in flight at once on this replica, all "
        "requests together (default: 8 per CPU core; 0: no cap); past it a probe is shed "
        "(skipped, counted as shed) so that main streams never queue behind probes")
    client_send_buffer_bytes: int | None = Field(
        default=256 * 1024, ge=4096, description="the kernel's send buffer of each client "
        "connection (SO_SNDBUF; null: the OS default, autotuned up to several MB): with "
        "the proxy's own bounded buffers, what a client that stops reading can hold back")
    # Upstreams that stall (thinkstop.proxy.upstreams.deadlines); per model:
    # litellm_params.first_byte_timeout / idle_timeout.
    upstream_first_byte_seconds: float = Field(
        default=FIRST_BYTE_TIMEOUT, gt=0, description="an upstream stream's first chunk "
        "within this long of the request; else 504 upstream_timeout")
    upstream_idle_seconds: float = Field(
        default=IDLE_TIMEOUT, gt=0, description="an upstream stream's next chunk within "
        "this long of the last; else upstream_timeout (in-band once streaming)")
    # per model: litellm_params.max_line_bytes (thinkstop.proxy.upstreams.http_sse)
    upstream_max_line_bytes: int = Field(
        default=MAX_LINE_BYTES, ge=1024, description="one SSE line from an upstream past "
        "this many bytes fails the stream: 502 upstream_oversized (in-band once streaming)")

    def probe_capacity(self) -> int | None:
        """The replica's cap on probes in flight (None: no cap)."""
        if self.max_probes_in_flight is None:
            return PROBES_PER_CORE * (os.cpu_count() or 1)
        return self.max_probes_in_flight or None

    @model_validator(mode="after")
    def _distinct_keys(self) -> GeneralSettings:
        names: set[str] = set()
        keys = {self.master_key} if self.master_key else set()
        for i, client in enumerate(self.client_keys):
            if client.name in names or client.name == "master":
                raise ValueError(f"client_keys[{i}].name: duplicate or reserved {client.name!r}")
            if client.key in keys:
                raise ValueError(f"client_keys[{i}].key: the same key is configured twice")
            names.add(client.name)
            keys.add(client.key)
        return self


class ProxyConfig(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    model_list: list[ModelEntry] = Field(min_length=1)
    thinkstop_settings: ThinkstopSettings = Field(default_factory=ThinkstopSettings)
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)

    @model_validator(mode="after")
    def _unique_names(self) -> ProxyConfig:
        seen: set[str] = set()
        for i, entry in enumerate(self.model_list):
            if entry.model_name in seen:
                raise ValueError(f"model_list[{i}].model_name: duplicate {entry.model_name!r}")
            seen.add(entry.model_name)
        for i, entry in enumerate(self.model_list):
            probe = self.options_for(entry).probe_model
            if probe is not None and (probe not in seen or probe == entry.model_name):
                raise ValueError(
                    f"model_list[{i}].thinkstop.probe_model: {probe!r} must name another "
                    f"model of this config ({', '.join(sorted(seen - {entry.model_name}))})")
        return self

    def model(self, name: str) -> ModelEntry | None:
        return next((m for m in self.model_list if m.model_name == name), None)

    def upstream_params(self, entry: ModelEntry) -> dict[str, Any]:
        """What builds ``entry``'s upstream: its ``litellm_params``, with the proxy-wide
        stream deadlines and SSE line limit where the entry sets none of its own."""
        general = self.general_settings
        return {FIRST_BYTE_KEY: general.upstream_first_byte_seconds,
                IDLE_KEY: general.upstream_idle_seconds,
                LINE_KEY: general.upstream_max_line_bytes, **entry.litellm_params}

    def options_for(self, entry: ModelEntry, override: BaseModel | None = None
                    ) -> ThinkstopOptions:
        """Defaults < the embedded model's tuned options < thinkstop_settings < the
        model's block < the request's override."""
        return DEFAULTS.merged(_tuned(entry), self.thinkstop_settings, entry.thinkstop,
                               override)


def _tuned(entry: ModelEntry) -> ThinkstopOptions | None:
    params = entry.litellm_params
    return _tuned_for(str(params.get("model", "")), bool(params.get("gguf")))


@functools.cache
def _tuned_for(model: str, own_file: bool) -> ThinkstopOptions | None:
    # Validated once per model: options_for runs on every request.
    tuned = recommended_options({"model": model, "gguf": own_file})
    return ThinkstopOptions.model_validate(tuned) if tuned else None


def _resolve_env(value: Any, path: str, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX):]
        if name not in environ:
            raise ConfigError(f"{path}: environment variable {name} is not set")
        return environ[name]
    if isinstance(value, dict):
        return {k: _resolve_env(v, f"{path}.{k}" if path else str(k), environ)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{path}[{i}]", environ) for i, v in enumerate(value)]
    return value


# general_settings fields an environment variable supplies when the file leaves them out.
ENV_DEFAULTS = {"master_key": "THINKSTOP_MASTER_KEY", "redis_url": "THINKSTOP_REDIS_URL"}


def _env_defaults(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    general = data.get("general_settings")
    general = dict(general) if isinstance(general, dict) else {}
    if "general_settings" in data and not isinstance(data["general_settings"], dict):
        return data  # let validation name the field
    for field_name, variable in ENV_DEFAULTS.items():
        if general.get(field_name) in (None, "") and environ.get(variable):
            general[field_name] = environ[variable]
        elif general.get(field_name) == "":
            general[field_name] = None  # `master_key: os.environ/X` with X empty: off
    return {**data, "general_settings": general} if general else data


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_config(data: Any, *, environ: Mapping[str, str] | None = None,
                 source: str = "config") -> ProxyConfig:
    """Validate a loaded YAML document (``os.environ/`` references resolved first)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    env = os.environ if environ is None else environ
    resolved = _env_defaults(_resolve_env(data, "", env), env)
    try:
        return ProxyConfig.model_validate(resolved)
    except ValidationError as exc:
        lines = [f"{_location(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"invalid {source}:\n  " + "\n  ".join(lines)) from None


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> ProxyConfig:
    """Read and validate a YAML config file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    return parse_config(data, environ=environ, source=f"config {path}")


def default_config(gguf: str | None = None) -> ProxyConfig:
    """No --config: serve the embedded local model."""
    params: dict[str, Any] = {"model": DEFAULT_LOCAL_MODEL}
    if gguf:
        params["gguf"] = gguf
    return ProxyConfig(model_list=[ModelEntry(model_name=DEFAULT_LOCAL_NAME,
                                              litellm_params=params)])


def with_gguf(config: ProxyConfig, gguf: str | None) -> ProxyConfig:
    """``--gguf PATH`` applied to every embedded (``local/``) model."""
    if not gguf:
        return config
    entries = [
        entry.model_copy(update={"litellm_params": {**entry.litellm_params, "gguf": gguf}})
        if str(entry.litellm_params["model"]).startswith("local/") else entry
        for entry in config.model_list
    ]
    return config.model_copy(update={"model_list": entries})

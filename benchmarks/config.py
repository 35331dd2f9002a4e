"""A benchmark run's settings (saved as ``run.json``) and the requests it sends."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from thinkstop.benchmarks.prompts import messages, native_params, provider
from thinkstop.benchmarks.recorder import RecordSettings
from thinkstop.benchmarks.tasks.base import Item

if TYPE_CHECKING:
    from thinkstop.proxy.upstreams.base import ChatRequest

REGIMES: Final = ("requested", "truncate", "natural", "policies")
# Settings that must match for a resumed run to add to the same files.
RESUME_KEYS: Final = (
    "model",
    "seed",
    "chunk_tokens",
    "probe_tokens",
    "max_reasoning",
    "probe_at_zero",
    "cautioned",
    "temperature",
    "top_p",
    "grades_csv",
)


@dataclass(frozen=True)
class BenchConfig:
    model: str
    tasks: tuple[str, ...]
    n: int = 10
    seed: int = 0
    budgets: tuple[int, ...] = (0, 1024, 2048, 4096)
    policies: tuple[str, ...] = ("plateau",)
    regimes: tuple[str, ...] = REGIMES
    samples: int = 5
    chunk_tokens: int = 256
    probe_tokens: int = 16
    max_reasoning: int = 16384
    probe_at_zero: bool = True
    concurrency: int = 4
    retries: int = 3
    backoff_s: float = 1.0
    live: bool = False
    cautioned: bool = False
    temperature: float | None = None
    top_p: float | None = None
    api_base: str | None = None
    data_dir: str | None = None
    grades_csv: str | None = None
    extra_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [r for r in self.regimes if r not in REGIMES]
        if unknown:
            raise ValueError(f"unknown regime(s) {', '.join(unknown)}; valid: {', '.join(REGIMES)}")
        if any(b < 0 for b in self.budgets):
            raise ValueError("budgets must be >= 0")
        if self.n < 1 or self.samples < 1 or self.concurrency < 1 or self.retries < 0:
            raise ValueError("n, samples and concurrency must be >= 1 and retries >= 0")

    @property
    def record(self) -> RecordSettings:
        return RecordSettings(
            chunk_tokens=self.chunk_tokens,
            probe_until=max(self.budgets, default=0),
            max_reasoning=self.max_reasoning,
            probe_tokens=self.probe_tokens,
            probe_at_zero=self.probe_at_zero and 0 in self.budgets,
        )

    @property
    def needs_trace(self) -> bool:
        return self.live or any(r in self.regimes for r in ("truncate", "natural", "policies"))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["tasks"], out["budgets"] = list(self.tasks), list(self.budgets)
        out["policies"], out["regimes"] = list(self.policies), list(self.regimes)
        return out

    def sampling(self) -> dict[str, Any]:
        """The paper's sampling: temperature 1.0 for API models, 0.6 / top_p 0.95 otherwise.

        OpenAI reasoning models take no temperature. Explicit settings always win.
        """
        kind = provider(self.model)
        params: dict[str, Any] = {}
        if kind == "anthropic":
            params["temperature"] = 1.0
        elif kind == "other":
            params.update(temperature=0.6, top_p=0.95)
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.top_p is not None:
            params["top_p"] = self.top_p
        return params

    def request(self, item: Item, budget: int | None) -> ChatRequest:
        """The chat request for ``item`` under a budget (None: natural thinking)."""
        from thinkstop.proxy.upstreams.base import ChatRequest

        params = {**self.sampling(), **native_params(self.model, budget)}
        kind = provider(self.model)
        if budget is None and kind == "anthropic":
            params.update(
                thinking={"type": "enabled", "budget_tokens": self.max_reasoning},
                max_tokens=self.max_reasoning + 10_000,
            )
        elif kind == "other":
            params.setdefault("max_tokens", self.max_reasoning + 1024)
        params.update(self.extra_params)
        return ChatRequest(
            model=self.model,
            messages=messages(item, budget, cautioned=self.cautioned),
            params=params,
        )


def resume_conflicts(saved: dict[str, Any], config: BenchConfig) -> list[str]:
    """Settings that differ from the saved run (a resumed run must not mix them)."""
    current = config.to_json()
    return [
        f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}"
        for k in RESUME_KEYS
        if k in saved and saved.get(k) != current.get(k)
    ]


def data_path(value: str | None) -> Path | None:
    return Path(value) if value else None

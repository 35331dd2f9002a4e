"""A benchmark run's settings (saved as ``run.json``) and the requests it sends.

Token limits follow the paper (Gema et al., arXiv 2507.14417). Open-weight models get the
budget in the prompt only and ``max_tokens`` = B + 16,384 for budget B (32,768 for
natural thinking); Claude gets ``thinking.budget_tokens`` = B with ``max_tokens`` = B +
10,000 (natural: a 16,384 budget). A run's reasoning is cut where that limit would stop
it, or earlier at ``--max-reasoning`` when one is given; the answer is then forced and the
row marked ``capped``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from thinkstop.benchmarks.prompts import (
    messages,
    native_params,
    no_think_prefill,
    provider,
    resolve_think_prefill,
)
from thinkstop.benchmarks.recorder import RecordSettings
from thinkstop.benchmarks.tasks.base import Item

if TYPE_CHECKING:
    from thinkstop.proxy.anchors import Anchors
    from thinkstop.proxy.upstreams.base import ChatRequest

REGIMES: Final = ("requested", "truncate", "natural", "policies", "anchored")
# The paper's budget grid (reasoning tokens).
PAPER_BUDGETS: Final = (0, 1024, 2048, 4096, 8192, 16384)
# Open-weight models: room past the budget (max_tokens = B + ANSWER_ROOM) and the natural
# limit; Claude's natural thinking budget.
ANSWER_ROOM: Final = 16_384
NATURAL_MAX_TOKENS: Final = 32_768
NATURAL_BUDGET: Final = 16_384
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
    "think_prefill",
    "items_sha256",
    "anchors",
    "anchors_max",
)


@dataclass(frozen=True)
class BenchConfig:
    model: str
    tasks: tuple[str, ...]
    n: int | None = 10  # None: every item of an --items file, DEFAULT_N of the others
    seed: int = 0
    budgets: tuple[int, ...] = PAPER_BUDGETS
    policies: tuple[str, ...] = ("plateau",)
    regimes: tuple[str, ...] = REGIMES
    samples: int = 5
    runs: int = 1
    chunk_tokens: int = 256
    probe_tokens: int = 16
    max_reasoning: int | None = None  # None: the paper's limits (module docstring)
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
    think_prefill: str = "auto"
    items_files: dict[str, str] = field(default_factory=dict)
    items_sha256: dict[str, str] = field(default_factory=dict)
    extra_params: dict[str, Any] = field(default_factory=dict)
    # The anchored regime's examples: a file (None: each task's generated ones), how many.
    anchors: str | None = None
    anchors_max: int = 8

    def __post_init__(self) -> None:
        unknown = [r for r in self.regimes if r not in REGIMES]
        if unknown:
            raise ValueError(f"unknown regime(s) {', '.join(unknown)}; valid: {', '.join(REGIMES)}")
        if any(b < 0 for b in self.budgets):
            raise ValueError("budgets must be >= 0")
        if (self.n is not None and self.n < 1) or min(self.samples, self.runs) < 1:
            raise ValueError("n, samples and runs must be >= 1")
        if self.concurrency < 1 or self.retries < 0:
            raise ValueError("concurrency must be >= 1 and retries >= 0")
        if self.max_reasoning is not None and self.max_reasoning < 1:
            raise ValueError("max_reasoning must be >= 1")
        if self.anchors_max < 1:
            raise ValueError("anchors_max must be >= 1")
        resolve_think_prefill(self.model, self.think_prefill, api_base=self.api_base)

    @property
    def record(self) -> RecordSettings:
        return RecordSettings(
            chunk_tokens=self.chunk_tokens,
            probe_until=max(self.budgets, default=0),
            max_reasoning=self.reasoning_cap(None),
            probe_tokens=self.probe_tokens,
            probe_at_zero=self.probe_at_zero and 0 in self.budgets,
        )

    @property
    def trace_runs(self) -> int:
        """Recorded traces per item: one per run when a controlled regime replays them
        (truncation, policies, live), else one (natural thinking), else none."""
        if self.live or any(r in self.regimes for r in ("truncate", "policies")):
            return self.runs
        return 1 if "natural" in self.regimes else 0

    @property
    def natural_samples(self) -> int:
        """Natural samples per item (traces included); one when the regime is not run."""
        return self.samples if "natural" in self.regimes else 1

    def token_limit(self, budget: int | None) -> int:
        """The paper's limit on a run's tokens (reasoning and answer) for a budget."""
        if budget is None:
            # A --max-reasoning above the paper's limit keeps room for the answer after it.
            return max(NATURAL_MAX_TOKENS, (self.max_reasoning or 0) + 1024)
        return budget + ANSWER_ROOM

    def reasoning_cap(self, budget: int | None) -> int:
        """Where a run's reasoning is cut and its answer forced: the paper's token limit,
        or ``max_reasoning`` when that is lower."""
        limit = self.token_limit(budget)
        return limit if self.max_reasoning is None else min(limit, self.max_reasoning)

    def to_json(self) -> dict[str, Any]:
        """The settings as ``run.json`` keeps them (``think_prefill`` as resolved, so a
        resumed run compares what was sent, not how it was asked for)."""
        out = asdict(self)
        out["tasks"], out["budgets"] = list(self.tasks), list(self.budgets)
        out["policies"], out["regimes"] = list(self.policies), list(self.regimes)
        out["think_prefill"] = resolve_think_prefill(self.model, self.think_prefill,
                                                     api_base=self.api_base)
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

    def request(self, item: Item, budget: int | None,
                anchors: Anchors | None = None) -> ChatRequest:
        """The chat request for ``item`` under a budget (None: natural thinking).

        Budget 0 on an open-weight model also pre-fills an empty think block in the way
        ``think_prefill`` names (:func:`thinkstop.benchmarks.prompts.no_think_prefill`).
        ``anchors`` adds worked examples as the proxy's anchors do (few-shot turns).
        """
        from thinkstop.proxy.anchors import apply_anchors
        from thinkstop.proxy.upstreams.base import ChatRequest

        params = {**self.sampling(), **native_params(self.model, budget)}
        chat = messages(item, budget, cautioned=self.cautioned)
        if anchors is not None:
            chat = apply_anchors(chat, anchors)
        kind = provider(self.model)
        if budget is None and kind == "anthropic":
            thinking = self.max_reasoning or NATURAL_BUDGET
            params.update(
                thinking={"type": "enabled", "budget_tokens": thinking},
                max_tokens=thinking + 10_000,
            )
        elif kind == "other":
            params.setdefault("max_tokens", self.token_limit(budget))
            if budget == 0:
                style = resolve_think_prefill(self.model, self.think_prefill,
                                              api_base=self.api_base)
                prefill, fields = no_think_prefill(style)
                chat += prefill
                params.update(fields)
        params.update(self.extra_params)
        return ChatRequest(model=self.model, messages=chat, params=params)


def resume_conflicts(saved: dict[str, Any], config: BenchConfig) -> list[str]:
    """Settings that differ from the saved run (a resumed run must not mix them).

    A setting the saved run predates counts as its old default where that changed
    (``think_prefill`` came later; runs before it sent no prefill), else as matching.
    """
    current = config.to_json()
    old_defaults: dict[str, Any] = {"think_prefill": "none", "items_sha256": {}}
    conflicts: list[str] = []
    for key in RESUME_KEYS:
        if key in saved:
            before = saved[key]
        elif key in old_defaults:
            before = old_defaults[key]
        else:
            continue
        if before != current.get(key):
            conflicts.append(f"{key}: saved {before!r}, now {current.get(key)!r}")
    return conflicts


def data_path(value: str | None) -> Path | None:
    return Path(value) if value else None

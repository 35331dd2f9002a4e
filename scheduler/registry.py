"""Policies by name, and spec strings such as ``plateau:window=3,epsilon=0.05``.

A spec may also carry guard-rails (``min_tokens``, ``max_tokens``, ``max_probes``), which
apply to any policy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from thinkstop.scheduler.learned import LearnedPolicy
from thinkstop.scheduler.policies import BUILTIN_POLICIES
from thinkstop.scheduler.policy import Guarded, GuardRails, Policy

DEFAULT_POLICY = "plateau"
GUARD_KEYS = ("min_tokens", "max_tokens", "max_probes", "loop")

_BUILT_IN: tuple[type[Policy], ...] = (*BUILTIN_POLICIES, LearnedPolicy)
_REGISTRY: dict[str, type[Policy]] = {cls.name: cls for cls in _BUILT_IN}

P = TypeVar("P", bound=type[Policy])


class PolicySpecError(ValueError):
    """A policy spec names an unknown policy or parameter, or a bad value."""


def register_policy(cls: P) -> P:
    """Class decorator: make a custom policy available to specs by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def unregister_policy(name: str) -> None:
    """Remove a custom policy (built-in ones stay)."""
    if name in {cls.name for cls in _BUILT_IN}:
        raise PolicySpecError(f"{name!r} is built in and cannot be removed")
    _REGISTRY.pop(name, None)


def policy_names() -> list[str]:
    return sorted(_REGISTRY)


def policy_parameters(name: str) -> dict[str, object]:
    """Parameter names and defaults of a registered policy."""
    cls = _policy_class(name)
    sig = inspect.signature(cls.__init__)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name != "self" and p.default is not inspect.Parameter.empty
    }


def _policy_class(name: str) -> type[Policy]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PolicySpecError(
            f"unknown policy {name!r}; valid policies: {', '.join(policy_names())}"
        ) from None


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A parsed spec: policy name, its parameters, and guard-rail overrides."""

    name: str
    params: dict[str, object]
    rails: dict[str, float]

    def __str__(self) -> str:
        items = {**self.params, **self.rails}
        args = ",".join(f"{k}={v}" for k, v in items.items())
        return f"{self.name}:{args}" if args else self.name


def _coerce(policy: str, key: str, raw: str, default: object) -> object:
    converters: dict[type, Callable[[str], object]] = {int: int, float: float, str: str}
    target = type(default) if default is not None else int
    try:
        return converters.get(target, str)(raw)
    except ValueError:
        raise PolicySpecError(
            f"{policy}: {key}={raw!r} is not a valid {target.__name__}"
        ) from None


def split_spec(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """``name:key=value,...`` -> (name, [(key, value), ...]): the spec syntax that
    policies and probe schedules share."""
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    pairs: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise PolicySpecError(f"{name}: expected key=value, got {item!r}")
        pairs.append((key, value))
    return name, pairs


def parse_spec(spec: str) -> PolicySpec:
    """Parse ``name`` or ``name:key=value,...`` into a :class:`PolicySpec`."""
    if not spec.strip():
        raise PolicySpecError(f"empty policy spec; valid policies: {', '.join(policy_names())}")
    name, pairs = split_spec(spec)
    defaults = policy_parameters(name)
    params: dict[str, object] = {}
    rails: dict[str, float] = {}
    for key, value in pairs:
        if key in GUARD_KEYS:
            coerced = _coerce(name, key, value, 0.0 if key == "loop" else 0)
            assert isinstance(coerced, int | float)
            rails[key] = coerced
        elif key in defaults:
            params[key] = _coerce(name, key, value, defaults[key])
        else:
            valid = ", ".join([*defaults, *GUARD_KEYS])
            raise PolicySpecError(f"{name}: unknown parameter {key!r}; valid parameters: {valid}")
    return PolicySpec(name=name, params=params, rails=rails)


def _opt_int(value: float | None) -> int | None:
    return None if value is None else int(value)


def create_policy(spec: str | PolicySpec, rails: GuardRails | None = None) -> Guarded:
    """Build a fresh guarded policy (one per request) from a spec string.

    ``rails`` are defaults (from config or request); guard keys in the spec override them.
    ``fixed:budget=B`` becomes a ``max_tokens`` cut at ``min(B, max_tokens)``.
    """
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    cls = _policy_class(parsed.name)
    try:
        policy = cls(**parsed.params)  # type: ignore[arg-type]
    except ValueError as exc:
        raise PolicySpecError(str(exc)) from None
    base = rails or GuardRails()
    min_tokens = int(parsed.rails.get("min_tokens", base.min_tokens))
    max_tokens = _opt_int(parsed.rails.get("max_tokens", base.max_tokens))
    max_probes = _opt_int(parsed.rails.get("max_probes", base.max_probes))
    loop = parsed.rails.get("loop", base.loop)
    budget = getattr(policy, "budget", None)
    if isinstance(budget, int):
        max_tokens = budget if max_tokens is None else min(budget, max_tokens)
        min_tokens = min(min_tokens, max_tokens)
    try:
        guard = GuardRails(min_tokens=min_tokens, max_tokens=max_tokens, max_probes=max_probes,
                           loop=None if loop is None else float(loop))
    except ValueError as exc:
        raise PolicySpecError(f"{parsed.name}: {exc}") from None
    return Guarded(policy=policy, rails=guard)


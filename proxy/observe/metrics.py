"""Prometheus metrics, one registry per app (no process-wide state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from thinkstop.proxy.engine.accounting import RunResult

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ProxyMetrics:
    """Requests, halts by reason, tokens by kind, savings, upstream errors, latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("thinkstop_requests", "Chat completion requests",
                                ["model", "stream", "status"], registry=r)
        self.halts = Counter("thinkstop_decisions", "Requests by decision reason",
                             ["model", "halted", "reason"], registry=r)
        self.tokens = Counter("thinkstop_tokens", "Tokens by kind (reasoning, probe, answer, "
                              "prompt)", ["model", "kind"], registry=r)
        self.saved = Counter("thinkstop_tokens_saved_vs_budget", "Reasoning budget left "
                             "unspent by halts, net of probe tokens (an upper bound)",
                             ["model"], registry=r)
        self.probes = Counter("thinkstop_probes", "Probes by outcome",
                              ["model", "outcome"], registry=r)
        self.upstream_errors = Counter("thinkstop_upstream_errors", "Upstream failures by "
                                       "kind (status, connect, timeout, protocol)",
                                       ["model", "kind"], registry=r)
        self.faults = Counter("thinkstop_faults", "Faults survived or reported, by kind "
                              "(main_stream_failed, probes_unavailable, continuation_failed:*)",
                              ["model", "fault"], registry=r)
        self.budget_rejections = Counter("thinkstop_budget_rejections", "429s for a spent "
                                         "token window, by scope", ["scope"], registry=r)
        self.budget_store_errors = Counter("thinkstop_budget_store_errors", "Budget store "
                                           "(Redis) failures; requests went on", registry=r)
        self.in_flight = Gauge("thinkstop_requests_in_flight", "Chat requests running now",
                               registry=r)
        self.latency = Histogram("thinkstop_request_duration_seconds", "Request wall time",
                                 ["model", "stream"], buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("thinkstop_time_to_first_token_seconds",
                              "Time to the first streamed token", ["model"],
                              buckets=_LATENCY_BUCKETS, registry=r)

    def record(self, model: str, result: RunResult) -> None:
        self.halts.labels(model, str(result.halted).lower(), result.reason).inc()
        usage = result.usage()
        for kind, value in (("reasoning", result.reasoning_tokens),
                            ("probe", result.probe_tokens),
                            ("answer", result.answer_tokens),
                            ("prompt", usage.prompt_tokens)):
            self.tokens.labels(model, kind).inc(max(0, value))
        self.saved.labels(model).inc(result.tokens_saved_vs_budget())
        ok = result.probes - result.probes_failed
        self.probes.labels(model, "ok").inc(max(0, ok))
        self.probes.labels(model, "failed").inc(result.probes_failed)
        self.probes.labels(model, "skipped").inc(result.probes_skipped)

    def render(self) -> bytes:
        return generate_latest(self.registry)

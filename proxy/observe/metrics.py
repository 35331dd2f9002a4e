"""Prometheus metrics, one registry per app (no process-wide state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from thinkstop.proxy.engine.accounting import RunResult
from thinkstop.proxy.engine.shadow import WouldHave

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_LAG_BUCKETS = (0, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ProxyMetrics:
    """Requests, halts by reason, tokens by kind, savings, upstream errors, latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("thinkstop_requests", "Requests (chat completions, responses, "
                                "completions) by model, streaming and status",
                                ["model", "stream", "status"], registry=r)
        self.auth_failures = Counter("thinkstop_auth_failures", "Requests refused with a "
                                     "401, by code (missing_api_key, invalid_api_key)",
                                     ["code"], registry=r)
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
        self.budget_store_breaker_open = Gauge("thinkstop_budget_store_breaker_open", "1 "
                                               "while the budget store is skipped after a "
                                               "failure (windows not enforced)", registry=r)
        self.budget_spend_pending = Gauge("thinkstop_budget_spend_pending", "Window "
                                          "counters with spending not yet written to the "
                                          "budget store", registry=r)
        self.budget_spend_dropped = Counter("thinkstop_budget_spend_dropped", "Tokens of "
                                            "spending never written to the budget store "
                                            "(outage buffer full, or shutdown while it was "
                                            "down), summed over counters", registry=r)
        self.in_flight = Gauge("thinkstop_requests_in_flight", "Chat requests running now",
                               registry=r)
        self.latency = Histogram("thinkstop_request_duration_seconds", "Request wall time",
                                 ["model", "stream"], buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("thinkstop_time_to_first_token_seconds",
                              "Time to the first streamed token", ["model"],
                              buckets=_LATENCY_BUCKETS, registry=r)
        self.probe_seconds = Histogram("thinkstop_probe_seconds", "Wall time of probes, "
                                       "per request, by the model that answered them",
                                       ["model", "probe_model"], buckets=_LATENCY_BUCKETS,
                                       registry=r)
        self.probe_lag = Histogram("thinkstop_probe_lag_tokens", "Reasoning tokens "
                                   "streamed past a probe's boundary before its verdict "
                                   "arrived (per probe): when it nears the distance "
                                   "between probes, halts come late; add replicas",
                                   ["model"], buckets=_LAG_BUCKETS, registry=r)
        self.shadowed = Counter("thinkstop_shadow_requests", "Requests run in shadow mode "
                                "(probed, never halted)", ["model"], registry=r)
        self.would_halt = Counter("thinkstop_shadow_would_halt", "Shadowed requests the "
                                  "policy would have halted", ["model", "reason"], registry=r)
        self.would_save = Counter("thinkstop_shadow_would_save_tokens", "Reasoning tokens "
                                  "halting would have saved, net of probe tokens",
                                  ["model"], registry=r)
        self.would_change = Counter("thinkstop_shadow_would_change_answer", "Shadowed "
                                    "requests whose answer at the would-be halt differs "
                                    "from the model's own", ["model"], registry=r)
        # A gauge read from the sink when scraped (it counts its own drops, some of them
        # in its writer thread or task).
        self.traces_dropped = Gauge("thinkstop_shadow_traces_dropped", "Trace lines the "
                                    "sink could not keep up with (or write), since start",
                                    registry=r)

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
        self.probes.labels(model, "skipped").inc(result.probes_skipped - result.probes_shed)
        self.probes.labels(model, "shed").inc(result.probes_shed)
        if result.probes:
            self.probe_seconds.labels(model, result.probe_model or model).observe(
                result.probe_seconds)
        lag = self.probe_lag.labels(model)
        for tokens in result.probe_lags:
            lag.observe(tokens)

    def record_shadow(self, model: str, would: WouldHave) -> None:
        self.shadowed.labels(model).inc()
        if would.halted:
            self.would_halt.labels(model, would.reason or "halt").inc()
            self.would_save.labels(model).inc(max(0, would.saved_tokens))
            if would.changed_answer:
                self.would_change.labels(model).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""Prometheus metrics of the SSE server (`GET /metrics`).

Everything lives in the server's own `CollectorRegistry`, so that several servers in one process
(tests) do not collide and nothing of the library's global registry leaks in. Labels are bounded:
event types, scenario ids (the watched set), statuses and HTTP status codes — never execution ids.

Metrics:

``makestream_events_total{type}``                    events of the upstream watch
``makestream_executions_total{scenario_id,status}``  finished executions
``makestream_detection_latency_seconds``             event emission minus the run's end, where the
                                                     event gives both start and duration
``makestream_api_requests_total{status}``            requests answered by Make ("none": no answer)
``makestream_api_retries_total``                     retries the client planned
``makestream_api_throttled_total``                   429 answers
``makestream_budget_*``                              the request budget, read at scrape time
``makestream_upstream_up``                           1 while the upstream watch runs
``makestream_sse_clients``                           connected SSE clients
``makestream_sse_lagged_clients_total``              clients dropped for falling behind
``makestream_sse_rejected_total{reason}``            connections refused (auth, caps, ...)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from makestream.events import ExecutionFinished, _Event
from makestream.make.budget import BudgetSnapshot
from makestream.make.client import ApiNotice

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Detection latency spans polling intervals: from about a second to the minutes a busy budget
# may take.
LATENCY_BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class _BudgetCollector(Collector):
    """Reads the budget when scraped, so the figures are never stale."""

    def __init__(self, snapshot: Callable[[], BudgetSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        for name, text, value in (
            ("limit_per_minute", "The organization's request limit per minute.",
             snap.limit_per_min),
            ("rate_per_minute", "Requests per minute makestream currently allows itself.",
             snap.rate_per_min),
            ("used_last_minute", "Requests sent in the last minute.", snap.used_last_minute),
            ("remaining", "Requests still allowed in the current minute.", snap.remaining),
            ("throttled", "1 while a 429 pause lasts.", 1 if snap.throttled_until else 0),
        ):
            yield GaugeMetricFamily(f"makestream_budget_{name}", text, value=float(value))


class Metrics:
    """The server's metrics; the hub and the routes feed them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter("makestream_events", "Events of the upstream watch, by type.",
                              ["type"], registry=r)
        self.executions = Counter("makestream_executions", "Finished executions.",
                                  ["scenario_id", "status"], registry=r)
        self.latency = Histogram(
            "makestream_detection_latency_seconds",
            "Time from a run's end to its execution.finished event (clock seconds).",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.api_requests = Counter("makestream_api_requests",
                                    "Requests answered by Make, by HTTP status.",
                                    ["status"], registry=r)
        self.api_retries = Counter("makestream_api_retries", "Retries of failed requests.",
                                   registry=r)
        self.api_throttled = Counter("makestream_api_throttled", "429 answers from Make.",
                                     registry=r)
        self.upstream_up = Gauge("makestream_upstream_up", "1 while the upstream watch runs.",
                                 registry=r)
        self.clients = Gauge("makestream_sse_clients", "Connected SSE clients.", registry=r)
        self.lagged = Counter("makestream_sse_lagged_clients",
                              "SSE clients dropped for falling behind.", registry=r)
        self.rejected = Counter("makestream_sse_rejected", "SSE connections refused.",
                                ["reason"], registry=r)

    def watch_budget(self, snapshot: Callable[[], BudgetSnapshot]) -> None:
        self.registry.register(_BudgetCollector(snapshot))

    def observe_event(self, event: _Event) -> None:
        self.events.labels(event.type).inc()
        if not isinstance(event, ExecutionFinished):
            return
        self.executions.labels(str(event.scenario_id), event.status).inc()
        if event.started_at and event.duration_ms is not None and event.ts:
            ended = _epoch(event.started_at) + event.duration_ms / 1000
            self.latency.observe(max(0.0, _epoch(event.ts) - ended))

    def observe_notice(self, notice: ApiNotice) -> None:
        match notice.kind:
            case "request":
                self.api_requests.labels(str(notice.status or "none")).inc()
            case "retry":
                self.api_retries.inc()
            case "throttled":
                self.api_throttled.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

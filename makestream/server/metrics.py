"""Prometheus metrics of the SSE server (`GET /metrics`).

Everything lives in the server's own `CollectorRegistry`, so that several servers in one process
(tests) do not collide and nothing of the library's global registry leaks in. Labels are bounded:
event types, scenario ids (the watched set), statuses, endpoint templates (ids replaced by
``{id}``), HTTP status codes, rules and severities — never execution ids. Counters count in base
units (requests, events, seconds) and rates are left to PromQL (``rate(…[5m]) * 60`` is per
minute); no ``_created`` series are exported (they double the series count for nothing a
dashboard uses). `contrib/grafana/makestream.json` and `contrib/prometheus/makestream.rules.yml`
are built on these names.

Metrics:

``makestream_build_info{version}``                          1, labelled with the version
``makestream_events_total{type}``                           events of the upstream watch
``makestream_executions_total{scenario_id,status}``         finished executions
``makestream_detection_latency_seconds``                    histogram: event emission minus the
                                                            run's end (clock seconds), where the
                                                            event gives start and duration
``makestream_api_requests_total{method,endpoint,code}``     requests to Make by outcome; `code` is
                                                            the HTTP status, "none" with no answer
``makestream_api_retries_total``                            retries the client planned
``makestream_api_throttled_total``                          429 answers
``makestream_api_budget_per_minute``                        requests per minute makestream allows
                                                            itself (its share of the limit)
``makestream_api_paused``                                   1 while a 429 pause lasts
``makestream_alerts_open{rule,severity}``                   alerts raised and not yet resolved
``makestream_sink_errors_total{sink}``                      failed deliveries to --webhook and
                                                            --alertmanager (retries included)
``makestream_upstream_up``                                  1 while the upstream watch runs
``makestream_sse_clients``                                  connected SSE clients
``makestream_sse_lagged_clients_total``                     clients dropped for falling behind
``makestream_sse_rejected_total{reason}``                   connections refused (auth, caps, ...)

plus the client library's ``process_*`` and ``python_*`` series (CPU, memory, descriptors, GC).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from makestream import __version__
from makestream.events import AlertRaised, ExecutionFinished, _Event
from makestream.make.budget import BudgetSnapshot
from makestream.make.client import ApiNotice

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Detection latency spans polling intervals: from about a second to the minutes a busy budget
# may take.
LATENCY_BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600)
# The words of Make's API paths that makestream requests; any other segment is an id. An
# endpoint label is made of these and ``{id}`` only, so its values are few whatever is watched.
_PATH_WORDS = frozenset({
    "organizations", "teams", "users", "me", "scenarios", "blueprint", "triggers", "interface",
    "logs", "executions", "run", "modules", "dlqs", "bundle",
})


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def endpoint_of(path: str) -> str:
    """``/scenarios/123/logs/abc`` → ``/scenarios/{id}/logs/{id}``."""
    parts = [p if p in _PATH_WORDS else "{id}" for p in path.split("?", 1)[0].split("/") if p]
    return "/" + "/".join(parts)


class _BudgetCollector(Collector):
    """Reads the budget when scraped, so the figures are never stale."""

    def __init__(self, snapshot: Callable[[], BudgetSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield GaugeMetricFamily(
            "makestream_api_budget_per_minute",
            "Requests per minute makestream allows itself: its share of the organization's "
            "limit (license.apiLimit or --api-limit).",
            value=float(snap.limit_per_min * snap.share),
        )
        yield GaugeMetricFamily("makestream_api_paused",
                                "1 while every request waits out a 429 pause.",
                                value=1.0 if snap.throttled_until else 0.0)


class _AlertsCollector(Collector):
    """The open alerts by rule and severity, read when scraped."""

    def __init__(self, active: Callable[[], Iterable[AlertRaised]]) -> None:
        self.active = active  # set by `Metrics.watch_alerts`

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("makestream_alerts_open",
                                   "Alerts raised and not yet resolved.",
                                   labels=["rule", "severity"])
        counts = Tally((a.rule, a.severity) for a in self.active())
        for (rule, severity), n in sorted(counts.items()):
            family.add_metric([rule, severity], float(n))
        yield family


class Metrics:
    """The server's metrics; the hub and the routes feed them."""

    def __init__(self) -> None:
        # Process-wide, but read at scrape time: the library offers no per-registry switch.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in the library
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        Gauge("makestream_build_info", "The running makestream's version (always 1).",
              ["version"], registry=r).labels(__version__).set(1)
        self.events = Counter("makestream_events", "Events of the upstream watch, by type.",
                              ["type"], registry=r)
        self.executions = Counter("makestream_executions", "Finished executions.",
                                  ["scenario_id", "status"], registry=r)
        self.latency = Histogram(
            "makestream_detection_latency_seconds",
            "Time from a run's end to its execution.finished event (clock seconds).",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.api_requests = Counter(
            "makestream_api_requests",
            "Requests to Make, by method, endpoint and HTTP status (code \"none\": no answer).",
            ["method", "endpoint", "code"], registry=r,
        )
        self.api_retries = Counter("makestream_api_retries", "Retries of failed requests.",
                                   registry=r)
        self.api_throttled = Counter("makestream_api_throttled", "429 answers from Make.",
                                     registry=r)
        self.sink_errors = Counter(
            "makestream_sink_errors",
            "Failed deliveries to alert sinks (each retry counts), by kind of sink.",
            ["sink"], registry=r,
        )
        self.upstream_up = Gauge("makestream_upstream_up", "1 while the upstream watch runs.",
                                 registry=r)
        self.clients = Gauge("makestream_sse_clients", "Connected SSE clients.", registry=r)
        self.lagged = Counter("makestream_sse_lagged_clients",
                              "SSE clients dropped for falling behind.", registry=r)
        self.rejected = Counter("makestream_sse_rejected", "SSE connections refused.",
                                ["reason"], registry=r)
        self._alerts = _AlertsCollector(lambda: ())
        r.register(self._alerts)

    def watch_bus(self, *, up: Callable[[], float], lease_held: Callable[[], float],
                  lag: Callable[[], float], length: Callable[[], float]) -> None:
        """The ``makestream_bus_*`` gauges of a replica on a Redis bus (serve-sse --bus)."""
        r = self.registry
        for name, doc, read in (
            ("makestream_bus_up", "1 while Redis (the bus) answers.", up),
            ("makestream_bus_lease_held",
             "1 while this replica holds the lease and polls Make for the cluster.", lease_held),
            ("makestream_bus_lag_events",
             "Events in the bus's stream this replica has not read yet.", lag),
            ("makestream_bus_stream_length", "Events the bus's stream keeps.", length),
        ):
            Gauge(name, doc, registry=r).set_function(read)

    def watch_budget(self, snapshot: Callable[[], BudgetSnapshot]) -> None:
        self.registry.register(_BudgetCollector(snapshot))

    def watch_alerts(self, active: Callable[[], Iterable[AlertRaised]]) -> None:
        """Where `makestream_alerts_open` reads the open alerts from."""
        self._alerts.active = active

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
                code = str(notice.status) if notice.status is not None else "none"
                self.api_requests.labels(notice.method, endpoint_of(notice.path), code).inc()
            case "retry":
                self.api_retries.inc()
            case "throttled":
                self.api_throttled.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

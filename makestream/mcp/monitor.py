"""A monitor: one watch on the shared client, folded into the state `get_execution_state` reads.

`MonitorBook` is the sans-I/O part: events in (`apply`), state out (`drain` for the tool, which
hands over runs and alerts once each; `snapshot` for the resource, which takes nothing away).
The loop that feeds it (`Service._run_monitor`) owns the watch.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

from makestream.events import (
    AlertRaised,
    AlertResolved,
    ExecutionFinished,
    ExecutionProgress,
    ExecutionStarted,
    StreamClosed,
    StreamError,
    StreamOpened,
    _Event,
)
from makestream.limits import MCP_BACKLOG_MAX, MCP_RECENT_RUNS
from makestream.make.budget import BudgetSnapshot
from makestream.mcp.models import (
    Alert,
    Budget,
    ExecutionError,
    FinishedRun,
    InFlight,
    MonitorState,
)

# What a resource subscriber hears about: runs beginning and ending, alerts, the end. Progress
# and heartbeats change the state every few seconds and would only be noise.
_NOTABLE = (ExecutionStarted, ExecutionFinished, AlertRaised, AlertResolved, StreamClosed)


def budget_of(snapshot: BudgetSnapshot) -> Budget:
    return Budget(
        limit_per_min=snapshot.limit_per_min,
        rate_per_min=round(snapshot.rate_per_min, 2),
        used_last_minute=snapshot.used_last_minute,
        remaining=snapshot.remaining,
    )


def finished_run(event: ExecutionFinished) -> FinishedRun:
    error = event.error
    return FinishedRun(
        scenario_id=event.scenario_id,
        execution_id=event.execution_id or "",
        status=event.status,
        scenario_name=event.scenario_name,
        started_at=event.started_at,
        ended_at=event.ended_at,
        duration_ms=event.duration_ms,
        operations=event.operations,
        centicredits=event.centicredits,
        error=ExecutionError(**error.model_dump()) if error is not None else None,
        url=event.url,
    )


def eta_s(elapsed_ms: int | None, expected_ms: int | None) -> float | None:
    if elapsed_ms is None or expected_ms is None:
        return None
    return round(max(0, expected_ms - elapsed_ms) / 1000, 1)


class MonitorBook:
    """The state of one monitor, built from its watch's events alone."""

    def __init__(self, monitor_id: str, scenario_ids: list[int]) -> None:
        self.monitor_id = monitor_id
        self.scenario_ids = list(scenario_ids)
        self.status: Literal["starting", "running", "closed"] = "starting"
        self.running: dict[str, InFlight] = {}
        self.recent: deque[FinishedRun] = deque(maxlen=MCP_RECENT_RUNS)
        self._runs: deque[FinishedRun] = deque()
        self._alerts: deque[Alert] = deque()
        self.open_alerts: dict[str, Alert] = {}
        self.dropped = 0
        self.finished_total = 0
        self.last_error: str | None = None
        self.closed_reason: str | None = None
        self.fatal: str | None = None  # the error that ended the watch, if one did

    def apply(self, event: _Event) -> bool:
        """Take one event in; True when a resource subscriber should hear of it."""
        match event:
            case StreamOpened():
                self.status = "running"
                if event.targets:
                    self.scenario_ids = list(event.targets)
            case ExecutionStarted():
                eid = event.execution_id or ""
                self.running[eid] = InFlight(
                    scenario_id=event.scenario_id, execution_id=eid,
                    scenario_name=event.scenario_name, started_at=event.started_at,
                    expected_duration_ms=event.expected_duration_ms,
                )
            case ExecutionProgress():
                flying = self.running.get(event.execution_id or "")
                if flying is not None:
                    flying.elapsed_ms = event.elapsed_ms
                    flying.expected_duration_ms = event.expected_duration_ms
                    flying.percent = event.percent
                    flying.basis = event.basis
                    flying.eta_s = eta_s(event.elapsed_ms, event.expected_duration_ms)
            case ExecutionFinished():
                self.running.pop(event.execution_id or "", None)
                run = finished_run(event)
                self.recent.append(run)
                self.finished_total += 1
                self._keep(self._runs, run)
            case AlertRaised() | AlertResolved():
                alert = self._alert(event)
                if isinstance(event, AlertRaised):
                    self.open_alerts[event.alert_id] = alert
                else:
                    self.open_alerts.pop(event.alert_id, None)
                self._keep(self._alerts, alert)
            case StreamError():
                self.last_error = event.message
                if event.fatal:
                    self.fatal = event.message
            case StreamClosed():
                self.status = "closed"
                self.closed_reason = event.reason
                self.running.clear()
                self.open_alerts.clear()  # a monitor that stopped watching vouches for none
        return isinstance(event, _NOTABLE)

    def _keep(self, queue: deque[FinishedRun] | deque[Alert], item: FinishedRun | Alert) -> None:
        if len(self._runs) + len(self._alerts) >= MCP_BACKLOG_MAX:
            # The oldest of the longer queue goes: both kinds keep a share.
            longer = self._runs if len(self._runs) >= len(self._alerts) else self._alerts
            longer.popleft()
            self.dropped += 1
        queue.append(item)  # type: ignore[arg-type]

    def _alert(self, event: AlertRaised | AlertResolved) -> Alert:
        return Alert(
            monitor_id=self.monitor_id, alert_id=event.alert_id,
            event="raised" if isinstance(event, AlertRaised) else "resolved",
            rule=event.rule, severity=event.severity, scenario_id=event.scenario_id,
            value=event.value, threshold=event.threshold, message=event.message, at=event.ts,
        )

    def drain(self, budget: BudgetSnapshot) -> MonitorState:
        """The state with the runs and alerts since the last drain, which are handed over."""
        runs, alerts, dropped = list(self._runs), list(self._alerts), self.dropped
        self._runs.clear()
        self._alerts.clear()
        self.dropped = 0
        return self._state(runs, alerts, dropped, budget)

    def snapshot(self, budget: BudgetSnapshot) -> MonitorState:
        """The state with the most recent runs; nothing is handed over."""
        return self._state(list(self.recent), [], 0, budget)

    def _state(self, runs: list[FinishedRun], alerts: list[Alert], dropped: int,
               budget: BudgetSnapshot) -> MonitorState:
        return MonitorState(
            monitor_id=self.monitor_id, status=self.status, scenario_ids=self.scenario_ids,
            running=[r.model_copy() for r in self.running.values()], finished=runs,
            alerts=alerts, open_alerts=list(self.open_alerts.values()), dropped=dropped,
            last_error=self.last_error, closed_reason=self.closed_reason,
            budget=budget_of(budget),
        )

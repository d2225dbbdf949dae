"""Alert rules over the event stream: pure, no I/O, no clock reads (every call is given `now`).

    evaluator = AlertEvaluator(load().thresholds)
    for event in stream:
        alerts = evaluator.observe(event, now)              # run, flag and queue rules
    alerts = evaluator.tick(now, tracker.scenarios, budget) # stuck, missed schedule, budget, ...

The rules and their thresholds are described in `makestream.engine.rules`. Each alert has a stable
`alert_id` — ``RULE:SCENARIO`` (``consecutive_failures:123``), ``stuck_factor:SCENARIO:EXECUTION``
for a stuck run, ``budget_usage`` for the organization — and a lifecycle:

- **raised once** when its condition starts to hold (`alert.raised`); while it keeps holding nothing
  more is emitted, so one incident never raises twice;
- **re-notified** every `renotify_s` while active, if configured: `alert.raised` again with the
  same `alert_id` and an extra field ``renotified: true``;
- **resolved once** when the condition clears (`alert.resolved`, with the latest value).

Per-run rules (duration, operations, transfer, centicredits) stay active until a later run is back
within the limit. When a rule cannot judge (too few runs, a figure Make did not send), the alert
keeps its state.

Replayed alerts: a watch that starts with a catch-up over past runs (--since, --resume) feeds them
in as it finds them, and the rules judge them like any others. What they raise or resolve describes
the past, so it carries ``replayed: true`` (sinks skip it), as does anything more about the same
alert until the watch calls `caught_up`; then each such alert still active is raised once more,
unmarked: the one notice a receiver gets of it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, cast

from makestream.engine.history import History
from makestream.engine.rules import EffectiveThresholds, Severity, Threshold
from makestream.engine.tracker import Running, ScenarioState
from makestream.events import (
    AlertRaised,
    AlertResolved,
    ExecutionFinished,
    ExecutionProgress,
    ExecutionStarted,
    ScenarioChanged,
    _Event,
    rfc3339,
)
from makestream.make.budget import BudgetSnapshot
from makestream.make.models import ExecStatus, ExecutionLog, Scenario

AlertEvent = AlertRaised | AlertResolved
_RANK: dict[str, int] = {"warning": 1, "critical": 2}
_OUTCOMES_KEPT = 1000  # the longest rate window honoured, in runs


def fails(severity_threshold: Severity, event: _Event) -> bool:
    """Whether `event` is an alert that `--fail-on-alert SEVERITY` counts (critical counts for
    warning too)."""
    return isinstance(event, AlertRaised) and _RANK[event.severity] >= _RANK[severity_threshold]


def _scaled(seconds: float) -> tuple[float, str, int]:
    """A duration in the unit people read it in, and the decimals that unit usually gets."""
    if seconds < 120:
        return seconds, "s", 0
    if seconds < 7200:
        return seconds / 60, "min", 1
    return seconds / 3600, "h", 1


def _duration(seconds: float, extra: int = 0) -> str:
    amount, unit, places = _scaled(seconds)
    return f"{amount:.{places + extra}f} {unit}"


def _durations(*values: float) -> list[str]:
    """The durations at the least precision that tells different values apart and shows no
    non-zero value as 0 ("8.4 s, over the limit of 8 s", never "8 s, over … 8 s")."""
    for extra in range(4):
        shown = [_duration(v, extra) for v in values]
        apart = len(set(shown)) == len(set(values))
        if apart and all(v <= 0 or round(_scaled(v)[0], _scaled(v)[2] + extra) for v in values):
            return shown
    return [_duration(v, 3) for v in values]


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{int(value)}"


@dataclass
class _Active:
    rule: str
    scenario_id: int | None
    execution_id: str | None
    severity: Severity
    value: float | None
    threshold: float | None
    message: str
    notified_at: float

    def event(self, alert_id: str, **extra: object) -> AlertRaised:
        return AlertRaised(
            alert_id=alert_id,
            rule=self.rule,
            severity=self.severity,
            value=self.value,
            threshold=self.threshold,
            message=self.message,
            scenario_id=self.scenario_id,
            execution_id=self.execution_id,
            **extra,
        )


class _Book:
    """The lifecycle of every alert: raised once per incident, re-notified, resolved once."""

    def __init__(self, renotify_s: float | None) -> None:
        self.renotify_s = renotify_s
        self.active: dict[str, _Active] = {}

    def fire(
        self,
        alert_id: str,
        rule: str,
        threshold: Threshold,
        *,
        scenario_id: int | None,
        value: float | None,
        message: str,
        now: float,
        execution_id: str | None = None,
    ) -> list[AlertEvent]:
        current = self.active.get(alert_id)
        if current is not None:
            # Still the same incident: remember the latest figures for re-notification only.
            current.value, current.message = value, message
            return []
        active = _Active(
            rule,
            scenario_id,
            execution_id,
            threshold.severity,
            value,
            threshold.value,
            message,
            notified_at=now,
        )
        self.active[alert_id] = active
        return [active.event(alert_id)]

    def clear(self, alert_id: str, *, message: str, value: float | None = None) -> list[AlertEvent]:
        active = self.active.pop(alert_id, None)
        if active is None:
            return []
        return [
            AlertResolved(
                alert_id=alert_id,
                rule=active.rule,
                severity=active.severity,
                value=active.value if value is None else value,
                threshold=active.threshold,
                message=message,
                scenario_id=active.scenario_id,
                execution_id=active.execution_id,
            )
        ]

    def renotify(self, now: float) -> list[AlertEvent]:
        if not self.renotify_s:
            return []
        due: list[AlertEvent] = []
        for alert_id, active in self.active.items():
            if now - active.notified_at >= self.renotify_s:
                active.notified_at = now
                due.append(active.event(alert_id, renotified=True))
        return due


@dataclass
class _Memory:
    """What the rules remember about one scenario between events."""

    first_seen: float | None = None  # when the stream first mentioned the scenario
    name: str | None = None
    durations: History = field(default_factory=History)
    outcomes: deque[tuple[float, str]] = field(default_factory=deque)
    streak: int = 0
    last_activity: float | None = None
    dlq_floor: int | None = None


class AlertEvaluator:
    """Turns stream events and periodic ticks into alert.raised / alert.resolved events."""

    def __init__(self, thresholds: EffectiveThresholds) -> None:
        self.thresholds = thresholds
        self._book = _Book(thresholds.renotify_s)
        self._memory: dict[int, _Memory] = {}
        self._began: float | None = None  # the first `now` seen: when the watch began
        self._catching_up = True  # until `caught_up`
        self._replayed: set[str] = set()  # active alerts whose notices so far were replayed

    # -- public -----------------------------------------------------------------------------

    def learn(
        self,
        scenario_id: int,
        durations_ms: Iterable[int | None] = (),
        *,
        last_run_at: float | None = None,
    ) -> None:
        """Seed a scenario with runs that ended before the stream began: their durations
        (oldest first), so relative-duration alerts work from the first run watched, and when
        the last one ran, so a schedule is judged from it."""
        memory = self._remember(scenario_id, None)
        for duration in durations_ms:
            memory.durations.add(duration)
        if last_run_at is not None:
            memory.last_activity = max(memory.last_activity or last_run_at, last_run_at)

    def observe(self, event: _Event, now: float) -> list[AlertEvent]:
        """Alerts that one stream event raises or resolves."""
        if self._began is None:
            self._began = now
        past = self._catching_up and _ended_before(event, self._began)
        return self._marked(self._observe(event, now), past=past)

    def caught_up(self, now: float) -> list[AlertEvent]:
        """The start-up catch-up is over (every scenario scanned once, no run of it pending):
        each alert it raised that is still active, raised again without the replayed mark.
        Only the first call does anything."""
        if not self._catching_up:
            return []
        self._catching_up = False
        out: list[AlertEvent] = []
        for alert_id in sorted(self._replayed):
            active = self._book.active.get(alert_id)
            if active is not None:
                active.notified_at = now  # a re-notification counts from this notice
                out.append(active.event(alert_id))
        self._replayed.clear()
        return out

    def _marked(self, alerts: list[AlertEvent], *, past: bool) -> list[AlertEvent]:
        """`alerts` with ``replayed: true`` where a past run caused them, or where they are
        about an alert whose raising was replayed (a re-notification, the resolution)."""
        out: list[AlertEvent] = []
        for alert in alerts:
            known = alert.alert_id in self._replayed
            if isinstance(alert, AlertResolved):
                self._replayed.discard(alert.alert_id)
            elif past:
                self._replayed.add(alert.alert_id)
            out.append(alert.model_copy(update={"replayed": True}) if known or (
                past and isinstance(alert, AlertRaised)) else alert)
        return out

    def _observe(self, event: _Event, now: float) -> list[AlertEvent]:
        sid = event.scenario_id
        if sid is None:
            return []
        memory = self._remember(sid, now)
        memory.name = getattr(event, "scenario_name", None) or memory.name
        if isinstance(event, ExecutionFinished):
            return self._finished(sid, memory, event, now)
        if isinstance(event, ScenarioChanged):
            return self._changed(sid, memory, event, now)
        if isinstance(event, ExecutionStarted | ExecutionProgress):
            memory.last_activity = now
            return self._book.clear(
                f"missed_schedule_grace_s:{sid}", message=f"{self._label(sid)}: a run has started"
            )
        return []

    def tick(
        self, now: float, scenarios: Mapping[int, ScenarioState], budget: BudgetSnapshot | None
    ) -> list[AlertEvent]:
        """Alerts that depend on time passing or on state no event announced (the flags of a
        scenario seen for the first time, running executions, the request budget)."""
        out: list[AlertEvent] = []
        for sid in sorted(scenarios):
            state = scenarios[sid]
            memory = self._remember(sid, now)
            memory.name = state.name or memory.name
            if state.info is not None:
                out += self._flag(sid, "scenario_invalid", state.info.is_invalid, now)
                out += self._flag(sid, "scenario_paused", state.info.is_paused, now)
                out += self._dlq(sid, memory, state.info.dlq_count, now)
            if state.queue_count is not None:
                out += self._queue(sid, state.queue_count, now)
            out += self._rates(sid, memory, now, timed_only=True)
            out += self._stuck(sid, state, now)
            out += self._missed(sid, state, memory, now)
        if budget is not None:
            out += self._budget(budget, now)
        if self._began is None:
            self._began = now
        return self._marked(out + self._book.renotify(now), past=False)

    def active(self) -> list[AlertRaised]:
        """The alerts raised and not yet resolved (for summaries and late subscribers)."""
        return [a.event(alert_id) for alert_id, a in self._book.active.items()]

    # -- helpers ----------------------------------------------------------------------------

    def _remember(self, sid: int, now: float | None) -> _Memory:
        memory = self._memory.get(sid)
        if memory is None:
            get = self.thresholds.threshold
            need = get("duration_p95_factor", sid).param("min_samples")
            # Keep only as many outcomes as the widest rate window: thousands of scenarios
            # may be watched at once.
            runs = max(get(k, sid).param("window_runs") for k in ("error_rate", "warning_rate"))
            memory = self._memory[sid] = _Memory(
                durations=History(max(50, int(need))),
                outcomes=deque(maxlen=min(_OUTCOMES_KEPT, int(runs))),
            )
        if memory.first_seen is None:
            memory.first_seen = now
        return memory

    def _label(self, sid: int) -> str:
        memory = self._memory.get(sid)
        name = memory.name if memory is not None else None
        return f"scenario {sid} ({name})" if name else f"scenario {sid}"

    def _set(
        self,
        key: str,
        sid: int | None,
        threshold: Threshold,
        firing: bool | None,
        *,
        value: float | None,
        raised: str,
        resolved: str,
        now: float,
        alert_id: str | None = None,
        execution_id: str | None = None,
    ) -> list[AlertEvent]:
        """Raise or resolve one alert; `firing` None leaves it as it is."""
        alert_id = alert_id or (f"{key}:{sid}" if sid is not None else key)
        label = self._label(sid) if sid is not None else "makestream"
        if firing:
            return self._book.fire(
                alert_id,
                key,
                threshold,
                scenario_id=sid,
                value=value,
                message=f"{label}: {raised}",
                now=now,
                execution_id=execution_id,
            )
        if firing is False:
            return self._book.clear(alert_id, message=f"{label}: {resolved}", value=value)
        return []

    # -- run rules --------------------------------------------------------------------------

    def _finished(
        self, sid: int, memory: _Memory, event: ExecutionFinished, now: float
    ) -> list[AlertEvent]:
        memory.last_activity = now
        out = self._book.clear(
            f"missed_schedule_grace_s:{sid}", message=f"{self._label(sid)}: a run has ended"
        )
        if event.execution_id is not None:
            out += self._book.clear(
                f"stuck_factor:{sid}:{event.execution_id}",
                message=f"{self._label(sid)}: the run ended ({event.status})",
            )
        seconds = event.duration_ms / 1000 if event.duration_ms is not None else None
        out += self._limit(sid, "duration_max_s", seconds, _duration, now)
        out += self._limit(sid, "operations_max", event.operations, "{:.0f} operations".format, now)
        out += self._limit(
            sid, "transfer_max_bytes", event.transfer_bytes, "{:.0f} bytes".format, now
        )
        out += self._limit(
            sid, "centicredits_max", event.centicredits, "{:.0f} centicredits".format, now
        )
        out += self._relative(sid, memory, seconds, now)
        memory.durations.add(event.duration_ms)  # after the comparison: a run is not its own p95
        memory.outcomes.append((now, event.status))
        out += self._rates(sid, memory, now)
        memory.streak = memory.streak + 1 if event.status == "error" else 0
        threshold = self.thresholds.get("consecutive_failures", sid)
        if threshold is not None and threshold.value is not None:
            out += self._set(
                "consecutive_failures",
                sid,
                threshold,
                memory.streak >= threshold.value,
                value=memory.streak,
                now=now,
                raised="a run failed"
                if memory.streak == 1
                else f"{memory.streak} runs in a row failed",
                resolved=f"a run ended with {event.status} after failures",
            )
        return out

    def _limit(
        self, sid: int, key: str, observed: float | None, show: Callable[[float], str], now: float
    ) -> list[AlertEvent]:
        threshold = self.thresholds.get(key, sid)
        if threshold is None or threshold.value is None or observed is None:
            return []
        verb = "took" if key == "duration_max_s" else "used"
        if show is _duration:
            seen, limit = _durations(observed, threshold.value)
        else:
            seen, limit = show(observed), show(threshold.value)
        return self._set(
            key,
            sid,
            threshold,
            observed > threshold.value,
            value=observed,
            now=now,
            raised=f"a run {verb} {seen}, over the limit of {limit}",
            resolved=f"the last run was within the limit ({seen})",
        )

    def _relative(
        self, sid: int, memory: _Memory, seconds: float | None, now: float
    ) -> list[AlertEvent]:
        threshold = self.thresholds.get("duration_p95_factor", sid)
        if threshold is None or threshold.value is None or seconds is None:
            return []
        p95_ms = memory.durations.percentile(95)
        if len(memory.durations) < threshold.param("min_samples") or not p95_ms:
            return []
        p95 = p95_ms / 1000
        factor = seconds / p95
        took, p95_text = _durations(seconds, p95)
        return self._set(
            "duration_p95_factor",
            sid,
            threshold,
            factor > threshold.value,
            value=round(factor, 2),
            now=now,
            raised=f"a run took {took}, {_number(round(factor, 2))}x the p95 of {p95_text} "
            f"(limit {_number(threshold.value)}x)",
            resolved=f"the last run took {took}, {_number(round(factor, 2))}x the p95",
        )

    def _rates(
        self, sid: int, memory: _Memory, now: float, *, timed_only: bool = False
    ) -> list[AlertEvent]:
        """The error and warning rates; `timed_only` for ticks, where only a time window can
        change the answer."""
        out: list[AlertEvent] = []
        for key, status, verb in (
            ("error_rate", "error", "failed"),
            ("warning_rate", "warning", "ended with warnings"),
        ):
            threshold = self.thresholds.get(key, sid)
            if threshold is None or threshold.value is None:
                continue
            window_s = threshold.param("window_s")
            if timed_only and not window_s:
                continue
            recent = [s for t, s in memory.outcomes if not window_s or t >= now - window_s]
            recent = recent[-int(threshold.param("window_runs")) :]
            hits = sum(1 for s in recent if s == status)
            firing: bool | None = None
            if not recent:
                firing = False  # every run left the time window: nothing is failing any more
            elif len(recent) >= threshold.param("min_runs"):
                firing = hits / len(recent) >= threshold.value
            rate = hits / len(recent) if recent else 0.0
            out += self._set(
                key,
                sid,
                threshold,
                firing,
                value=round(rate, 4),
                now=now,
                raised=f"{hits} of the last {len(recent)} runs {verb} ({rate:.0%}, "
                f"limit {threshold.value:.0%})",
                resolved=f"{hits} of the last {len(recent)} runs {verb} ({rate:.0%})",
            )
        return out

    # -- scenario rules ---------------------------------------------------------------------

    def _changed(
        self, sid: int, memory: _Memory, event: ScenarioChanged, now: float
    ) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        if event.is_invalid is not None:
            out += self._flag(sid, "scenario_invalid", event.is_invalid, now)
        if event.is_paused is not None:
            out += self._flag(sid, "scenario_paused", event.is_paused, now)
        if event.dlq_count is not None:
            out += self._dlq(sid, memory, event.dlq_count, now)
        if event.queue_count is not None:
            out += self._queue(sid, event.queue_count, now)
        if event.is_active is False:
            out += self._book.clear(
                f"missed_schedule_grace_s:{sid}",
                message=f"{self._label(sid)}: the scenario was turned off",
            )
        return out

    def _flag(self, sid: int, key: str, on: bool, now: float) -> list[AlertEvent]:
        threshold = self.thresholds.get(key, sid)
        if threshold is None:
            return []
        what = "deactivated by errors" if key == "scenario_invalid" else "paused"
        return self._set(
            key,
            sid,
            threshold,
            on,
            value=1.0 if on else 0.0,
            now=now,
            raised=f"the scenario is {what}",
            resolved=f"the scenario is no longer {what}",
        )

    def _dlq(self, sid: int, memory: _Memory, count: int, now: float) -> list[AlertEvent]:
        if memory.dlq_floor is None or count < memory.dlq_floor:
            # Growth counts from the lowest count seen: what was there before is known already.
            memory.dlq_floor = count
        threshold = self.thresholds.get("dlq_growth", sid)
        if threshold is None or threshold.value is None:
            return []
        growth = count - memory.dlq_floor
        return self._set(
            "dlq_growth",
            sid,
            threshold,
            growth >= threshold.value,
            value=float(growth),
            now=now,
            raised=f"{growth} new incomplete execution{'s' if growth != 1 else ''} "
            f"(DLQ now {count})",
            resolved=f"the incomplete executions are back to {count}",
        )

    def _queue(self, sid: int, count: int, now: float) -> list[AlertEvent]:
        threshold = self.thresholds.get("queue_max", sid)
        if threshold is None or threshold.value is None:
            return []
        limit = _number(threshold.value)
        return self._set(
            "queue_max",
            sid,
            threshold,
            count > threshold.value,
            value=float(count),
            now=now,
            raised=f"the webhook queue holds {count} items, over {limit}",
            resolved=f"the webhook queue holds {count} items",
        )

    # -- time rules -------------------------------------------------------------------------

    def _stuck(self, sid: int, state: ScenarioState, now: float) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        prefix = f"stuck_factor:{sid}:"
        for alert_id in [a for a in self._book.active if a.startswith(prefix)]:
            if alert_id[len(prefix) :] not in state.running:
                out += self._book.clear(
                    alert_id, message=f"{self._label(sid)}: the run is no longer running"
                )
        threshold = self.thresholds.get("stuck_factor", sid)
        if threshold is None or threshold.value is None:
            return out
        p95_ms = state.history.percentile(95)
        if p95_ms and len(state.history) >= threshold.param("min_samples"):
            limit = max(p95_ms / 1000 * threshold.value, threshold.param("min_s"))
            basis = f"{_number(threshold.value)}x the p95 of {_duration(p95_ms / 1000)}"
        else:
            limit, basis = threshold.param("fallback_s"), "too few runs to know better"
        for run in state.running.values():
            elapsed = now - _begun(run)
            running_for, limit_text = _durations(elapsed, limit)
            out += self._set(
                "stuck_factor",
                sid,
                threshold,
                elapsed > limit,
                value=round(elapsed, 1),
                now=now,
                alert_id=prefix + run.execution_id,
                execution_id=run.execution_id,
                raised=f"a run has been running for {running_for}, past {limit_text} ({basis})",
                resolved=f"the run is within {limit_text} again",
            )
        return out

    def _missed(
        self, sid: int, state: ScenarioState, memory: _Memory, now: float
    ) -> list[AlertEvent]:
        threshold = self.thresholds.get("missed_schedule_grace_s", sid)
        info = state.info
        if threshold is None or threshold.value is None or info is None:
            return []
        last = max(
            (
                t
                for t in (
                    memory.last_activity,
                    state.last_finished_at,
                    *(_begun(r) for r in state.running.values()),
                )
                if t is not None
            ),
            default=None,
        )
        watched_since = memory.first_seen if memory.first_seen is not None else now
        due = _due(info, last, watched_since)
        firing = False
        overdue = 0.0
        if (
            due is not None
            and not state.running
            and info.is_active
            and not info.is_invalid
            and not info.is_paused
        ):
            # A schedule that fell due before we watched gets the grace from when we began.
            overdue = now - max(due, watched_since)
            firing = overdue > threshold.value
        return self._set(
            "missed_schedule_grace_s",
            sid,
            threshold,
            firing,
            value=round(overdue),
            now=now,
            raised=f"no run since a run was due at {rfc3339(due or now)} "
            f"({_duration(overdue)} overdue)",
            resolved="the schedule is kept again",
        )

    def _budget(self, budget: BudgetSnapshot, now: float) -> list[AlertEvent]:
        threshold = self.thresholds.get("budget_usage")
        if threshold is None or threshold.value is None:
            return []
        # Measured against the organization's limit, not makestream's own share of it: using
        # all of its share is makestream working as designed, not something to alert on.
        share = budget.used_last_minute / max(budget.limit_per_min, 1)
        return self._set(
            "budget_usage",
            None,
            threshold,
            share >= threshold.value,
            value=round(share, 4),
            now=now,
            raised=f"makestream used {budget.used_last_minute} of the organization's "
            f"{budget.limit_per_min} requests per minute ({share:.0%}); "
            "other integrations may be starved",
            resolved=f"request budget use is back to {share:.0%}",
        )


def _ended_before(event: _Event, moment: float) -> bool:
    """Whether `event` reports a run that ended before `moment` (epoch s): its end, else its
    start plus its duration. A run whose end is unknown counts as news."""
    if not isinstance(event, ExecutionFinished):
        return False
    if event.ended_at:
        return datetime.fromisoformat(event.ended_at).timestamp() < moment
    if event.started_at and event.duration_ms is not None:
        began = datetime.fromisoformat(event.started_at).timestamp()
        return began + event.duration_ms / 1000 < moment
    return False


def _begun(run: Running) -> float:
    return run.started_at if run.started_at is not None else run.first_seen


def _due(info: Scenario, last: float | None, watched_since: float) -> float | None:
    """When the schedule expected the next run: `nextExec` while no run came after it, else the
    `indefinitely` interval after the last run (or after watching began, when no run is known);
    None for schedules without an expectation."""
    next_exec = info.next_exec.timestamp() if info.next_exec is not None else None
    if next_exec is not None and (last is None or last < next_exec):
        return next_exec
    scheduling = info.scheduling
    if scheduling is not None and scheduling.type == "indefinitely" and scheduling.interval:
        return (last if last is not None else watched_since) + scheduling.interval
    return None


def replay(
    thresholds: EffectiveThresholds,
    scenario: Scenario,
    logs: Iterable[ExecutionLog],
    *,
    now: float,
    queue_count: int | None = None,
    budget: BudgetSnapshot | None = None,
) -> list[AlertEvent]:
    """What would have fired over a scenario's recent runs (`makestream thresholds test`): the
    runs are fed oldest first at the time of their log entry, then one tick at `now`. Each alert
    has `ts` set to the moment it would have fired."""
    evaluator = AlertEvaluator(thresholds)
    state = ScenarioState(
        scenario.id,
        name=scenario.name,
        team_id=scenario.team_id,
        info=scenario,
        queue_count=queue_count,
    )
    out: list[AlertEvent] = []
    for entry in sorted(logs, key=lambda e: e.timestamp_ms):
        at = entry.timestamp_ms / 1000
        if entry.status.terminal:
            finished = ExecutionFinished(
                scenario_id=scenario.id,
                execution_id=entry.id,
                status=cast(Literal["success", "warning", "error"], entry.status.value),
                duration_ms=entry.duration_ms,
                operations=entry.operations,
                transfer_bytes=entry.transfer,
                centicredits=entry.centicredits,
                scenario_name=scenario.name or None,
            )
            out += [
                a.model_copy(update={"ts": rfc3339(at)}) for a in evaluator.observe(finished, at)
            ]
            state.history.add(entry.duration_ms)
            state.last_finished_at = at
        elif entry.status in (ExecStatus.RUNNING, ExecStatus.PAUSED):
            state.running[entry.id] = Running(entry.id, at, "log", first_seen=at)
    out += [
        a.model_copy(update={"ts": rfc3339(now)})
        for a in evaluator.tick(now, {scenario.id: state}, budget)
    ]
    return out

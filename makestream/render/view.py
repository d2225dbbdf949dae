"""The view model: everything the live view shows, rebuilt from events alone.

`apply(state, event)` folds one event into a `ViewState`. It does no I/O and reads no clock; times
come from the events' own `ts`, and questions that depend on "now" (elapsed time, ETA, whether a
throttle is still in force) take `now` as an argument. So the same code serves the live terminal,
`makestream render` of a saved NDJSON file, and the tests, and a saved stream rebuilds exactly
the view its watcher saw.

Events of types this module does not know are ignored, as the event contract asks.

Text is cleaned as it enters the view (`makestream.safetext.clean`): scenario names, error
messages and every other string of an event may come from Make, or from whatever file `render`
was given, and may hold terminal control sequences. So every renderer of a `ViewState` draws only
printable characters, and lays them out at the width they will really take. Names and messages
are also cut to a length no screen needs, since rich lays out all of a cell before it crops it.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from makestream.events import (
    AlertRaised,
    AlertResolved,
    ApiThrottled,
    ExecutionExpected,
    ExecutionFinished,
    ExecutionProgress,
    ExecutionStarted,
    ModuleResult,
    ScenarioChanged,
    ScenarioState,
    StreamClosed,
    StreamError,
    StreamHeartbeat,
    StreamLagged,
    StreamOpened,
    _Event,
)
from makestream.render.flow import ModuleOutcome
from makestream.render.text import parse_ts
from makestream.safetext import clean

KEEP_FINISHED = 20
NAME_MAX = 200  # characters of a name, an id or a status kept for display
MESSAGE_MAX = 500  # characters of an error or alert message


@dataclass
class RunningRow:
    """An execution in flight, as far as the stream has told."""

    execution_id: str
    scenario_id: int | None
    scenario_name: str | None = None
    source: str | None = None
    started_at: float | None = None  # epoch s
    expected_ms: int | None = None
    modules_total: int | None = None
    elapsed_ms: int | None = None  # as last reported by execution.progress
    reported_at: float | None = None  # stream time of that report
    percent: float | None = None
    basis: str = "history"

    @property
    def estimate(self) -> bool:
        """True when progress rests on past durations rather than on observed modules."""
        return self.basis in ("history", "schedule")

    @property
    def expected(self) -> bool:
        """True for a scheduled run Make has not listed yet (`execution.expected`)."""
        return self.basis == "schedule"

    def elapsed_at(self, now: float | None) -> int | None:
        """Milliseconds since the run began, at stream time `now`."""
        if now is not None and self.started_at is not None:
            return max(0, int((now - self.started_at) * 1000))
        if self.elapsed_ms is None:
            return None
        if now is not None and self.reported_at is not None:
            return self.elapsed_ms + max(0, int((now - self.reported_at) * 1000))
        return self.elapsed_ms

    def percent_at(self, now: float | None) -> float | None:
        """Progress in percent. History-based estimates follow the clock and stop at 99 %,
        since a run is never done until it is seen to end; module-based progress is only what
        was reported."""
        if self.estimate and self.expected_ms:
            elapsed = self.elapsed_at(now)
            if elapsed is not None:
                return min(99.0, 100.0 * elapsed / self.expected_ms)
        return self.percent

    def remaining_ms(self, now: float | None) -> int | None:
        """Expected time left; negative when the run is overdue; None when there is no basis."""
        elapsed = self.elapsed_at(now)
        if elapsed is None:
            return None
        if self.estimate:
            return None if not self.expected_ms else self.expected_ms - elapsed
        if self.percent:
            return int(elapsed * (100.0 - self.percent) / self.percent)
        return None


@dataclass(frozen=True)
class FinishedRow:
    """An execution that ended."""

    execution_id: str
    scenario_id: int | None
    scenario_name: str | None
    status: str
    ended_ts: str
    duration_ms: int | None
    operations: int | None
    error: str | None
    url: str | None


@dataclass(frozen=True)
class AlertRow:
    alert_id: str
    rule: str
    severity: str
    message: str
    value: float | None
    threshold: float | None
    since_ts: str
    scenario_id: int | None


@dataclass
class ScenarioRow:
    """The last known flags of a scenario (from scenario.changed)."""

    scenario_id: int
    name: str | None = None
    is_active: bool | None = None
    is_invalid: bool | None = None
    is_paused: bool | None = None
    dlq_count: int | None = None
    queue_count: int | None = None

    @property
    def notable(self) -> bool:
        """True when something about the scenario needs a person's attention."""
        return bool(
            self.is_invalid or self.is_paused or self.is_active is False
            or self.dlq_count or self.queue_count
        )


@dataclass
class Health:
    """Stream trouble: a throttle or an error, each with the stream time it should lift."""

    throttled_until: float | None = None
    error: str | None = None
    error_fatal: bool = False
    retry_at: float | None = None
    lagged: str | None = None
    errors_seen: int = 0
    throttles_seen: int = 0
    # A heartbeat's `failing`: requests keep failing, whatever the retries say.
    failing: str | None = None


@dataclass
class Closed:
    reason: str
    exit_code: int
    summary: dict[str, object]


@dataclass
class ViewState:
    """What the stream has said so far, shaped for display."""

    version: str | None = None
    targets: list[int] = field(default_factory=list)
    follow: bool = True
    api_limit: int | None = None
    budget_per_min: float | None = None
    used_last_minute: int | None = None
    budget_processes: int = 1  # makestream processes sharing the organization's budget
    health: Health = field(default_factory=Health)
    running: dict[str, RunningRow] = field(default_factory=dict)
    finished: deque[FinishedRow] = field(default_factory=lambda: deque(maxlen=KEEP_FINISHED))
    # Failed and warned runs, kept apart so that a summary can still list them after many
    # successes have pushed them out of `finished`.
    troubled: deque[FinishedRow] = field(default_factory=lambda: deque(maxlen=KEEP_FINISHED))
    counts: Counter[str] = field(default_factory=Counter)
    alerts: dict[str, AlertRow] = field(default_factory=dict)
    alerts_raised: int = 0
    scenarios: dict[int, ScenarioRow] = field(default_factory=dict)
    # Per scenario: the execution whose module results arrived last, and those results.
    modules: dict[int, tuple[str, dict[int, ModuleOutcome]]] = field(default_factory=dict)
    closed: Closed | None = None
    now: float | None = None  # stream time of the latest event
    events: int = 0
    focus: int | None = None  # the scenario the flow diagram shows

    def name_of(self, scenario_id: int | None) -> str | None:
        row = self.scenarios.get(scenario_id) if scenario_id is not None else None
        return row.name if row is not None else None

    def health_at(self, now: float | None) -> tuple[str, str]:
        """(level, text): level is ok, warn or fail; text is a short description."""
        h = self.health
        if h.error_fatal:
            return "fail", f"failed: {h.error}"
        if self.closed is not None:
            return ("ok" if self.closed.exit_code == 0 else "warn"), f"closed: {self.closed.reason}"
        if h.lagged:
            return "fail", f"lagged: {h.lagged}"
        if now is not None and h.throttled_until is not None and now < h.throttled_until:
            return "warn", f"throttled by Make, retry in {h.throttled_until - now:.0f}s"
        if h.failing is not None:
            return "fail", f"failing: {h.failing}"
        if h.error is not None:
            if h.retry_at is not None and now is not None and now < h.retry_at:
                return "warn", f"retrying in {h.retry_at - now:.0f}s: {h.error}"
            # The retry is due or past and nothing has shown a request succeed since.
            return "fail", f"failing: {h.error}"
        return "ok", "ok"

    def working(self) -> None:
        """An event only a successful request can produce: the stream works again."""
        if not self.health.error_fatal:
            self.health.error = None
            self.health.failing = None


def _shown(text: str, limit: int = NAME_MAX) -> str:
    """`text` as the view keeps it: one line of printable characters, at most `limit` long."""
    return clean(text, max_chars=limit)


def _shown_or_none(text: str | None, limit: int = NAME_MAX) -> str | None:
    return None if text is None else _shown(text, limit)


def _run_id(event: _Event) -> str:
    """The key of an event's execution in `running` (cleaned: it is shown, as `[:8]`)."""
    return clean(event.execution_id) if event.execution_id else f"?{event.seq}"


def _scenario(state: ViewState, event: _Event, name: str | None = None) -> ScenarioRow | None:
    sid = event.scenario_id
    if sid is None:
        return None
    row = state.scenarios.get(sid)
    if row is None:
        row = state.scenarios[sid] = ScenarioRow(sid)
    if name:
        row.name = _shown(name)
    return row


def apply(state: ViewState, event: _Event) -> ViewState:
    """Fold one event into `state` (in place, for speed on long streams) and return it."""
    at = parse_ts(event.ts)
    if at is not None:
        state.now = at if state.now is None else max(state.now, at)
    state.events += 1
    if isinstance(event, _WORKING):
        state.working()
    match event:
        case StreamOpened():
            state.version = _shown(event.version)
            state.targets = list(event.targets)
            state.follow = event.follow
            state.api_limit = event.api_limit
            state.budget_per_min = event.budget_per_min
            state.budget_processes = max(1, event.budget_processes)
        case ExecutionExpected():
            _expected(state, event)
        case ExecutionStarted():
            _scenario(state, event, event.scenario_name)
            _drop_expected(state, event.scenario_id)
            eid = _run_id(event)
            state.running[eid] = RunningRow(
                execution_id=eid,
                scenario_id=event.scenario_id,
                scenario_name=_shown_or_none(event.scenario_name),
                source=_shown(event.source),
                started_at=parse_ts(event.started_at),
                expected_ms=event.expected_duration_ms,
                modules_total=event.modules_total,
            )
            state.focus = event.scenario_id
        case ExecutionProgress():
            _progress(state, event, at)
        case ExecutionFinished():
            _finished(state, event)
        case ModuleResult():
            _module(state, event)
        case ScenarioChanged() | ScenarioState():
            _changed(state, event)
        case AlertRaised():
            if event.alert_id not in state.alerts:
                state.alerts_raised += 1
            # The id stays as it came: it is only a key, which alert.resolved must match.
            state.alerts[event.alert_id] = AlertRow(
                alert_id=event.alert_id, rule=_shown(event.rule), severity=event.severity,
                message=_shown(event.message, MESSAGE_MAX), value=event.value,
                threshold=event.threshold, since_ts=_shown(event.ts), scenario_id=event.scenario_id,
            )
        case AlertResolved():
            state.alerts.pop(event.alert_id, None)
        case ApiThrottled():
            state.health.throttles_seen += 1
            if at is not None:
                state.health.throttled_until = at + event.retry_in_s
            if event.rate_per_min is not None:
                # The engine tightens its own budget after a 429; show the new rate.
                state.budget_per_min = event.rate_per_min
        case StreamError():
            h = state.health
            h.errors_seen += 1
            h.error, h.error_fatal = _shown(event.message, MESSAGE_MAX), event.fatal
            h.retry_at = at + event.retry_in_s if at is not None and event.retry_in_s else None
        case StreamHeartbeat():
            if event.used_last_minute is not None:
                state.used_last_minute = event.used_last_minute
            if event.budget_per_min is not None:
                state.budget_per_min = event.budget_per_min
            if event.budget_processes is not None:
                state.budget_processes = max(1, event.budget_processes)
            # A heartbeat is sent whether or not requests succeed; its `failing` tells which.
            if event.failing is None:
                state.working()
            elif not state.health.error_fatal:
                state.health.failing = _shown(event.failing, MESSAGE_MAX)
        case StreamLagged():
            state.health.lagged = _shown(event.message, MESSAGE_MAX)
        case StreamClosed():
            state.closed = Closed(_shown(event.reason), event.exit_code, dict(event.summary))
    return state


# Events that only an answered request produces (progress and heartbeats come from the clock).
_WORKING = (StreamOpened, ExecutionStarted, ExecutionFinished, ModuleResult, ScenarioChanged)


def _progress(state: ViewState, event: ExecutionProgress, at: float | None) -> None:
    if event.execution_id is None:
        return
    eid = _run_id(event)
    row = state.running.get(eid)
    if row is None:
        # A stream resumed mid-run: the start was before our first event.
        row = state.running[eid] = RunningRow(
            execution_id=eid, scenario_id=event.scenario_id,
            scenario_name=state.name_of(event.scenario_id),
        )
    row.elapsed_ms = event.elapsed_ms
    row.reported_at = at
    row.percent = event.percent
    row.basis = event.basis
    if event.expected_duration_ms is not None:
        row.expected_ms = event.expected_duration_ms


def _expected(state: ViewState, event: ExecutionExpected) -> None:
    row = _scenario(state, event, event.scenario_name)
    if row is None:
        return
    key = f"expected:{event.scenario_id}:{_shown(event.due_at)}"
    state.running[key] = RunningRow(
        execution_id=key, scenario_id=event.scenario_id, scenario_name=row.name,
        source="schedule", started_at=parse_ts(event.due_at),
        expected_ms=event.expected_duration_ms, basis="schedule",
    )


def _drop_expected(state: ViewState, scenario_id: int | None) -> None:
    """A run of the scenario was seen: the one the schedule announced, or it will not come."""
    for key in [k for k, r in state.running.items()
                if r.expected and r.scenario_id == scenario_id]:
        del state.running[key]


def _finished(state: ViewState, event: ExecutionFinished) -> None:
    _scenario(state, event, event.scenario_name)
    _drop_expected(state, event.scenario_id)
    eid = _run_id(event)
    was = state.running.pop(eid, None)
    message = None
    if event.error is not None:
        message = event.error.message or event.error.name
        cause = event.error.cause_module or event.error.cause_app
        if message and cause:
            # The module first: it survives when a narrow screen cuts the message short.
            message = f"{cause}: {message}"
    name = _shown_or_none(event.scenario_name) or (was.scenario_name if was else None)
    row = FinishedRow(
        execution_id=eid, scenario_id=event.scenario_id,
        scenario_name=name or state.name_of(event.scenario_id), status=event.status,
        ended_ts=_shown(event.ended_at or event.ts), duration_ms=event.duration_ms,
        operations=event.operations,
        error=_shown_or_none(message, MESSAGE_MAX), url=clean(event.url) if event.url else None,
    )
    state.finished.append(row)
    if row.status != "success":
        state.troubled.append(row)
    state.counts[event.status] += 1
    if state.focus is None or not any(
        r.scenario_id == state.focus for r in state.running.values()
    ):
        state.focus = event.scenario_id


def _module(state: ViewState, event: ModuleResult) -> None:
    sid, eid = event.scenario_id, clean(event.execution_id or "")
    if sid is None:
        return
    current = state.modules.get(sid)
    if current is None or current[0] != eid:
        current = state.modules[sid] = (eid, {})
    current[1][event.module_id] = ModuleOutcome(
        status=_shown(event.status), bundles=event.bundles, size=event.size
    )


def _changed(state: ViewState, event: ScenarioChanged | ScenarioState) -> None:
    row = _scenario(state, event, event.scenario_name)
    if row is None:
        return
    for name in ("is_active", "is_invalid", "is_paused", "dlq_count", "queue_count"):
        value = getattr(event, name)
        if value is not None:
            setattr(row, name, value)


def reduce(events: Iterable[_Event]) -> ViewState:
    """The view after `events`, from an empty start."""
    state = ViewState()
    for event in events:
        apply(state, event)
    return state

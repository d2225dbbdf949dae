"""The tracker: what makestream knows about every watched scenario and execution.

It is the reducer of the engine: the poller feeds it observations (a page of logs, an execution's
status, a scenario's flags) and it answers with the events those observations mean. It does no
I/O and never reads a clock — the time of each observation is passed in — so every rule about
deduplication, late or out-of-order log entries and status variants is tested without a network.

Exactly-once delivery rests on `cursor.Position`: an execution is reported finished when it is
first seen in a terminal state and is not yet in its scenario's delivered set.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from makestream.engine.cursor import Cursor, Position, encode_positions, short_id
from makestream.engine.history import History
from makestream.events import (
    ExecutionErrorInfo,
    ExecutionExpected,
    ExecutionFinished,
    ExecutionProgress,
    ExecutionStarted,
    ScenarioChanged,
    _Event,
    rfc3339,
)
from makestream.make.models import ExecStatus, ExecutionDetail, ExecutionLog, Scenario

# How long after a run ends its log entry may still appear; the look-back of every scan covers
# at least this much, plus the longest recent run (Make may stamp entries with the start time).
LATE_WINDOW_MS = 60_000
MAX_LOOKBACK_MS = 50 * 60_000  # Make ends runs after 40-45 minutes.
# Reach back at least this far even for scenarios whose runs so far were short: a run several
# times longer than any before it would otherwise land below the floor, unseen.
MIN_LOOKBACK_MS = 3 * 60_000
BEGINS_KEPT = 16  # a sweep tells of a slot within a minute; a schedule runs a few times in one


@dataclass
class Running:
    """An execution known to be in flight."""

    execution_id: str
    started_at: float | None  # epoch s; None when only the id is known
    source: str
    first_seen: float
    last_progress: float = 0.0
    ended: bool = False  # Make says it has ended; its log (the figures) is still to be read


@dataclass
class ScenarioState:
    scenario_id: int
    name: str | None = None
    team_id: int | None = None
    modules_total: int | None = None
    info: Scenario | None = None
    queue_count: int | None = None
    history: History = field(default_factory=History)
    position: Position = field(default_factory=lambda: Position(0))
    running: dict[str, Running] = field(default_factory=dict)
    # Runs seen in the logs whose report waits for more detail: the floor must stay below them.
    held: dict[str, int] = field(default_factory=dict)
    last_finished_at: float | None = None

    # Runs known to have begun (a scheduled slot passed) whose log entry has not been seen;
    # epoch ms of each start. Make may stamp entries with the start of the run, so the floor
    # must stay below a start until its run is reported, however long the run takes.
    starts: list[int] = field(default_factory=list)
    # When the last runs reported began (epoch ms), to tell a slot whose run was reported
    # before a sweep told of the slot.
    begins: deque[int] = field(default_factory=lambda: deque(maxlen=BEGINS_KEPT))

    @property
    def lookback_ms(self) -> int:
        longest = max(int(self.history.longest_ms * 1.5), MIN_LOOKBACK_MS)
        return min(MAX_LOOKBACK_MS, LATE_WINDOW_MS + longest)


def _status_name(status: ExecStatus) -> Literal["success", "warning", "error"]:
    """The outcome an event reports; an ended run whose status Make did not name counts as error."""
    if status is ExecStatus.SUCCESS:
        return "success"
    if status is ExecStatus.WARNING:
        return "warning"
    return "error"


class Tracker:
    """State of one stream; every method takes an observation and returns the events it means."""

    def __init__(self, *, ui_base: str | None = None, stream: str = "") -> None:
        self.scenarios: dict[int, ScenarioState] = {}
        self.ui_base = ui_base
        self.stream = stream
        self._cursor_cache: tuple[int, str] | None = None
        self._version = 0  # bumped on every change that a cursor encodes
        # Bumped on changes a resume cannot do without (runs delivered, scenarios added, history
        # learned); raised floors alone are not: an older floor only means re-reading more.
        self.moves = 0
        # What a log entry's `timestamp` marks: Make's docs do not say whether it is the start or
        # the end of the run, and implementations differ. Learned from runs whose start is known
        # (listed in flight, or started by this watch); until then taken as the start.
        self.stamp: Literal["start", "end"] | None = None

    def stamp_seen(self, kind: Literal["start", "end"]) -> None:
        """Evidence of what log timestamps mark (a run in flight listed with a timestamp: start)."""
        self.stamp = kind

    def run_times(
        self, log: ExecutionLog | None, running: Running | None
    ) -> tuple[float | None, float | None]:
        """A finished run's own start and end (epoch s), from its log entry and what was seen."""
        begun = running.started_at if running is not None else None
        if log is None:
            return begun, None
        stamp = log.timestamp_ms / 1000
        duration = log.duration_ms / 1000 if log.duration_ms is not None else None
        if duration is None:
            if self.stamp == "end":
                return begun, stamp
            return (begun if begun is not None else stamp), None
        if begun is not None and duration >= 2.0:
            # The start was seen: the timestamp sits near it (start) or a duration later (end).
            self.stamp = "start" if abs(stamp - begun) <= abs(stamp - duration - begun) else "end"
        if self.stamp == "end":
            return stamp - duration, stamp
        return stamp, stamp + duration

    # -- set-up -------------------------------------------------------------------------------

    def add_scenario(self, scenario_id: int, *, floor_ms: int) -> ScenarioState:
        state = self.scenarios.get(scenario_id)
        if state is None:
            state = self.scenarios[scenario_id] = ScenarioState(scenario_id)
            state.position = Position(floor_ms)
            self._version += 1
            self.moves += 1
        return state

    def restore(self, cursor: Cursor) -> None:
        """Take the positions of a cursor for the scenarios it knows."""
        for sid, pos in cursor.positions.items():
            self.add_scenario(sid, floor_ms=pos.floor_ms).position = pos
        self._version += 1
        self.moves += 1

    def learn(self, scenario_id: int, entries: Iterable[ExecutionLog]) -> None:
        """Take durations of finished runs into the scenario's history."""
        history = self.scenarios[scenario_id].history
        for entry in sorted(entries, key=lambda e: e.timestamp_ms):
            if entry.status.terminal:
                history.add(entry.duration_ms)

    def prime(self, scenario_id: int, entries: Iterable[ExecutionLog]) -> None:
        """Mark runs that ended before the stream began as delivered, without reporting them."""
        position = self.scenarios[scenario_id].position
        for entry in entries:
            if entry.status.terminal and entry.timestamp_ms >= position.floor_ms:
                position.add(entry.id, entry.timestamp_ms)
        self._version += 1
        self.moves += 1

    # -- observations ----------------------------------------------------------------------------

    def is_new(self, scenario_id: int, entry: ExecutionLog) -> bool:
        """Whether a terminal log entry has not been delivered yet."""
        return not self.scenarios[scenario_id].position.has(entry.id, entry.timestamp_ms)

    def run_began(self, scenario_id: int, at_ms: int) -> list[_Event]:
        """A run began at `at_ms` (a scheduled slot passed); keep the floor below it.

        Its log entry may come only once it ends (Make's conservative variant), so the run is
        announced as expected, on the basis of the schedule, unless it was already seen."""
        state = self.scenarios[scenario_id]
        seen = any(
            run.started_at is not None and abs(run.started_at * 1000 - at_ms) < LATE_WINDOW_MS
            for run in state.running.values()
        )
        # A sweep can tell of a slot after its run was reported: a start kept then would be
        # matched by no report and hold the floor still for 50 minutes. Only a reported run
        # that began at the slot (Make starts it then, or a little later when it queues)
        # shows that; a later entry may be another run's, an earlier one the slot before.
        if not any(at_ms - 1000 <= b < at_ms + LATE_WINDOW_MS for b in state.begins):
            state.starts.append(at_ms)
        # Reported already: a run whose entry is stamped at or after the slot (its start or end).
        reported = any(t >= at_ms - 1000 for t in state.position.done.values())
        if seen or reported:
            return []
        return [
            ExecutionExpected(
                scenario_id=scenario_id,
                due_at=rfc3339(at_ms / 1000),
                expected_duration_ms=state.history.expected_ms,
                scenario_name=state.name,
            )
        ]

    def hold(self, scenario_id: int, entry: ExecutionLog) -> None:
        """A terminal entry is known but not reported yet (its error detail is being fetched)."""
        self.scenarios[scenario_id].held[entry.id] = entry.timestamp_ms

    def scan_complete(self, scenario_id: int, from_ms: int) -> None:
        """A scan saw every entry from `from_ms` on: nothing older can still be undelivered,
        except runs held back for detail — a cursor must not pass over those."""
        state = self.scenarios[scenario_id]
        # Starts older than Make's longest run can no longer produce an entry.
        state.starts = [t for t in state.starts if t >= from_ms - MAX_LOOKBACK_MS]
        floor = min([from_ms, *state.held.values(), *(t - LATE_WINDOW_MS for t in state.starts)])
        for eid, run in list(state.running.items()):
            if run.started_at is None:
                continue
            started_ms = int(run.started_at * 1000)
            if started_ms < from_ms - MAX_LOOKBACK_MS:
                # Older than Make lets a run go: an entry that never turned terminal (an
                # unknown status, a stale one). Holding the floor for it would page further
                # back at every scan, for good; it is no longer counted as running.
                del state.running[eid]
                continue
            floor = min(floor, started_ms - LATE_WINDOW_MS)
        state.position.raise_floor(floor)
        self._version += 1

    def started(
        self,
        scenario_id: int,
        execution_id: str,
        *,
        now: float,
        source: str,
        started_at: float | None = None,
    ) -> list[_Event]:
        state = self.scenarios[scenario_id]
        if execution_id in state.running or execution_id_delivered(state, execution_id):
            return []
        state.running[execution_id] = Running(execution_id, started_at, source, first_seen=now)
        begun = started_at if started_at is not None else now
        return [
            ExecutionStarted(
                scenario_id=scenario_id,
                execution_id=execution_id,
                source=source,
                started_at=rfc3339(begun),
                expected_duration_ms=state.history.expected_ms,
                modules_total=state.modules_total,
                scenario_name=state.name,
            )
        ]

    def finished(
        self,
        scenario_id: int,
        log: ExecutionLog | None,
        detail: ExecutionDetail | None,
        *,
        execution_id: str,
        now: float,
    ) -> list[_Event]:
        """A run ended. `log` gives its figures, `detail` its error; either may be missing."""
        state = self.scenarios[scenario_id]
        ts_ms = log.timestamp_ms if log is not None else int(now * 1000)
        state.held.pop(execution_id, None)
        if state.position.has(execution_id, ts_ms):
            state.running.pop(execution_id, None)
            return []
        status = log.status if log is not None else detail.status if detail else ExecStatus.UNKNOWN
        if detail is not None and detail.status.terminal:
            status = detail.status  # the executions endpoint is the documented authority
        running = state.running.pop(execution_id, None)
        state.position.add(execution_id, ts_ms)
        settled = [t for t in state.starts if t <= ts_ms + 1000]
        if settled:
            state.starts.remove(max(settled))  # the run that began there has been reported
        self._version += 1
        self.moves += 1
        state.last_finished_at = now
        duration = log.duration_ms if log is not None else None
        state.history.add(duration)
        begun, ended = self.run_times(log, running)
        if begun is not None:
            state.begins.append(int(begun * 1000))
        error = None
        if detail is not None and detail.error is not None:
            cause = detail.error.cause_module
            error = ExecutionErrorInfo(
                message=detail.error.message,
                name=detail.error.name,
                cause_module=cause.name if cause else None,
                cause_app=cause.app_name if cause else None,
            )
        team = (log.team_id if log is not None else None) or state.team_id
        url = None
        if self.ui_base and team is not None:
            url = f"{self.ui_base}/{team}/scenarios/{scenario_id}/logs/{execution_id}"
        return [
            ExecutionFinished(
                scenario_id=scenario_id,
                execution_id=execution_id,
                status=_status_name(status),
                started_at=rfc3339(begun) if begun is not None else None,
                ended_at=rfc3339(ended) if ended is not None else None,
                duration_ms=duration,
                # A figure Make sent unreadable is unknown (null), not the model's 0.
                operations=_known(log, "operations"),
                transfer_bytes=_known(log, "transfer"),
                centicredits=_known(log, "centicredits"),
                error=error,
                url=url,
                scenario_name=state.name,
            ).with_log_ms(log.timestamp_ms if log is not None else None)
        ]

    def replayed(self, scenario_id: int, event: ExecutionFinished, log_ms: int) -> list[_Event]:
        """A run the history store holds (listed at `log_ms`): reported unless delivered."""
        state = self.scenarios[scenario_id]
        if state.position.has(event.execution_id or "", log_ms):
            return []
        state.position.add(event.execution_id or "", log_ms)
        self._version += 1
        self.moves += 1
        state.history.add(event.duration_ms)
        update: dict[str, object] = {"seq": 0, "cursor": None}
        if state.name:
            update["scenario_name"] = state.name
        return [event.model_copy(update=update).with_log_ms(log_ms, from_store=True)]

    def covered(self, scenario_id: int, until_ms: int, unconfirmed: Iterable[str]) -> None:
        """Every run listed before `until_ms` has been reported (replayed from the store).

        `unconfirmed`: short ids a resumed cursor listed whose log time was not seen (a cursor
        does not keep them); they may lie above `until_ms`, so they stay delivered."""
        position = self.scenarios[scenario_id].position
        if until_ms <= position.floor_ms:
            return
        position.raise_floor(until_ms)
        for key in unconfirmed:
            position.done[key] = max(position.done.get(key, until_ms), until_ms)
        self._version += 1

    def scenario_seen(self, scenario: Scenario, *, queue_count: int | None = None) -> list[_Event]:
        """A fresh copy of a scenario's flags; reports what changed since the last copy."""
        state = self.scenarios[scenario.id]
        state.name = scenario.name or state.name
        state.team_id = scenario.team_id or state.team_id
        before = state.info
        state.info = scenario
        if queue_count is None:
            queue_count = state.queue_count
        old_queue, state.queue_count = state.queue_count, queue_count
        if before is None:
            return []
        changed = [
            name
            for name, old, new in (
                ("is_active", before.is_active, scenario.is_active),
                ("is_invalid", before.is_invalid, scenario.is_invalid),
                ("is_paused", before.is_paused, scenario.is_paused),
                ("dlq_count", before.dlq_count, scenario.dlq_count),
                ("queue_count", old_queue, queue_count),
            )
            if old != new and not (name == "queue_count" and old is None)
        ]
        if not changed:
            return []
        return [
            ScenarioChanged(
                scenario_id=scenario.id,
                changed=changed,
                is_active=scenario.is_active,
                is_invalid=scenario.is_invalid,
                is_paused=scenario.is_paused,
                dlq_count=scenario.dlq_count,
                queue_count=queue_count,
                scenario_name=state.name,
            )
        ]

    def ended(self, scenario_id: int, execution_id: str) -> None:
        """Make reports the run has ended: no more progress for it, whatever the log's delay."""
        run = self.scenarios[scenario_id].running.get(execution_id)
        if run is not None:
            run.ended = True

    def progress(self, now: float, *, every_s: float = 2.0) -> list[_Event]:
        """Progress estimates for running executions, at most one per run every `every_s`."""
        events: list[_Event] = []
        for state in self.scenarios.values():
            expected = state.history.expected_ms
            for run in state.running.values():
                if run.ended or now - run.last_progress < every_s:
                    continue
                run.last_progress = now
                begun = run.started_at if run.started_at is not None else run.first_seen
                elapsed = max(0, int((now - begun) * 1000))
                percent = None
                if expected:
                    # Never claim 100 % for a run that has not been seen to end.
                    percent = round(min(99.0, 100.0 * elapsed / expected), 1)
                events.append(
                    ExecutionProgress(
                        scenario_id=state.scenario_id,
                        execution_id=run.execution_id,
                        elapsed_ms=elapsed,
                        expected_duration_ms=expected,
                        percent=percent,
                        basis="history",
                    )
                )
        return events

    # -- positions -------------------------------------------------------------------------------

    def cursor(self, seq: int) -> str:
        """The encoded cursor after event `seq`; cached until the positions change."""
        if self._cursor_cache is None or self._cursor_cache[0] != self._version:
            positions = {s: st.position for s, st in self.scenarios.items()}
            self._cursor_cache = (self._version, encode_positions(positions))
        # The seq rides outside the cached part so that a cursor costs nothing to re-stamp.
        return f"{self._cursor_cache[1]}~{self.stream}.{seq}"

    @property
    def running_count(self) -> int:
        return sum(len(s.running) for s in self.scenarios.values())


def execution_id_delivered(state: ScenarioState, execution_id: str) -> bool:
    return short_id(execution_id) in state.position.done


def _known(log: ExecutionLog | None, name: str) -> int | None:
    """A figure of the log entry, or None where there is no entry or Make's value was
    unreadable (`MakeModel.unread`)."""
    if log is None or name in log.unread:
        return None
    value: int | None = getattr(log, name)
    return value

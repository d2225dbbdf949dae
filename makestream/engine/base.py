"""The watch's state and what all its parts share: stamping events, ending the stream, scheduling.

`WatchBase` holds everything a `Watch` knows and the steps its other parts build on: `emit`, which
stamps events at the moment of the state change they describe; `stop`, `_fatal` and `_close`,
which end the stream with its one `stream.closed`; the small scheduling helpers (waking workers,
retrying a follow-up, when to scan after a run, how often to sweep or read queue depths) and
`_learn`, which both set-up and the action handlers use. The parts that read Make
(`engine.reads`), set the watch up (`engine.startup`) and run its workers (`engine.watch`) build
on it.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Iterable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from makestream.engine.alerts import fails
from makestream.engine.options import Outcome, WatchOptions
from makestream.engine.policy import QUANTILES, SWEEP_SHARE
from makestream.engine.poller import Action, Schedule
from makestream.engine.tracker import MAX_LOOKBACK_MS, Tracker
from makestream.errors import ExitCode, MakestreamError, worst
from makestream.events import (
    AlertRaised,
    AlertResolved,
    ApiThrottled,
    ExecutionFinished,
    StreamClosed,
    StreamError,
    StreamOpened,
    _Event,
    rfc3339,
)
from makestream.make.budget import Priority
from makestream.make.client import ApiNotice, MakeClient
from makestream.make.models import Blueprint, ExecutionDetail, ExecutionLog, Scenario

_OUTCOME = {
    "success": ExitCode.OK,
    "warning": ExitCode.EXECUTION_WARNING,
    "error": ExitCode.EXECUTION_ERROR,
}
LOG_PAGE = 50
_SCENARIO_PATH = re.compile(r"^/scenarios/([0-9]{1,15})/")
_ORG = 0  # the sweep group that stands for the whole organization
LISTED_PER_REQUEST = 99  # ids per listing request, whose pages hold 100
# A scheduled run that began at most this long (plus the long side of its scenario's known run
# lengths) before the watch took its scenario may have ended since the watch began: its due scan
# is armed at start-up (`_plan_schedule`). One that began earlier most likely ended before, and is
# history its scenario's first read will list.
PREVIOUS_RUN_S = 20.0
# nextExec more than an interval ahead by this much (at least OVERRUN_SLACK_S; Make's clock and
# ours differ by a little) means Make skipped slots: a run overran its interval.
OVERRUN_SLACK = 0.1
OVERRUN_SLACK_S = 5.0
__all__ = ["LOG_PAGE", "SWEEP_SHARE", "WatchBase"]


class WatchBase:
    """The state of one watch and the steps its parts share; see `Watch`."""

    def __init__(self, client: MakeClient, options: WatchOptions) -> None:
        self.client = client
        self.options = options
        self.clock = client.clock
        self.tracker = Tracker(stream=options.stream_key or secrets.token_hex(4))
        self.schedule = Schedule(floor_s=options.interval_s)
        self._send: MemoryObjectSendStream[_Event]
        self.events: MemoryObjectReceiveStream[_Event]
        # Unbounded on purpose: stamping must happen synchronously with the state change, and
        # the producer is paced by the request budget, so the queue only grows while the
        # consumer itself is stalled.
        self._send, self.events = anyio.create_memory_object_stream[_Event](math.inf)
        self._seq = options.first_seq  # the first event gets first_seq + 1
        self._moves_stamped = -1  # tracker.moves when a cursor was last stamped
        self._last_emit = 0.0
        self._last_heartbeat = self.clock.now()
        self._done = anyio.Event()
        self._wake = anyio.Event()
        self.outcome = Outcome()
        self._codes: list[ExitCode] = []
        self._counts: dict[str, int] = {"finished": 0, "success": 0, "warning": 0, "error": 0}
        self._targets: set[str] = set()  # executions whose end ends the watch (--run/--execution)
        # When Make first answered 404 for each target: a run just started may not be known to
        # `/executions` at once (see `NOT_FOUND_GRACE_S`).
        self._target_missing: dict[str, float] = {}
        self._pending = 0  # follow-ups in flight, for --no-follow
        # Runs known to have ended and not reported yet (a follow-up reads their log entry or
        # error detail): whatever ends the watch, they are reported with what is known.
        self._unreported: dict[str, tuple[int, ExecutionLog | None, ExecutionDetail | None]] = {}
        self._flushing = False
        self._org_id: int | None = None
        self._ending: str | None = None  # a reason to end once follow-ups settle
        # With --modules: runs whose module results are still to come, and those of them that
        # --count or --run/--execution counted, whose results the ending waits for.
        self._modules_due: set[str] = set()
        self._awaited: set[str] = set()
        # Blueprints fetched so far (for --modules and the live view's module flow).
        self.blueprints: dict[int, Blueprint] = {}
        self._team_of: dict[int, int | None] = {}
        self._started_at = self.clock.now()
        self.stored_replays = 0  # runs a resumed watch took from the history store
        # Hooks for long-lived consumers (the SSE server): scenarios already known, so that a
        # restart does not fetch each one again, and an observer of every page of logs read.
        self.known_scenarios: dict[int, Scenario] = {}
        self.on_logs: Callable[[int, list[ExecutionLog]], None] | None = None
        # The error of the latest request while none has succeeded since (heartbeats carry it).
        self.failing: str | None = None

    # -- emitting --------------------------------------------------------------------------------

    def _keep_blueprint(self, scenario_id: int, blueprint: Blueprint) -> None:
        """Remember a scenario's blueprint; its module count goes into later execution.started."""
        self.blueprints[scenario_id] = blueprint
        state = self.tracker.scenarios.get(scenario_id)
        if state is not None:
            state.modules_total = sum(1 for _ in blueprint.walk())

    def emit(self, events: Iterable[_Event]) -> None:
        """Stamp and queue events. Call right after the state change they describe.

        Alert rules see every event; the alerts an event raises follow it directly.
        """
        alerts = self.options.alerts
        for event in events:
            if self._done.is_set():
                return
            self._seq += 1
            now = self.clock.now()
            self._last_emit = now
            stamped = event.model_copy(
                update={"seq": self._seq, "ts": rfc3339(now), "cursor": self._cursor_for(event)}
            )
            self._deliver(stamped)
            if isinstance(event, AlertRaised):
                self._alert_raised(event)
            elif alerts is not None and not isinstance(event, AlertResolved):
                self.emit(alerts.observe(stamped, now))
            # Counted after its alerts: the run that ends a watch still raises what it raises
            # (and --fail-on-alert sees it) before the stream closes.
            if isinstance(event, ExecutionFinished):
                self._count_finished(event)

    def _cursor_for(self, event: _Event) -> str | None:
        """The cursor an event carries: every event's, or only where the position moved."""
        moves = self.tracker.moves
        if (
            self.options.cursor_every_event
            or moves != self._moves_stamped
            or isinstance(event, (StreamOpened, ExecutionFinished))
        ):
            self._moves_stamped = moves
            return self.tracker.cursor(self._seq)
        return None

    def _alert_raised(self, event: AlertRaised) -> None:
        severity = self.options.fail_on_alert
        if severity is not None and fails(severity, event):
            self.stop("alert", ExitCode.ALERT)

    def _count_finished(self, event: ExecutionFinished) -> None:
        eid = event.execution_id
        counted = eid in self._targets or self.options.count is not None
        if counted and self._ending is None and eid in self._modules_due:
            self._awaited.add(eid)
        self._counts["finished"] += 1
        self._counts[event.status] += 1
        self._codes.append(_OUTCOME[event.status])
        if event.execution_id in self._targets:
            self._targets.discard(event.execution_id)
            if not self._targets:
                self._end_when_settled("finished")
        if self.options.count is not None and self._counts["finished"] >= self.options.count:
            self._end_when_settled("count")

    def _end_when_settled(self, reason: str) -> None:
        """End now, or — with --modules — once the module results of the counted runs are out
        (whatever else keeps finishing meanwhile)."""
        self._ending = self._ending or reason
        if not self._awaited:
            self.stop(self._ending)

    def _modules_settled(self, execution_id: str) -> None:
        """The module results of a run are out, or will never come."""
        self._modules_due.discard(execution_id)
        self._awaited.discard(execution_id)

    def on_notice(self, notice: ApiNotice) -> None:
        """Client observer: a 429 becomes an `api.throttled` event; failures are remembered
        until a request succeeds, for the heartbeat's `failing`."""
        if notice.kind in ("request", "retry") and notice.error is not None:
            self.failing = notice.error
        elif notice.kind == "request" and notice.status is not None and notice.status < 400:
            self.failing = None
        if notice.kind == "payload" and notice.error is not None:
            # A client shared by several watches (MCP) tells each of every answer: a
            # scenario's own reads concern only the watch that follows it.
            own = _SCENARIO_PATH.match(notice.path)
            if own is None or int(own[1]) in self.tracker.scenarios:
                # Said once each by the client; the stream goes on without the entry.
                self.emit([StreamError(message=notice.error, error_type="PayloadError",
                                       fatal=False)])
        if notice.kind == "throttled":
            snap = self.client.budget.snapshot()
            self.emit(
                [
                    ApiThrottled(
                        retry_in_s=notice.retry_in_s or 0.0,
                        rate_per_min=round(snap.rate_per_min, 2),
                        asked_s=notice.asked_s,
                    )
                ]
            )

    # -- life cycle ------------------------------------------------------------------------------

    def stop(self, reason: str, code: ExitCode | None = None) -> None:
        """End the stream (idempotent): the first reason given wins.

        Runs known to have ended are reported first, with what is known of them: a stream
        that closes must not know of a finished run it never reported.
        """
        if self._done.is_set():
            return
        if not self._flushing:
            self._flushing = True
            try:
                self._report_unreported()
            finally:
                self._flushing = False
            if self._done.is_set():
                return
        self.outcome.reason = reason
        if code is not None:
            self._codes.append(code)
        self._done.set()

    def _known_ended(
        self, sid: int, eid: str, log: ExecutionLog | None, detail: ExecutionDetail | None
    ) -> None:
        """A run has ended; its report waits for one follow-up read."""
        self._unreported[eid] = (sid, log, detail)

    def _report_unreported(self) -> None:
        now = self.clock.now()
        for eid, (sid, log, detail) in list(self._unreported.items()):
            self._unreported.pop(eid, None)
            self.schedule.in_detail.discard(eid)
            self.emit(self.tracker.finished(sid, log, detail, execution_id=eid, now=now))

    def _fatal(self, exc: MakestreamError) -> None:
        if self._done.is_set():
            return  # the stream already ended for another reason
        if self.outcome.error is None:
            self.outcome.error = exc.message
        self.emit([StreamError(message=exc.message, error_type=type(exc).__name__, fatal=True)])
        self.stop("error", exc.exit_code)

    def _close(self) -> None:
        opts = self.options
        codes = list(self._codes)
        if not opts.exit_status:
            # Outcomes set the code only when asked; --fail-on-alert asks for exit 4 itself.
            codes = [
                c
                for c in codes
                if c not in _OUTCOME.values()
                and (c != ExitCode.ALERT or opts.fail_on_alert is not None)
            ]
        code = worst(*codes)
        self.outcome.exit_code = code
        self.outcome.summary = dict(self._counts)
        self._seq += 1
        now = self.clock.now()
        closed = StreamClosed(
            reason=self.outcome.reason,
            exit_code=int(code),
            summary=dict(self._counts),
            seq=self._seq,
            ts=rfc3339(now),
            cursor=self.tracker.cursor(self._seq),
        )
        self._deliver(closed)
        self._send.close()

    def _deliver(self, event: _Event) -> None:
        try:
            self._send.send_nowait(event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.stop("consumer closed")  # nobody reads any more

    # -- scheduling ------------------------------------------------------------------------------

    def _kick(self) -> None:
        """New work may be due: wake every idle worker."""
        self._wake.set()
        self._wake = anyio.Event()

    def _later(self, when: float, action: Action) -> None:
        """Retry a follow-up at `when`."""
        self._pending += 1
        self.schedule.at(
            when,
            Action(
                action.kind,
                action.scenario_id,
                action.execution_id,
                log=action.log,
                detail=action.detail,
                priority=action.priority,
                attempt=action.attempt + 1,
            ),
        )

    def _plan_schedule(self, scenario: Scenario, now: float) -> None:
        """A scheduled run is worth a scan shortly after its expected end; with an interval, the
        runs after it are too (the schedule rolls on without waiting for a sweep)."""
        target = self.schedule.scans.get(scenario.id)
        if target is None:
            return
        self._expect(scenario.id)
        first = target.next_exec is None and target.began is None and not target.scanned_once
        scheduling = scenario.scheduling
        interval = scheduling.interval if scheduling is not None else None
        target.interval = float(interval) if interval and interval >= 60 else None
        target.next_exec = scenario.next_exec.timestamp() if scenario.next_exec else None
        overran = False
        if target.interval and target.next_exec is not None:
            # More than an interval to the next run: Make skipped slots, most likely because a
            # run begun earlier is still going. It ends by nextExec, when no due scan looks:
            # until a read finds it, the scenario is read like one without a schedule. (Further
            # ahead than Make lets a run last, it is a time window or a start date, not a run.)
            ahead = target.next_exec - target.interval - now
            slack = max(OVERRUN_SLACK_S, OVERRUN_SLACK * target.interval)
            overran = slack < ahead <= MAX_LOOKBACK_MS / 1000
        # (called at start-up and when nextExec moves: a nextExec within an interval, or none,
        # ends whatever an earlier one said)
        if not overran:
            target.overrun_seen = None
        elif target.overrun_seen is None:
            target.overrun_seen = now
        if first and target.interval and target.next_exec is not None:
            # The run before nextExec began before the watch knew of it; if recently enough,
            # it may have ended since the watch began (or not yet), and only the scenario's
            # first read would find it, which waits behind every run known to wait: its due scan
            # is that first read (`Schedule.first_read` answers it if the run ended before),
            # worth a likely run, not a sure one: the run may be history.
            began = target.next_exec - target.interval
            if now - PREVIOUS_RUN_S - target.expected_s <= began <= now:
                self._scan_after_run(scenario.id, began, now, sure=False)
        self.schedule.roll(now)

    def _expect(self, sid: int) -> None:
        target = self.schedule.scans.get(sid)
        if target is not None:
            # The long side of recent runs (80th percentile): a first look at the median would
            # miss half the runs, and each miss costs a request.
            history = self.tracker.scenarios[sid].history
            target.expected_s = (history.percentile(80) or 0) / 1000
            if len(history):
                target.lengths = tuple((history.percentile(q * 100) or 0) / 1000
                                       for q in QUANTILES)

    def _scan_after_run(self, sid: int, started: float, now: float, *, sure: bool = True) -> None:
        self._expect(sid)
        target = self.schedule.scans.get(sid)
        expected = target.expected_s if target is not None else 0.0
        self.schedule.scan_at(sid, max(now, started + max(expected, 1.0) + 0.5), began=started,
                              sure=sure)

    def _sweep_groups(self) -> dict[int, int]:
        """What sweep requests list: the organization (0) when known, else each team; with the
        pages each takes (the client sends 100 ids a request)."""
        if self._org_id is not None:
            return {_ORG: max(1, math.ceil(len(self._team_of) / LISTED_PER_REQUEST))}
        teams: dict[int, int] = {}
        for team in self._team_of.values():
            if team is not None:
                teams[team] = teams.get(team, 0) + 1
        return {team: max(1, math.ceil(n / LISTED_PER_REQUEST))
                for team, n in sorted(teams.items())}

    async def _listing(
        self, ids: list[int], *, team_id: int | None = None, organization_id: int | None = None,
        priority: Priority = Priority.NORMAL, each: Callable[[list[Scenario]], None] | None = None,
    ) -> list[Scenario]:
        """Scenarios by id, LISTED_PER_REQUEST a request: a page shorter than its limit is
        known to be the last, so no request goes to an empty next page. `each` takes every
        page as it comes (a sweep's pages are seconds apart: each is news as of its own read)."""
        found: list[Scenario] = []
        for i in range(0, len(ids), LISTED_PER_REQUEST):
            page = await self.client.scenarios(
                team_id=team_id, organization_id=organization_id,
                ids=ids[i:i + LISTED_PER_REQUEST], priority=priority,
            )
            if each is not None:
                each(page)
            found.extend(page)
        return found

    # -- history ---------------------------------------------------------------------------------

    def _learn(self, sid: int, entries: list[ExecutionLog]) -> None:
        """History from runs before the stream, for expected durations and alert baselines."""
        self.tracker.learn(sid, entries)
        if self.options.alerts is not None:
            past = sorted((e for e in entries if e.status.terminal), key=lambda e: e.timestamp_ms)
            self.options.alerts.learn(
                sid,
                [e.duration_ms for e in past if e.duration_ms is not None],
                last_run_at=past[-1].timestamp_ms / 1000 if past else None,
            )

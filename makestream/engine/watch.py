"""The watch: assembles client, poller and tracker into one stream of stamped events.

    async with open_watch(client, WatchOptions(scenario_ids=[123])) as watch:
        async for event in watch.events:
            ...
    watch.outcome.exit_code

Workers take the most valuable action from the `Schedule`, perform it through the client (which
spends the shared budget), and hand what they learned to the `Tracker`. Events are stamped with
`seq`, `ts` and `cursor` at the moment the tracker's state changes — never later — so that a
cursor always describes exactly the events before it. Transient failures become `stream.error`
events and the work is retried; fatal ones (a rejected token, an unknown scenario) end the stream
with exit code 6. The stream always ends with one `stream.closed`.
"""

from __future__ import annotations

import fnmatch
import math
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from makestream import __version__
from makestream.engine.alerts import AlertEvaluator, fails
from makestream.engine.cursor import Cursor
from makestream.engine.poller import Action, ScanTarget, Schedule
from makestream.engine.rules import Severity
from makestream.engine.tracker import Tracker
from makestream.errors import (
    ApiError,
    AuthError,
    ExitCode,
    MakestreamError,
    NotFoundError,
    UsageError,
    worst,
)
from makestream.events import (
    AlertRaised,
    AlertResolved,
    ApiThrottled,
    ExecutionFinished,
    ModuleResult,
    StreamClosed,
    StreamError,
    StreamHeartbeat,
    StreamOpened,
    _Event,
    rfc3339,
)
from makestream.make.budget import Priority
from makestream.make.client import ApiNotice, MakeClient
from makestream.make.models import Blueprint, ExecStatus, ExecutionLog, Scenario

_OUTCOME = {
    "success": ExitCode.OK,
    "warning": ExitCode.EXECUTION_WARNING,
    "error": ExitCode.EXECUTION_ERROR,
}
LOG_PAGE = 50
_FOLLOW_UPS = frozenset({"log", "detail", "modules", "blueprint"})
_ORG = 0  # the sweep group that stands for the whole organization
SWEEP_SHARE = 0.3


@dataclass
class WatchOptions:
    """Everything that shapes one watch; built by the CLI, usable from Python."""

    scenario_ids: list[int] = field(default_factory=list)
    team_id: int | None = None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    execution_id: str | None = None
    run: bool = False
    run_data: dict[str, Any] | None = None
    since_ms: int | None = None
    follow: bool = True
    count: int | None = None
    timeout_s: float | None = None
    resume: Cursor | None = None
    interval_s: float = 1.0
    api_limit: int | None = None
    modules: bool = False
    exit_status: bool = False
    heartbeat_s: float = 15.0
    progress_s: float = 2.0
    workers: int = 8
    blueprints: bool = False  # fetch the targets' blueprints (few targets only) for the view
    alerts: AlertEvaluator | None = None  # thresholds to evaluate; None: no alerting
    fail_on_alert: Severity | None = None  # end with exit 4 once such an alert is raised


@dataclass
class Outcome:
    """How the stream ended."""

    reason: str = "running"
    exit_code: ExitCode = ExitCode.OK
    error: str | None = None  # the fatal error's message, when one ended the stream
    summary: dict[str, Any] = field(default_factory=dict)


class Watch:
    """One stream of events about a set of scenarios. Use through `open_watch`."""

    def __init__(self, client: MakeClient, options: WatchOptions) -> None:
        self.client = client
        self.options = options
        self.clock = client.clock
        self.tracker = Tracker(stream=secrets.token_hex(4))
        self.schedule = Schedule(floor_s=options.interval_s)
        self._send: MemoryObjectSendStream[_Event]
        self.events: MemoryObjectReceiveStream[_Event]
        # Unbounded on purpose: stamping must happen synchronously with the state change, and
        # the producer is paced by the request budget, so the queue only grows while the
        # consumer itself is stalled.
        self._send, self.events = anyio.create_memory_object_stream[_Event](math.inf)
        self._seq = 0
        self._last_emit = 0.0
        self._last_heartbeat = self.clock.now()
        self._done = anyio.Event()
        self._wake = anyio.Event()
        self.outcome = Outcome()
        self._codes: list[ExitCode] = []
        self._counts: dict[str, int] = {"finished": 0, "success": 0, "warning": 0, "error": 0}
        self._targets: set[str] = set()  # executions whose end ends the watch (--run/--execution)
        self._pending = 0  # follow-ups in flight, for --no-follow
        self._unscanned: set[int] = set()
        self._in_detail: set[str] = set()  # error runs whose detail is being fetched
        self._org_id: int | None = None
        self._sweeping: set[int] = set()
        self._hooked: list[int] = []  # webhook scenarios, whose queue depth is read
        self._ending: str | None = None  # a reason to end once follow-ups settle
        self._fresh: set[int] = set()  # scenarios not scanned yet, with no position to start at
        # Blueprints fetched so far (for --modules and the live view's module flow).
        self.blueprints: dict[int, Blueprint] = {}
        self._team_of: dict[int, int | None] = {}
        self._started_at = self.clock.now()
        # Hooks for long-lived consumers (the SSE server): scenarios already known, so that a
        # restart does not fetch each one again, and an observer of every page of logs read.
        self.known_scenarios: dict[int, Scenario] = {}
        self.on_logs: Callable[[int, list[ExecutionLog]], None] | None = None

    # -- emitting --------------------------------------------------------------------------------

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
                update={
                    "seq": self._seq,
                    "ts": rfc3339(now),
                    "cursor": self.tracker.cursor(self._seq),
                }
            )
            self._deliver(stamped)
            if isinstance(event, ExecutionFinished):
                self._count_finished(event)
            elif isinstance(event, AlertRaised):
                self._alert_raised(event)
            if alerts is not None and not isinstance(event, AlertRaised | AlertResolved):
                self.emit(alerts.observe(stamped, now))

    def _alert_raised(self, event: AlertRaised) -> None:
        severity = self.options.fail_on_alert
        if severity is not None and fails(severity, event):
            self.stop("alert", ExitCode.ALERT)

    def _count_finished(self, event: ExecutionFinished) -> None:
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
        """End now, or — with --modules — once the module results of the last run are out."""
        self._ending = self._ending or reason
        if not self.options.modules or self._pending <= 0:
            self.stop(self._ending)

    def on_notice(self, notice: ApiNotice) -> None:
        """Client observer: a 429 becomes an `api.throttled` event."""
        if notice.kind == "throttled":
            snap = self.client.budget.snapshot()
            self.emit(
                [
                    ApiThrottled(
                        retry_in_s=notice.retry_in_s or 0.0,
                        rate_per_min=round(snap.rate_per_min, 2),
                    )
                ]
            )

    # -- life cycle ------------------------------------------------------------------------------

    def stop(self, reason: str, code: ExitCode | None = None) -> None:
        """End the stream (idempotent): the first reason given wins."""
        if self._done.is_set():
            return
        self.outcome.reason = reason
        if code is not None:
            self._codes.append(code)
        self._done.set()

    async def run(self) -> None:
        """Run until stopped; always ends the stream with `stream.closed`."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._guarded_setup_and_work, tg)
                await self._done.wait()
                tg.cancel_scope.cancel()
        finally:
            self._close()

    async def _guarded_setup_and_work(self, tg: anyio.abc.TaskGroup) -> None:
        delay = 2.0
        while True:
            try:
                target = await self._setup()
                break
            except MakestreamError as exc:
                # A 429 or an outage at start-up is waited out like any other (DESIGN.md); only
                # what retrying cannot fix — a bad token, an unknown scenario — ends the watch.
                timeout = self.options.timeout_s
                if timeout is not None and self.clock.now() - self._started_at + delay > timeout:
                    self.stop("timeout", ExitCode.TIMEOUT)
                    return
                if not exc.transient:
                    self._fatal(exc)
                    return
                self.emit([StreamError(message=exc.message, error_type=type(exc).__name__,
                                       fatal=False, retry_in_s=delay)])
                await self.clock.sleep(delay)
                delay = min(60.0, delay * 2)
        if target is not None:
            try:
                await self._start_target(target)
            except MakestreamError as exc:
                # Not retried: a run request that may have reached Make must not be sent twice.
                self._fatal(exc)
                return
        for _ in range(max(1, self.options.workers)):
            tg.start_soon(self._worker)
        tg.start_soon(self._ticker)
        self._check_caught_up()

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

    # -- set-up ----------------------------------------------------------------------------------

    async def _setup(self) -> Scenario | None:
        """Resolve targets and positions; returns the scenario of --run/--execution, if any."""
        opts = self.options
        await self._read_organization()
        scenarios = await self._resolve_targets()
        if opts.resume is not None:
            self.tracker.restore(opts.resume)
        for scenario in scenarios:
            await self._adopt(scenario)
        budget = self.client.budget.snapshot()
        self.emit(
            [
                StreamOpened(
                    targets=[s.id for s in scenarios],
                    api_limit=budget.limit_per_min,
                    budget_per_min=round(budget.limit_per_min * budget.share, 2),
                    follow=opts.follow,
                    version=__version__,
                )
            ]
        )
        self.schedule.rate_per_s = budget.rate_per_min / 60
        if opts.blueprints and len(scenarios) <= 10:
            # For the live view's module flow: cheap for a few scenarios, pointless for many.
            for scenario in scenarios:
                self._pending += 1  # a follow-up like any other (see _FOLLOW_UPS)
                self.schedule.at(
                    self.clock.now(), Action("blueprint", scenario.id, priority=Priority.LOW)
                )
        if opts.run or opts.execution_id:
            return scenarios[0]
        if opts.follow:
            now = self.clock.now()
            for group in self._sweep_groups():
                self.schedule.at(now + self._sweep_every(), Action("sweep", group))
            self._hooked = [s.id for s in scenarios if s.hook_id is not None]
            for i, sid in enumerate(self._hooked):
                # Spread over one period rather than all at once.
                offset = self._triggers_every() * i / max(1, len(self._hooked))
                self.schedule.at(now + offset, Action("triggers", sid))
        return None

    async def add_scenarios(self, scenario_ids: Iterable[int]) -> None:
        """Start watching more scenarios while the stream runs (the SSE server's on-demand)."""
        for sid in scenario_ids:
            if sid not in self.tracker.scenarios:
                await self._adopt(await self.client.scenario(sid))
                team = self._team_of.get(sid)
                if (
                    self._org_id is None
                    and team is not None
                    and not any(t == team for s, t in self._team_of.items() if s != sid)
                ):
                    self.schedule.at(self.clock.now() + self._sweep_every(), Action("sweep", team))
        self._kick()

    async def _adopt(self, scenario: Scenario) -> None:
        """Take a scenario into the watch, at the position the options ask for."""
        opts = self.options
        sid = scenario.id
        now = self.clock.now()
        since = opts.since_ms
        if since is None and not opts.follow and opts.resume is None:
            since = int(self._started_at * 1000) - 3600_000  # --no-follow alone: the last hour
        known = opts.resume is not None and sid in opts.resume.positions
        state = self.tracker.add_scenario(sid, floor_ms=since if since is not None else 0)
        state.name, state.team_id = scenario.name, scenario.team_id
        self._team_of[sid] = scenario.team_id
        self.emit(self.tracker.scenario_seen(scenario))
        if opts.run or opts.execution_id:
            # The target run may predate the watch; one page of logs gives its expected length.
            state.position.floor_ms = 0
            page = await self.client.logs(sid, limit=LOG_PAGE, priority=Priority.NORMAL)
            self._learn(sid, page.items)
            return
        if not known and since is None:
            # The first scan tells history from news (see `_first_scan`), so that adopting a
            # thousand scenarios costs no request up front.
            self._fresh.add(sid)
        self.schedule.scans[sid] = ScanTarget(sid)
        self._unscanned.add(sid)
        self._plan_schedule(scenario, now)

    async def _read_organization(self) -> None:
        """Learn the organization's request limit and web host; needs `organizations:read`."""
        opts = self.options
        if opts.api_limit is not None:
            self.client.budget.set_limit(opts.api_limit)
        try:
            orgs = await self.client.organizations(priority=Priority.NORMAL)
        except AuthError as exc:
            if exc.status == 401:
                raise
            orgs = []  # no organizations:read scope: keep --api-limit
        org = orgs[0] if len(orgs) == 1 else None
        self._org_id = org.id if org is not None else None
        if org is not None and org.api_limit is None and opts.api_limit is None:
            # make-api.md documents license.apiLimit on the single organization; the list may
            # leave it out.
            org = await self.client.organization(org.id, priority=Priority.NORMAL)
        if org is not None and opts.api_limit is None and org.api_limit:
            self.client.budget.set_limit(org.api_limit)
        host = org.zone if org is not None and org.zone else urlsplit(self.client.base_url).netloc
        self.tracker.ui_base = f"https://{host}"

    async def _resolve_targets(self) -> list[Scenario]:
        opts = self.options
        found: list[Scenario] = []
        if opts.team_id is not None:
            team = await self.client.scenarios(team_id=opts.team_id)
            for scenario in team:
                name = scenario.name
                if opts.include and not any(fnmatch.fnmatchcase(name, p) for p in opts.include):
                    continue
                if any(fnmatch.fnmatchcase(name, p) for p in opts.exclude):
                    continue
                found.append(scenario)
            if not found and not opts.scenario_ids:
                raise UsageError(f"no scenario of team {opts.team_id} matches the filters")
        wanted = [sid for sid in opts.scenario_ids
                  if sid not in self.known_scenarios and not any(s.id == sid for s in found)]
        if len(wanted) > 3 and self._org_id is not None:
            # One listing page describes a hundred scenarios; asking one by one would spend
            # minutes of budget before the first event for a large fleet.
            listed = await self.client.scenarios(organization_id=self._org_id, ids=wanted)
            found.extend(s for s in listed if s.id in set(wanted))
        for sid in opts.scenario_ids:
            if any(s.id == sid for s in found):
                continue
            try:
                found.append(self.known_scenarios.get(sid) or await self.client.scenario(sid))
            except NotFoundError:
                raise NotFoundError(
                    f"scenario {sid} not found (or not visible to this token)", status=404
                ) from None
        if not found:
            raise UsageError("nothing to watch: name a scenario id or give --team")
        if (opts.run or opts.execution_id) and len(found) != 1:
            raise UsageError("--run and --execution take exactly one scenario")
        return found

    def _plan_schedule(self, scenario: Scenario, now: float) -> None:
        """A scheduled run is worth a scan shortly after its expected end."""
        if scenario.next_exec is not None:
            self._scan_after_run(scenario.id, scenario.next_exec.timestamp(), now)

    def _scan_after_run(self, sid: int, started: float, now: float) -> None:
        expected = (self.tracker.scenarios[sid].history.expected_ms or 0) / 1000
        self.schedule.scan_at(sid, max(now, started + expected + 0.5))

    def _sweep_groups(self) -> list[int]:
        """What one sweep request lists: the organization (0) when known, else each team."""
        if self._org_id is not None:
            return [_ORG]
        return sorted({t for t in self._team_of.values() if t is not None})

    def _sweep_every(self) -> float:
        # Sweeps are the cheapest detector — one page tells which of a hundred scenarios ran —
        # so they get SWEEP_SHARE of the budget, but never more than one a second.
        pages = sum(1 + len(self._team_of) // 100 for _ in self._sweep_groups()) or 1
        rate = self.client.budget.snapshot().rate_per_min / 60
        return max(1.0, pages / max(rate * SWEEP_SHARE, 1e-6))

    async def _start_target(self, scenario: Scenario) -> None:
        opts = self.options
        now = self.clock.now()
        sid = scenario.id
        if opts.run:
            try:
                result = await self.client.run(sid, data=opts.run_data)
            except ApiError as exc:
                if exc.status != 400:
                    raise
                # Make refused the inputs or the scenario's state: the user's to fix.
                raise UsageError(f"--run: {exc.message}") from None
            eid, source = result.execution_id, "run"
            started: float | None = now
        else:
            assert opts.execution_id is not None
            eid, source, started = opts.execution_id, "existing", None
        self._targets.add(eid)
        self.emit(self.tracker.started(sid, eid, now=now, source=source, started_at=started))
        self.schedule.scanning = False
        self.schedule.poll_share = 0.8  # nothing else competes for the budget
        self.schedule.watch_execution(
            sid, eid, now=now, history=self.tracker.scenarios[sid].history, started=started
        )
        self._kick()

    # -- work --------------------------------------------------------------------------------

    def _kick(self) -> None:
        """New work may be due: wake every idle worker."""
        self._wake.set()
        self._wake = anyio.Event()

    async def _worker(self) -> None:
        while True:
            action, wait = self.schedule.next(self.clock.now())
            if action is None:
                # Every idle worker waits on the same event; `_kick` wakes them all.
                with anyio.move_on_after(self.clock.real(min(wait, 5.0))):
                    await self._wake.wait()
                continue
            await self._perform(action)

    async def _perform(self, action: Action) -> None:
        started = self.clock.now()
        if action.kind in _FOLLOW_UPS:
            self._pending -= 1
        try:
            match action.kind:
                case "poll":
                    await self._poll(action)
                case "log":
                    await self._fetch_log(action)
                case "detail":
                    await self._fetch_detail(action)
                case "scan":
                    await self._scan(action.scenario_id, started, action.priority)
                case "sweep":
                    await self._sweep(action.scenario_id)
                case "modules":
                    await self._modules(action)
                case "triggers":
                    await self._triggers(action.scenario_id)
                case "blueprint":
                    if action.scenario_id not in self.blueprints:
                        self.blueprints[action.scenario_id] = await self.client.blueprint(
                            action.scenario_id, priority=Priority.LOW
                        )
        except MakestreamError as exc:
            # A watched scenario or target run that is gone ends the watch; a missing module
            # log or blueprint only costs its detail.
            gone = isinstance(exc, NotFoundError) and action.kind in ("scan", "sweep", "poll")
            if gone or not (exc.transient or isinstance(exc, NotFoundError)):
                self._fatal(exc)
                return
            self._retry(action, exc, started)
        finally:
            self._kick()
            self._check_caught_up()
            if self._ending is not None:
                self._end_when_settled(self._ending)

    def _retry(self, action: Action, exc: MakestreamError, started: float) -> None:
        now = self.clock.now()
        delay = min(30.0, 2.0 * 2 ** min(action.attempt, 4))
        if exc.transient:
            self.emit(
                [
                    StreamError(
                        message=exc.message,
                        error_type=type(exc).__name__,
                        fatal=False,
                        retry_in_s=round(delay, 1),
                    )
                ]
            )
        match action.kind:
            case "scan":
                self.schedule.scanned(action.scenario_id, started, now, ok=False)
                self.schedule.scan_not_before(action.scenario_id, now + delay)
            case "poll":
                self.schedule.polled(action.execution_id, now)
            case "sweep" | "triggers":
                pass  # the next one is already planned
            case "modules" | "blueprint" if action.attempt >= 3:
                pass  # per-module detail and the flow are niceties; the runs are reported
            case "log" | "detail" if action.attempt >= 8:
                # The figures never came: report the end with what is known.
                self._finish(action.scenario_id, action.log, action)
            case _:
                self._later(now + delay, action)

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

    async def _poll(self, action: Action) -> None:
        sid, eid = action.scenario_id, action.execution_id
        try:
            detail = await self.client.execution(sid, eid, priority=Priority.HIGH)
        except NotFoundError:
            self.schedule.forget_execution(eid)
            if eid in self._targets:
                raise NotFoundError(
                    f"execution {eid} of scenario {sid} not found", status=404
                ) from None
            return
        finally:
            self.schedule.polled(eid, self.clock.now())
        if detail.status.terminal:
            self.schedule.forget_execution(eid)
            self._pending += 1
            self.schedule.follow_up(
                Action("log", sid, eid, detail=detail, priority=Priority.URGENT)
            )

    async def _fetch_log(self, action: Action) -> None:
        sid, eid = action.scenario_id, action.execution_id
        try:
            log = await self.client.log(sid, eid, priority=Priority.URGENT)
        except NotFoundError:
            log = None
        if log is None or not log.status.terminal:
            # The log entry can lag the status by a few seconds.
            if action.attempt >= 8:
                self._finish(sid, None, action)
            else:
                self._later(self.clock.now() + 1.0 + action.attempt, action)
            return
        self._finish(sid, log, action)

    async def _fetch_detail(self, action: Action) -> None:
        sid, eid = action.scenario_id, action.execution_id
        try:
            detail = await self.client.execution(sid, eid, priority=Priority.HIGH)
        except NotFoundError:
            detail = None
        self._finish(sid, action.log, Action("detail", sid, eid, log=action.log, detail=detail))

    def _finish(self, sid: int, log: ExecutionLog | None, action: Action) -> None:
        if self._done.is_set():
            return  # as in `_scan`: record nothing the stream can no longer report
        now = self.clock.now()
        events = self.tracker.finished(
            sid, log or action.log, action.detail, execution_id=action.execution_id, now=now
        )
        self.schedule.forget_execution(action.execution_id)
        self._in_detail.discard(action.execution_id)
        if not events and action.execution_id in self._targets:
            # Delivered before (the cursor says so): the target is done all the same.
            self._targets.discard(action.execution_id)
            if not self._targets:
                self._end_when_settled("finished")
        if events and self.options.modules:
            # Queued before the event goes out, so that --count/--run wait for the modules.
            self._pending += 1
            self.schedule.follow_up(
                Action("modules", sid, action.execution_id, priority=Priority.LOW)
            )
        self.emit(events)

    async def _scan(self, sid: int, started: float, priority: Priority) -> None:
        state = self.tracker.scenarios[sid]
        now_ms = int(started * 1000)
        fresh = sid in self._fresh
        from_ms = None if fresh else min(state.position.floor_ms, now_ms - state.lookback_ms)
        last: str | None = None
        seen: list[ExecutionLog] = []
        ok = False
        try:
            while True:
                page = await self.client.logs(
                    sid,
                    from_ms=from_ms,
                    limit=LOG_PAGE,
                    last=last,
                    priority=priority,
                )
                seen.extend(page.items)
                if fresh and from_ms is None:
                    # First page of a fresh scenario: learn how far back runs can land.
                    self._learn(sid, page.items)
                    from_ms = int(self._started_at * 1000) - state.lookback_ms
                    if page.items and page.items[-1].timestamp_ms < from_ms:
                        break
                if len(page.items) < LOG_PAGE or page.items[-1].imt_id in (None, last):
                    break  # the end, or a server that ignores pg[last]
                last = page.items[-1].imt_id
            ok = True
        finally:
            self.schedule.scanned(sid, started, self.clock.now(), ok=ok)
        if self._done.is_set():
            return  # the stream is closed: its last cursor must not cover runs never emitted
        if self.on_logs is not None:
            self.on_logs(sid, seen)
        if fresh:
            self._first_scan(sid, seen, from_ms or 0)
            seen = [e for e in seen if e.timestamp_ms >= (from_ms or 0)]
        self._absorb(sid, seen)
        self.tracker.scan_complete(sid, now_ms - state.lookback_ms)
        self._unscanned.discard(sid)

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

    def _first_scan(self, sid: int, entries: list[ExecutionLog], floor_ms: int) -> None:
        """Runs that ended before the watch began are history, not news.

        Make may stamp a log entry with the start or the end of the run (unconfirmed), so a run
        counts as news when it could have ended after the watch began under either reading:
        timestamp + duration >= start of the watch.
        """
        self._fresh.discard(sid)
        start_ms = int(self._started_at * 1000)
        state = self.tracker.scenarios[sid]
        state.position.floor_ms = floor_ms
        self.tracker.prime(
            sid, [e for e in entries if e.timestamp_ms + (e.duration_ms or 0) < start_ms]
        )

    def _absorb(self, sid: int, entries: list[ExecutionLog]) -> None:
        """Hand a scan's entries to the tracker, oldest first."""
        now = self.clock.now()
        for entry in sorted(entries, key=lambda e: (e.timestamp_ms, e.id)):
            if entry.status.terminal:
                if not self.tracker.is_new(sid, entry) or entry.id in self._in_detail:
                    continue
                if entry.status in (ExecStatus.ERROR, ExecStatus.WARNING):
                    # Logs carry no error text; one more request fetches what went wrong.
                    self._in_detail.add(entry.id)
                    self.tracker.hold(sid, entry)
                    self._pending += 1
                    self.schedule.follow_up(
                        Action("detail", sid, entry.id, log=entry, priority=Priority.HIGH)
                    )
                else:
                    self._finish(sid, entry, Action("scan", sid, entry.id, log=entry))
            elif entry.status in (ExecStatus.RUNNING, ExecStatus.PAUSED, ExecStatus.UNKNOWN):
                # Some Make implementations list runs in flight: follow them by status.
                if entry.timestamp_ms < self.tracker.scenarios[sid].position.floor_ms:
                    continue
                self.emit(
                    self.tracker.started(
                        sid,
                        entry.id,
                        now=now,
                        source=entry.type or "auto",
                        started_at=entry.timestamp_ms / 1000,
                    )
                )
                self.schedule.watch_execution(
                    sid, entry.id, now=now, history=self.tracker.scenarios[sid].history,
                    started=entry.timestamp_ms / 1000,
                )

    async def _sweep(self, group: int) -> None:
        # A fixed cadence from the start of this sweep, whatever its wait and answer took; but
        # never two of one group at once, or a slow budget would fill every worker with sweeps.
        self.schedule.at(self.clock.now() + self._sweep_every(), Action("sweep", group))
        if group in self._sweeping:
            return
        self._sweeping.add(group)
        try:
            scenarios = await self._list_group(group)
        finally:
            self._sweeping.discard(group)
        self._absorb_sweep(scenarios)

    async def _list_group(self, group: int) -> list[Scenario]:
        if group == _ORG:
            watched = list(self._team_of)
        else:
            watched = [s for s, t in self._team_of.items() if t == group]
        # An id filter keeps pages to the watched scenarios (the client sends 100 ids a request).
        ids = watched
        # Sweeps find most runs first, so they queue with the hot scans they trigger.
        if group == _ORG:
            return await self.client.scenarios(
                organization_id=self._org_id, ids=ids, priority=Priority.HIGH
            )
        return await self.client.scenarios(team_id=group, ids=ids, priority=Priority.HIGH)

    def _triggers_every(self) -> float:
        # Queue depth is a slower signal than a sweep: a twentieth of the budget at most.
        hooks = max(1, len(self._hooked))
        rate = self.client.budget.snapshot().rate_per_min / 60
        return max(30.0, hooks / max(rate * 0.05, 1e-6))

    async def _triggers(self, sid: int) -> None:
        """Read a webhook scenario's queue depth; a growing queue means runs are coming."""
        self.schedule.at(self.clock.now() + self._triggers_every(), Action("triggers", sid))
        triggers = await self.client.triggers(sid, priority=Priority.LOW)
        state = self.tracker.scenarios[sid]
        if state.info is None or self._done.is_set():
            return
        queue = sum(t.queue_count for t in triggers)
        before = state.queue_count
        self.emit(self.tracker.scenario_seen(state.info, queue_count=queue))
        if before is not None and queue > before:
            self.schedule.heat(sid, self.clock.now())

    def _absorb_sweep(self, scenarios: list[Scenario]) -> None:
        now = self.clock.now()
        for scenario in scenarios:
            state = self.tracker.scenarios.get(scenario.id)
            if state is None:
                continue
            before = state.info
            self.emit(self.tracker.scenario_seen(scenario))
            if before is None:
                continue
            # Counters that move when a run ends; whether Make updates them promptly is not
            # documented, so they only reorder scans, never replace them.
            if (before.operations, before.transfer, before.dlq_count, before.is_invalid) != (
                scenario.operations,
                scenario.transfer,
                scenario.dlq_count,
                scenario.is_invalid,
            ):
                self.schedule.heat(scenario.id, now)
            if scenario.next_exec != before.next_exec:
                if before.next_exec is not None and before.next_exec.timestamp() <= now:
                    # nextExec moved on: a run began at the old one; look when it should end.
                    began = before.next_exec.timestamp()
                    self.tracker.run_began(scenario.id, int(began * 1000))
                    self._scan_after_run(scenario.id, began, now)
                self._plan_schedule(scenario, now)

    async def _modules(self, action: Action) -> None:
        sid, eid = action.scenario_id, action.execution_id
        blueprint = self.blueprints.get(sid)
        if blueprint is None:
            blueprint = self.blueprints[sid] = await self.client.blueprint(
                sid, priority=Priority.LOW
            )
        events: list[_Event] = []
        for module in blueprint.walk():
            page = await self.client.module_logs(
                sid, module.id, limit=LOG_PAGE, priority=Priority.LOW
            )
            for entry in page.items:
                if entry.execution_id == eid:
                    events.append(
                        ModuleResult(
                            scenario_id=sid,
                            execution_id=eid,
                            module_id=module.id,
                            module=module.module,
                            app=module.app,
                            status=entry.status.value,
                            bundles=entry.bundles,
                            size=entry.size,
                        )
                    )
                    break
        self.emit(events)

    # -- time --------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        opts = self.options
        step = max(0.05, min(opts.progress_s, opts.heartbeat_s, 1.0))
        while True:
            await self.clock.sleep(step)
            now = self.clock.now()
            if opts.timeout_s is not None and now - self._started_at >= opts.timeout_s:
                self.stop("timeout", ExitCode.TIMEOUT)
                return
            self.emit(self.tracker.progress(now, every_s=opts.progress_s))
            if opts.alerts is not None:
                budget = self.client.budget.snapshot()
                self.emit(opts.alerts.tick(now, self.tracker.scenarios, budget))
            if now - self._last_heartbeat >= opts.heartbeat_s:
                self._last_heartbeat = now
                snap = self.client.budget.snapshot()
                self.emit(
                    [
                        StreamHeartbeat(
                            used_last_minute=snap.used_last_minute,
                            budget_per_min=round(snap.rate_per_min, 2),
                            running=self.tracker.running_count,
                        )
                    ]
                )
            self.schedule.rate_per_s = self.client.budget.snapshot().rate_per_min / 60

    def _check_caught_up(self) -> None:
        """--no-follow ends once every scenario was scanned and every follow-up is done."""
        if self.options.follow or self._targets:
            return
        if not self._unscanned and self._pending <= 0 and not self.schedule.urgent:
            self.stop("caught up")


@asynccontextmanager
async def open_watch(client: MakeClient, options: WatchOptions) -> AsyncIterator[Watch]:
    """Run a watch in the background while the caller reads `watch.events`."""
    watch = Watch(client, options)
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch.run)
        try:
            yield watch
        finally:
            watch.stop("consumer closed")
            watch.events.close()

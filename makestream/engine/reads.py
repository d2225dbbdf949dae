"""The actions that read Make: the handlers a watch's workers call for each scheduled `Action`.

Polling a run's status, fetching its log entry and error detail, scanning a scenario's logs,
sweeping the scenario list, reading webhook queue depths and fetching module results. Each hands
what it learned to the `Tracker` and emits the events that follow; `_finish` reports a run's end.
Errors are left to the caller (`Watch._perform`), which retries or ends the stream.
"""

from __future__ import annotations

import math

from makestream.engine.base import _ORG, LOG_PAGE, WatchBase
from makestream.engine.poller import Action
from makestream.errors import NotFoundError
from makestream.events import ModuleResult, _Event
from makestream.make.budget import Priority
from makestream.make.models import ExecStatus, ExecutionLog, Scenario, keep_known

# How long an execution the watch was started for (`--run`, `--execution`) may be unknown to
# `GET /executions/{id}` before the watch gives up on it.
NOT_FOUND_GRACE_S = 10.0


class WatchReads(WatchBase):
    """The action handlers of `Watch` that read Make."""

    async def _poll(self, action: Action) -> None:
        sid, eid = action.scenario_id, action.execution_id
        try:
            detail = await self.client.execution(sid, eid, priority=Priority.HIGH)
        except NotFoundError:
            now = self.clock.now()
            self.schedule.polled(eid, now)
            if eid in self._targets:
                # A run just started can lag its listing by a few seconds (make-api.md §5):
                # `/executions` may not know it yet. Only a 404 that lasts ends the watch.
                first = self._target_missing.setdefault(eid, now)
                if now - first < NOT_FOUND_GRACE_S:
                    return  # polled again on its timetable
                self.schedule.forget_execution(eid)
                raise NotFoundError(
                    f"execution {eid} of scenario {sid} not found", status=404
                ) from None
            self.schedule.forget_execution(eid)
            return
        except BaseException:
            self.schedule.polled(eid, self.clock.now())
            raise
        self.schedule.polled(eid, self.clock.now(), ended=detail.status.terminal)
        if detail.status.terminal:
            self.tracker.ended(sid, eid)
            self.schedule.forget_execution(eid)
            self._known_ended(sid, eid, None, detail)
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
        if log is not None and log.status.terminal:
            self.schedule.found_ops(sid, log.operations, _ended_by(log))
        if log is None or not log.status.terminal:
            # The log entry can lag the status by a few seconds. A watched run is reported at
            # once with what its status said (no run waits behind the log's lag); the run a
            # watch was started for waits for its figures, for they are all it reports.
            if action.attempt >= 8 or eid not in self._targets:
                self._finish(sid, None, action)
            else:
                self._later(self.clock.now() + 1.0 + action.attempt, action)
            return
        self._finish(sid, log, action)

    async def _fetch_detail(self, action: Action) -> None:
        sid, eid = action.scenario_id, action.execution_id
        try:
            detail = await self.client.execution(sid, eid, priority=Priority.URGENT)
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
        self.schedule.in_detail.discard(action.execution_id)
        self._unreported.pop(action.execution_id, None)
        if events:
            self._expect(sid)
        if not events and action.execution_id in self._targets:
            # Delivered before (the cursor says so): the target is done all the same.
            self._targets.discard(action.execution_id)
            if not self._targets:
                self._end_when_settled("finished")
        if events and self.options.modules:
            # Queued before the event goes out, so that --count/--run wait for the modules.
            self._pending += 1
            self._modules_due.add(action.execution_id)
            self.schedule.follow_up(
                Action("modules", sid, action.execution_id, priority=Priority.HIGH)
            )
        self.emit(events)

    async def _scan(self, action: Action, started: float) -> None:
        sid = action.scenario_id
        state = self.tracker.scenarios[sid]
        target = self.schedule.scans[sid]
        now_ms = int(started * 1000)
        fresh = target.fresh
        # How far back news can lie. It is not sent as `from`: whether Make reads `from` in
        # milliseconds or seconds is unconfirmed (make-api.md §6), and a server reading our
        # milliseconds as seconds would answer every scan with nothing. Pages come newest
        # first, so paging stops at the first page that reaches below it, whatever the server
        # does with `from`; the request count is the same as with a `from` that works.
        cutoff_ms = None if fresh else min(state.position.floor_ms, now_ms - state.lookback_ms)
        if fresh and len(state.history):
            # History came from the store: read back only as far as news can lie.
            cutoff_ms = int(self._started_at * 1000) - state.lookback_ms
        last: str | None = None
        seen: list[ExecutionLog] = []
        ok = False
        found = 0
        try:
            while True:
                page = await self.client.logs(
                    sid, limit=LOG_PAGE, last=last, sort_dir="desc", priority=action.priority
                )
                seen.extend(page.items)
                if cutoff_ms is None:
                    # First page of a fresh scenario: learn how far back runs can land.
                    self._learn(sid, page.items)
                    cutoff_ms = int(self._started_at * 1000) - state.lookback_ms
                cursor = page.last_imt_id
                if (page.size < LOG_PAGE or not page.items or cursor in (None, last)
                        or page.items[-1].timestamp_ms < cutoff_ms):
                    break  # the end, older than news can be, or a server that ignores pg[last]
                last = cursor
            ok = True
            if self._done.is_set():
                return  # the stream is closed: its last cursor must not cover runs never emitted
            if not fresh:
                seen = [e for e in seen if e.timestamp_ms >= cutoff_ms]
            if self.on_logs is not None:
                self.on_logs(sid, seen)
            if fresh:
                self.schedule.first_read(sid, max(
                    (_ended_by(e) for e in seen if e.status.terminal), default=-math.inf))
                self._first_scan(sid, seen, cutoff_ms)
                seen = [e for e in seen if e.timestamp_ms >= cutoff_ms]
            found = self._absorb(sid, seen)
            self.schedule.listed(sid, [(e.id, e.operations or 0, _ended_by(e))
                                       for e in seen if e.status.terminal])
            if not found and action.signal == "sweep":
                # A counter pointed here and no new run is listed: runs that ended before the
                # watch took the scenario, whose counts came after its first reading (counters
                # updated late), explain the growth, once each. (Not where a run was found:
                # in a busy scenario, the rest may be runs whose logs are not out yet.)
                self.schedule.explain(sid)
            self.tracker.scan_complete(sid, now_ms - state.lookback_ms)
            for eid in [eid for eid, poll in self.schedule.polls.items()
                        if poll.by_logs and poll.scenario_id == sid and eid not in state.running]:
                self.schedule.forget_execution(eid)  # given up as stale (`scan_complete`)
        finally:
            self.schedule.scanned(sid, started, self.clock.now(), ok=ok, found=found,
                                  signal=action.signal)
            if action.signal == "poll":
                # It followed a run in flight: the logs showed its end, or not yet.
                eid = action.execution_id
                self.schedule.polled(eid, self.clock.now(),
                                     ended=(eid not in self.schedule.polls) if ok else None)
            if ok:
                self.schedule.logs_read(sid, self.clock.now(), followed=(
                    action.execution_id if action.signal == "poll" else None))

    def _first_scan(self, sid: int, entries: list[ExecutionLog], floor_ms: int) -> None:
        """Runs that ended before the watch began are history, not news.

        Make may stamp a log entry with the start or the end of the run (unconfirmed), so a run
        counts as news when it could have ended after the watch began under either reading:
        timestamp + duration >= start of the watch.
        """
        self.schedule.scans[sid].fresh = False
        start_ms = int(self._started_at * 1000)
        state = self.tracker.scenarios[sid]
        state.position.floor_ms = floor_ms
        past = [e for e in entries if e.timestamp_ms + (e.duration_ms or 0) < start_ms]
        self.tracker.prime(sid, past)
        self.schedule.slots_listed(sid, sum(1 for e in past if e.timestamp_ms >= floor_ms),
                                   (start_ms - floor_ms) / 1000)
        # The scenario's base rate starts from the runs of its recent past.
        if len(past) >= 2:
            span = (start_ms - min(e.timestamp_ms for e in past)) / 1000
            self.schedule.learned_history(sid, len(past), span)

    def _absorb(self, sid: int, entries: list[ExecutionLog]) -> int:
        """Hand a scan's entries to the tracker, oldest first; returns how many were news."""
        now = self.clock.now()
        news = 0
        in_detail = self.schedule.in_detail
        for entry in sorted(entries, key=lambda e: (e.timestamp_ms, e.id)):
            if entry.status.terminal:
                # A run followed in flight has ended: no more looks, no more progress for it.
                self.schedule.forget_execution(entry.id)
                self.tracker.ended(sid, entry.id)
                if not self.tracker.is_new(sid, entry) or entry.id in in_detail:
                    continue
                news += 1
                self.schedule.found_ops(sid, entry.operations, _ended_by(entry))
                if entry.status in (ExecStatus.ERROR, ExecStatus.WARNING) and not (
                    self.options.follow and self.schedule.saturated(now)
                ):
                    # Logs carry no error text; one more request fetches what went wrong. It
                    # goes first (URGENT): the run's report waits for nothing else. (Not when
                    # the budget is saturated, `PolicyState.saturated`: each such read would
                    # delay every run waiting, and the report goes out at once, its status
                    # without the error's text.)
                    in_detail.add(entry.id)
                    self.tracker.hold(sid, entry)
                    self._known_ended(sid, entry.id, entry, None)
                    self._pending += 1
                    self.schedule.follow_up(
                        Action("detail", sid, entry.id, log=entry, priority=Priority.URGENT)
                    )
                else:
                    self._finish(sid, entry, Action("scan", sid, entry.id, log=entry))
            elif entry.status in (ExecStatus.RUNNING, ExecStatus.PAUSED, ExecStatus.UNKNOWN):
                # Some Make implementations list runs in flight: follow them (by reading the
                # logs again, then by status: `PollTarget.by_logs`).
                if entry.timestamp_ms < self.tracker.scenarios[sid].position.floor_ms:
                    continue
                if entry.id not in self.schedule.polls:
                    news += 1
                self.tracker.stamp_seen("start")  # a run in flight has no end to stamp
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
                    started=entry.timestamp_ms / 1000, by_logs=True,
                )
        return news

    async def _sweep(self, group: int) -> None:
        # The policy never hands out two sweeps of one group at once (see engine.policy).
        try:
            await self._list_group(group)
        finally:
            self.schedule.swept(group)

    async def _list_group(self, group: int) -> None:
        if group == _ORG:
            watched = list(self._team_of)
        else:
            watched = [s for s, t in self._team_of.items() if t == group]
        # An id filter keeps pages to the watched scenarios (the client sends 100 ids a request).
        # Sweeps find most runs first, so they queue with the hot scans they trigger. Each page
        # is taken as it comes, as of its own read: a sweep of many pages spans seconds, and a
        # counter read on its first page says nothing of the moment of its last.
        await self._listing(
            watched, organization_id=self._org_id if group == _ORG else None,
            team_id=None if group == _ORG else group, priority=Priority.HIGH,
            each=self._absorb_sweep,
        )

    async def _triggers(self, sid: int) -> None:
        """Read a webhook scenario's queue depth; a growing queue means runs are coming."""
        # One at a time (see engine.policy): a low-priority read waits in the budget's queue
        # while the budget is busy, and holds a worker all that time.
        try:
            queue = await self.client.queue_depth(sid, priority=Priority.HIGH)
        finally:
            self.schedule.triggers_in_flight = False
        if queue is None:
            # Queue depth is not readable with this token or this API: stop paying for it.
            self.schedule.queue_read(readable=False)
            return
        state = self.tracker.scenarios[sid]
        if state.info is None or self._done.is_set():
            return
        before = state.queue_count
        self.emit(self.tracker.scenario_seen(state.info, queue_count=queue))
        if before is not None and queue > before:
            self.schedule.heat(sid, self.clock.now(), signal="queue")

    def _absorb_sweep(self, scenarios: list[Scenario]) -> None:
        if self._done.is_set():
            return
        now = self.clock.now()
        for scenario in scenarios:
            state = self.tracker.scenarios.get(scenario.id)
            if state is None:
                continue
            before = state.info
            scenario = keep_known(scenario, before)  # a field it could not read is no change
            self.emit(self.tracker.scenario_seen(scenario))
            if before is None:
                continue
            # Counters that move when a run ends; whether Make updates them promptly is not
            # documented, so they only reorder scans, never replace them.
            # A counter that grew by no more than the runs already found explains nothing new.
            moved = self.schedule.counter_moved(
                scenario.id, (scenario.operations or 0) - (before.operations or 0), now
            )
            if moved or (before.dlq_count, before.is_invalid) != (
                scenario.dlq_count, scenario.is_invalid
            ):
                self.schedule.heat(scenario.id, now)
            else:
                self.schedule.cleared(scenario.id, now)
            if scenario.next_exec != before.next_exec:
                if before.next_exec is not None and before.next_exec.timestamp() <= now:
                    # nextExec moved on: a run began at the old one; look when it should end.
                    began = before.next_exec.timestamp()
                    self.emit(self.tracker.run_began(scenario.id, int(began * 1000)))
                    self._scan_after_run(scenario.id, began, now)
                self._plan_schedule(scenario, now)

    async def _modules(self, action: Action) -> None:
        sid, eid = action.scenario_id, action.execution_id
        blueprint = self.blueprints.get(sid)
        if blueprint is None:
            blueprint = await self.client.blueprint(sid, priority=Priority.HIGH)
            self._keep_blueprint(sid, blueprint)
        events: list[_Event] = []
        for module in blueprint.walk():
            page = await self.client.module_logs(
                sid, module.id, limit=LOG_PAGE, priority=Priority.HIGH
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
        self._modules_settled(eid)
        self.emit(events)


def _ended_by(entry: ExecutionLog) -> float:
    """The latest the run can have ended (its timestamp may mark the start or the end)."""
    return (entry.timestamp_ms + (entry.duration_ms or 0)) / 1000

"""`stream_live_execution`: follow one run (or start it), reporting progress as it goes.

`RunFollower` is the sans-I/O part: the watch's events in, progress reports and the result out.
`follow` runs a watch for one run on the shared client, within the caller's time limit, and
returns where the run stood when it ended or when the time was up.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from makestream.engine.watch import Watch, WatchOptions
from makestream.errors import MakestreamError
from makestream.events import (
    ExecutionFinished,
    ExecutionProgress,
    ExecutionStarted,
    ModuleResult,
    StreamError,
    _Event,
)
from makestream.mcp.models import ExecutionError, FollowUp, ModuleRun, RunResult
from makestream.mcp.monitor import eta_s
from makestream.mcp.service import Service
from makestream.render.text import duration


@dataclass(frozen=True)
class Progress:
    """One progress notification: `progress` of `total` (percent of 100 when known)."""

    progress: float
    total: float | None
    message: str


Report = Callable[[Progress], Awaitable[None]]

# With run=true, when timeout_s ends while POST /run is still unanswered, the call waits this
# much longer (real seconds) for the answer: the run may start either way, and only the answer
# names it.
RUN_ANSWER_S = 10.0
RUN_UNKNOWN = (
    "the run was asked for (POST /run) but Make had not answered when the time was up: it may "
    "have started, and its execution id is unknown; get_scenario_state lists the recent runs "
    "(calling again with run=true would start another)"
)


class FollowFailed(MakestreamError):
    """The watch ended before the run did; the message is its error."""


def _clock(ms: int | None) -> str:
    return duration(ms)


class RunFollower:
    """Folds one run's events into progress reports and a `RunResult`.

    The run followed is `execution_id`, or the run this call starts (`run`, or an
    `execution.started` whose source is ``run``: only the watch that started it says so), or
    else the scenario's next run to end: until one ends, every run in flight is a candidate and
    the progress reported is that of the one expected to end first; the first
    `execution.finished` pins its run, as the watch's ``count=1`` ends on it.
    """

    def __init__(self, scenario_id: int, execution_id: str | None, *, run: bool = False) -> None:
        self.scenario_id = scenario_id
        self.pinned = execution_id
        self.run = run
        self.runs: dict[str, RunResult] = {}
        self.ended = False
        self.fatal: str | None = None
        self._last = -1.0  # progress must grow with every notification

    @property
    def result(self) -> RunResult:
        """The pinned run, or the candidate expected to end first, or a run not yet begun."""
        eid = self.pinned if self.pinned is not None else self._leader()
        if eid is not None:
            return self._run(eid)
        return RunResult(scenario_id=self.scenario_id, status="waiting")

    def _run(self, eid: str) -> RunResult:
        found = self.runs.get(eid)
        if found is None:
            found = self.runs[eid] = RunResult(scenario_id=self.scenario_id, execution_id=eid,
                                               status="waiting")
        return found

    def _leader(self) -> str | None:
        flying = [(r.eta_s if r.eta_s is not None else math.inf, i, eid)
                  for i, (eid, r) in enumerate(self.runs.items()) if r.status == "running"]
        return min(flying)[2] if flying else None

    def _leads(self, eid: str) -> bool:
        return eid == (self.pinned if self.pinned is not None else self._leader())

    def _report(self, percent: float, total: float | None, message: str, *,
                last: bool = False) -> Progress | None:
        # Spec: progress increases with each notification, and never passes total. An unchanged
        # estimate adds a hair; before the end, the hairs stop short of total (which only the
        # run's end reaches), and a report with no room left is not sent.
        value = max(percent, self._last + 0.01)
        if total is not None:
            value = min(value, total if last else total - 0.01)
        value = round(value, 2)
        if value <= self._last:
            return None
        self._last = value
        return Progress(value, total, message)

    def _name(self, run: RunResult) -> str:
        return run.scenario_name or f"scenario {run.scenario_id}"

    def awaits_run_answer(self) -> bool:
        """A run was asked for, and Make has not yet given its execution id (nor refused)."""
        return self.run and self.pinned is None and self.fatal is None and not self.ended

    def apply(self, event: _Event) -> Progress | None:
        eid = event.execution_id
        if eid is not None and self.pinned is not None and eid != self.pinned:
            return None  # a run of the same scenario that is not the one followed
        if self.ended and not isinstance(event, ModuleResult):
            return None
        match event:
            case ExecutionStarted():
                key = eid or ""
                if self.pinned is None and (self.run or event.source == "run"):
                    self.pinned = key  # the run this call started: its id, from POST /run
                run = self._run(key)
                run.status = "running"
                run.started_at = event.started_at
                run.scenario_name = event.scenario_name or run.scenario_name
                if not self._leads(key):
                    return None
                expected = event.expected_duration_ms
                about = f", expected to take about {_clock(expected)} (by recent runs)" \
                    if expected else ""
                which = f"execution {eid} " if self.run and eid else ""
                return self._report(0, 100, f"{self._name(run)}: {which}running{about}")
            case ExecutionProgress():
                key = eid or ""
                run = self._run(key)
                run.status = "running"
                run.percent = event.percent
                run.eta_s = eta_s(event.elapsed_ms, event.expected_duration_ms)
                if not self._leads(key):
                    return None
                if event.percent is None:
                    return self._report(0, None, f"{self._name(run)}: running for "
                                        f"{_clock(event.elapsed_ms)} (no history to go by)")
                left = run.eta_s
                eta = f"ETA {duration(round(left * 1000))}" if left else "due now"
                return self._report(
                    event.percent, 100,
                    f"{self._name(run)}: running {_clock(event.elapsed_ms)} of about "
                    f"{_clock(event.expected_duration_ms)}, {event.percent:.0f}% ({eta}, by "
                    f"the {event.basis} of recent runs)",
                )
            case ExecutionFinished():
                # The first run to end is the one followed (count=1 ends the watch on it).
                self.pinned = eid or ""
                run = self._finished(event)
                ops = f", {event.operations} operations" if event.operations is not None else ""
                cause = ""
                if event.error is not None and event.error.cause_module:
                    cause = f" at {event.error.cause_module}"
                return self._report(100, 100, f"{self._name(run)}: {event.status}{cause} after "
                                    f"{_clock(event.duration_ms)}{ops}", last=True)
            case ModuleResult():
                self._run(eid or "").modules.append(ModuleRun(
                    module_id=event.module_id, module=event.module, app=event.app,
                    status=event.status, bundles=event.bundles, size=event.size,
                ))
            case StreamError() if event.fatal:
                self.fatal = event.message
        return None

    def _finished(self, event: ExecutionFinished) -> RunResult:
        run = self._run(event.execution_id or "")
        self.ended = True
        error = event.error
        update: dict[str, Any] = dict(
            execution_id=event.execution_id, status=event.status,
            scenario_name=event.scenario_name or run.scenario_name,
            started_at=event.started_at or run.started_at, ended_at=event.ended_at,
            duration_ms=event.duration_ms, operations=event.operations,
            transfer_bytes=event.transfer_bytes, centicredits=event.centicredits,
            credits=event.centicredits / 100 if event.centicredits is not None else None,
            error=ExecutionError(**error.model_dump()) if error is not None else None,
            url=event.url, percent=None, eta_s=None,
        )
        for key, value in update.items():
            setattr(run, key, value)
        return run

    def outcome(self) -> RunResult:
        """The result as it stands; a way to continue when the run has not ended."""
        result = self.result
        if self.awaits_run_answer():
            # Following "the next run" instead would pass off another run as this one.
            result.note = RUN_UNKNOWN
        elif not self.ended:
            result.continue_with = FollowUp(scenario_id=result.scenario_id,
                                            execution_id=self.pinned)
        return result


def _take_queued(watch: Watch, follower: RunFollower) -> None:
    """What the watch said before the time was up and was not read yet (the id of a run that
    POST /run has just started, above all)."""
    while True:
        try:
            follower.apply(watch.events.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return


async def follow(service: Service, *, scenario_id: int, execution_id: str | None, run: bool,
                 data: dict[str, Any] | None, timeout_s: float, report: Report) -> RunResult:
    """Follow one run for at most `timeout_s` (real) seconds.

    Without `execution_id` or `run`, the run followed is the next of the scenario to end (one
    in flight, or the next to begin). With `run`, a POST /run still unanswered at the time limit
    gets RUN_ANSWER_S more: the run may start either way, and only the answer names it.
    """
    options = WatchOptions(
        scenario_ids=[scenario_id], execution_id=execution_id, run=run, run_data=data,
        count=None if run or execution_id else 1, modules=True, api_limit=service.api_limit,
        progress_s=2.0,
    )
    follower = RunFollower(scenario_id, execution_id, run=run)
    async with service.watching(options) as watch:
        with anyio.move_on_after(timeout_s):
            async for event in watch.events:
                service.record(event, watch)
                progress = follower.apply(event)
                if progress is not None:
                    await report(progress)
        _take_queued(watch, follower)
        if follower.awaits_run_answer():
            # POST /run is under way: its answer names the run, which may start either way.
            with anyio.move_on_after(RUN_ANSWER_S):
                async for event in watch.events:
                    service.record(event, watch)
                    follower.apply(event)
                    if not follower.awaits_run_answer():
                        break
    if follower.fatal is not None and not follower.ended:
        # The engine names the command-line option; here the argument is `run`.
        raise FollowFailed(follower.fatal.replace("--run: ", "run: Make refused the run: ", 1))
    return follower.outcome()

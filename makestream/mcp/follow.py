"""`stream_live_execution`: follow one run (or start it), reporting progress as it goes.

`RunFollower` is the sans-I/O part: the watch's events in, progress reports and the result out.
`follow` runs a watch for one run on the shared client, within the caller's time limit, and
returns where the run stood when it ended or when the time was up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from makestream.engine.watch import WatchOptions
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


class FollowFailed(MakestreamError):
    """The watch ended before the run did; the message is its error."""


def _clock(ms: int | None) -> str:
    return duration(ms)


class RunFollower:
    """Folds one run's events into progress reports and a `RunResult`."""

    def __init__(self, scenario_id: int, execution_id: str | None) -> None:
        self.result = RunResult(scenario_id=scenario_id, execution_id=execution_id,
                                status="waiting")
        self.ended = False
        self.fatal: str | None = None
        self._last = -1.0  # progress must grow with every notification

    def _report(self, percent: float, total: float | None, message: str) -> Progress | None:
        # Spec: progress increases with each notification; an unchanged estimate adds a hair.
        value = max(percent, self._last + 0.01)
        self._last = value
        return Progress(round(value, 2), total, message)

    def _name(self) -> str:
        return self.result.scenario_name or f"scenario {self.result.scenario_id}"

    def apply(self, event: _Event) -> Progress | None:
        result = self.result
        if event.execution_id is not None and result.execution_id is not None \
                and event.execution_id != result.execution_id:
            return None  # a run of the same scenario that is not the one followed
        match event:
            case ExecutionStarted():
                result.execution_id = event.execution_id
                result.status = "running"
                result.started_at = event.started_at
                result.scenario_name = event.scenario_name or result.scenario_name
                expected = event.expected_duration_ms
                about = f", expected to take about {_clock(expected)} (by recent runs)" \
                    if expected else ""
                return self._report(0, 100, f"{self._name()}: running{about}")
            case ExecutionProgress():
                result.execution_id = result.execution_id or event.execution_id
                result.status = "running"
                result.percent = event.percent
                result.eta_s = eta_s(event.elapsed_ms, event.expected_duration_ms)
                if event.percent is None:
                    return self._report(0, None, f"{self._name()}: running for "
                                        f"{_clock(event.elapsed_ms)} (no history to go by)")
                left = result.eta_s
                eta = f"ETA {duration(round(left * 1000))}" if left else "due now"
                return self._report(
                    event.percent, 100,
                    f"{self._name()}: running {_clock(event.elapsed_ms)} of about "
                    f"{_clock(event.expected_duration_ms)}, {event.percent:.0f}% ({eta}, by "
                    f"the {event.basis} of recent runs)",
                )
            case ExecutionFinished():
                self._finished(event)
                ops = f", {event.operations} operations" if event.operations is not None else ""
                cause = ""
                if event.error is not None and event.error.cause_module:
                    cause = f" at {event.error.cause_module}"
                return self._report(100, 100, f"{self._name()}: {event.status}{cause} after "
                                    f"{_clock(event.duration_ms)}{ops}")
            case ModuleResult():
                result.modules.append(ModuleRun(
                    module_id=event.module_id, module=event.module, app=event.app,
                    status=event.status, bundles=event.bundles, size=event.size,
                ))
            case StreamError() if event.fatal:
                self.fatal = event.message
        return None

    def _finished(self, event: ExecutionFinished) -> None:
        result = self.result
        self.ended = True
        error = event.error
        update: dict[str, Any] = dict(
            execution_id=event.execution_id, status=event.status,
            scenario_name=event.scenario_name or result.scenario_name,
            started_at=event.started_at or result.started_at, ended_at=event.ended_at,
            duration_ms=event.duration_ms, operations=event.operations,
            transfer_bytes=event.transfer_bytes, centicredits=event.centicredits,
            credits=event.centicredits / 100 if event.centicredits is not None else None,
            error=ExecutionError(**error.model_dump()) if error is not None else None,
            url=event.url, percent=None, eta_s=None,
        )
        for key, value in update.items():
            setattr(result, key, value)

    def outcome(self) -> RunResult:
        """The result as it stands; a way to continue when the run has not ended."""
        result = self.result
        if not self.ended:
            result.continue_with = FollowUp(scenario_id=result.scenario_id,
                                            execution_id=result.execution_id)
        return result


async def follow(service: Service, *, scenario_id: int, execution_id: str | None, run: bool,
                 data: dict[str, Any] | None, timeout_s: float, report: Report) -> RunResult:
    """Follow one run for at most `timeout_s` (real) seconds.

    Without `execution_id` or `run`, the run followed is the next of the scenario to end (one
    in flight, or the next to begin).
    """
    options = WatchOptions(
        scenario_ids=[scenario_id], execution_id=execution_id, run=run, run_data=data,
        count=None if run or execution_id else 1, modules=True, api_limit=service.api_limit,
        progress_s=2.0,
    )
    follower = RunFollower(scenario_id, execution_id)
    with anyio.move_on_after(timeout_s):
        async with service.watching(options) as watch:
            async for event in watch.events:
                progress = follower.apply(event)
                if progress is not None:
                    await report(progress)
    if follower.fatal is not None and not follower.ended:
        # The engine names the command-line option; here the argument is `run`.
        raise FollowFailed(follower.fatal.replace("--run: ", "run: Make refused the run: ", 1))
    return follower.outcome()

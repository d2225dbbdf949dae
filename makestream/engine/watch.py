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

The parts live in their own modules: the options and outcome in `engine.options`, the state,
emitting and ending in `engine.base`, set-up in `engine.startup`, and the actions that read Make
in `engine.reads`; this module runs the workers and the ticker, and is where callers import from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from makestream.engine.base import LOG_PAGE
from makestream.engine.options import Outcome, WatchOptions
from makestream.engine.policy import SWEEP_SHARE
from makestream.engine.poller import Action
from makestream.engine.reads import WatchReads
from makestream.engine.startup import WatchStartup
from makestream.errors import ExitCode, MakestreamError, NotFoundError
from makestream.events import StreamError, StreamHeartbeat
from makestream.make.budget import Priority
from makestream.make.client import MakeClient

__all__ = ["LOG_PAGE", "SWEEP_SHARE", "Outcome", "Watch", "WatchOptions", "open_watch"]

_FOLLOW_UPS = frozenset({"log", "detail", "modules", "blueprint"})


class Watch(WatchStartup, WatchReads):
    """One stream of events about a set of scenarios. Use through `open_watch`."""

    # -- life cycle ------------------------------------------------------------------------------

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
        timeout = self.options.timeout_s
        if timeout is None:
            await self._setup_and_work(tg)
            return
        # --timeout holds while Make is down or slow at start-up too: each try there retries
        # for longer than a CI job's --timeout may allow.
        left = timeout - (self.clock.now() - self._started_at)
        with anyio.move_on_after(self.clock.real(max(left, 0.0))) as scope:
            await self._setup_and_work(tg)
        if scope.cancelled_caught:
            self.stop("timeout", ExitCode.TIMEOUT)

    async def _setup_and_work(self, tg: anyio.abc.TaskGroup) -> None:
        delay = 2.0
        opts = self.options
        while True:
            try:
                target = await self._setup()
                break
            except MakestreamError as exc:
                # A 429 or an outage at start-up is waited out like any other (DESIGN.md); only
                # what retrying cannot fix — a bad token, an unknown scenario — ends the watch.
                # A one-shot watch, and one that runs or follows a single execution, gives up
                # instead once the client's bounded retries are spent: cron and CI must not hang.
                bounded = not opts.follow or opts.run or opts.execution_id is not None
                if not exc.transient or bounded:
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

    # -- work --------------------------------------------------------------------------------

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
        try:
            match action.kind:
                case "poll":
                    await self._poll(action)
                case "log":
                    await self._fetch_log(action)
                case "detail":
                    await self._fetch_detail(action)
                case "scan":
                    await self._scan(action, started)
                case "sweep":
                    await self._sweep(action.scenario_id)
                case "modules":
                    await self._modules(action)
                case "triggers":
                    await self._triggers(action.scenario_id)
                case "organization":
                    await self._read_organization_later()
                case "blueprint":
                    if action.scenario_id not in self.blueprints:
                        self._keep_blueprint(
                            action.scenario_id,
                            await self.client.blueprint(action.scenario_id, priority=Priority.HIGH),
                        )
        except MakestreamError as exc:
            # A watched scenario or target run that is gone ends the watch; a missing module
            # log or blueprint only costs its detail.
            gone = isinstance(exc, NotFoundError) and action.kind in ("scan", "sweep", "poll")
            if gone or not (exc.transient or isinstance(exc, NotFoundError)):
                self._fatal(exc)
                return
            if exc.transient and not self.options.follow:
                # --no-follow reports what is new and exits: an outage that outlived the
                # client's bounded retries ends it with exit 6 rather than waiting forever.
                self._fatal(exc)
                return
            self._retry(action, exc, started)
        finally:
            if action.kind in _FOLLOW_UPS:
                # Counted off only now that it is done (a retry counts itself in again): while
                # it is in flight, another worker finishing must not find the watch caught up.
                self._pending -= 1
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
            case "sweep" | "triggers" | "organization":
                pass  # the policy picks them again when they are worth it
            case "modules" | "blueprint" if action.attempt >= 3:
                # Per-module detail and the flow are niceties; the runs are reported.
                self._modules_settled(action.execution_id)
            case "log" | "detail" if action.attempt >= 8:
                # The figures never came: report the end with what is known.
                self._finish(action.scenario_id, action.log, action)
            case _:
                self._later(now + delay, action)

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
                            budget_per_min=round(snap.total_rate_per_min or snap.rate_per_min, 2),
                            running=self.tracker.running_count,
                            budget_processes=snap.processes,
                            failing=self.failing,
                        )
                    ]
                )
            self.schedule.rate_per_s = self.client.budget.snapshot().rate_per_min / 60

    def _check_caught_up(self) -> None:
        """--no-follow ends once every scenario was scanned and every follow-up is done.

        Alert rules hear first when the start-up catch-up is over (every scenario scanned once,
        no run waiting for its error detail): what it raised and is still active goes out then.
        """
        alerts = self.options.alerts
        unscanned = any(True for _ in self.schedule.fresh())
        if alerts is not None and not unscanned and not self.schedule.in_detail:
            self.emit(alerts.caught_up(self.clock.now()))
        if self.options.follow or self._targets:
            return
        if not unscanned and self._pending <= 0 and not self.schedule.urgent:
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

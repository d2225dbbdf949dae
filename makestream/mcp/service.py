"""What the MCP tools run on: one Make client and one request budget per process, the monitors
(each a watch on that client), and who hears of a monitor's changes.

    async with open_service(connection) as service:
        server = build_server(service)

Nothing here talks to Make until a tool asks: an idle server spends no request. A monitor's
watch runs in the service's task group, so it outlives the tool call that started it. It ends
with `stop_monitoring`, with the session that started it where the SDK says when that ends (a
handshake-protocol session: stdio, or HTTP with a session id), when nobody has read it
(get_execution_state, its resource) for `monitor_idle_s` (--monitor-idle), or with the server.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from makestream.engine.alerts import AlertEvaluator
from makestream.engine.watch import Watch, WatchOptions, open_watch
from makestream.errors import MakestreamError, UsageError
from makestream.limits import MCP_MONITOR_IDLE_S, MCP_MONITORS_MAX
from makestream.mcp.monitor import MonitorBook

if TYPE_CHECKING:
    from makestream.cli.common import Connection
    from makestream.engine.history import HistorySource
    from makestream.events import _Event
    from makestream.make.client import ApiNotice, MakeClient
    from makestream.sim import SimZone
    from makestream.store.paths import StoreChoice
    from makestream.store.recorder import Recorder

# How long start_monitoring waits for the watch to open (token and scenarios checked) before
# it hands out the id anyway, with the monitor still starting (a slow or throttled Make).
START_WAIT_S = 20.0
# A resource subscriber that does not take a notification within this long misses it (and a
# legacy `resources/subscribe` session is dropped: `server.MakestreamMCP.notify_legacy`). Each
# subscriber has its own; the whole of one notification gets twice as long at most.
NOTIFY_TIMEOUT_S = 1.0


def monitor_uri(monitor_id: str) -> str:
    return f"makestream://monitors/{monitor_id}/state"


class MonitorGone(UsageError):
    """A monitor id that is not (or no longer) in this process."""

    def __init__(self, monitor_id: str) -> None:
        super().__init__(
            f"monitor {monitor_id!r} does not exist: it was stopped, it never existed, or the "
            "server restarted (start_monitoring gives a new one)"
        )


@dataclass
class Monitor:
    """A monitor's book and the watch that feeds it."""

    book: MonitorBook
    options: WatchOptions
    opened: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    watch: Watch | None = None
    stopping: str | None = None  # why it was told to stop, if it was
    last_read: float = field(default_factory=anyio.current_time)  # real, for the idle stop

    def stop(self, reason: str) -> None:
        """End the watch, now or (not yet open) as soon as it exists."""
        self.stopping = self.stopping or reason
        if self.watch is not None:
            self.watch.stop(self.stopping)


Notify = Callable[[str], Awaitable[None]]


class Service:
    """The shared engine of one MCP server process."""

    def __init__(self, client: MakeClient, zone: SimZone | None, tg: anyio.abc.TaskGroup, *,
                 api_limit: int | None, config_path: Path,
                 monitor_idle_s: float = MCP_MONITOR_IDLE_S,
                 recorder: Recorder | None = None,
                 history: HistorySource | None = None) -> None:
        self.client = client
        # The history store, as watch and serve-sse keep it: every event of every monitor and
        # followed run is offered to it, and watches learn past durations from it.
        self.recorder = recorder
        self.history = history
        self.zone = zone
        self.api_limit = api_limit
        self.config_path = config_path
        self.monitors: dict[str, Monitor] = {}
        self.watches: set[Watch] = set()  # every watch running, monitors' and follows'
        self.notify: list[Notify] = []  # called with a resource URI when it changed
        self.gone: list[Callable[[str], None]] = []  # called with a resource URI that ended
        self.monitor_idle_s = monitor_idle_s  # 0: never stop an unread monitor
        # Set (a sentence) when anyone on this machine may call the tools: those that start
        # runs or write the config file refuse, saying this.
        self.side_effects_refused: str | None = None
        self._tg = tg

    # -- the client's observer -------------------------------------------------------------------

    def on_notice(self, notice: ApiNotice) -> None:
        """A 429 pauses every caller of the shared budget: each watch reports it."""
        for watch in list(self.watches):
            watch.on_notice(notice)

    @asynccontextmanager
    async def watching(self, options: WatchOptions) -> AsyncIterator[Watch]:
        """A watch on the shared client, known to the observer while it runs."""
        if options.history is None:
            options.history = self.history
        async with open_watch(self.client, options) as watch:
            self.watches.add(watch)
            try:
                yield watch
            finally:
                self.watches.discard(watch)

    def record(self, event: _Event, watch: Watch) -> None:
        """Keep `event` in the history store (never waits; a store problem is said once)."""
        if self.recorder is not None:
            self.recorder.offer(event, watch)

    # -- monitors ----------------------------------------------------------------------------

    def demo_scenarios(self) -> list[int]:
        return [s.id for s in self.zone.world.scenarios] if self.zone is not None else []

    async def start_monitor(self, scenario_ids: list[int], team_id: int | None,
                            alerts: AlertEvaluator) -> Monitor:
        """Start a monitor; a fatal start (bad token, unknown scenario) is raised here."""
        if self.open_monitors() >= MCP_MONITORS_MAX:
            raise UsageError(f"{MCP_MONITORS_MAX} monitors are running, the most one server "
                             "runs: stop_monitoring one first")
        monitor_id = secrets.token_hex(6)
        options = WatchOptions(scenario_ids=list(scenario_ids), team_id=team_id,
                               api_limit=self.api_limit, alerts=alerts)
        monitor = Monitor(MonitorBook(monitor_id, scenario_ids), options)
        self.monitors[monitor_id] = monitor
        try:
            self._tg.start_soon(self._run_monitor, monitor)
            with anyio.move_on_after(START_WAIT_S):
                await monitor.opened.wait()
        except BaseException:
            # The caller went away (cancelled) before it had the id: nobody could stop it.
            self.discard(monitor_id, "cancelled")
            raise
        if monitor.book.status == "closed":
            self.monitors.pop(monitor_id, None)
            raise MonitorStartFailed(monitor.book.fatal or monitor.book.last_error
                                     or f"the watch ended ({monitor.book.closed_reason})")
        return monitor

    async def _run_monitor(self, monitor: Monitor) -> None:
        book = monitor.book
        uri = monitor_uri(book.monitor_id)
        try:
            async with self.watching(monitor.options) as watch:
                monitor.watch = watch
                if monitor.stopping is not None:
                    watch.stop(monitor.stopping)
                async for event in watch.events:
                    self.record(event, watch)
                    notable = book.apply(event)
                    if book.status != "starting":
                        monitor.opened.set()
                    if notable and book.status != "starting":
                        await self._notify(uri)
        except Exception:
            # A fault in one monitor must not end the server and every other monitor with it:
            # it ends this monitor, which says so, and the traceback goes to stderr.
            logging.getLogger("makestream.mcp").exception("monitor %s failed", book.monitor_id)
            book.status, book.closed_reason = "closed", "internal error"
            book.fatal = book.last_error = "the monitor failed (an internal error; see the " \
                "server's stderr)"
        finally:
            monitor.opened.set()
            monitor.done.set()

    async def _notify(self, uri: str) -> None:
        for notify in list(self.notify):
            with anyio.move_on_after(2 * NOTIFY_TIMEOUT_S):
                await notify(uri)

    def open_monitors(self) -> int:
        """Monitors whose watch still runs: the ones MCP_MONITORS_MAX counts."""
        return sum(1 for m in self.monitors.values() if not m.done.is_set())

    def monitor(self, monitor_id: str) -> Monitor:
        found = self.monitors.get(monitor_id)
        if found is None:
            raise MonitorGone(monitor_id)
        return found

    def read(self, monitor_id: str) -> Monitor:
        """A monitor someone reads: it is not idle."""
        found = self.monitor(monitor_id)
        found.last_read = anyio.current_time()
        return found

    def discard(self, monitor_id: str, reason: str) -> Monitor | None:
        """Stop a monitor without waiting for its watch to end, and forget it."""
        monitor = self.monitors.pop(monitor_id, None)
        if monitor is not None:
            monitor.stop(reason)
            for gone in list(self.gone):
                gone(monitor_uri(monitor_id))
        return monitor

    def stop_idle(self) -> list[str]:
        """Stop the monitors nobody has read for `monitor_idle_s`; their ids."""
        if self.monitor_idle_s <= 0:
            return []
        now = anyio.current_time()
        idle = [mid for mid, m in self.monitors.items()
                if now - m.last_read >= self.monitor_idle_s]
        for mid in idle:
            logging.getLogger("makestream.mcp").info("monitor %s stopped: not read for %.0fs",
                                                     mid, self.monitor_idle_s)
            self.discard(mid, "idle")
        return idle

    async def _stop_idle_forever(self) -> None:
        while True:
            await anyio.sleep(max(0.05, min(60.0, self.monitor_idle_s / 10)))
            self.stop_idle()

    async def stop_monitor(self, monitor_id: str) -> Monitor:
        monitor = self.discard(monitor_id, "stopped")
        if monitor is None:
            raise MonitorGone(monitor_id)
        with anyio.move_on_after(5):
            await monitor.done.wait()
        return monitor


class MonitorStartFailed(MakestreamError):
    """The watch of a new monitor ended before it opened; the message is its error."""


@asynccontextmanager
async def running(client: MakeClient, zone: SimZone | None, *, api_limit: int | None,
                  config_path: Path,
                  monitor_idle_s: float = MCP_MONITOR_IDLE_S,
                  store: StoreChoice | None = None) -> AsyncIterator[Service]:
    """A service on `client`; its monitors end with it. The client's observer should call
    `service.on_notice`. With `store`, every monitor and followed run keeps its history there."""
    from makestream.store.recorder import (
        Recorder,
        history_source,
        start_writer,
        stop_writer,
        zone_of,
    )

    writer = (start_writer(store, client.clock.now, zone=zone_of(client.base_url))
              if store is not None else None)
    recorder = Recorder(writer, warn=_warn) if writer is not None else None
    history = history_source(store) if store is not None else None
    try:
        async with anyio.create_task_group() as tg:
            service = Service(client, zone, tg, api_limit=api_limit, config_path=config_path,
                              monitor_idle_s=monitor_idle_s, recorder=recorder, history=history)
            if monitor_idle_s > 0:
                tg.start_soon(service._stop_idle_forever)
            try:
                yield service
            finally:
                for monitor in service.monitors.values():
                    monitor.stop("server closed")
                tg.cancel_scope.cancel()
    finally:
        if recorder is not None:
            recorder.close()
        await stop_writer(writer)


def _warn(message: str) -> None:
    # stdout carries the protocol over stdio: a store problem goes to stderr, once.
    logging.getLogger("makestream.mcp").warning("%s", message)


@asynccontextmanager
async def open_service(conn: Connection, *, config_path: Path,
                       monitor_idle_s: float = MCP_MONITOR_IDLE_S,
                       store: StoreChoice | None = None) -> AsyncIterator[Service]:
    """A service on a client for Make (or the demo's simulated zone), as the CLI connects."""
    from makestream.cli.common import open_client

    holder: list[Service] = []
    async with open_client(conn, observer=lambda n: holder[0].on_notice(n) if holder else None
                           ) as (client, zone), running(
            client, zone, api_limit=conn.api_limit, config_path=config_path,
            monitor_idle_s=monitor_idle_s, store=store) as service:
        holder.append(service)
        yield service

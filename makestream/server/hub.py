"""Fan-out: one upstream watch, many SSE subscribers, a replay ring, and catch-up from Make.

Upstream
    One `Watch` serves every subscriber, however many there are, so Make sees the same requests
    for one client as for ten thousand. It starts with the server (which checks the token and
    the scenarios before listening), stops after `idle_stop_s` without any subscriber, and starts
    again for the next one, resumed from the last cursor it produced: runs that ended while it
    was stopped are reported then, nothing is lost. A scenario a client asks for that is allowed
    but not watched yet is added to the running watch and stays watched until the watch stops.

Alerts
    The upstream evaluates the thresholds once for everyone (catch-ups from Make's logs evaluate
    none). Its alert events go to every subscriber that wants them and to the alert `sinks`
    (``--webhook``, ``--alertmanager``), which count as a listener that never leaves: with a
    sink, the upstream never stops for want of subscribers. The alerts open now are in
    `/v1/state` (`open_alerts`) and in ``makestream_alerts_open``.

Fan-out
    Each event's SSE frame is encoded once for everyone. A subscriber's live events wait in its
    own bounded queue until its replay is sent; after that they are written straight to its
    connection where the server allows it (see `_Subscriber`). `publish` never waits: a
    subscriber that falls `queue_size` events behind (or that many KiB unsent, once written to
    directly) is dropped at once (it gets `stream.lagged` and resumes from its last id), so a
    slow client never delays the others and never makes memory grow.

Replay (``Last-Event-ID`` or ``?cursor=``)
    The ring keeps the last `ring_size` events in order, across upstream restarts. A cursor whose
    stream key and seq are in the ring resumes from the next event there. Any other cursor (too
    old for the ring, from before a server restart, from `makestream watch`) is resumed from
    Make's logs: a catch-up watch (`follow=False`, `resume=cursor`) finds the executions that
    finished since, and only `execution.finished` events come from it — progress, heartbeats and
    the like describe moments that are gone. The subscriber joins the live stream *before* the
    catch-up starts and buffers it meanwhile; afterwards live events resume, skipping
    `execution.finished` for executions the catch-up already delivered. So there is no gap and no
    duplicate across the switch. Identical catch-ups that have not started yet are shared (a
    reconnect storm after a restart costs one), and at most `catchup_limit` run at once.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from anyio.abc import TaskGroup

from makestream.engine.cursor import Cursor, Position
from makestream.engine.state import build_state
from makestream.engine.tracker import MAX_LOOKBACK_MS
from makestream.engine.watch import Watch, WatchOptions
from makestream.errors import ExitCode, MakestreamError
from makestream.events import (
    KNOWN_TYPES,
    AlertRaised,
    AlertResolved,
    ExecutionFinished,
    StreamClosed,
    StreamError,
    StreamLagged,
    StreamOpened,
    _Event,
    rfc3339,
)
from makestream.make.client import ApiNotice, MakeClient
from makestream.make.models import ExecStatus, ExecutionLog, Scenario
from makestream.server.metrics import Metrics
from makestream.server.sse import event_frame
from makestream.sinks.base import Sink
from makestream.timeutil import epoch_ms

if TYPE_CHECKING:
    from makestream.server.cluster import Cluster, ClusterOptions

IDLE = "idle"  # the stop reason of an upstream nobody listens to
SHUTDOWN = "server shutting down"
# Moments, not facts: dropped while a subscriber catches up, since they are stale by then.
EPHEMERAL = frozenset({"execution.progress", "stream.heartbeat"})
# They end a connection, so they reach every subscriber whatever its type filter.
CONTROL = frozenset({"stream.closed", "stream.lagged"})
# Live news about a run the catch-up already reported finished: skipped after the switch.
_SETTLED = frozenset({"execution.started", "execution.progress", "execution.finished"})
RECENT_LOGS = 50  # per scenario, for /v1/state (as many as `makestream state` reads)
# A catch-up from Make's logs replays at most this many runs on one connection, numbered 1 to
# CATCHUP_MAX; live events are numbered above it, so seq grows within every connection. A
# client with more to catch up is told to reconnect, and resumes after the last one it got.
CATCHUP_MAX = 10_000
TEAM_REFRESH_S = 60.0  # how often a team's scenario list may be re-read for an unknown id
UPSTREAM_FAILED = "upstream unreachable"  # /readyz's reason, whatever Make said


class Recorder(Protocol):
    """Where the upstream's events are kept (the history store)."""

    def offer(self, event: _Event, watch: Watch | None) -> object: ...


def _log_time(run: ExecutionFinished, stamp: str | None) -> int | None:
    """The time Make's log lists a run at (epoch ms), as the tracker reads it: its start,
    unless the tracker learned that log timestamps mark the end."""
    started, ended = epoch_ms(run.started_at), epoch_ms(run.ended_at)
    if stamp == "end":
        return ended if ended is not None else started
    return started if started is not None else ended


class StoredRuns(Protocol):
    """The history store as a source of replay (`store.replay.StoreReplay`)."""

    async def finished(
        self, scenario_ids: Sequence[int], since_ms: int
    ) -> list[ExecutionFinished] | None: ...

    async def trend(
        self, scenario_ids: Sequence[int], since_ms: int, by_s: int = 86400
    ) -> list[dict[str, Any]] | None: ...


class Forbidden(Exception):
    """A client asked for a scenario outside what this server was started for."""


class Unavailable(Exception):
    """No stream can be served now (the upstream failed, or the server is shutting down)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UpstreamFailed(MakestreamError):
    """The upstream watch could not open (bad token, unknown scenario, ...)."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = code


@dataclass(frozen=True)
class Filter:
    """What one subscriber wants: some scenarios and some event types (None: all).

    A type is a name (``execution.finished``) or a family (``execution.*``). Events without a
    scenario (``stream.*``, ``api.throttled``) pass the scenario filter.
    """

    scenarios: frozenset[int] | None = None
    types: frozenset[str] | None = None

    def matches(self, event: _Event) -> bool:
        if event.type in CONTROL:
            return True
        if self.scenarios is not None and event.scenario_id is not None \
                and event.scenario_id not in self.scenarios:
            return False
        return self.wants_type(event.type)

    def wants_type(self, name: str) -> bool:
        if self.types is None:
            return True
        family = name.partition(".")[0] + ".*"
        return name in self.types or family in self.types


def valid_type(name: str) -> bool:
    """Whether `name` is a known event type or a family of known types."""
    if name.endswith(".*"):
        return any(t.startswith(name[:-1]) for t in KNOWN_TYPES)
    return name in KNOWN_TYPES


@dataclass(frozen=True)
class Item:
    """An event with its SSE frame, encoded once for every subscriber."""

    event: _Event
    frame: bytes


# Unsent bytes per queued event a connection written to directly may hold before its client
# counts as lagging (so `queue_size` events of about this size, either way).
LAG_BYTES_PER_EVENT = 1024


class _Subscriber:
    """A subscriber's place in the hub: its filter, and where its live events go.

    Until its response has sent the replay, live events wait in a bounded queue (a plain deque
    and one wake-up event: `publish` touches every subscriber for every event, so this is the
    hot path of a server with thousands of clients). Then, where the server allows it (see
    `sse.Connection.write`), `publish` writes each frame to the connection itself, and the
    connection's own send buffer is the queue: no task switch per subscriber and event.
    """

    __slots__ = ("_wakeup", "catching_up", "delivered", "direct", "ended", "filter", "final",
                 "lag_bytes", "last", "limit", "queue")

    def __init__(self, filter_: Filter, queue_size: int) -> None:
        self.filter = filter_
        self.limit = queue_size
        self.lag_bytes = queue_size * LAG_BYTES_PER_EVENT
        self.queue: deque[Item] | None = None  # made when needed: most never need one
        self.direct: Callable[[bytes], int] | None = None
        self.ended = False  # nothing more will be queued
        self.catching_up = False
        self.delivered: set[str] = set()  # executions the catch-up reported finished
        self.last: _Event | None = None  # the last event sent
        self.final: _Event | None = None  # made up for this connection, sent after the last item
        self._wakeup: asyncio.Future[None] | None = None

    def offer(self, item: Item) -> bool | None:
        """Send or queue `item`; False if the subscriber lags too far behind, None if its
        connection is gone."""
        event = item.event
        if self.delivered and event.execution_id in self.delivered and event.type in _SETTLED:
            return True  # the catch-up told how this run ended
        write = self.direct
        if write is None:
            if self.queue is None:
                self.queue = deque()
            elif len(self.queue) >= self.limit:
                return False
            self.queue.append(item)
            self.wake()
            return True
        unsent = write(item.frame)
        if unsent < 0:
            return None
        self.last = event
        return unsent <= self.lag_bytes

    def wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)

    async def wait(self) -> None:
        # A bare future, not an anyio.Event (which holds an asyncio.Event and its deque of
        # waiters): every idle subscriber holds one, and the server runs on asyncio (uvicorn).
        self._wakeup = wakeup = asyncio.get_running_loop().create_future()
        await wakeup


@dataclass(eq=False)
class _Catchup:
    cursor: Cursor
    key: tuple[str, frozenset[int]]
    done: anyio.Event = field(default_factory=anyio.Event)
    items: list[Item] = field(default_factory=list)
    error: str | None = None
    more: bool = False  # more than CATCHUP_MAX runs: the connection ends after these
    waiting: list[_Subscriber] = field(default_factory=list)  # woken when it is done


@dataclass
class HubOptions:
    """How the hub runs; `watch` shapes the upstream (scenarios or team, limits, alerts)."""

    watch: WatchOptions
    queue_size: int = 1000  # events buffered per subscriber before it counts as lagging
    ring_size: int = 10_000  # recent events kept for Last-Event-ID
    idle_stop_s: float | None = 60.0  # stop the upstream after this long without subscribers
    retry_after_error_s: float = 30.0  # wait before restarting an upstream that failed
    catchup_limit: int = 2  # catch-ups from Make's logs running at once
    catchup_timeout_s: float = 300.0
    # Offered every upstream event (they take the alerts); run and closed by the caller.
    sinks: Sequence[Sink] = ()
    # The history store's recorder (`cli.store.Recorder`), offered every upstream event with
    # the watch that made it; it never waits. Started and stopped by the caller.
    recorder: Recorder | None = None
    # Runs the history store keeps, asked before Make's logs when a cursor is past the ring.
    stored: StoredRuns | None = None
    # One replica of several on a Redis bus (`makestream.server.cluster`); None: on its own.
    bus: ClusterOptions | None = None


@dataclass
class HubStats:
    upstream_starts: int = 0
    catchups: int = 0
    store_replays: int = 0  # catch-ups the history store answered, without a request
    lagged: int = 0


CHUNK_BYTES = 256 * 1024  # at most this much is joined into one write


class Subscription:
    """One client's stream: a replay (from the ring or from Make), then live events.

    The response pulls from it (`take`, `wait`: see `sse.FrameSource`); whatever is ready when
    the client's task wakes up goes out in one write.
    """

    def __init__(self, hub: Hub, sub: _Subscriber, replay: list[Item],
                 catchup: _Catchup | None) -> None:
        self._hub, self._sub, self._catchup = hub, sub, catchup
        self._replay: deque[Item] | None = deque(replay) if replay else None
        self._done = False

    def close(self) -> None:
        """Leave the hub (the client is gone)."""
        self._hub._leave(self._sub)

    @property
    def lagged(self) -> bool:
        """Dropped by the hub for falling behind."""
        return isinstance(self._sub.final, StreamLagged)

    def wake(self) -> None:
        self._sub.wake()

    async def wait(self) -> None:
        await self._sub.wait()

    def direct(self, write: Callable[[bytes], int]) -> bool:
        """From now on `publish` writes live frames with `write` (see `_Subscriber`); only once
        everything queued has been taken, so that nothing overtakes it."""
        sub = self._sub
        if self._done or self._replay or self._catchup is not None or sub.queue \
                or sub.final is not None or sub.ended:
            return False
        sub.direct = write
        sub.queue = None
        return True

    def take(self) -> bytes | None:
        if self._done:
            return None
        sub = self._sub
        parts: list[bytes] = []
        size = 0
        replay = self._replay
        if replay is not None:
            while replay and size < CHUNK_BYTES:
                item = replay.popleft()
                sub.last = item.event
                parts.append(item.frame)
                size += len(item.frame)
            if not replay:
                self._replay = None
            if parts:
                return b"".join(parts)
        catchup = self._catchup
        if catchup is not None:
            if not catchup.done.is_set():
                return b""  # live items wait in the queue meanwhile
            self._catchup = None
            if catchup.error is not None:
                # Live events after an incomplete replay would hide a gap behind their cursors.
                self._done = True
                if self._hub.closing:
                    sub.final = sub.final or self._hub._closed_event(SHUTDOWN)
                final = sub.final or StreamError(
                    message=f"replay from Make failed ({catchup.error}); reconnect to try again",
                    error_type="ReplayFailed", fatal=False, retry_in_s=5.0,
                    ts=rfc3339(self._hub.client.clock.now()),
                )
                seq = (sub.last.seq if sub.last is not None else 0) + 1
                return event_frame(final.model_copy(update={"seq": seq}), with_id=False)
            for item in catchup.items:
                if sub.filter.matches(item.event):
                    sub.delivered.add(item.event.execution_id or "")
                    sub.last = item.event
                    parts.append(item.frame)
            sub.catching_up = False
            if catchup.more:
                self._done = True
                parts.append(event_frame(StreamError(
                    message="more runs to replay than one connection carries; reconnect with "
                    "Last-Event-ID to continue", error_type="ReplayContinues", fatal=False,
                    retry_in_s=0.0, seq=(sub.last.seq if sub.last else 0) + 1,
                    ts=rfc3339(self._hub.client.clock.now()),
                ), with_id=False))
            if parts:
                return b"".join(parts)
        queue, delivered = sub.queue, sub.delivered
        while queue and sub.final is None and size < CHUNK_BYTES:
            item = queue.popleft()
            event = item.event
            if delivered and event.execution_id in delivered and event.type in _SETTLED:
                continue  # queued during the catch-up, which told how this run ended
            sub.last = event
            parts.append(item.frame)
            size += len(item.frame)
        if parts:
            return b"".join(parts)
        if sub.final is not None:
            # Dropped or shut down: what is still queued is stale, the client will resume.
            self._done = True
            sub.queue = None
            final, last = sub.final, sub.last
            # The last word of the connection comes after everything it carried.
            update: dict[str, Any] = {"seq": (last.seq if last is not None else 0) + 1}
            if isinstance(final, StreamLagged) and last is not None:
                update["cursor"] = last.cursor
            return event_frame(final.model_copy(update=update), with_id=False)
        if sub.ended:
            self._done = True
            return None
        return b""


class Hub:
    """Runs the upstream watch and fans its events out; see the module docstring."""

    def __init__(self, client: MakeClient, options: HubOptions,
                 metrics: Metrics | None = None) -> None:
        self.client = client
        self.options = options
        self.metrics = metrics
        self.stats = HubStats()
        self.watch: Watch | None = None
        self.running = False
        self._tg: TaskGroup | None = None
        self._subs: set[_Subscriber] = set()
        self._want = anyio.Event()
        self._want.set()  # the first start checks the configuration before the server listens
        self._closing = False
        self._closed = anyio.Event()
        self._cursor: str | None = None
        # One stream across upstream restarts: the same key, seq going on (see CATCHUP_MAX).
        self._stream_key = secrets.token_hex(4)
        self._seq = CATCHUP_MAX
        self._ring: deque[Item] = deque()
        self._ring_start = 0  # absolute position of _ring[0]
        self._ring_at: dict[tuple[str, int], int] = {}  # (stream, seq) -> absolute position
        self._targets: set[int] = set()  # scenarios the upstream watches (or watched)
        self._added: set[int] = set()  # added on demand; part of every later start
        self._team: set[int] | None = None
        self._team_read_at = -TEAM_REFRESH_S
        self._add_lock = anyio.Lock()
        self._first_open = anyio.Event()
        self._opened = anyio.Event()
        self._ever_opened = False
        self._failure: str | None = None
        self._failure_code = ExitCode.CANNOT_MONITOR
        self._failed_at = 0.0
        self._idle_since: float | None = time.monotonic()
        self._pending: dict[tuple[str, frozenset[int]], _Catchup] = {}
        self._catchup_limiter = anyio.CapacityLimiter(max(1, options.catchup_limit))
        self._logs: dict[int, dict[str, ExecutionLog]] = {}
        self._raised_at: dict[str, str] = {}  # open alert -> ts of the event that raised it
        self._alerts_seen: dict[str, AlertRaised] = {}  # open, as the events told (bus mode)
        # Since when (epoch ms) the upstream has reported every run of each scenario that ends:
        # from then on the history store holds them all (see `_from_store`).
        self._covered_from: dict[int, int] = {}
        self.cluster: Cluster | None = None
        if options.bus is not None:
            from makestream.server.cluster import Cluster

            self.cluster = Cluster(self, options.bus)
        if metrics is not None:
            metrics.watch_budget(client.budget.snapshot)
            metrics.watch_alerts(self._active_alerts)
            metrics.clients.set_function(lambda: len(self._subs))
            metrics.upstream_up.set_function(lambda: 1 if self.running else 0)
            if self.cluster is not None:
                cluster = self.cluster
                metrics.watch_bus(up=lambda: float(cluster.bus_up),
                                  lease_held=lambda: float(cluster.holding),
                                  lag=lambda: float(cluster.lag),
                                  length=lambda: float(cluster.stream_length))

    # -- life cycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Supervise the upstream until `close()`; run it in the server's task group."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                if self.cluster is not None:
                    await self.cluster.run()
                while not self._closing:
                    await self._want.wait()
                    if self._closing:
                        break
                    await self._run_upstream()
                    self._want = anyio.Event()
                    if self._failure is not None:
                        # Try again later by itself, so that /readyz recovers with Make.
                        with anyio.move_on_after(self.options.retry_after_error_s):
                            await self._closed.wait()
                        self._want.set()
                    elif self._subs:
                        self._want.set()  # someone arrived while it was stopping
            finally:
                self._closing = True
                self._closed.set()
                for sub in list(self._subs):
                    self._end(sub, self._closed_event(SHUTDOWN))
                tg.cancel_scope.cancel()

    async def started(self) -> UpstreamFailed | None:
        """Wait for the first upstream to open; its error if it could not."""
        await self._first_open.wait()
        if self._ever_opened:
            return None
        return UpstreamFailed(self._failure or "the upstream watch ended before it opened",
                              self._failure_code)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def close(self, reason: str = SHUTDOWN) -> None:
        """End every stream with `stream.closed` and stop (idempotent)."""
        if self._closing:
            return
        self._closing = True
        self._closed.set()
        self._want.set()
        if self.watch is not None and self.running and self.cluster is None:
            self.watch.stop(reason)  # its stream.closed reaches every subscriber
        else:
            if self.watch is not None and self.running:
                self.watch.stop(reason)  # a replica's watch: the next holder goes on
            for sub in list(self._subs):
                self._end(sub, self._closed_event(reason))

    async def _run_upstream(self) -> None:
        base = self.options.watch
        resume = Cursor.decode(self._cursor) if self._cursor else base.resume
        options = replace(base, resume=resume,
                          scenario_ids=sorted(set(base.scenario_ids) | self._added),
                          stream_key=self._stream_key, first_seq=self._seq)
        watch = Watch(self.client, options)
        watch.known_scenarios = self.known_scenarios()
        watch.on_logs = self.record_logs
        self.watch, self.running, self._opened = watch, True, anyio.Event()
        self.stats.upstream_starts += 1
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch.run)
                if self.options.idle_stop_s and not self.options.sinks:
                    tg.start_soon(self._stop_when_idle, watch, self.options.idle_stop_s)
                async for event in watch.events:
                    self._take(watch, event)
                tg.cancel_scope.cancel()
        finally:
            watch.events.close()
            self.running = False
            self._opened.set()
            self._first_open.set()

    async def _stop_when_idle(self, watch: Watch, grace_s: float) -> None:
        while True:
            await anyio.sleep(min(1.0, grace_s / 4))
            since = self._idle_since
            if since is not None and time.monotonic() - since >= grace_s:
                watch.stop(IDLE)
                return

    def _take(self, watch: Watch, event: _Event) -> None:
        """One upstream event: the sinks and the store take it, then `apply`."""
        self.offer_sinks(event)
        if self.options.recorder is not None:
            self.options.recorder.offer(event, watch)
        self.apply(event, watch)

    def offer_sinks(self, event: _Event) -> None:
        for sink in self.options.sinks:
            sink.offer(event)  # never blocks: a sink keeps its own bounded queue

    def apply(self, event: _Event, watch: Watch | None = None) -> None:
        """Note what an event of the upstream tells about it, then publish it. `watch` is the
        local watch that made it; None for an event read from the bus (another replica's)."""
        self._seq = max(self._seq, event.seq)
        if event.cursor:
            self._cursor = event.cursor
        if isinstance(event, StreamOpened):
            self._targets.update(event.targets)
            if watch is not None:
                for sid in event.targets:
                    self._covered_from.setdefault(sid, int(watch._started_at * 1000))
            self._failure = None
            self._ever_opened = True
            self._opened.set()
            self._first_open.set()
        elif isinstance(event, StreamError) and event.fatal:
            self._failure = event.message
            self._failed_at = time.monotonic()
        elif isinstance(event, StreamClosed):
            if watch is not None:
                self._failure_code = watch.outcome.exit_code
            if watch is not None and watch.outcome.reason == IDLE:
                return  # nobody listens; the next start resumes from its cursor
            # Not kept in the ring: replayed later, it would read as the end of the replay.
            self.publish(event, ring=False)
            for sub in list(self._subs):
                self._end(sub)
            return
        elif isinstance(event, ExecutionFinished):
            self._record_finished(event)
        elif isinstance(event, AlertRaised):
            # A re-notification (or the catch-up's second notice) keeps the first time.
            self._raised_at.setdefault(event.alert_id, event.ts)
            self._alerts_seen[event.alert_id] = event
        elif isinstance(event, AlertResolved):
            self._raised_at.pop(event.alert_id, None)
            self._alerts_seen.pop(event.alert_id, None)
        self.publish(event)

    # -- fan-out -----------------------------------------------------------------------------

    def publish(self, event: _Event, *, ring: bool = True) -> None:
        """Hand a stamped event to the ring and every subscriber that wants it; never waits."""
        item = Item(event, event_frame(event))
        if self.metrics is not None:
            self.metrics.observe_event(event)
        if ring and event.cursor:
            self._remember(item)
        ephemeral = event.type in EPHEMERAL
        for sub in list(self._subs):
            if not sub.filter.matches(event) or (ephemeral and sub.catching_up):
                continue
            sent = sub.offer(item)
            if sent is None:
                self._end(sub)  # its response hears of it too; this only stops the writes
            elif not sent:
                self._end(sub, StreamLagged(
                    message=f"fell behind by {self.options.queue_size} events and was "
                    "disconnected; reconnect with Last-Event-ID to resume",
                    ts=rfc3339(self.client.clock.now()),
                ))
                self.stats.lagged += 1
                if self.metrics is not None:
                    self.metrics.lagged.inc()

    def _remember(self, item: Item) -> None:
        event = item.event
        stream, _, _ = (event.cursor or "").rpartition("~")[2].rpartition(".")
        self._ring_at[(stream, event.seq)] = self._ring_start + len(self._ring)
        self._ring.append(item)
        while len(self._ring) > self.options.ring_size:
            old = self._ring.popleft().event
            self._ring_start += 1
            old_stream = (old.cursor or "").rpartition("~")[2].rpartition(".")[0]
            self._ring_at.pop((old_stream, old.seq), None)

    def _end(self, sub: _Subscriber, final: _Event | None = None) -> None:
        """Stop feeding a subscriber; its stream ends after what it already has (or `final`)."""
        if final is not None and sub.final is None:
            sub.final = final
        self._subs.discard(sub)
        sub.ended = True
        sub.direct = None  # what follows (a final event, the end) goes through the response
        sub.wake()
        if not self._subs:
            self._idle_since = time.monotonic()

    def _leave(self, sub: _Subscriber) -> None:
        self._end(sub)
        sub.queue = None

    def _closed_event(self, reason: str) -> StreamClosed:
        return StreamClosed(reason=reason, exit_code=0, ts=rfc3339(self.client.clock.now()))

    @property
    def opened(self) -> bool:
        """The upstream has opened (here, or on the replica that polls)."""
        return self._ever_opened

    @property
    def seq(self) -> int:
        """The highest seq the upstream has stamped (or this replica has read from the bus)."""
        return self._seq

    def recent(self, n: int) -> list[_Event]:
        """The last `n` events of the replay ring, oldest first."""
        return [item.event for item in islice(self._ring, max(0, len(self._ring) - n), None)]

    def now_rfc3339(self) -> str:
        return rfc3339(self.client.clock.now())

    def mark_started(self) -> None:
        """The upstream answered, opened or failed: `started` need wait no more."""
        self._first_open.set()

    @property
    def client_count(self) -> int:
        return len(self._subs)

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def last_cursor(self) -> str | None:
        """The cursor of the last upstream event."""
        return self._cursor

    # -- subscribing -------------------------------------------------------------------------

    async def check_scenarios(self, ids: Iterable[int]) -> None:
        """Raise Forbidden for a scenario outside the ones or the team given at start."""
        base = self.options.watch
        for sid in ids:
            if sid in self._targets or sid in base.scenario_ids:
                continue
            if base.team_id is None:
                raise Forbidden(f"scenario {sid} is not served here")
            if self._team is None or sid not in self._team:
                now = time.monotonic()
                if now - self._team_read_at >= TEAM_REFRESH_S:
                    self._team_read_at = now
                    team = await self.client.scenarios(team_id=base.team_id)
                    self._team = {s.id for s in team}
            if self._team is None or sid not in self._team:
                raise Forbidden(f"scenario {sid} is not in team {base.team_id}")

    async def subscribe(self, filter_: Filter, after: str | None = None) -> Subscription:
        """Join the live stream, then work out the replay after cursor `after`.

        `after` must decode (the routes check it). Scenarios in the filter must have passed
        `check_scenarios`; those not watched yet are added to the upstream.
        """
        if self._closing:
            raise Unavailable("the server is shutting down")
        if self._failure is not None and not self.running:
            wait = self.options.retry_after_error_s - (time.monotonic() - self._failed_at)
            raise Unavailable(f"upstream failed: {self._failure}", retry_after_s=max(1.0, wait))
        sub = _Subscriber(filter_, self.options.queue_size)
        # From here to the end of the replay plan nothing awaits: the ring snapshot ends exactly
        # where the subscriber's live queue begins.
        self._subs.add(sub)
        self._idle_since = None
        self._want.set()
        replay: list[Item] = []
        catchup: _Catchup | None = None
        if after is not None:
            cursor = Cursor.decode(after)
            at = self._ring_at.get((cursor.stream, cursor.seq))
            if at is not None and self._ring[at - self._ring_start].event.cursor != after:
                # The same stream key and seq for another event (replicas whose bus lost its
                # tail and numbered again): not a position in this ring; resume from the cursor.
                at = None
            if at is not None:
                start = at - self._ring_start + 1
                replay = [i for i in islice(self._ring, start, None) if filter_.matches(i.event)]
            elif filter_.wants_type("execution.finished"):
                scenarios = filter_.scenarios if filter_.scenarios is not None else self._targets
                catchup = self._catchup_for(after, cursor, frozenset(scenarios))
                catchup.waiting.append(sub)
                sub.catching_up = True
        wanted = set(filter_.scenarios or ()) - self._targets
        if wanted:
            try:
                await self._watch_more(wanted)
            except BaseException:
                self._leave(sub)
                raise
        return Subscription(self, sub, replay, catchup)

    async def _watch_more(self, ids: set[int]) -> None:
        async with self._add_lock:
            ids = ids - self._targets
            if not ids:
                return
            self._added |= ids
            watch = self.watch
            if watch is None or not self.running:
                return  # the next start includes them
            await self._opened.wait()
            if watch is self.watch and self.running:
                added_at = int(watch.clock.now() * 1000)
                await watch.add_scenarios(sorted(ids))
                self._targets |= ids
                for sid in ids:
                    self._covered_from.setdefault(sid, added_at)

    # -- catch-up from Make's logs -------------------------------------------------------------

    def _catchup_for(self, text: str, cursor: Cursor, scenarios: frozenset[int]) -> _Catchup:
        key = (text, scenarios)
        pending = self._pending.get(key)
        if pending is not None:
            return pending  # not started yet: this subscriber's live queue began before it will
        catchup = self._pending[key] = _Catchup(cursor, key)
        assert self._tg is not None, "Hub.run() is not running"
        self._tg.start_soon(self._run_catchup, catchup)
        return catchup

    async def _run_catchup(self, catchup: _Catchup) -> None:
        complete = False
        try:
            async with self._catchup_limiter:
                self._pending.pop(catchup.key, None)
                self.stats.catchups += 1
                with anyio.fail_after(self.options.catchup_timeout_s):
                    found = await self._finished_since(catchup)
                if len(found) > CATCHUP_MAX:
                    found, catchup.more = found[:CATCHUP_MAX], True
                # Numbered 1..n ahead of the live events (numbered above CATCHUP_MAX); the
                # cursors stay the catch-up's, so resuming from one continues from Make's logs.
                found = [e.model_copy(update={"seq": n}) for n, e in enumerate(found, 1)]
                catchup.items = [Item(e, event_frame(e)) for e in found]
                complete = True
        except TimeoutError:
            catchup.error = "timed out"
        except MakestreamError as exc:
            catchup.error = exc.message
        finally:
            if not complete:
                catchup.error = catchup.error or "cancelled"  # the server is shutting down
            self._pending.pop(catchup.key, None)
            catchup.done.set()
            for sub in catchup.waiting:
                sub.wake()
            catchup.waiting.clear()

    async def _finished_since(self, catchup: _Catchup) -> list[ExecutionFinished]:
        base = self.options.watch
        scenarios = sorted(catchup.key[1])
        if not scenarios:
            return []
        from_store = await self._from_store(catchup.cursor, scenarios)
        if from_store is not None:
            self.stats.store_replays += 1
            return from_store
        options = WatchOptions(
            scenario_ids=scenarios, follow=False, resume=catchup.cursor,
            api_limit=base.api_limit, interval_s=base.interval_s, workers=base.workers,
            heartbeat_s=3600.0, progress_s=3600.0, runs=base.runs,
        )
        watch = Watch(self.client, options)
        watch.known_scenarios = self.known_scenarios()
        found: list[ExecutionFinished] = []
        with watch.events:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch.run)
                async for event in watch.events:
                    if isinstance(event, ExecutionFinished):
                        found.append(event)
        if watch.outcome.error is not None:
            raise MakestreamError(watch.outcome.error)
        return found

    async def _from_store(
        self, cursor: Cursor, scenarios: list[int]
    ) -> list[ExecutionFinished] | None:
        """The runs `cursor` still owes, from the history store; None when the store cannot
        vouch for all of them, and Make's logs must be read.

        The store holds every run of a scenario that ended since the upstream began covering it.
        A cursor of this hub's own stream from after the scenario's first scan counts every run
        before that as delivered (the scan marked them so), and so does any cursor whose floor
        is above it.
        """
        stored = self.options.stored
        if stored is None:
            return None
        ours = cursor.stream == self._stream_key
        for sid in scenarios:
            position = cursor.positions.get(sid)
            since = self._covered_from.get(sid)
            if position is None or since is None:
                return None
            # Our own cursors from after the scenario's first scan have a floor at most one
            # look-back below the start; one from before it (floor 0) still owes older runs.
            if position.floor_ms < (since - MAX_LOOKBACK_MS if ours else since):
                return None
        floor = min(cursor.positions[sid].floor_ms for sid in scenarios)
        runs = await stored.finished(scenarios, floor)
        if runs is None:
            return None
        stamp = self.watch.tracker.stamp if self.watch is not None else None
        positions = {sid: Position(p.floor_ms, dict(p.done))
                     for sid, p in cursor.positions.items()}
        key = secrets.token_hex(4)  # never a stream the ring knows
        out: list[ExecutionFinished] = []
        for run in runs:
            position = positions.get(run.scenario_id or 0)
            at = _log_time(run, stamp)
            if position is None or at is None or position.has(run.execution_id or "", at):
                continue
            position.add(run.execution_id or "", at)
            cursor_after = Cursor(key, len(out) + 1, positions).encode()
            out.append(run.model_copy(update={"cursor": cursor_after}))
        return out

    async def trend(self, scenario_ids: Iterable[int] | None, days: int) -> dict[str, Any] | None:
        """Each scenario's last `days` days from the history store (`GET /v1/trend`); None
        without a store."""
        stored = self.options.stored
        if stored is None:
            return None
        ids = sorted(scenario_ids if scenario_ids is not None else self._targets)
        since_ms = int((time.time() - days * 86400) // 86400 * 86400 * 1000)
        rows = await stored.trend(ids, since_ms)
        return {"days": days, "scenarios": rows, "available": rows is not None}

    def known_scenarios(self) -> dict[int, Scenario]:
        if self.watch is None:
            return {}
        return {sid: st.info for sid, st in self.watch.tracker.scenarios.items()
                if st.info is not None}

    # -- what the server knows, for /v1/state and /readyz ----------------------------------------

    def record_logs(self, sid: int, entries: list[ExecutionLog]) -> None:
        book = self._logs.setdefault(sid, {})
        for entry in entries:
            book[entry.id] = entry
        if len(book) > RECENT_LOGS * 2:
            keep = sorted(book.values(), key=lambda e: e.timestamp_ms)[-RECENT_LOGS:]
            self._logs[sid] = {e.id: e for e in keep}

    def _record_finished(self, event: ExecutionFinished) -> None:
        # The next scan brings the real log entry; until then the event stands in for it, so
        # that a run shown as running in /v1/state does not stay so.
        if event.scenario_id is None or event.execution_id is None:
            return
        book = self._logs.get(event.scenario_id)
        if book is None or event.execution_id not in book:
            return
        old = book[event.execution_id]
        if old.status.terminal:
            return
        book[old.id] = old.model_copy(update={
            "status": ExecStatus(event.status), "duration_ms": event.duration_ms,
            "operations": event.operations or 0, "transfer": event.transfer_bytes or 0,
            "centicredits": event.centicredits,
        })

    def _active_alerts(self) -> list[AlertRaised]:
        if self.cluster is not None and not self.running:
            return list(self._alerts_seen.values())  # another replica evaluates them
        evaluator = self.options.watch.alerts
        return evaluator.active() if evaluator is not None else []

    def open_alerts(self, scenario_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """The alerts open now, with their latest figures and `raised_at` (the ts of the event
        that raised them); with `scenario_ids`, those about these scenarios and those about
        none (the request budget)."""
        wanted = set(scenario_ids) if scenario_ids is not None else None
        out: list[dict[str, Any]] = []
        for alert in self._active_alerts():
            if wanted is not None and alert.scenario_id is not None \
                    and alert.scenario_id not in wanted:
                continue
            fields = alert.model_dump(mode="json", exclude_none=True,
                                      exclude={"v", "type", "seq", "ts", "cursor"})
            raised_at = self._raised_at.get(alert.alert_id)
            out.append(fields | ({"raised_at": raised_at} if raised_at else {}))
        return out

    def state_document(self, scenario_ids: Iterable[int] | None = None,
                       last: int = 10) -> dict[str, Any]:
        """The `makestream state` document, from what the upstream already learned, with the
        open alerts (`open_alerts`) as ``alerts`` and the stream's position as ``cursor``."""
        wanted = set(scenario_ids) if scenario_ids is not None else None
        shared = self.cluster.shared if self.cluster is not None and not self.running else None
        if shared is not None:
            # Another replica polls: what it last shared through the bus, and its position.
            scenarios = [sc for sc in shared.scenarios if wanted is None or sc.id in wanted]
            logs, queues, cursor = shared.logs, shared.queues, shared.cursor
        else:
            scenarios, logs, queues = self.state_inputs(wanted)
            cursor = self.last_cursor
        document = build_state(scenarios, logs, queues, self.client.budget.snapshot(),
                               now=self.client.clock.now(), last=last)
        if shared is not None:
            document["budget"] = shared.budget  # the poller's use, not this replica's
        document["alerts"] = self.open_alerts(wanted)
        # Where this document stands in the stream: /v1/events?cursor= resumes right after it,
        # so a page that loads the state first misses no event that came in between.
        document["cursor"] = cursor
        return document

    def state_inputs(self, wanted: set[int] | None = None) -> tuple[
            list[Scenario], dict[int, list[ExecutionLog]], dict[int, int | None]]:
        """What the state document is built from: the scenarios the upstream knows, their
        recent runs (those in flight among them) and their queues."""
        scenarios: list[Scenario] = []
        logs: dict[int, list[ExecutionLog]] = {}
        queues: dict[int, int | None] = {}
        if self.watch is not None:
            for sid, st in sorted(self.watch.tracker.scenarios.items()):
                if st.info is None or (wanted is not None and sid not in wanted):
                    continue
                scenarios.append(st.info)
                queues[sid] = st.queue_count
                entries = dict(self._logs.get(sid, {}))
                for run in st.running.values():
                    if run.execution_id not in entries:
                        begun = run.started_at if run.started_at is not None else run.first_seen
                        entries[run.execution_id] = ExecutionLog(
                            id=run.execution_id, scenario_id=sid,
                            timestamp=datetime.fromtimestamp(begun, UTC),
                            status=ExecStatus.RUNNING,
                        )
                logs[sid] = list(entries.values())
        return scenarios, logs, queues

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the upstream is usable: opened, no fatal error, not in a 429 pause."""
        snap = self.client.budget.snapshot()
        body: dict[str, Any] = {
            "upstream": "running" if self.running else "idle",
            "clients": len(self._subs),
            "budget_remaining": snap.remaining,
        }
        if self.cluster is not None:
            body |= self.cluster.readiness()
            body["upstream"] = "running" if self.running else "on another replica"
        if self._closing:
            return False, {"status": "shutting down", **body}
        if self._failure is not None:
            # A fixed reason: the failure's text comes from Make, and /readyz is open to all.
            return False, {"status": "failed", "error": UPSTREAM_FAILED, **body}
        if not self._ever_opened:
            return False, {"status": "starting", **body}
        if snap.throttled_until is not None:
            return False, {"status": "throttled", **body}
        if self.cluster is not None and not self.cluster.bus_up:
            # Still serving what it has: a balancer that dropped every replica would serve none.
            return True, {"status": "degraded", **body}
        return True, {"status": "ready", **body}

    def on_notice(self, notice: ApiNotice) -> None:
        """The client's observer: metrics, and `api.throttled` events from the live watch."""
        if self.metrics is not None:
            self.metrics.observe_notice(notice)
        if self.watch is not None and self.running:
            self.watch.on_notice(notice)

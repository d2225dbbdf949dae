"""The history store beside a stream, for any face that runs one (`watch`, `serve-sse`, and the
MCP server when it comes): start a writer for the chosen store, offer it every event through a
`Recorder`, give the watch the store as its history source, stop the writer at the end.

    writer = start_writer(choice, clock.now)
    options.history = history_source(choice)
    recorder = Recorder(writer, warn=print_one_line)
    ...  recorder.offer(event, watch)  for every event the watch emits
    await stop_writer(writer)

Coverage. Besides the events, the recorder tells the store which spans of each scenario's log
time a stream reported completely, so that a later `watch --resume` can take those runs from the
store instead of Make's logs (`store.replay`). A stream (one `Watch`, from its `stream.opened`)
reports every run Make lists at or after the moment it opened; a cursor's floor says every run
listed before it was reported. So each cursor the stream emits vouches for [opened +
CLOCK_SLACK_MS, floor) of each scenario it names (a scenario first named later: from then). The
spans go to the writer behind the events, every COVER_EVERY_S and when the stream closes; the
writer refuses them once it has dropped an event. A stream that follows one run (--run,
--execution), or whose events come from elsewhere (a replica on a bus), vouches for nothing.
"""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from makestream.timeutil import epoch_ms

if TYPE_CHECKING:
    from makestream.engine.history import HistorySource, RunSource
    from makestream.store.paths import StoreChoice
    from makestream.store.writer import StoreWriter

# How long `watch --cursor-file` lets one finished run wait for the store before writing it out.
STORED_WAIT_S = 2.0
# How often (seconds of the stream's clock) a stream's coverage is written while it runs.
COVER_EVERY_S = 5.0
# A span starts this long after its stream opened: Make's clock, which log times are read on,
# may run ahead of ours, and a run listed "after" the opening could have been reported before.
CLOCK_SLACK_MS = 60_000


def zone_of(base_url: str) -> str:
    """The Make host of an API base URL: scenario ids are unique only within one."""
    return urlsplit(base_url).netloc.lower()


def start_writer(choice: StoreChoice, now: Callable[[], float], *, zone: str) -> StoreWriter | None:
    """The writer thread for a stream of Make host `zone`, or None without a store. It opens the
    file itself: a file that cannot be used is reported by the writer (`take_problem`), never
    raised here."""
    from makestream.store.writer import StoreWriter

    if choice.path is None:
        return None
    return StoreWriter(choice.path, keep_s=choice.keep_s, now=now, zone=zone).start()


def history_source(choice: StoreChoice) -> HistorySource | None:
    """The store as the engine's history source (None without a store)."""
    if choice.path is None:
        return None
    from makestream.store.seed import HistoryFromStore

    return HistoryFromStore(choice.path)


def run_source(writer: StoreWriter | None) -> RunSource | None:
    """The store `writer` keeps, as the engine's source of runs (of the writer's Make host) for a
    resumed watch; None without a store."""
    if writer is None:
        return None
    from makestream.store.replay import StoredSpans

    return StoredSpans(writer.path, writer.zone, writer.now)


async def stop_writer(writer: StoreWriter | None) -> None:
    """Write what is queued and stop the thread, without blocking the event loop."""
    if writer is not None:
        import anyio

        await anyio.to_thread.run_sync(writer.close)


class Recorder:
    """The history store beside a stream: every event offered to its writer (never waiting),
    the scenarios' names and teams noted when the stream opens, and the writer's first problem
    said once, as a `stream.error` event and through `warn` (into `deferred` instead when a live
    view owns the terminal). The stream goes on either way."""

    def __init__(
        self,
        writer: StoreWriter | None,
        deferred: list[str] | None = None,
        *,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.writer = writer
        self.deferred = deferred
        self.warn = warn
        self._streams: weakref.WeakKeyDictionary[Any, _Stream] = weakref.WeakKeyDictionary()

    def offer(self, event: Any, watch: Any) -> int:
        """Hand an event to the writer; a ticket for `stored`, or 0."""
        writer = self.writer
        if writer is None:
            return 0
        ticket = writer.offer(event)
        if event.type == "stream.opened" and watch is not None:
            scenarios = watch.tracker.scenarios
            writer.note_scenarios((sid, st.name, st.team_id) for sid, st in scenarios.items())
        self._cover(event, watch)
        self.check(watch)
        return ticket

    def _cover(self, event: Any, watch: Any) -> None:
        if watch is None:
            return
        at = epoch_ms(event.ts)
        if event.type == "stream.opened":
            options = getattr(watch, "options", None)
            if at is None or getattr(options, "run", False) or getattr(
                options, "execution_id", None
            ):
                self._streams.pop(watch, None)
                return
            since = at + CLOCK_SLACK_MS
            self._streams[watch] = _Stream(secrets.token_hex(8),
                                           {s: since for s in event.targets})
        stream = self._streams.get(watch)
        if stream is None or at is None:
            return
        stream.last_ms = max(stream.last_ms, at)
        if event.type == "execution.finished" and event.log_ms is None:
            # Reported before its log was read: its log time, which the floor will pass, is
            # not stored. The scenario's span ends before it (the floor is held below such a
            # run until it is reported) and starts again after it.
            self._write_cover(stream, at)
            sid = event.scenario_id
            if sid is not None:
                stream.breaks[sid] = stream.breaks.get(sid, 0) + 1
                stream.since[sid] = at + CLOCK_SLACK_MS
        if event.cursor:
            stream.cursor = event.cursor
        closed = event.type == "stream.closed"
        if closed or at - stream.written_at >= COVER_EVERY_S * 1000:
            self._write_cover(stream, at)
        if closed:
            del self._streams[watch]

    def _write_cover(self, stream: _Stream, at: int) -> None:
        """Offer the spans the stream's latest cursor vouches for, up to `at` at most; a scenario
        first named in it is covered from `at` on."""
        from makestream.engine.cursor import Cursor
        from makestream.errors import UsageError
        from makestream.store.rows import CoverageRow

        stream.written_at = at
        if not stream.cursor or self.writer is None:
            return
        try:
            positions = Cursor.decode(stream.cursor).positions
        except UsageError:
            return
        spans = []
        for sid, position in positions.items():
            if position.floor_ms > at:
                # A floor ahead of its own event (a damaged or hand-made cursor, a clock that
                # ran ahead): this stream does not report what lies below it, so it vouches
                # for nothing of this scenario, now or later.
                stream.since[sid] = _NEVER
            since = stream.since.setdefault(sid, at + CLOCK_SLACK_MS)
            until = position.floor_ms
            if until > since:
                key = f"{stream.key}.{stream.breaks.get(sid, 0)}"
                spans.append(CoverageRow(key, self.writer.zone, sid, since, until))
        if spans:
            self.writer.cover(spans)

    def close(self) -> None:
        """Write the coverage of every stream still open (the process is stopping)."""
        for stream in self._streams.values():
            self._write_cover(stream, stream.last_ms)
        self._streams.clear()

    async def stored(self, ticket: int) -> None:
        """Wait (off the event loop, STORED_WAIT_S at most) until the event is on disk; at once
        when the store has a problem, which has been reported."""
        if self.writer is None or not ticket:
            return
        import anyio

        await anyio.to_thread.run_sync(self.writer.wait_stored, ticket, STORED_WAIT_S)

    def check(self, watch: Any = None) -> None:
        """Report the writer's problem, if it has one not reported yet."""
        problem = self.writer.take_problem() if self.writer is not None else None
        if problem is None:
            return
        if watch is not None:
            from makestream.events import StreamError

            watch.emit([StreamError(message=problem, error_type="store", fatal=False)])
        if self.deferred is not None:
            self.deferred.append(problem)
        elif self.warn is not None:
            self.warn(problem)


_NEVER = 2**62


@dataclass
class _Stream:
    """One stream's coverage: its key in the store, since when it has covered each scenario
    (epoch ms), when its coverage was last written, its latest event's time and cursor."""

    key: str
    since: dict[int, int] = field(default_factory=dict)
    breaks: dict[int, int] = field(default_factory=dict)  # spans ended, per scenario
    written_at: int = 0
    last_ms: int = 0
    cursor: str = ""

"""The history store beside a stream, for any face that runs one (`watch`, `serve-sse`, and the
MCP server when it comes): start a writer for the chosen store, offer it every event through a
`Recorder`, give the watch the store as its history source, stop the writer at the end.

    writer = start_writer(choice, clock.now)
    options.history = history_source(choice)
    recorder = Recorder(writer, warn=print_one_line)
    ...  recorder.offer(event, watch)  for every event the watch emits
    await stop_writer(writer)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from makestream.engine.history import HistorySource
    from makestream.store.paths import StoreChoice
    from makestream.store.writer import StoreWriter

# How long `watch --cursor-file` lets one finished run wait for the store before writing it out.
STORED_WAIT_S = 2.0


def start_writer(choice: StoreChoice, now: Callable[[], float]) -> StoreWriter | None:
    """The writer thread for a stream, or None without a store. It opens the file itself: a
    file that cannot be used is reported by the writer (`take_problem`), never raised here."""
    from makestream.store.writer import StoreWriter

    if choice.path is None:
        return None
    return StoreWriter(choice.path, keep_s=choice.keep_s, now=now).start()


def history_source(choice: StoreChoice) -> HistorySource | None:
    """The store as the engine's history source (None without a store)."""
    if choice.path is None:
        return None
    from makestream.store.seed import HistoryFromStore

    return HistoryFromStore(choice.path)


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

    def offer(self, event: Any, watch: Any) -> int:
        """Hand an event to the writer; a ticket for `stored`, or 0."""
        writer = self.writer
        if writer is None:
            return 0
        ticket = writer.offer(event)
        if event.type == "stream.opened" and watch is not None:
            scenarios = watch.tracker.scenarios
            writer.note_scenarios((sid, st.name, st.team_id) for sid, st in scenarios.items())
        self.check(watch)
        return ticket

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

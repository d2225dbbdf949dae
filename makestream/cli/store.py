"""The history store's options, shared by `watch`, `serve-sse` and `history`, and the writer a
streaming command runs beside its stream (see `makestream.store`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from makestream.store import StoreChoice, StoreWriter

# How long `watch --cursor-file` lets one finished run wait for the store before writing it out.
STORED_WAIT_S = 2.0

StoreOpt = typer.Option(
    None,
    "--store",
    metavar="PATH",
    dir_okay=False,
    help="The history store (SQLite). Default: $MAKESTREAM_STORE, else "
    "$XDG_DATA_HOME/makestream/history.db.",
    show_default=False,
)
NoStoreOpt = typer.Option(
    False, "--no-store", help="Keep no history (MAKESTREAM_STORE=off does the same)."
)
KeepOpt = typer.Option(
    "90d",
    "--keep",
    metavar="DURATION",
    help="Delete stored history older than this, a little at a time while streaming.",
)


def choose(store: Path | None, no_store: bool, keep: str | None = None) -> StoreChoice:
    from makestream.store import resolve

    return resolve(store, no_store, keep)


def start_writer(choice: StoreChoice, now: Callable[[], float]) -> StoreWriter | None:
    """The writer thread for a stream, or None with --no-store. It opens the file itself: a
    file that cannot be used is reported by the writer (`take_problem`), never raised here."""
    from makestream.store import StoreWriter

    if choice.path is None:
        return None
    return StoreWriter(choice.path, keep_s=choice.keep_s, now=now).start()


def history_source(choice: StoreChoice) -> Any:
    """The store as the engine's history source (None with --no-store)."""
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
    said once, as a `stream.error` event and on stderr (after the stream, into `deferred`, when
    a live view owns the terminal). The stream goes on either way."""

    def __init__(self, writer: StoreWriter | None, deferred: list[str] | None = None) -> None:
        self.writer = writer
        self.deferred = deferred

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
        from makestream.cli.common import say

        problem = self.writer.take_problem() if self.writer is not None else None
        if problem is None:
            return
        if watch is not None:
            from makestream.events import StreamError

            watch.emit([StreamError(message=problem, error_type="store", fatal=False)])
        if self.deferred is not None:
            self.deferred.append(problem)
        else:
            say(f"warning: {problem}")

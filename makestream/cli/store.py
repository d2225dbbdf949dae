"""The history store's options, shared by `watch`, `serve-sse` and `history`, and the writer a
streaming command runs beside its stream (see `makestream.store`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from makestream.store import StoreChoice, StoreWriter

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

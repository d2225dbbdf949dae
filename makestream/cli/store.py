"""The history store's options, shared by `watch`, `serve-sse` and `history`, and the recorder a
streaming command runs beside its stream (`makestream.store.recorder`), warning on stderr."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from makestream.store.recorder import Recorder as _Recorder
from makestream.store.recorder import (
    history_source,
    run_source,
    start_writer,
    stop_writer,
    zone_of,
)

if TYPE_CHECKING:
    from makestream.store import StoreChoice

StoreOpt = typer.Option(
    None,
    "--store",
    metavar="PATH",
    dir_okay=False,
    help="The history store (SQLite). Default: $MAKESTREAM_STORE, else "
    "$XDG_DATA_HOME/makestream/history.db; with --demo, none unless named here.",
    show_default=False,
)
# The same file, for the commands that only read it (history, thresholds test --from-store).
StoreReadOpt = typer.Option(
    None,
    "--store",
    metavar="PATH",
    dir_okay=False,
    help="The history store to read. Default: $MAKESTREAM_STORE, else "
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


def choose(
    store: Path | None, no_store: bool, keep: str | None = None, *, demo: bool = False
) -> StoreChoice:
    """The store a streaming command keeps. The demo's made-up scenarios stay out of the
    user's history: with --demo only a --store named on the command line is written."""
    from makestream.store import resolve

    return resolve(store, no_store or (demo and store is None), keep)


class Recorder(_Recorder):
    """`store.recorder.Recorder` whose warnings are `makestream: warning:` lines on stderr."""

    def __init__(self, writer: Any, deferred: list[str] | None = None) -> None:
        from makestream.cli.common import say

        super().__init__(writer, deferred, warn=lambda problem: say(f"warning: {problem}"))


__all__ = ["KeepOpt", "NoStoreOpt", "Recorder", "StoreOpt", "StoreReadOpt", "choose",
           "history_source", "run_source", "start_writer", "stop_writer", "zone_of"]

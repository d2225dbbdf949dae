"""The history store: every finished execution, alert transition and scenario change a watch saw,
kept in one SQLite file so that makestream remembers across restarts.

Make's logs are the source of truth; the store is makestream's memory of what it saw. `watch` and
`serve-sse` write it through a `StoreWriter` (a thread, so the stream is never slowed); the engine
reads recent durations from it at start-up (`HistoryFromStore`); `makestream history` queries it.

    paths.py   where the file lives (--store, --no-store, MAKESTREAM_STORE, XDG_DATA_HOME)
    schema.py  opening a file, its schema version and migrations
    rows.py    events to rows and back (pure)
    writer.py  the writer thread: bounded queue, batched idempotent inserts, retention
    query.py   what `history`, the engine and the server ask of it
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from makestream.store.paths import StoreChoice, default_path, resolve
from makestream.store.schema import SCHEMA_VERSION, StoreError, open_read, open_write

if TYPE_CHECKING:
    from makestream.store.writer import StoreWriter


def __getattr__(name: str) -> Any:
    # The writer needs the event models (pydantic); readers such as `history stats` do not, and
    # start faster without them.
    if name == "StoreWriter":
        from makestream.store.writer import StoreWriter

        return StoreWriter
    raise AttributeError(name)


__all__ = [
    "SCHEMA_VERSION",
    "StoreChoice",
    "StoreError",
    "StoreWriter",
    "default_path",
    "open_read",
    "open_write",
    "resolve",
]

"""Stored runs for serve-sse's replay: the `execution.finished` events the store holds for some
scenarios since a moment, read after everything offered so far has reached the disk.

The hub decides whether the store can answer a cursor at all (it knows since when its own watch
has covered each scenario) and which of these runs the cursor still owes; this only reads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from makestream.store import query
from makestream.store.schema import StoreError, open_read

if TYPE_CHECKING:
    from makestream.events import ExecutionFinished
    from makestream.store.writer import StoreWriter

# How long a replay waits for the writer to catch up before it gives up on the store.
CATCH_UP_S = 5.0


class StoreReplay:
    """Reads a store that `writer` (this process's) keeps up to date."""

    def __init__(self, path: Path, writer: StoreWriter) -> None:
        self.path = path
        self.writer = writer

    async def finished(
        self, scenario_ids: Sequence[int], since_ms: int
    ) -> list[ExecutionFinished] | None:
        """Stored runs of these scenarios that ended at `since_ms` or later, oldest first; None
        when the store cannot answer (it has a problem, or the writer is behind)."""
        mark = self.writer.mark()
        stored = await anyio.to_thread.run_sync(self.writer.wait_stored, mark, CATCH_UP_S)
        if mark and not stored:
            return None
        return await anyio.to_thread.run_sync(self._read, list(scenario_ids), since_ms)

    def _read(self, scenario_ids: list[int], since_ms: int) -> list[ExecutionFinished] | None:
        import orjson

        from makestream.events import ExecutionFinished

        try:
            conn = open_read(self.path)
            if conn is None:
                return []
            try:
                rows = query.executions(
                    conn, query.Selection(scenario_ids=scenario_ids, since_ms=since_ms)
                )
            finally:
                conn.close()
        except (StoreError, sqlite3.Error):
            return None
        return [ExecutionFinished.model_validate(orjson.loads(r["body"])) for r in rows]

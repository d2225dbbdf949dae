"""Stored runs, read back for a stream:

- `StoredSpans`, the engine's `RunSource`: for a resumed watch, the runs it owes from the spans
  some stream reported completely (the `coverage` table, see `store.recorder`), in any process;
- `StoreReplay`, for serve-sse: the `execution.finished` events the store holds for some
  scenarios since a moment (read after everything this process offered has reached the disk),
  and a per-day trend of each scenario (`GET /v1/trend`, for the live page). The hub decides
  whether the store can answer a cursor (it knows since when its own watch has covered each
  scenario) and which of these runs the cursor still owes; this only reads.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from makestream.store import query
from makestream.store.rows import finished_from
from makestream.store.schema import StoreError, open_read

if TYPE_CHECKING:
    from makestream.engine.history import Covered
    from makestream.events import ExecutionFinished
    from makestream.store.writer import StoreWriter

# How long a replay waits for the writer to catch up before it gives up on the store.
CATCH_UP_S = 5.0
# Runs a resumed watch takes from the store, per scenario and in all: past that, the rest comes
# from Make's logs (memory stays bounded whatever the store holds).
SPAN_RUNS_MAX = 5_000
SPAN_RUNS_TOTAL = 20_000


class StoredSpans:
    """The store as the engine's `RunSource` (see `engine.history.RunSource`)."""

    def __init__(self, path: Path, zone: str, now: Callable[[], float] = time.time) -> None:
        self.path = path
        self.zone = zone  # the Make host whose runs are asked for
        self.now = now

    def covered(self, floors: Mapping[int, int]) -> dict[int, Covered]:
        from makestream.engine.history import Covered

        out: dict[int, Covered] = {}
        left = SPAN_RUNS_TOTAL
        try:
            conn = open_read(self.path)
            if conn is None:
                return {}
            try:
                for sid in sorted(floors):
                    if left <= 0:
                        break
                    until, rows = query.covered_runs(
                        conn, self.zone, sid, floors[sid], limit=min(SPAN_RUNS_MAX, left),
                        now_ms=int(self.now() * 1000),
                    )
                    if until <= floors[sid]:
                        continue
                    left -= len(rows)
                    runs = [(at, finished_from(body)) for at, body in rows]
                    out[sid] = Covered(until, runs)
            finally:
                conn.close()
        except (StoreError, sqlite3.Error, ValueError):
            return {}  # the watch reads Make's logs instead, as without a store
        return out


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
        return [finished_from(r["body"]) for r in rows]

    async def trend(
        self, scenario_ids: Sequence[int], since_ms: int, by_s: int = 86400
    ) -> list[dict[str, object]] | None:
        """Per scenario and day (UTC): runs, outcomes, p50/p95 duration; None when the store
        cannot be read."""
        return await anyio.to_thread.run_sync(self._trend, list(scenario_ids), since_ms, by_s)

    def _trend(
        self, scenario_ids: list[int], since_ms: int, by_s: int
    ) -> list[dict[str, object]] | None:
        from makestream.events import rfc3339

        try:
            conn = open_read(self.path)
            if conn is None:
                return []
            try:
                rows = query.stats(
                    conn, query.Selection(scenario_ids=scenario_ids, since_ms=since_ms),
                    by_s=by_s,
                )
            finally:
                conn.close()
        except (StoreError, sqlite3.Error):
            return None
        out: dict[int, dict[str, object]] = {}
        for row in rows:
            entry = out.setdefault(row.scenario_id, {
                "scenario_id": row.scenario_id, "scenario_name": row.scenario_name, "days": []})
            days = entry["days"]
            assert isinstance(days, list)
            days.append({
                "start": rfc3339((row.bucket_ms or 0) / 1000), "runs": row.runs,
                "success": row.success, "warning": row.warning, "error": row.error,
                "p50_ms": row.p50_ms, "p95_ms": row.p95_ms, "operations": row.operations,
                "centicredits": row.centicredits,
            })
        return [out[sid] for sid in sorted(out)]

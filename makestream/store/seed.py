"""The store as the engine's `HistorySource`: recent durations of a scenario without a request.

Reads are small (at most SEED_RUNS rows of one covering index) and made on the caller's thread;
in WAL mode they never wait for a writer. A store that cannot be read is simply not consulted:
the engine then learns history from Make's logs as it would without a store.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from makestream.engine.history import Seed
from makestream.store import query
from makestream.store.schema import StoreError, open_read


class HistoryFromStore:
    """Recent runs of each scenario, from a store file (opened on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._broken = False
        self.answered = 0  # scenarios it knew, for benchmarks and tests

    def recent(self, scenario_id: int) -> Seed | None:
        if self._broken:
            return None
        try:
            if self._conn is None:
                self._conn = open_read(self.path)
                if self._conn is None:
                    self._broken = True  # no file yet: nothing to know
                    return None
            durations, last = query.recent_durations(self._conn, scenario_id)
        except (StoreError, sqlite3.Error):
            self._broken = True
            return None
        if not durations:
            return None
        self.answered += 1
        return Seed(durations, last)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

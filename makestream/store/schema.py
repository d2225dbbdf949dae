"""Opening a store file: its pragmas, its schema version (`PRAGMA user_version`) and migrations.

A file is opened in WAL mode, so that readers never wait for the writer and several processes can
share it; `busy_timeout` makes a writer wait for another's transaction instead of failing at once.
`MIGRATIONS[n]` takes a file from version n to n + 1, inside one transaction, so that a crash
mid-migration leaves the old version. A file written by a newer makestream is refused, never
rewritten.

Tables (version 2):

    executions  one row per execution id: the figures `history` filters and sums, the
                `execution.finished` event itself (without seq and cursor) for export,
                `log_ms`, the time Make's log lists the run at (what cursors count in; NULL
                when it was reported before its log was read), and `zone`, the Make host
                (scenario ids are unique only within one)
    notes       alert transitions and scenario changes, keyed so that two processes that saw
                the same one store it once (see `rows.note_key`)
    scenarios   names and teams, for display and `history --team`
    coverage    per stream and scenario of a zone, a span of log time [from_ms, to_ms) in
                which that stream reported every run, and which the rows above therefore hold
                complete; a resumed watch replays such spans without reading Make's logs
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from makestream.errors import UsageError

SCHEMA_VERSION = 2
# How long a writer waits for another process's transaction before calling the file locked.
BUSY_TIMEOUT_MS = 5000

_V1 = """
CREATE TABLE executions (
    execution_id   TEXT PRIMARY KEY,
    scenario_id    INTEGER NOT NULL,
    ended_ms       INTEGER NOT NULL,
    status         TEXT NOT NULL,
    duration_ms    INTEGER,
    operations     INTEGER,
    centicredits   INTEGER,
    transfer_bytes INTEGER,
    scenario_name  TEXT,
    body           TEXT NOT NULL
);
-- Covering index: stats and duration seeds for one scenario over a time range never touch rows.
CREATE INDEX executions_by_scenario
    ON executions (scenario_id, ended_ms, status, duration_ms, operations, centicredits);
CREATE INDEX executions_by_time ON executions (ended_ms);
CREATE TABLE notes (
    key         TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    scenario_id INTEGER,
    ts_ms       INTEGER NOT NULL,
    alert_id    TEXT,
    body        TEXT NOT NULL
);
CREATE INDEX notes_by_time ON notes (ts_ms);
CREATE INDEX notes_by_scenario ON notes (scenario_id, ts_ms);
CREATE TABLE scenarios (
    scenario_id INTEGER PRIMARY KEY,
    name        TEXT,
    team_id     INTEGER,
    seen_ms     INTEGER NOT NULL
);
"""

_V2 = """
ALTER TABLE executions ADD COLUMN log_ms INTEGER;
ALTER TABLE executions ADD COLUMN zone TEXT;
CREATE INDEX executions_by_log ON executions (zone, scenario_id, log_ms);
CREATE TABLE coverage (
    stream      TEXT NOT NULL,
    zone        TEXT NOT NULL,
    scenario_id INTEGER NOT NULL,
    from_ms     INTEGER NOT NULL,
    to_ms       INTEGER NOT NULL,
    PRIMARY KEY (stream, scenario_id)
);
CREATE INDEX coverage_by_scenario ON coverage (zone, scenario_id, to_ms);
"""

# MIGRATIONS[n] upgrades version n to n + 1.
MIGRATIONS: dict[int, str] = {0: _V1, 1: _V2}


class StoreError(UsageError):
    """The store file cannot be used: corrupt, locked, read-only, full, or from a newer version.

    For `history` commands this is exit 2; a watch reports it and streams on without the store.
    """


def describe(exc: BaseException, path: Path) -> str:
    """One line about a failed store operation, in the user's words."""
    text = str(exc).strip() or type(exc).__name__
    low = text.lower()
    if isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in low or "malformed" in low or "corrupt" in low
    ):
        why = "the file is not a makestream store or is damaged (move it aside to start anew)"
    elif "locked" in low or "busy" in low:
        why = "the file is locked by another program"
    elif "full" in low:
        why = "the disk is full"
    elif "readonly" in low or "read-only" in low or "unable to open" in low:
        why = "cannot write there (read-only file or folder?)"
    elif isinstance(exc, OSError) and exc.strerror:
        why = exc.strerror
    else:
        why = text
    return f"history store {path}: {why}"


def _connect(target: str, *, uri: bool = False) -> sqlite3.Connection:
    # isolation_level=None: transactions are begun and ended explicitly (BEGIN IMMEDIATE).
    conn = sqlite3.connect(
        target, uri=uri, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
        check_same_thread=False,
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def open_write(path: Path) -> sqlite3.Connection:
    """Open (creating it and its folder if needed) a store for writing, migrated to the current
    version. Raises StoreError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        new = not path.exists()
        conn = _connect(str(path))
        try:
            if new:
                # Only a file with no table yet takes this; it lets `prune` give space back.
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot use WAL mode (got {mode})")
            # NORMAL in WAL mode: a committed transaction survives a crash of the process;
            # only a power cut may lose the last few.
            conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn, path)
            if new:
                os.chmod(path, 0o600)
        except BaseException:
            conn.close()
            raise
    except StoreError:
        raise
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(describe(exc, path)) from None
    return conn


def open_read(path: Path) -> sqlite3.Connection | None:
    """Open a store for reading only, or None when there is no file yet. Raises StoreError."""
    if not path.exists():
        return None
    if not path.is_file():
        raise StoreError(f"history store {path}: not a regular file")
    try:
        # Not mode=ro: a WAL file's readers need its shared-memory index, which a read-only
        # connection cannot create when the last writer removed it.
        conn = _connect(path.resolve().as_uri() + "?mode=rw", uri=True)
        try:
            version = _version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(_newer(path, version))
            if version < SCHEMA_VERSION:
                conn.close()
                conn = open_write(path)  # migrate an older file; nothing else is written
        except BaseException:
            conn.close()
            raise
    except StoreError:
        raise
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc).lower() or "unable to open" in str(exc).lower():
            return _open_read_only(path)
        raise StoreError(describe(exc, path)) from None
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(describe(exc, path)) from None
    return conn


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A store the user may read but not write (another user's, a read-only mount)."""
    try:
        conn = _connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        version = _version(conn)
    except sqlite3.Error as exc:
        raise StoreError(describe(exc, path)) from None
    if version != SCHEMA_VERSION:
        conn.close()
        raise StoreError(_newer(path, version) if version > SCHEMA_VERSION else
                         f"history store {path}: version {version} needs an upgrade, and the "
                         "file is read-only")
    return conn


def _version(conn: sqlite3.Connection) -> int:
    # Reading the schema touches the file's pages: a damaged or foreign file fails here.
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _newer(path: Path, version: int) -> str:
    return (
        f"history store {path}: written by a newer makestream (schema {version}, this one "
        f"knows {SCHEMA_VERSION}); upgrade makestream or use --store with another file"
    )


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(_newer(path, version))
        while version < SCHEMA_VERSION:
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            version += 1
            conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise

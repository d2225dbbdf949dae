"""What is asked of a store: writing batches, pruning, and the reads behind `history`, the engine's
start-up history and the server's replay. Plain functions over a `sqlite3.Connection`.

Filters are one `Selection`; every read uses the `(scenario_id, ended_ms, …)` covering index when
scenarios are named, and the time index otherwise.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from makestream.store.rows import CoverageRow, ExecutionRow, NoteRow

# Durations the engine takes per scenario at start-up: as many as `engine.history.History` keeps.
SEED_RUNS = 50
# How long an emptied coverage span is kept (see `prune`).
SPAN_KEPT_MS = 86_400_000


@dataclass(frozen=True)
class Selection:
    """Which executions a read covers; empty lists mean all."""

    scenario_ids: Sequence[int] = ()
    team_id: int | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    statuses: Sequence[str] = ()


@dataclass
class Stats:
    """One row of `history stats`: a scenario (and a day or hour with --by)."""

    scenario_id: int
    scenario_name: str | None
    bucket_ms: int | None
    runs: int = 0
    success: int = 0
    warning: int = 0
    error: int = 0
    p50_ms: int | None = None
    p95_ms: int | None = None
    max_ms: int | None = None
    operations: int = 0
    centicredits: int = 0

    def rate(self, status: str) -> float:
        return (getattr(self, status) / self.runs) if self.runs else 0.0


def insert(
    conn: sqlite3.Connection,
    executions: Sequence[ExecutionRow],
    notes: Sequence[NoteRow],
    scenarios: Sequence[tuple[int, str | None, int | None]],
    *,
    now_ms: int,
    coverage: Sequence[CoverageRow] = (),
) -> int:
    """Write one batch in one transaction; rows whose key is already stored are left as they are
    (a coverage span only grows). Returns how many runs and notes were new."""
    before = conn.total_changes
    conn.execute("BEGIN IMMEDIATE")
    try:
        # A run first stored by a process that did not know its log time (a replica that read
        # it from the bus) learns it from one that did; nothing else about a stored run changes.
        conn.executemany(
            "INSERT INTO executions (execution_id, scenario_id, ended_ms, status, duration_ms, "
            "operations, centicredits, transfer_bytes, scenario_name, body, log_ms, zone) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (execution_id) DO UPDATE SET "
            "log_ms = excluded.log_ms, zone = coalesce(zone, excluded.zone) "
            "WHERE log_ms IS NULL AND excluded.log_ms IS NOT NULL",
            [(r.execution_id, r.scenario_id, r.ended_ms, r.status, r.duration_ms, r.operations,
              r.centicredits, r.transfer_bytes, r.scenario_name, r.body, r.log_ms, r.zone)
             for r in executions],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO notes VALUES (?,?,?,?,?,?)",
            [(n.key, n.type, n.scenario_id, n.ts_ms, n.alert_id, n.body) for n in notes],
        )
        written = conn.total_changes - before
        # Written after the runs it vouches for, in the same transaction.
        conn.executemany(
            "INSERT INTO coverage VALUES (?,?,?,?,?) ON CONFLICT (stream, scenario_id) DO UPDATE "
            "SET to_ms = max(to_ms, excluded.to_ms)",
            [(c.stream, c.zone, c.scenario_id, c.from_ms, c.to_ms) for c in coverage],
        )
        named = {r.scenario_id: r.scenario_name for r in executions if r.scenario_name}
        rows = [(sid, name, team) for sid, name, team in scenarios]
        rows += [(sid, name, None) for sid, name in named.items()]
        conn.executemany(
            "INSERT INTO scenarios VALUES (?,?,?,?) ON CONFLICT (scenario_id) DO UPDATE SET "
            "name = coalesce(excluded.name, name), team_id = coalesce(excluded.team_id, team_id), "
            "seen_ms = excluded.seen_ms",
            [(sid, name, team, now_ms) for sid, name, team in rows],
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return written


def prune(conn: sqlite3.Connection, *, cutoff_ms: int, limit: int | None = None) -> int:
    """Delete rows older than `cutoff_ms` (at most `limit` per table); returns how many went."""
    cap = "" if limit is None else f" LIMIT {int(limit)}"
    before = conn.total_changes
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "DELETE FROM executions WHERE rowid IN "
            f"(SELECT rowid FROM executions WHERE ended_ms < ?{cap})", (cutoff_ms,),
        )
        conn.execute(
            f"DELETE FROM notes WHERE rowid IN (SELECT rowid FROM notes WHERE ts_ms < ?{cap})",
            (cutoff_ms,),
        )
        # Runs are pruned by their end, and Make lists a run at its start or its end, so what
        # remains of a span above the cutoff is still complete; below it, it vouches for nothing.
        # A span is cut, not deleted, while its stream may still be writing it (its next write
        # would bring back the old start): only a day after it ended.
        conn.execute("UPDATE coverage SET from_ms = ? WHERE from_ms < ?", (cutoff_ms, cutoff_ms))
        conn.execute("DELETE FROM coverage WHERE to_ms <= from_ms AND to_ms < ?",
                     (cutoff_ms - SPAN_KEPT_MS,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    gone = conn.total_changes - before
    if gone:
        conn.execute("PRAGMA incremental_vacuum")
    return gone


def _where(sel: Selection, *, time_col: str = "ended_ms") -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if sel.scenario_ids:
        clauses.append(f"scenario_id IN ({','.join('?' * len(sel.scenario_ids))})")
        args.extend(sel.scenario_ids)
    if sel.team_id is not None:
        clauses.append("scenario_id IN (SELECT scenario_id FROM scenarios WHERE team_id = ?)")
        args.append(sel.team_id)
    if sel.since_ms is not None:
        clauses.append(f"{time_col} >= ?")
        args.append(sel.since_ms)
    if sel.until_ms is not None:
        clauses.append(f"{time_col} < ?")
        args.append(sel.until_ms)
    if sel.statuses and time_col == "ended_ms":
        clauses.append(f"status IN ({','.join('?' * len(sel.statuses))})")
        args.extend(sel.statuses)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def executions(
    conn: sqlite3.Connection, sel: Selection, *, limit: int | None = None
) -> list[dict[str, Any]]:
    """Stored executions, oldest first (the newest `limit` when given)."""
    where, args = _where(sel)
    sql = ("SELECT execution_id, scenario_id, scenario_name, ended_ms, status, duration_ms, "
           f"operations, centicredits, transfer_bytes, body FROM executions{where}")
    if limit is not None:
        sql = f"SELECT * FROM ({sql} ORDER BY ended_ms DESC, execution_id DESC LIMIT {int(limit)})"
    sql += " ORDER BY ended_ms, execution_id"
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


def names(conn: sqlite3.Connection) -> dict[int, str]:
    """The last known name of every stored scenario."""
    return {sid: name for sid, name in conn.execute(
        "SELECT scenario_id, name FROM scenarios WHERE name IS NOT NULL")}


def percentile(ordered: Sequence[int], q: float) -> int | None:
    """Nearest-rank percentile of sorted values, as `engine.history.History` computes it."""
    if not ordered:
        return None
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def stats(conn: sqlite3.Connection, sel: Selection, *, by_s: int | None = None) -> list[Stats]:
    """Runs, outcomes, duration percentiles, operations and credits per scenario (and per time
    bucket of `by_s` seconds, in UTC).

    Counts and sums are SQL aggregates; the percentiles come from one pass over the durations in
    order, taking the value at each group's ranks, so that no group is sorted in Python.
    """
    where, args = _where(sel)
    bucket = "NULL" if by_s is None else f"(ended_ms / {by_s * 1000}) * {by_s * 1000}"
    known = names(conn)
    out: dict[tuple[int, int | None], Stats] = {}
    sizes: dict[tuple[int, int | None], int] = {}
    for (sid, b, runs, ok, warn, err, timed, longest, ops, credits) in conn.execute(
        f"SELECT scenario_id, {bucket} AS b, count(*), total(status = 'success'), "
        "total(status = 'warning'), total(status = 'error'), count(duration_ms), "
        f"max(duration_ms), total(operations), total(centicredits) FROM executions{where} "
        "GROUP BY scenario_id, b", args,
    ):
        out[(sid, b)] = Stats(sid, known.get(sid), b, runs=runs, success=int(ok),
                              warning=int(warn), error=int(err), max_ms=longest,
                              operations=int(ops), centicredits=int(credits))
        sizes[(sid, b)] = timed
    ranks = {key: (_rank(n, 50), _rank(n, 95)) for key, n in sizes.items() if n}
    timed_where = f"{where} AND duration_ms IS NOT NULL" if where else \
        " WHERE duration_ms IS NOT NULL"
    current: tuple[int, int | None] | None = None
    index = 0
    for sid, b, duration in conn.execute(
        f"SELECT scenario_id, {bucket} AS b, duration_ms FROM executions{timed_where} "
        "ORDER BY scenario_id, b, duration_ms", args,
    ):
        key = (sid, b)
        if key != current:
            current, index = key, 0
        p50, p95 = ranks[key]
        if index == p50:
            out[key].p50_ms = duration
        if index == p95:
            out[key].p95_ms = duration
        index += 1
    return [out[k] for k in sorted(out, key=lambda k: (k[0], k[1] or 0))]


def _rank(n: int, q: float) -> int:
    """The index `percentile` picks among n sorted values."""
    return max(0, min(n - 1, round(q / 100 * n + 0.5) - 1))


def series(
    conn: sqlite3.Connection, sel: Selection, *, metric: str
) -> list[tuple[int, float]]:
    """(ended_ms, value) per execution for `history plot`: duration in seconds, 1 for an error
    (0 otherwise), or operations."""
    column = {"duration": "duration_ms / 1000.0", "errors": "status = 'error'",
              "operations": "operations"}[metric]
    where, args = _where(sel)
    sql = f"SELECT ended_ms, {column} FROM executions{where} ORDER BY ended_ms"
    return [(t, float(v)) for t, v in conn.execute(sql, args) if v is not None]


def recent_durations(
    conn: sqlite3.Connection, scenario_id: int, *, limit: int = SEED_RUNS
) -> tuple[list[int], int | None]:
    """The scenario's last `limit` durations, oldest first, and when its last run ended (ms)."""
    rows = conn.execute(
        "SELECT ended_ms, duration_ms FROM executions WHERE scenario_id = ? "
        "ORDER BY ended_ms DESC LIMIT ?", (scenario_id, limit),
    ).fetchall()
    durations = [d for _, d in reversed(rows) if d is not None]
    return durations, (rows[0][0] if rows else None)


def events(conn: sqlite3.Connection, sel: Selection, *, types: Iterable[str] = ()) -> Iterator[str]:
    """Stored event bodies in time order: executions (by end) merged with notes (by time)."""
    wanted = set(types)
    ex_where, ex_args = _where(sel)
    note_sel = Selection(sel.scenario_ids, sel.team_id, sel.since_ms, sel.until_ms)
    no_where, no_args = _where(note_sel, time_col="ts_ms")
    parts: list[str] = []
    args: list[Any] = []
    if not wanted or "execution.finished" in wanted:
        parts.append(f"SELECT ended_ms AS t, body FROM executions{ex_where}")
        args += ex_args
    note_types = [t for t in ("alert.raised", "alert.resolved", "scenario.changed")
                  if not wanted or t in wanted]
    if note_types and not sel.statuses:
        clause = f"type IN ({','.join('?' * len(note_types))})"
        joined = f"{no_where} AND {clause}" if no_where else f" WHERE {clause}"
        parts.append(f"SELECT ts_ms AS t, body FROM notes{joined}")
        args += no_args + note_types
    if not parts:
        return iter(())
    sql = " UNION ALL ".join(parts) + " ORDER BY t"
    return (body for _, body in conn.execute(sql, args))


def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """How many executions and notes are stored."""
    return (conn.execute("SELECT count(*) FROM executions").fetchone()[0],
            conn.execute("SELECT count(*) FROM notes").fetchone()[0])


def covered_runs(
    conn: sqlite3.Connection, zone: str, scenario_id: int, floor_ms: int, *, limit: int,
    now_ms: int,
) -> tuple[int, list[tuple[int, str]]]:
    """How far from `floor_ms` the stored spans of a scenario of Make host `zone` reach without
    a gap (never past `now_ms`), and the runs stored in between: (reach, [(log_ms, body), …]
    oldest first). At most `limit` runs: past that, the reach stops short of the first run left
    out. Reach == floor_ms: nothing covered."""
    reach = floor_ms
    for start, end in conn.execute(
        "SELECT from_ms, to_ms FROM coverage WHERE zone = ? AND scenario_id = ? AND to_ms > ? "
        "ORDER BY from_ms", (zone, scenario_id, floor_ms),
    ):
        if start > reach:
            break
        reach = max(reach, end)
    reach = min(reach, now_ms)
    if reach <= floor_ms:
        return floor_ms, []
    rows = conn.execute(
        "SELECT log_ms, body FROM executions WHERE zone = ? AND scenario_id = ? AND log_ms >= ? "
        "AND log_ms < ? ORDER BY log_ms, execution_id LIMIT ?",
        (zone, scenario_id, floor_ms, reach, limit + 1),
    ).fetchall()
    if len(rows) > limit:
        reach = int(rows[limit][0])
        rows = [r for r in rows[:limit] if r[0] < reach]
    return reach, [(int(at), str(body)) for at, body in rows]

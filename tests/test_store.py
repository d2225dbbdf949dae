"""The history store: its file, its keys, its writer thread, its queries, and its faults."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from makestream.engine.history import History, seed
from makestream.errors import UsageError
from makestream.events import AlertRaised, AlertResolved, ExecutionFinished, ScenarioChanged
from makestream.store import (
    SCHEMA_VERSION,
    StoreError,
    StoreWriter,
    open_read,
    open_write,
    query,
    schema,
    writer,
)
from makestream.store.paths import default_path, resolve
from makestream.store.query import Selection
from makestream.store.rows import to_event, to_row
from makestream.store.seed import HistoryFromStore

DAY_MS = 86_400_000
T0 = 1_796_000_000_000  # a fixed moment, epoch ms


def iso(ms: int) -> str:
    from makestream.events import rfc3339

    return rfc3339(ms / 1000)


def finished(eid: str, sid: int = 1, *, ended_ms: int = T0, status: str = "success",
             duration_ms: int | None = 1000, operations: int = 3, name: str = "Orders",
             **extra: object) -> ExecutionFinished:
    return ExecutionFinished(
        scenario_id=sid, execution_id=eid, status=status, ended_at=iso(ended_ms),  # type: ignore[arg-type]
        started_at=iso(ended_ms - (duration_ms or 0)), duration_ms=duration_ms,
        operations=operations, centicredits=operations * 100, transfer_bytes=10,
        scenario_name=name, ts=iso(ended_ms + 500), seq=7, cursor="1.abc~k.7", **extra,
    )


def alert(kind: type[AlertRaised | AlertResolved], *, ts_ms: int = T0,
          execution_id: str | None = None, **extra: object) -> AlertRaised | AlertResolved:
    return kind(alert_id="consecutive_failures:1", rule="consecutive_failures",
                severity="warning", message="3 failures in a row", scenario_id=1,
                execution_id=execution_id, ts=iso(ts_ms), **extra)


def write(path: Path, events: list[object], **kw: object) -> StoreWriter:
    w = StoreWriter(path, keep_s=10_000 * 86400, now=lambda: T0 / 1000, **kw).start()  # type: ignore[arg-type]
    for event in events:
        w.offer(event)  # type: ignore[arg-type]
    assert w.flush()
    w.close()
    return w


def connect(path: Path) -> sqlite3.Connection:
    conn = open_read(path)
    assert conn is not None
    return conn


# -- the file ------------------------------------------------------------------------------------


def test_a_new_store_is_wal_versioned_and_private(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "history.db"
    open_write(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"executions", "notes", "scenarios"} <= tables
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    open_write(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    for opener in (open_write, open_read):
        with pytest.raises(StoreError, match="newer makestream"):
            opener(path)
    assert path.read_bytes() == before


def test_an_empty_file_is_migrated_from_version_0(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    sqlite3.connect(path).close()  # a valid, empty database: version 0
    conn = open_read(path)
    assert conn is not None
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_failed_migration_leaves_the_old_version(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.db"
    open_write(path).close()
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(schema.MIGRATIONS, SCHEMA_VERSION,
                        "CREATE TABLE extra (x INTEGER); CREATE TABLE broken (")
    with pytest.raises(StoreError):
        open_write(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name='extra'").fetchone()[0] == 0


@pytest.mark.parametrize("content", [b"not a database at all, " * 100, b"SQLite format 3\x00" +
                                     b"\xff" * 4000])
def test_a_damaged_file_is_one_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(content)
    with pytest.raises(StoreError) as caught:
        open_read(path)
    assert "is not a makestream store or is damaged" in caught.value.message
    assert "\n" not in caught.value.message


def test_where_the_store_lives(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path)}
    assert default_path(env) == tmp_path / "makestream" / "history.db"
    assert resolve(None, False, env=env).path == tmp_path / "makestream" / "history.db"
    assert resolve(None, False, env={**env, "MAKESTREAM_STORE": "/x/y.db"}).path == Path("/x/y.db")
    assert resolve(None, False, env={**env, "MAKESTREAM_STORE": "off"}).path is None
    named = resolve(tmp_path / "a.db", False, env={"MAKESTREAM_STORE": "/x"})
    assert named.path == tmp_path / "a.db"
    assert resolve(None, True, env=env).path is None
    assert resolve(None, False, "30d", env=env).keep_s == 30 * 86400
    for bad in ("soon", "0s"):
        with pytest.raises(UsageError, match="--keep"):
            resolve(None, False, bad, env=env)
    with pytest.raises(UsageError, match="is a directory"):
        resolve(tmp_path, False, env=env)


# -- rows and keys -------------------------------------------------------------------------------


def test_an_execution_is_stored_once_whoever_sees_it(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    write(path, [finished("a"), finished("a", status="error"), finished("b")])
    write(path, [finished("a"), finished("c")])  # a restarted watch, or another process
    conn = connect(path)
    rows = query.executions(conn, Selection())
    assert [r["execution_id"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["status"] == "success"  # the first report stands


def test_alert_transitions_are_keyed_by_execution_or_minute(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    write(path, [
        alert(AlertRaised, execution_id="x"),
        alert(AlertRaised, execution_id="x", ts_ms=T0 + 5000),  # the same, seen by another
        alert(AlertRaised, execution_id="x", renotified=True),  # a reminder: not kept
        alert(AlertResolved, execution_id="y"),
        alert(AlertRaised, ts_ms=T0 + 120_000),  # no execution: one per minute
        alert(AlertRaised, ts_ms=T0 + 120_001),
        alert(AlertRaised, ts_ms=T0 + 400_000),
    ])
    assert query.counts(connect(path)) == (0, 4)


def test_scenario_changes_are_kept_once_per_state_and_minute(tmp_path: Path) -> None:
    change = ScenarioChanged(scenario_id=1, changed=["is_active"], is_active=False, ts=iso(T0))
    path = tmp_path / "h.db"
    write(path, [change, change.model_copy(update={"ts": iso(T0 + 1000)}),
                 change.model_copy(update={"is_active": True})])
    assert query.counts(connect(path)) == (0, 2)


def test_a_stored_event_comes_back_as_the_stream_carried_it() -> None:
    event = finished("a", error={"message": "boom", "cause_module": "http:1"}, custom="kept")
    row = to_row(event)
    assert row is not None
    back = to_event(row.body, 3)
    assert back["seq"] == 3 and back["cursor"] == ""
    assert back["error"] == {"message": "boom", "cause_module": "http:1"}
    assert back["custom"] == "kept"
    original = event.model_dump(mode="json", exclude_none=True)
    assert {k: v for k, v in back.items() if k not in ("seq", "cursor")} == {
        k: v for k, v in original.items() if k not in ("seq", "cursor")}


# -- the writer ----------------------------------------------------------------------------------


def test_the_writer_batches_and_counts_what_is_new(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    w = write(path, [finished(f"e{i}", ended_ms=T0 + i) for i in range(2500)]
              + [finished("e1")])
    assert w.written == 2500 and w.take_problem() is None


def test_a_full_queue_drops_and_says_so_once(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path / "h.db", keep_s=1.0, queue_max=2)  # not started: nothing drains
    for i in range(5):
        w.offer(finished(f"e{i}"))
    assert w.dropped == 3
    problem = w.take_problem()
    assert problem is not None and "events are being dropped" in problem
    assert w.take_problem() is None  # said once


def test_events_the_store_does_not_keep_are_not_queued(tmp_path: Path) -> None:
    from makestream.events import StreamHeartbeat

    w = StoreWriter(tmp_path / "h.db", keep_s=1.0, queue_max=1)
    for _ in range(3):
        w.offer(StreamHeartbeat(used_last_minute=1, budget_per_min=1.0, running=0))
    assert w.dropped == 0


def test_a_damaged_file_turns_the_writer_off(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"garbage " * 1000)
    w = StoreWriter(path, keep_s=1.0).start()
    w.offer(finished("a"))
    w.close()
    assert w.off
    problem = w.take_problem()
    assert problem is not None and "damaged" in problem and "not being stored" in problem
    w.offer(finished("b"))  # quietly dropped from now on
    assert path.read_bytes() == b"garbage " * 1000


def _unwritable(tmp_path: Path) -> Path:
    """A path no one may create a file at: a read-only folder, or for root (whom folder modes do
    not stop) a read-only filesystem."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o555)
        return folder / "history.db"
    return Path("/proc/makestream-history.db")


def test_a_read_only_place_turns_the_writer_off(tmp_path: Path) -> None:
    w = StoreWriter(_unwritable(tmp_path), keep_s=1.0).start()
    w.offer(finished("a"))
    w.close()
    problem = w.take_problem()
    assert w.off and problem is not None and problem.startswith("history store ")


def test_a_locked_file_is_retried_and_nothing_is_lost(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 20)
    monkeypatch.setattr(writer, "RETRY_MIN_S", 0.01)
    path = tmp_path / "h.db"
    open_write(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    w = StoreWriter(path, keep_s=1e9, now=lambda: T0 / 1000).start()
    w.offer(finished("a"))
    assert not w.flush(timeout=0.3)  # waiting for the lock
    problem = w.take_problem()
    assert problem is not None and "locked" in problem and "retrying" in problem
    other.execute("ROLLBACK")
    assert w.flush()
    w.close()
    assert [r["execution_id"] for r in query.executions(connect(path), Selection())] == ["a"]


def test_retention_prunes_a_chunk_at_a_time(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.db"
    old = [finished(f"o{i}", ended_ms=T0 - 100 * DAY_MS + i) for i in range(30)]
    write(path, [*old, finished("new"), alert(AlertRaised, ts_ms=T0 - 100 * DAY_MS)])
    monkeypatch.setattr(writer, "PRUNE_CHUNK", 10)
    w = StoreWriter(path, keep_s=90 * 86400, now=lambda: T0 / 1000).start()
    w.offer(finished("another"))
    w.close()
    assert query.counts(connect(path)) == (22, 0)  # 10 of the 30 old runs went, and the alert
    assert query.prune(connect(path), cutoff_ms=T0 - 90 * DAY_MS) == 20


# -- queries -------------------------------------------------------------------------------------


def test_stats_per_scenario_and_bucket(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    runs = [finished(f"a{i}", 1, ended_ms=T0 + i * 3_600_000, duration_ms=(i + 1) * 1000,
                     status="error" if i % 4 == 0 else "success", operations=i)
            for i in range(20)]
    runs += [finished("b1", 2, duration_ms=None, status="warning", name="Other")]
    write(path, runs)
    conn = connect(path)
    [one, two] = query.stats(conn, Selection(since_ms=T0))
    durations = sorted((i + 1) * 1000 for i in range(20))
    assert (one.runs, one.error, one.success) == (20, 5, 15)
    assert one.p50_ms == query.percentile(durations, 50) == History(50, durations).percentile(50)
    assert one.p95_ms == History(50, durations).percentile(95)
    assert one.max_ms == 20_000
    assert one.operations == sum(range(20)) and one.centicredits == sum(range(20)) * 100
    assert one.rate("error") == 0.25 and one.scenario_name == "Orders"
    assert (two.runs, two.warning, two.p50_ms) == (1, 1, None)
    only = query.stats(conn, Selection(scenario_ids=[1], since_ms=T0 + 10 * 3_600_000))
    assert [s.runs for s in only] == [10]
    by_day = query.stats(conn, Selection(scenario_ids=[1]), by_s=86400)
    assert sum(s.runs for s in by_day) == 20 and len(by_day) >= 1
    assert all(s.bucket_ms is not None and s.bucket_ms % DAY_MS == 0 for s in by_day)


def test_listing_filters_and_the_newest_n(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    write(path, [finished(f"e{i}", 1 + i % 2, ended_ms=T0 + i, status="error" if i % 3 else
                          "success") for i in range(12)])
    conn = connect(path)
    errors = query.executions(conn, Selection(statuses=["error"]))
    assert [r["execution_id"] for r in errors] == [f"e{i}" for i in range(12) if i % 3]
    newest = query.executions(conn, Selection(scenario_ids=[2]), limit=2)
    assert [r["execution_id"] for r in newest] == ["e9", "e11"]


def test_team_selection_uses_what_watch_noted(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    w = StoreWriter(path, keep_s=1e9, now=lambda: T0 / 1000).start()
    w.note_scenarios([(1, "Orders", 7), (2, "Other", 8)])
    w.offer(finished("a", 1))
    w.offer(finished("b", 2))
    w.close()
    rows = query.executions(connect(path), Selection(team_id=7))
    assert [r["execution_id"] for r in rows] == ["a"]


def test_export_merges_executions_and_notes_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    write(path, [finished("late", ended_ms=T0 + 10_000), alert(AlertRaised, ts_ms=T0 + 5000),
                 finished("early", ended_ms=T0)])
    bodies = list(query.events(connect(path), Selection()))
    assert [b.split('"type":"')[1].split('"')[0] for b in bodies] == [
        "execution.finished", "alert.raised", "execution.finished"]
    only = list(query.events(connect(path), Selection(), types=["alert.raised"]))
    assert len(only) == 1


def test_the_engine_is_seeded_from_the_store(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    assert HistoryFromStore(path).recent(1) is None  # no file yet: nothing, and no file made
    assert not path.exists()
    write(path, [finished(f"e{i}", ended_ms=T0 + i, duration_ms=1000 + i) for i in range(80)])
    source = HistoryFromStore(path)
    known = source.recent(1)
    assert known is not None
    assert known.durations_ms == [1000 + i for i in range(30, 80)]  # the last 50, oldest first
    assert known.last_run_ms == T0 + 79
    assert source.recent(2) is None

    learned: list[tuple[int, list[int | None], float | None]] = []

    class Alerts:
        def learn(self, sid: int, durations: object = (), *, last_run_at: float | None = None
                  ) -> None:
            learned.append((sid, list(durations), last_run_at))  # type: ignore[call-overload]

    history = History()
    assert seed(history, Alerts(), source, 1)
    assert history.expected_ms == History(50, known.durations_ms).expected_ms
    assert learned == [(1, known.durations_ms, (T0 + 79) / 1000)]
    assert not seed(History(), None, source, 2)


def test_a_damaged_store_is_not_consulted(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"garbage " * 100)
    assert HistoryFromStore(path).recent(1) is None


# -- processes -----------------------------------------------------------------------------------

_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from makestream.events import ExecutionFinished
    from makestream.store import StoreWriter
    path, first, last = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    w = StoreWriter(path, keep_s=1e12).start()
    for i in range(first, last):
        w.offer(ExecutionFinished(scenario_id=i % 7, execution_id=f"e{i}", status="success",
                                  duration_ms=i, ts="2026-12-01T00:00:00.000Z"))
    assert w.flush(60)
    w.close()
    problem = w.take_problem()
    print(w.written, problem or "")
""")


def test_two_processes_writing_one_store_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(a), str(b)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for a, b in ((0, 6000), (3000, 9000))
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    written = [int(out.split()[0]) for out, _ in outs]
    assert sum(written) == 9000  # the 3000 both offered were written by exactly one
    conn = connect(path)
    ids = [r[0] for r in conn.execute("SELECT execution_id FROM executions")]
    assert len(ids) == len(set(ids)) == 9000
    assert set(ids) == {f"e{i}" for i in range(9000)}


_CRASHER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from makestream.events import ExecutionFinished
    from makestream.store import StoreWriter
    w = StoreWriter(Path(sys.argv[1]), keep_s=1e12).start()
    i = 0
    while True:
        w.offer(ExecutionFinished(scenario_id=1, execution_id=f"x{i}", status="success",
                                  ts="2026-12-01T00:00:00.000Z"))
        i += 1
        if i == 2000:
            w.flush()
            print("flushed", flush=True)
""")


def test_a_crash_mid_write_loses_nothing_already_stored(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    write(path, [finished(f"kept{i}") for i in range(100)])
    with subprocess.Popen([sys.executable, "-c", _CRASHER, str(path)],
                          stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "flushed"
        proc.send_signal(signal.SIGKILL)  # while it keeps writing batches
        proc.wait(timeout=10)
    conn = connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = {r[0] for r in conn.execute("SELECT execution_id FROM executions")}
    assert {f"kept{i}" for i in range(100)} <= ids
    assert {f"x{i}" for i in range(2000)} <= ids


def test_a_caller_can_wait_until_its_event_is_on_disk(tmp_path: Path) -> None:
    from makestream.events import StreamHeartbeat

    path = tmp_path / "h.db"
    w = StoreWriter(path, keep_s=1e9, now=lambda: T0 / 1000).start()
    assert w.offer(StreamHeartbeat(used_last_minute=1, budget_per_min=1.0, running=0)) == 0
    tickets = [w.offer(finished(f"e{i}")) for i in range(3)]
    assert tickets == [1, 2, 3]
    assert w.wait_stored(tickets[-1], timeout=10)
    conn = connect(path)  # another connection sees them: committed
    assert query.counts(conn) == (3, 0)
    w.close()


def test_waiting_on_a_store_that_cannot_write_ends_at_once(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"garbage " * 1000)
    w = StoreWriter(path, keep_s=1.0).start()
    ticket = w.offer(finished("a"))
    started = time.monotonic()
    assert not w.wait_stored(ticket or 1, timeout=30)
    assert time.monotonic() - started < 10
    w.close()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=st.lists(st.tuples(st.integers(1, 3), st.integers(0, 3 * DAY_MS),
                               st.sampled_from(["success", "warning", "error"]),
                               st.one_of(st.none(), st.integers(0, 10_000)),
                               st.integers(0, 50)), max_size=60),
       by_s=st.sampled_from([None, 3600, 86400]))
def test_stats_agree_with_a_plain_computation(
    tmp_path: Path, runs: list[tuple[int, int, str, int | None, int]], by_s: int | None
) -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for version in sorted(schema.MIGRATIONS):
        for statement in schema.MIGRATIONS[version].split(";"):
            if statement.strip():
                conn.execute(statement)
    rows = [to_row(finished(f"e{i}", sid, ended_ms=T0 + at, status=status, duration_ms=d,
                            operations=ops)) for i, (sid, at, status, d, ops) in enumerate(runs)]
    query.insert(conn, rows, [], [], now_ms=T0)  # type: ignore[arg-type]
    got = query.stats(conn, Selection(), by_s=by_s)
    groups: dict[tuple[int, int | None], list[tuple[str, int | None, int]]] = {}
    for sid, at, status, d, ops in runs:
        ended = T0 + at
        key = (sid, None if by_s is None else ended // (by_s * 1000) * by_s * 1000)
        groups.setdefault(key, []).append((status, d, ops))
    assert [(s.scenario_id, s.bucket_ms) for s in got] == sorted(
        groups, key=lambda k: (k[0], k[1] or 0))
    for s in got:
        members = groups[(s.scenario_id, s.bucket_ms)]
        durations = sorted(d for _, d, _ in members if d is not None)
        assert s.runs == len(members)
        assert (s.success, s.warning, s.error) == tuple(
            sum(1 for st_, _, _ in members if st_ == k) for k in ("success", "warning", "error"))
        assert s.p50_ms == query.percentile(durations, 50)
        assert s.p95_ms == query.percentile(durations, 95)
        assert s.max_ms == (durations[-1] if durations else None)
        assert s.operations == sum(o for _, _, o in members)
        assert s.centicredits == 100 * s.operations


def test_a_full_disk_is_retried_and_nothing_is_lost(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite answers SQLITE_FULL ("database or disk is full") at max_page_count, as on a full
    # disk; the writer's connection gets a ceiling the first batch cannot fit under.
    monkeypatch.setattr(writer, "RETRY_MIN_S", 0.01)
    monkeypatch.setattr(writer, "RETRY_MAX_S", 0.05)
    opened: list[sqlite3.Connection] = []

    def capped(path: Path) -> sqlite3.Connection:
        conn = open_write(path)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        opened.append(conn)
        return conn

    monkeypatch.setattr(writer, "open_write", capped)
    path = tmp_path / "h.db"
    w = StoreWriter(path, keep_s=1e9, now=lambda: T0 / 1000).start()
    for i in range(200):
        w.offer(finished(f"e{i}", name="x" * 200))
    assert not w.flush(timeout=0.5)
    problem = w.take_problem()
    assert problem is not None and "the disk is full" in problem and "retrying" in problem
    opened[0].execute("PRAGMA max_page_count = 1000000")  # space again
    assert w.flush(timeout=20)
    w.close()
    assert query.counts(connect(path)) == (200, 0)

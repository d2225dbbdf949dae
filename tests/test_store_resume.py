"""`watch --resume` from the history store: a resumed watch takes the runs it owes from spans
that an earlier stream reported completely (`store.recorder` writes them, `store.replay` reads
them), and reads Make's logs only for the rest.

The engine runs in this process against the demo world on a fast clock; the store is a real
file, written by a real writer thread."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import httpx
import pytest

from makestream.clock import Clock
from makestream.engine.cursor import Cursor, Position, short_id
from makestream.engine.tracker import Tracker
from makestream.engine.watch import Watch, WatchOptions
from makestream.events import ExecutionFinished, StreamClosed, StreamOpened, _Event, rfc3339
from makestream.make.budget import Budget
from makestream.make.client import ApiNotice, MakeClient, Token
from makestream.sim import DEMO_TOKEN, Faults, SimZone, demo_world
from makestream.store import StoreWriter, open_read, open_write, query, schema
from makestream.store.recorder import CLOCK_SLACK_MS, Recorder
from makestream.store.replay import StoredSpans
from makestream.store.rows import CoverageRow, to_row
from makestream.timeutil import epoch_ms

pytestmark = pytest.mark.anyio
T0 = 1_800_000_000_000


class Run:
    """One watch over `zone` to clock time `until`: its events and request paths."""

    def __init__(self) -> None:
        self.events: list[_Event] = []
        self.paths: list[str] = []
        self.watch: Watch | None = None

    @property
    def finished(self) -> list[ExecutionFinished]:
        return [e for e in self.events if isinstance(e, ExecutionFinished)]

    def count(self, part: str) -> int:
        return sum(part in p for p in self.paths)


async def watch_until(zone: SimZone, options: WatchOptions, until: float,
                      recorder: Recorder | None = None) -> Run:
    run = Run()

    def observe(notice: ApiNotice) -> None:
        if notice.kind == "request":
            run.paths.append(notice.path)
        if run.watch is not None:
            run.watch.on_notice(notice)

    async with MakeClient(
        "http://sim.test/api/v2", Token(DEMO_TOKEN), budget=Budget(600, clock=zone.clock),
        clock=zone.clock, transport=httpx.ASGITransport(app=zone.app), observer=observe,
    ) as client:
        watch = run.watch = Watch(client, options)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch.run)
            with anyio.move_on_after(zone.clock.real(until - zone.clock.now()) + 5):
                async for event in watch.events:
                    run.events.append(event)
                    if recorder is not None:
                        recorder.offer(event, watch)
                    if zone.clock.now() >= until and options.follow:
                        watch.stop("test")
            watch.events.close()
    return run


def ids(events: list[ExecutionFinished]) -> list[str]:
    return [e.execution_id or "" for e in events]


async def test_a_resumed_watch_takes_what_the_store_holds_and_reads_only_the_rest(
    tmp_path: Path,
) -> None:
    zone = SimZone(demo_world(), clock=Clock(100), seed=4, running_in_logs=True)
    scenarios = [s.id for s in zone.world.scenarios]
    path = tmp_path / "history.db"
    writer = StoreWriter(path, keep_s=90 * 86400, now=zone.clock.now).start()
    recorder = Recorder(writer)
    began = zone.clock.now()
    first = await watch_until(zone, WatchOptions(scenario_ids=scenarios, heartbeat_s=30),
                              began + 1000, recorder)
    recorder.close()
    writer.close()
    assert writer.take_problem() is None
    # A cursor from the middle of the stream: most of its floors lie inside the spans it
    # covered (a floor held back by a run in flight does not; that scenario reads Make).
    opened = next(e for e in first.events if isinstance(e, StreamOpened))
    span_start = (epoch_ms(opened.ts) or 0) + CLOCK_SLACK_MS

    def inside(event: _Event) -> int:
        floors = [p.floor_ms for p in Cursor.decode(event.cursor or "").positions.values()]
        return sum(f > span_start for f in floors)

    middle = next(i for i, e in enumerate(first.events) if isinstance(e, ExecutionFinished)
                  and e.cursor and inside(e) >= len(scenarios) // 2
                  and (epoch_ms(e.ts) or 0) > (began + 500) * 1000)
    cursor_text = first.events[middle].cursor
    assert cursor_text is not None
    before = {e.execution_id for e in first.events[: middle + 1]
              if isinstance(e, ExecutionFinished)}
    after = [e for e in first.events[middle + 1:] if isinstance(e, ExecutionFinished)]
    assert len(after) >= 20, "too few runs after the cursor: the test proves little"

    def resumed(runs: StoredSpans | None) -> WatchOptions:
        return WatchOptions(scenario_ids=scenarios, follow=False,
                            resume=Cursor.decode(cursor_text), runs=runs)

    source = StoredSpans(path, "", zone.clock.now)
    stored = await watch_until(zone, resumed(source), zone.clock.now() + 300)
    control = await watch_until(zone, resumed(None), zone.clock.now() + 300)
    assert stored.watch is not None and control.watch is not None
    got = ids(stored.finished)
    assert len(got) == len(set(got)), "a run reported twice"
    assert not before & set(got), "a run the cursor had delivered was reported again"
    assert set(ids(after)) <= set(got), "a run the first stream reported after the cursor " \
                                        "is missing"
    # Exactly what reading Make's logs alone gives (the control ran a moment later: it may
    # have one more run that ended in between).
    assert set(got) <= set(ids(control.finished))
    extra = set(ids(control.finished)) - set(got)
    truth = {t.execution_id: t for t in zone.truth()}
    assert all(truth[e].ended_at > stored.watch._started_at - 60 for e in extra), extra
    # And cheaper: the stored runs came with their figures and errors, so no detail read.
    assert stored.watch.stored_replays >= len(after) // 4
    assert control.watch.stored_replays == 0
    replayed = {e.execution_id: e for e in stored.finished[: stored.watch.stored_replays]}
    originals = {e.execution_id: e for e in after}
    for eid, event in replayed.items():
        if eid in originals:
            assert event.status == originals[eid].status
            assert event.error == originals[eid].error
            assert event.duration_ms == originals[eid].duration_ms
    failed = sum(e.status != "success" for e in replayed.values())
    assert failed, "no failed run replayed: the detail saving is not exercised"
    assert stored.count("/executions/") + failed <= control.count("/executions/")
    assert stored.count("/logs") <= control.count("/logs")
    # The replayed runs carry cursors that resume after them.
    last = stored.finished[stored.watch.stored_replays - 1]
    assert last.cursor and Cursor.decode(last.cursor).positions


async def test_without_spans_that_reach_the_cursor_the_watch_reads_make(tmp_path: Path) -> None:
    zone = SimZone(demo_world(), clock=Clock(100), seed=5, running_in_logs=True)
    scenarios = [s.id for s in zone.world.scenarios]
    path = tmp_path / "history.db"
    began = zone.clock.now()
    # A cursor from a watch that wrote no store at all...
    first = await watch_until(zone, WatchOptions(scenario_ids=scenarios), began + 400)
    cursor_text = first.finished[-1].cursor
    assert cursor_text
    # ...then a stream that did, but opened after that cursor's floors: a gap.
    writer = StoreWriter(path, keep_s=90 * 86400, now=zone.clock.now).start()
    recorder = Recorder(writer)
    await watch_until(zone, WatchOptions(scenario_ids=scenarios), zone.clock.now() + 600,
                      recorder)
    recorder.close()
    writer.close()
    conn = open_read(path)
    assert conn is not None
    assert conn.execute("SELECT count(*) FROM coverage").fetchone()[0] > 0
    resumed = await watch_until(
        zone, WatchOptions(scenario_ids=scenarios, follow=False,
                           resume=Cursor.decode(cursor_text),
                           runs=StoredSpans(path, "", zone.clock.now)),
        zone.clock.now() + 300)
    assert resumed.watch is not None and resumed.watch.stored_replays == 0
    got = ids(resumed.finished)
    assert len(got) == len(set(got))
    assert not set(ids(first.finished)) & set(got)
    truth = {t.execution_id: t for t in zone.truth()}
    end_first = max(truth[e].ended_at for e in ids(first.finished))
    due = {e for e, t in truth.items()
           if end_first + 30 < t.ended_at < resumed.watch._started_at - 60}
    assert due and due <= set(got)


# -- the parts ----------------------------------------------------------------------------------


def finished(eid: str, sid: int, log_ms: int, status: str = "success") -> ExecutionFinished:
    return ExecutionFinished(
        scenario_id=sid, execution_id=eid, status=status,  # type: ignore[arg-type]
        started_at=rfc3339(log_ms / 1000), ended_at=rfc3339(log_ms / 1000 + 2), duration_ms=2000,
    ).with_log_ms(log_ms)


def spans(path: Path, zone: str = "") -> StoredSpans:
    return StoredSpans(path, zone, lambda: T0 / 1000 + 10**6)


def store_with(path: Path, runs: list[ExecutionFinished], spans: list[CoverageRow],
               zone: str = "") -> None:
    conn = open_write(path)
    rows = [to_row(r, zone) for r in runs]
    query.insert(conn, rows, [], [], now_ms=T0, coverage=spans)  # type: ignore[arg-type]
    conn.close()


def test_spans_chain_from_the_floor_and_stop_at_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    runs = [finished(f"e{i}", 1, T0 + i * 1000) for i in range(100)]
    store_with(path, runs, [
        CoverageRow("a", "", 1, T0 - 5000, T0 + 30_000),
        CoverageRow("b", "", 1, T0 + 20_000, T0 + 50_000),  # overlaps a: the chain goes on
        CoverageRow("c", "", 1, T0 + 60_000, T0 + 90_000),  # a gap before it: not reached
        CoverageRow("d", "", 2, T0, T0 + 90_000),  # another scenario
    ])
    found = spans(path).covered({1: T0 + 10_000})
    assert list(found) == [1]
    assert found[1].until_ms == T0 + 50_000
    assert [e.execution_id for _, e in found[1].runs] == [f"e{i}" for i in range(10, 50)]
    assert [at for at, _ in found[1].runs] == [T0 + i * 1000 for i in range(10, 50)]
    # A floor below every span: nothing is vouched for.
    assert spans(path).covered({1: T0 - 10_000}) == {}
    # No file, a damaged file: nothing, never an error.
    assert spans(tmp_path / "none.db").covered({1: T0}) == {}
    (tmp_path / "bad.db").write_bytes(b"not a database " * 300)
    assert spans(tmp_path / "bad.db").covered({1: T0}) == {}


def test_a_capped_replay_stops_short_of_the_first_run_left_out(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    # Two runs share each log time: the cut must not fall between them.
    runs = [finished(f"e{i:03}", 1, T0 + (i // 2) * 1000) for i in range(40)]
    store_with(path, runs, [CoverageRow("a", "", 1, T0, T0 + 60_000)])
    conn = open_read(path)
    assert conn is not None
    until, rows = query.covered_runs(conn, "", 1, T0, limit=7, now_ms=T0 + 10**9)
    assert until == T0 + 3000  # the 8th run is listed at +3 s; so is the 7th, left out too
    assert [at for at, _ in rows] == [T0, T0, T0 + 1000, T0 + 1000, T0 + 2000, T0 + 2000]


def test_pruning_takes_the_spans_below_the_cutoff_with_the_runs(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store_with(path, [finished("old", 1, T0), finished("new", 1, T0 + 100_000)],
               [CoverageRow("a", "", 1, T0 - 1000, T0 + 200_000),
                CoverageRow("b", "", 2, T0 - 1000, T0 + 10_000)])
    conn = open_write(path)
    query.prune(conn, cutoff_ms=T0 + 50_000)
    # Cut at the cutoff; an emptied span stays a day (its stream may write it again).
    assert conn.execute("SELECT stream, from_ms, to_ms FROM coverage ORDER BY stream").fetchall(
    ) == [("a", T0 + 50_000, T0 + 200_000), ("b", T0 + 50_000, T0 + 10_000)]
    conn.close()
    assert spans(path).covered({1: T0}) == {}  # the old run is gone: no span below
    found = spans(path).covered({1: T0 + 50_000})
    assert [e.execution_id for _, e in found[1].runs] == ["new"]
    # The live stream writes its span again: it keeps the cut start, not its old one.
    store_with(path, [], [CoverageRow("b", "", 2, T0 - 1000, T0 + 90_000)])
    assert spans(path).covered({2: T0}) == {}
    assert spans(path).covered({2: T0 + 50_000})[2].until_ms == T0 + 90_000
    conn = open_write(path)
    query.prune(conn, cutoff_ms=T0 + 200_000 + query.SPAN_KEPT_MS + 1)
    assert conn.execute("SELECT count(*) FROM coverage").fetchone()[0] == 0
    conn.close()


def test_spans_and_runs_of_another_make_zone_are_not_replayed(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store_with(path, [finished("eu", 1, T0 + 10)], [CoverageRow("a", "eu1", 1, T0, T0 + 1000)],
               zone="eu1")
    store_with(path, [finished("us", 1, T0 + 20)], [CoverageRow("b", "us1", 1, T0, T0 + 1000)],
               zone="us1")
    for zone, eid in (("eu1", "eu"), ("us1", "us")):
        found = spans(path, zone).covered({1: T0})
        assert [e.execution_id for _, e in found[1].runs] == [eid]
    assert spans(path, "other").covered({1: T0}) == {}


def test_a_span_never_reaches_past_now(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store_with(path, [finished("x", 1, T0 + 10)], [CoverageRow("a", "", 1, T0, T0 + 10**9)])
    found = StoredSpans(path, "", lambda: (T0 + 5000) / 1000).covered({1: T0})
    assert found[1].until_ms == T0 + 5000


def test_a_span_only_grows_and_a_log_time_fills_in(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    bare = ExecutionFinished(scenario_id=1, execution_id="x", status="success")  # from a bus
    store_with(path, [bare], [CoverageRow("a", "", 1, T0, T0 + 10_000)])
    store_with(path, [finished("x", 1, T0 + 5)], [CoverageRow("a", "", 1, T0 - 99, T0 + 5000)])
    conn = open_read(path)
    assert conn is not None
    assert conn.execute("SELECT from_ms, to_ms FROM coverage").fetchall() == [(T0, T0 + 10_000)]
    assert conn.execute("SELECT log_ms FROM executions").fetchall() == [(T0 + 5,)]
    assert conn.execute("SELECT count(*) FROM executions").fetchone()[0] == 1


def test_a_version_1_store_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in schema.MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO executions VALUES ('e1', 1, ?, 'success', 5, 1, 1, 1, 'S', '{}')",
                 (T0,))
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    conn = open_write(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 2
    assert conn.execute("SELECT execution_id, log_ms FROM executions").fetchall() == [
        ("e1", None)]
    assert conn.execute("SELECT count(*) FROM coverage").fetchone()[0] == 0
    conn.close()


class FakeWatch:
    def __init__(self, *, run: bool = False) -> None:
        self.options = WatchOptions(run=run)
        self.tracker = Tracker()


def cursor_at(floors: dict[int, int]) -> str:
    return Cursor("s", 1, {sid: Position(f) for sid, f in floors.items()}).encode()


def test_the_recorder_vouches_for_what_a_stream_s_cursors_say(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "h.db", keep_s=86400 * 90, now=lambda: T0 / 1000,
                         zone="eu1").start()
    recorder = Recorder(writer)
    watch, one_run = FakeWatch(), FakeWatch(run=True)
    opened_s = T0 / 1000
    for w in (watch, one_run):
        recorder.offer(StreamOpened(targets=[1, 3], api_limit=60, budget_per_min=48,
                                    version="x", ts=rfc3339(opened_s)), w)
    since = T0 + CLOCK_SLACK_MS

    def at(s: float, event: _Event, floors: dict[int, int]) -> _Event:
        return event.model_copy(update={"ts": rfc3339(opened_s + s), "cursor": cursor_at(floors)})

    # Floors below where the span begins vouch for nothing; above, for [since, floor).
    recorder.offer(at(100, finished("a", 1, T0), {1: since - 1}), watch)
    recorder.offer(at(150, finished("b", 1, T0), {1: since + 5000}), watch)
    # A scenario first named later is covered from then on; a floor ahead of the event's
    # time (a clock that ran ahead) vouches only up to that time.
    recorder.offer(at(200, finished("c", 2, T0), {1: since + 9000, 2: T0 + 260_000 + 10**9,
                                                  3: since + 7000}), watch)
    recorder.offer(at(300, finished("d", 1, T0), {1: since + 99_000}), one_run)
    # A run reported before its log was read: scenario 3's span ends before it, and starts
    # again after it.
    bare = ExecutionFinished(scenario_id=3, execution_id="e", status="success")
    recorder.offer(at(400, bare, {1: since + 9000, 3: since + 7000}), watch)
    recorder.offer(at(800, finished("f", 3, T0), {1: since + 9000, 3: T0 + 790_000}), watch)
    recorder.offer(StreamClosed(reason="t", exit_code=0, ts=rfc3339(opened_s + 900)), watch)
    recorder.close()
    writer.close()
    conn = open_read(tmp_path / "h.db")
    assert conn is not None
    assert conn.execute("SELECT zone, scenario_id, from_ms, to_ms FROM coverage "
                        "ORDER BY scenario_id, from_ms").fetchall() == [
        ("eu1", 1, since, since + 9000),
        ("eu1", 3, since, since + 7000),
        ("eu1", 3, T0 + 400_000 + CLOCK_SLACK_MS, T0 + 790_000)]
    # The run without a log time is stored (for `history`) but no replay can pick it.
    assert conn.execute("SELECT log_ms, zone FROM executions WHERE execution_id = 'e'"
                        ).fetchall() == [(None, "eu1")]


def test_no_span_is_written_once_the_writer_dropped_an_event(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "h.db", keep_s=86400 * 90, now=lambda: T0 / 1000).start()
    writer.dropped = 1  # as if the queue had overflowed
    writer.cover([CoverageRow("a", "", 1, T0, T0 + 1000)])
    writer.close()
    conn = open_read(tmp_path / "h.db")
    assert conn is not None
    assert conn.execute("SELECT count(*) FROM coverage").fetchone()[0] == 0


def test_a_delivered_run_above_the_replayed_span_stays_delivered() -> None:
    tracker = Tracker()
    state = tracker.add_scenario(1, floor_ms=T0)
    # A resumed cursor listed "late" as delivered; its log time (above the span) is unknown.
    tracker.restore(Cursor("s", 1, {1: Position(T0, {short_id("late"): T0})}))
    unconfirmed = set(state.position.done)
    assert tracker.replayed(1, finished("early", 1, T0 + 10), T0 + 10)
    tracker.covered(1, T0 + 1000, unconfirmed)
    assert state.position.floor_ms == T0 + 1000
    assert state.position.has("late", T0 + 5000)  # not reported again when the scan finds it
    assert not state.position.has("other", T0 + 5000)


@pytest.mark.parametrize("stamp", ["start", "end"])
async def test_every_cursor_of_a_stream_replays_exactly_what_make_lists(
    tmp_path: Path, stamp: str
) -> None:
    """The oracle: for each cursor the stream emitted, what the store replays is exactly the
    runs Make lists (ground truth) in the span, less those the cursor delivered. Logs 3 s
    late and runs followed in flight: floors held below runs that have begun and not ended."""
    zone = SimZone(demo_world(), clock=Clock(100), seed=4, running_in_logs=True,
                   faults=Faults(late_logs=3), log_timestamp=stamp)
    scenarios = [s.id for s in zone.world.scenarios]
    path = tmp_path / "h.db"
    writer = StoreWriter(path, keep_s=90 * 86400, now=zone.clock.now).start()
    recorder = Recorder(writer)
    first = await watch_until(zone, WatchOptions(scenario_ids=scenarios, heartbeat_s=30),
                              zone.clock.now() + 1200, recorder)
    recorder.close()
    writer.close()
    listed = {eid: (ex.scenario_id, ex.log_ms) for eid, ex in zone._executions.items()}
    source = StoredSpans(path, "", zone.clock.now)
    checked = replayable = 0
    for event in first.events:
        if not isinstance(event, ExecutionFinished) or not event.cursor:
            continue
        cursor = Cursor.decode(event.cursor)
        found = source.covered({s: p.floor_ms for s, p in cursor.positions.items()})
        for sid, covered in found.items():
            position = cursor.positions[sid]
            owed = {eid for eid, (s, at) in listed.items()
                    if s == sid and position.floor_ms <= at < covered.until_ms
                    and short_id(eid) not in position.done}
            got = {e.execution_id for at, e in covered.runs if short_id(e.execution_id or "")
                   not in position.done}
            assert got == owed, (sid, owed - got, got - owed)
            assert all(listed[e.execution_id or ""][1] == at for at, e in covered.runs)
            checked += 1
            replayable += len(got)
    assert checked > 20 and replayable > 10, (checked, replayable)
    assert any(e.type == "execution.started" for e in first.events), "no run followed in flight"


async def test_a_resume_replays_only_the_scenarios_it_watches(tmp_path: Path) -> None:
    zone = SimZone(demo_world(), clock=Clock(100), seed=4, running_in_logs=True)
    scenarios = [s.id for s in zone.world.scenarios]
    path = tmp_path / "h.db"
    writer = StoreWriter(path, keep_s=90 * 86400, now=zone.clock.now).start()
    recorder = Recorder(writer)
    first = await watch_until(zone, WatchOptions(scenario_ids=scenarios), zone.clock.now() + 800,
                              recorder)
    recorder.close()
    writer.close()
    done = first.finished
    cursor = Cursor.decode(done[len(done) // 2].cursor or "")
    busy = max(scenarios, key=lambda s: sum(e.scenario_id == s for e in done[len(done) // 2:]))
    resumed = await watch_until(
        zone, WatchOptions(scenario_ids=[busy], follow=False, resume=cursor,
                           runs=StoredSpans(path, "", zone.clock.now)), zone.clock.now() + 200)
    assert resumed.watch is not None and resumed.watch.stored_replays > 0
    assert {e.scenario_id for e in resumed.finished} == {busy}


def test_a_run_replayed_from_the_store_is_not_written_again(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "h.db", keep_s=86400 * 90, now=lambda: T0 / 1000)
    replayed = finished("x", 1, T0).with_log_ms(T0, from_store=True)
    assert writer.offer(replayed) == 0
    assert writer.offer(finished("y", 1, T0)) == 1  # (not started: nothing drains)

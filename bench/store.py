"""Benchmark 8: the history store — start-up requests, the write path, and `history stats`.

Three parts, each with its baseline in the same run:

1. **Start-up requests, warm store vs empty** (20 and 200 scenarios, `bench.latency`'s generated
   world with a quarter hour of history, 240/min). The same watch (`--team`, as `watch --team`
   adopts scenarios) runs twice on two zones built from one seed and clock: once with an empty
   store, once with a store holding the runs that ended before it started (as an earlier watch
   would have left it). Counted until every scenario's logs have been read once (the start-up
   pass): requests by endpoint, log entries transferred, and how many scenarios had an expected
   duration at that moment. Then the same for `watch SCENARIO --execution ID` (the one-run
   follow that CI uses), whose start-up reads a page of logs only to learn durations.
2. **Write path.** 100,000 `execution.finished` events offered to a `StoreWriter` as a watch
   offers them; measured: what `offer` costs the event loop per event, and executions stored per
   second until `flush` returns. Baseline: the same rows by one bare `executemany` per 1,000.
3. **`history stats` over 1,000,000 executions**: 200 scenarios over 90 days, plus one busy
   scenario with 100,000 runs in the last 30 days. Timed: `makestream history stats SCENARIO
   --since 30d` as a command (process start included) for an ordinary and for the busy scenario,
   and the query alone in process; baseline: the same query with the store's indexes dropped.

    python -m bench store [--quick]
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

from bench.harness import NoticeCounter, sim_client
from bench.latency import Case, bench_world
from bench.report import Result, ratio
from makestream.clock import Clock
from makestream.engine.watch import Watch, WatchOptions
from makestream.events import ExecutionFinished, rfc3339
from makestream.make.client import ApiNotice
from makestream.sim import SimZone
from makestream.store import StoreWriter, open_write, query
from makestream.store.rows import ExecutionRow, to_row
from makestream.store.seed import HistoryFromStore

TEAM = 1
LIMIT = 240
SPEED = 10.0
WRITE_EVENTS = 100_000
BIG = 1_000_000
BUSY = 100_000
GOAL_STATS_S = 1.0
GOAL_WRITES_PER_S = 1000.0


# ------------------------------------------------------------------ 1. start-up requests


class Reads:
    """Client observer and `on_logs` hook: requests by endpoint, and the log reads and entries of
    each scenario's first scan, until every scenario has had one (or the target run ended)."""

    def __init__(self, ids: list[int], *, until_finished: bool = False) -> None:
        self.until_finished = until_finished  # --execution: until its run is reported
        self.ids = ids
        self.watch: Watch | None = None
        self.with_expected = 0  # scenarios with an expected duration when the pass ended
        self.scanned: set[int] = set()
        self.first_reads = 0  # log requests for scenarios not scanned yet
        self.first_entries = 0  # log entries their first scans read
        self.by_endpoint: Counter[str] = Counter()
        self.done = anyio.Event()

    def __call__(self, notice: ApiNotice) -> None:
        if notice.kind != "request" or self.done.is_set():
            return
        parts = notice.path.strip("/").split("/")
        kind = "/".join("{id}" if p.isdigit() else p for p in parts)
        self.by_endpoint[f"{notice.method} /{kind}"] += 1
        if len(parts) == 3 and parts[2] == "logs" and int(parts[1]) not in self.scanned:
            self.first_reads += 1

    def on_logs(self, sid: int, entries: list[Any]) -> None:
        if self.done.is_set() or sid in self.scanned:
            return
        self.scanned.add(sid)
        self.first_entries += len(entries)
        if not self.until_finished and self.scanned >= set(self.ids):
            self.finish()

    def finish(self) -> None:
        if self.watch is not None:
            scenarios = self.watch.tracker.scenarios
            self.with_expected = sum(
                1 for sid in self.ids
                if sid in scenarios and scenarios[sid].history.expected_ms is not None)
        self.done.set()


def fill_from_truth(path: Path, zone: SimZone, before: float) -> int:
    """A store as an earlier watch would have left it: every run that ended before `before`."""
    conn = open_write(path)
    rows = []
    for t in zone.truth():
        if t.ended_at < before:
            event = ExecutionFinished(
                scenario_id=t.scenario_id, execution_id=t.execution_id,
                status=t.status,  # type: ignore[arg-type]
                ended_at=rfc3339(t.ended_at), duration_ms=int((t.ended_at - t.started_at) * 1000),
                operations=t.operations, centicredits=t.centicredits, ts=rfc3339(t.ended_at),
            )
            row = to_row(event)
            assert isinstance(row, ExecutionRow)
            rows.append(row)
    query.insert(conn, rows, [], [], now_ms=int(before * 1000))
    conn.close()
    return len(rows)


async def _startup(n: int, warm: bool, anchor: float, execution: bool) -> dict[str, Any]:
    case = Case(n, LIMIT, 5, SPEED)
    clock = Clock(SPEED, anchor=anchor)
    world = bench_world(case)
    zone = SimZone(world, clock=clock, seed=case.seed)
    zone.truth()
    ids = [s.id for s in world.scenarios]
    tmp = Path(tempfile.mkdtemp(prefix="makestream-bench-store-"))
    try:
        stored = fill_from_truth(tmp / "h.db", zone, clock.now()) if warm else 0
        source = HistoryFromStore(tmp / "h.db") if warm else None
        target = None
        if execution:
            # The last run of the first scenario that has one: what `--execution ID` follows.
            done = [t for t in zone.truth() if t.ended_at < clock.now()]
            target = done[-1]
            ids = [target.scenario_id]
        reads = Reads(ids, until_finished=target is not None)
        counter = NoticeCounter(forward=[reads])
        async with sim_client(zone, LIMIT, clock=clock, observer=counter) as client:
            if target is not None:
                options = WatchOptions(scenario_ids=ids, execution_id=target.execution_id,
                                       history=source)
            else:
                options = WatchOptions(team_id=TEAM, history=source)
            watch = Watch(client, options)
            reads.watch = watch
            counter.forward.append(watch.on_notice)

            watch.on_logs = reads.on_logs
            start = clock.now()
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch.run)
                with anyio.move_on_after(clock.real(600)):
                    async for event in watch.events:
                        if target is not None and event.type == "execution.finished":
                            reads.finish()
                        if reads.done.is_set():
                            break
                watch.stop("bench")
                async for _ in watch.events:
                    pass
                watch.events.close()
                tg.cancel_scope.cancel()
        return {
            "scenarios": n, "store": "warm" if warm else "empty", "stored_runs": stored,
            "requests": sum(reads.by_endpoint.values()), "by_endpoint": dict(reads.by_endpoint),
            "first_scan_log_reads": reads.first_reads, "log_entries": reads.first_entries,
            "scanned": len(reads.scanned), "with_expected_duration": reads.with_expected,
            "clock_s": round(clock.now() - start, 1), "seeded": source.answered if source else 0,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def startup_requests(quick: bool) -> list[dict[str, Any]]:
    rows = []
    sizes = [20] if quick else [20, 200]
    for n in sizes:
        anchor = time.time()
        for warm in (False, True):
            rows.append(anyio.run(_startup, n, warm, anchor, False))
    anchor = time.time()
    for warm in (False, True):
        row = anyio.run(_startup, 20, warm, anchor, True)
        row["scenarios"] = "1 (--execution)"
        rows.append(row)
    return rows


# ------------------------------------------------------------------------ 2. write path


def _events(n: int, scenarios: int = 200) -> list[ExecutionFinished]:
    base = time.time() - 86400
    return [
        ExecutionFinished(
            scenario_id=1000 + i % scenarios, execution_id=f"{i:032x}", status="success",
            started_at=rfc3339(base + i * 0.5), ended_at=rfc3339(base + i * 0.5 + 3),
            duration_ms=3000 + i % 977, operations=i % 50, transfer_bytes=1024,
            centicredits=(i % 50) * 100, scenario_name=f"Scenario {i % scenarios}",
            url=f"https://eu1.make.com/1/scenarios/{1000 + i % scenarios}/logs/{i:032x}",
            ts=rfc3339(base + i * 0.5 + 4), seq=i + 1, cursor="1.eJyrVjI0MFSyijY0tzQ~ab.1",
        )
        for i in range(n)
    ]


def write_path(quick: bool) -> dict[str, Any]:
    n = WRITE_EVENTS // 10 if quick else WRITE_EVENTS
    events = _events(n)
    tmp = Path(tempfile.mkdtemp(prefix="makestream-bench-store-"))
    try:
        writer = StoreWriter(tmp / "w.db", keep_s=1e9, queue_max=n + 10).start()
        assert writer.flush()
        started = time.perf_counter()
        offer_s = 0.0
        for event in events:
            t = time.perf_counter()
            writer.offer(event)
            offer_s += time.perf_counter() - t
        writer.flush(600)
        elapsed = time.perf_counter() - started
        writer.close()
        assert writer.written == n and writer.take_problem() is None
        # Baseline: the same rows, converted beforehand, by bare executemany in batches.
        rows = [to_row(e) for e in events]
        conn = open_write(tmp / "raw.db")
        started = time.perf_counter()
        for i in range(0, n, 1000):
            query.insert(conn, rows[i:i + 1000], [], [], now_ms=0)  # type: ignore[arg-type]
        raw = time.perf_counter() - started
        conn.close()
        return {"events": n, "writer_s": round(elapsed, 2),
                "writer_per_s": round(n / elapsed), "offer_us": round(offer_s / n * 1e6, 2),
                "bare_insert_per_s": round(n / raw)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------- 3. history stats


def build_big(path: Path, total: int, busy: int) -> float:
    """`total` executions: `busy` of scenario 1 in the last 30 days, the rest over 200
    scenarios and 90 days. Returns the seconds it took."""
    started = time.perf_counter()
    conn = open_write(path)
    now_ms = int(time.time() * 1000)
    rng = random.Random(1)
    body = ('{"v":1,"type":"execution.finished","ts":"2026-12-01T00:00:00.000Z","scenario_id":%d,'
            '"execution_id":"%s","status":"%s","duration_ms":%d,"operations":%d,'
            '"centicredits":%d,"url":"https://eu1.make.com/1/scenarios/%d/logs/%s",'
            '"scenario_name":"Scenario %d"}')
    statuses = ["success"] * 17 + ["warning", "error", "error"]
    batch: list[ExecutionRow] = []
    for i in range(total):
        if i < busy:
            sid, ended = 1, now_ms - rng.randrange(30 * 86_400_000)
        else:
            sid, ended = 100 + i % 200, now_ms - rng.randrange(90 * 86_400_000)
        eid = f"{i:032x}"
        status = statuses[i % 20]
        duration = rng.randrange(500, 120_000)
        ops = rng.randrange(1, 100)
        batch.append(ExecutionRow(eid, sid, ended, status, duration, ops, ops * 100, 2048,
                                  f"Scenario {sid}",
                                  body % (sid, eid, status, duration, ops, ops * 100, sid, eid,
                                          sid)))
        if len(batch) == 20_000:
            query.insert(conn, batch, [], [], now_ms=now_ms)
            batch = []
    if batch:
        query.insert(conn, batch, [], [], now_ms=now_ms)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def _command_s(path: Path, scenario: int, runs: int = 5,
               answer: bool = True) -> tuple[float, dict[str, Any]]:
    """Median wall time of `makestream history stats SCENARIO --since 30d`, and its answer."""
    import json

    argv = [str(Path(sys.executable).parent / "makestream"), "history", "stats", str(scenario),
            "--since", "30d", "--store", str(path), "--format", "ndjson"]
    times, out = [], ""
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        times.append(time.perf_counter() - t)
    return statistics.median(times), json.loads(out.splitlines()[0]) if answer else {}


def _query_s(path: Path, scenario: int, runs: int = 5) -> float:
    conn = sqlite3.connect(path)
    sel = query.Selection(scenario_ids=[scenario],
                          since_ms=int((time.time() - 30 * 86400) * 1000))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        query.stats(conn, sel)
        times.append(time.perf_counter() - t)
    conn.close()
    return statistics.median(times)


def stats_over_big(quick: bool) -> dict[str, Any]:
    total, busy = (BIG // 10, BUSY // 10) if quick else (BIG, BUSY)
    tmp = Path(tempfile.mkdtemp(prefix="makestream-bench-store-"))
    try:
        path = tmp / "big.db"
        built = build_big(path, total, busy)
        out: dict[str, Any] = {"executions": total, "build_s": round(built, 1),
                               "file_mb": round(os.path.getsize(path) / 2**20)}
        # The floor of any answer: the same command on an empty store (process start, imports).
        empty = tmp / "empty.db"
        open_write(empty).close()
        out["empty_store_command_s"] = round(_command_s(empty, 100, answer=False)[0], 3)
        for label, sid in (("ordinary", 100), ("busy", 1)):
            cmd, answer = _command_s(path, sid)
            out[f"{label}_runs_30d"] = answer["runs"]
            out[f"{label}_command_s"] = round(cmd, 3)
            out[f"{label}_query_s"] = round(_query_s(path, sid), 4)
        plain = tmp / "noindex.db"
        shutil.copy(path, plain)
        with sqlite3.connect(plain) as conn:
            conn.execute("DROP INDEX executions_by_scenario")
            conn.execute("DROP INDEX executions_by_time")
        out["ordinary_query_noindex_s"] = round(_query_s(plain, 100, runs=3), 3)
        out["busy_query_noindex_s"] = round(_query_s(plain, 1, runs=3), 3)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------- report


def bench(quick: bool = False) -> Result:
    result = Result("store", "History store: start-up requests, write path, history stats")
    started = time.monotonic()
    rows = startup_requests(quick)
    result.columns = ["scenarios", "store", "stored_runs", "first_scan_log_reads", "log_entries",
                      "requests", "scanned", "with_expected_duration", "seeded", "clock_s"]
    result.rows = rows
    pairs = [(rows[i], rows[i + 1]) for i in range(0, len(rows), 2)]
    for empty, warm in pairs:
        reads = _r(ratio(warm["first_scan_log_reads"], empty["first_scan_log_reads"]))
        result.notes.append(
            f"{empty['scenarios']} scenarios: {warm['first_scan_log_reads']} log reads before "
            f"every first scan with a warm store vs {empty['first_scan_log_reads']} with an "
            f"empty one (ratio {reads}); entries {warm['log_entries']} vs "
            f"{empty['log_entries']}; all requests until then {warm['requests']} vs "
            f"{empty['requests']}")
    execution = pairs[-1]
    teams = pairs[:-1]
    result.goals.append((
        "no log page is read only to learn durations when the store has them (--execution: "
        "no log read with a warm store)",
        execution[1]["first_scan_log_reads"] == 0 and execution[0]["first_scan_log_reads"] >= 1,
    ))
    result.goals.append((
        "a --team watch's first scans read no more pages and fewer entries with a warm store "
        "(each scenario's logs are still read once: that scan finds runs that end after the "
        "watch starts)",
        all(w["log_entries"] < e["log_entries"]
            and w["first_scan_log_reads"] <= e["first_scan_log_reads"] for e, w in teams),
    ))
    writes = write_path(quick)
    result.tables.append(("Write path (one StoreWriter, as watch and serve-sse use it):",
                          [writes]))
    result.goals.append((f"the write path keeps up with {GOAL_WRITES_PER_S:,.0f} executions/s",
                         writes["writer_per_s"] >= GOAL_WRITES_PER_S))
    big = stats_over_big(quick)
    result.tables.append(("history stats over the big store (median of 5; noindex: the same "
                          "query with the store's indexes dropped):", [big]))
    result.goals.append((
        f"history stats for one scenario over 30 days of {big['executions']:,} executions in "
        f"under {GOAL_STATS_S:g} s (the command, process start included)",
        big["ordinary_command_s"] < GOAL_STATS_S and big["busy_command_s"] < GOAL_STATS_S,
    ))
    result.goals.append((
        f"the same answered in under {GOAL_STATS_S:g} s beyond the command's floor (the same "
        "command on an empty store)",
        max(big["ordinary_command_s"], big["busy_command_s"]) - big["empty_store_command_s"]
        < GOAL_STATS_S,
    ))
    load = os.getloadavg()[0]
    result.notes.append(f"load average when done: {load:.1f} on {os.cpu_count()} cores")
    result.raw = {"startup": rows, "write": writes, "stats": big,
                  "seconds": round(time.monotonic() - started, 1)}
    return result


def _r(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"

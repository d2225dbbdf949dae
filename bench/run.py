"""Benchmark 2: one triggered run — how soon after its real end `watch --run` reports it.

World: six on-demand scenarios whose runs last about 2, 5, 10, 20, 40 and 80 simulated seconds
(±20 %), with some warnings and errors. Runs go one after another, cycling through the
scenarios, so that every scenario's history grows as it would in CI.

- makestream: for each run, `Watch(client, WatchOptions(scenario_ids=[sid], run=True))` (one
  client and one budget for the whole series, at a 60/min limit); latency = emission clock time of
  `execution.finished` - the run's true `ended_at`.
- naive: `POST /run`, then `GET /executions/{id}` every 1.25 s — the same 48 requests per minute
  makestream's budget allows — until the status is terminal; latency = when that answer came
  - the run's true end.

Both sides run at once in two processes, each with its own zone (same seed: the same run
durations). Requests per run come from the client's notices; 429s from the zone.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from typing import Any

import anyio

from bench.harness import CpuMeter, LoopLag, NoticeCounter, sim_client
from bench.naive import NaiveRunPoller
from bench.report import Result, percentile, ratio
from makestream.clock import Clock
from makestream.engine.watch import Watch, WatchOptions
from makestream.make.client import ApiNotice, MakeClient
from makestream.sim import SimZone
from makestream.sim.flows import blueprint, module
from makestream.sim.world import OrganizationSpec, Profile, ScenarioSpec, TeamSpec, WorldSpec

API_LIMIT = 60
SHARE = 0.8
DURATIONS = [2.0, 5.0, 10.0, 20.0, 40.0, 80.0]
FULL_RUNS, QUICK_RUNS = 30, 6
FULL_SPEED, QUICK_SPEED = 15.0, 10.0
QUICK_DURATIONS = [2.0, 5.0, 10.0]


def run_world(durations: list[float]) -> WorldSpec:
    scenarios = [
        ScenarioSpec(
            id=500 + i,
            name=f"On demand ~{d:g}s",
            team_id=1,
            blueprint=blueprint(
                f"On demand ~{d:g}s",
                [module(1, "http:ActionSendData"), module(2, "json:ParseJSON"),
                 module(3, "google-sheets:addRow")],
                max_errors=1000,
            ),
            scheduling={"type": "on-demand"},
            profile=Profile(duration_mean=d, duration_stddev=d / 5, warning_rate=0.1,
                            error_rate=0.05),
        )
        for i, d in enumerate(durations)
    ]
    return WorldSpec(organization=OrganizationSpec(api_limit=API_LIMIT),
                     teams=[TeamSpec(id=1, name="CI")], scenarios=scenarios)


def run_side(kind: str, runs: int, durations: list[float], speed: float,
             anchor: float) -> dict[str, Any]:
    return anyio.run(_side, kind, runs, durations, speed, anchor)


async def _side(kind: str, runs: int, durations: list[float], speed: float,
                anchor: float) -> dict[str, Any]:
    clock = Clock(speed, anchor=anchor)
    zone = SimZone(run_world(durations), clock=clock, seed=3)
    ids = [s.id for s in zone.world.scenarios]
    counter = NoticeCounter()
    lag, cpu = LoopLag(), CpuMeter()
    seen: list[dict[str, Any]] = []
    async with sim_client(zone, API_LIMIT, clock=clock, observer=counter) as client:
        cpu.start()
        start = clock.now()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lag.run)
            for i in range(runs):
                sid = ids[i % len(ids)]
                before = sum(counter.requests.values())
                answers: list[tuple[float, str]] = []  # (when, "status" | "log") per answer
                counter.forward = [_answer_times(clock, answers)]
                if kind == "makestream":
                    eid, at, status = await _makestream_run(client, sid, counter)
                else:
                    poller = NaiveRunPoller(client, 60 / (SHARE * API_LIMIT), clock)
                    eid, at, status = await poller.run_and_wait(sid)
                seen.append({"scenario_id": sid, "execution_id": eid, "reported_at": at,
                             "status": status, "first": i < len(ids),
                             "requests": sum(counter.requests.values()) - before,
                             "answers": answers})
            tg.cancel_scope.cancel()
        elapsed = clock.now() - start
        health = cpu.stop()
    truth = {r.execution_id: r for r in zone.truth()}
    for run in seen:
        record = truth[run["execution_id"]]
        run["duration_s"] = round(record.ended_at - record.started_at, 3)
        run["latency_s"] = round(run["reported_at"] - record.ended_at, 3)
        # The first status answer after the end: the run was known to have ended from then on.
        # The terminal status answer: for makestream the last status answer before it reads the
        # run's log entry; for the naive loop the answer it reported on.
        answers = run.pop("answers")
        logs = [t for t, kind in answers if kind == "log"]
        until = logs[0] if logs else run["reported_at"]
        statuses = [t for t, kind in answers if kind == "status" and t <= until]
        terminal = statuses[-1] if statuses else None
        run["terminal_seen_s"] = None if terminal is None else round(terminal - record.ended_at, 3)
        run["terminal_to_report_s"] = (
            None if terminal is None else round(run["reported_at"] - terminal, 3))
        run["status_ok"] = run["status"] == record.status
    budgeted = sum(n for k, n in counter.requests.items() if not k.endswith("/run"))
    return {"kind": kind, "runs": seen, "limited": zone.limited, "throttled": counter.throttled,
            "requests": counter.requests, "req_per_min": round(budgeted / (elapsed / 60), 1),
            **lag.summary(), **health}


async def _makestream_run(
    client: MakeClient, sid: int, counter: NoticeCounter
) -> tuple[str, float, str]:
    watch = Watch(client, WatchOptions(scenario_ids=[sid], run=True))
    counter.forward.append(watch.on_notice)
    found: tuple[str, float, str] | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch.run)
        async for event in watch.events:
            if event.type == "execution.finished":
                ts = datetime.fromisoformat(event.ts.replace("Z", "+00:00")).timestamp()
                found = (event.execution_id or "", ts, event.status)  # type: ignore[attr-defined]
        watch.events.close()
    if found is None:
        raise RuntimeError(f"watch --run of scenario {sid} ended without execution.finished: "
                           f"{watch.outcome}")
    return found


def _answer_times(clock: Clock, into: list[tuple[float, str]]) -> Callable[[ApiNotice], None]:
    """Client observer: the clock time of every answered `GET /executions/{id}` ("status") and
    `GET /scenarios/{id}/logs/{id}` ("log")."""

    def hear(notice: ApiNotice) -> None:
        if notice.kind != "request" or notice.status != 200:
            return
        if "/executions/" in notice.path:
            into.append((clock.now(), "status"))
        elif notice.path.strip("/").count("/") == 3 and "/logs/" in notice.path:
            into.append((clock.now(), "log"))

    return hear


def bench(quick: bool = False) -> Result:
    runs = QUICK_RUNS if quick else FULL_RUNS
    durations = QUICK_DURATIONS if quick else DURATIONS
    speed = QUICK_SPEED if quick else FULL_SPEED
    print(f"run: {runs} runs of ~{', '.join(f'{d:g}' for d in durations)} s at speed "
          f"{speed:g} ...", flush=True)
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    anchor = time.time()
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        futures = {k: pool.submit(run_side, k, runs, durations, speed, anchor)
                   for k in ("makestream", "naive")}
        sides = {k: f.result() for k, f in futures.items()}
    print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    result = Result("run", "One triggered run: real end to execution.finished (60/min limit)")
    figures = {k: _figures(s) for k, s in sides.items()}
    naive = figures["naive"]
    for kind, f in figures.items():
        mine = kind == "makestream"
        result.rows.append({
            "watcher": kind, "runs": f["runs"], "p50 s": f["p50"], "p95 s": f["p95"],
            "max s": f["max"], "p50 vs naive": ratio(f["p50"], naive["p50"]) if mine else None,
            "p95 vs naive": ratio(f["p95"], naive["p95"]) if mine else None,
            "p50 1st run s": f["p50_first"], "p50 later s": f["p50_later"],
            "p50 end→terminal seen s": f["terminal_seen_p50"],
            "p50 terminal→report s": f["terminal_to_report_p50"],
            "req/run": f["req_per_run"], "req/min": sides[kind]["req_per_min"],
            "429": sides[kind]["limited"], "throttled": sides[kind]["throttled"],
            "status ok": f["status_ok"], "speed": speed, "lag p95 ms": sides[kind]["lag_p95_ms"],
        })
    by_length = []
    for i, d in enumerate(durations):
        row: dict[str, Any] = {"run length ~s": d}
        for kind, side in sides.items():
            mine_runs = [r for r in side["runs"] if r["scenario_id"] == 500 + i]
            row[f"{kind} p50 s"] = percentile([r["latency_s"] for r in mine_runs], 50)
            row[f"{kind} req/run"] = round(
                sum(r["requests"] for r in mine_runs) / max(1, len(mine_runs)), 1)
            if kind == "makestream":
                row["makestream terminal→report p50 s"] = _p50(
                    [r["terminal_to_report_s"] for r in mine_runs])
        by_length.append(row)
    result.tables.append(("By run length (median over that scenario's runs):", by_length))
    ms = figures["makestream"]
    result.goals.append((f"p50 under 1.5 s ({ms['p50']:.2f} s)", ms["p50"] < 1.5))
    result.notes += [
        "latency in simulated seconds: report's clock time - the run's true end",
        "'1st run' = each scenario's first run, when makestream has no history to expect its "
        "length from; 'later' = the others",
        "end→terminal seen: from the true end to the `GET /executions/{id}` answer that said "
        "the run had ended; terminal→report: from that answer to the report (makestream then "
        "reads the run's log entry for its figures: one more budgeted request)",
        "req/run counts every budgeted request of one `watch --run` (organization, scenario, one "
        "page of logs, status polls, the log) and POST /run, which Make does not count",
    ]
    result.raw = sides
    return result


def _figures(side: dict[str, Any]) -> dict[str, Any]:
    runs = side["runs"]
    lats = [r["latency_s"] for r in runs]
    first = [r["latency_s"] for r in runs if r["first"]]
    later = [r["latency_s"] for r in runs if not r["first"]]
    return {
        "runs": len(runs),
        "p50": percentile(lats, 50),
        "p95": percentile(lats, 95),
        "max": max(lats),
        "p50_first": percentile(first, 50) if first else None,
        "p50_later": percentile(later, 50) if later else None,
        "req_per_run": round(sum(r["requests"] for r in runs) / len(runs), 1),
        "terminal_seen_p50": _p50([r["terminal_seen_s"] for r in runs]),
        "terminal_to_report_p50": _p50([r["terminal_to_report_s"] for r in runs]),
        "status_ok": all(r["status_ok"] for r in runs),
    }


def _p50(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return percentile(known, 50) if known else None

"""Benchmark 1: request economy and detection latency, makestream against a naive poller.

Workload: `generated_world(n)` (scheduled, webhook and on-demand scenarios; runs arrive at random
and last what each scenario's profile says), with a quarter hour of history so that the watchers
start on an organization that has been running. For each case (scenarios x organization limit),
two child processes run side by side, each with its own zone built from the same seed on one
shared fast clock — the two zones hold the same runs, shifted by the few milliseconds between
their creations:

- makestream: `Watch(client, WatchOptions(scenario_ids=all))`, in process over
  `httpx.ASGITransport`, its client spending a `Budget` of 80 % of the limit;
- naive: `bench.naive.NaiveLogPoller` at the same 80 % of the limit, same client class.

Measured over the window [watcher start, start + minutes]:

- detection latency of each run = emission clock time of its report - its true `ended_at`,
  over the runs that ended in [start + 1 s, end - 2 min]; a run never reported counts as
  infinitely late, so a percentile that lands on missed runs reads ∞;
- requests per clock minute as the zone counted them (full minutes inside the window);
- 429s answered by the organization limit (`zone.limited`) and `throttled` notices;
- missed (expected, never reported) and duplicated (reported more than once) runs;
- the child's loop lag and CPU share. When the loop lags (see `bench.harness.LAG_LIMIT_MS`), the
  case runs again at half the clock speed; the speed used is reported, and so are the loop's
  stalls of 100 ms or more with the code the loop was in.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import anyio

from bench.harness import (
    LAG_LIMIT_MS,
    LAG_MEAN_LIMIT_MS,
    CpuMeter,
    LoopLag,
    NoticeCounter,
    sim_client,
)
from bench.naive import NaiveLogPoller
from bench.report import Result, percentile, ratio
from makestream.clock import Clock
from makestream.engine.watch import Watch, WatchOptions
from makestream.make.client import ApiNotice, MakeClient
from makestream.sim import Faults, SimZone, generated_world
from makestream.sim.world import TeamSpec, WorldSpec

SHARE = 0.8  # makestream's default budget share; the naive poller gets the same rate
TAIL_S = 120.0  # runs that ended this close to the end of the window are not counted
MIN_SPEED = 2.0


@dataclass(frozen=True)
class Case:
    scenarios: int
    api_limit: int
    minutes: float
    speed: float
    seed: int = 1
    history_s: float = 900.0
    by_team: bool = True  # adopt the scenarios as `--team` does (one list page per 100)
    workload: str = "generated"  # see bench.matrix.WORKLOADS
    variant: tuple[tuple[str, Any], ...] = ()  # API variant: SimZone knobs (bench.matrix)

    @property
    def label(self) -> str:
        if self.workload != "generated" or self.variant:
            knobs = ",".join(f"{k}={v}" for k, v in self.variant) or "default"
            window = f", {self.minutes:g} min" if self.minutes != 5 else ""
            return f"{self.workload} {self.scenarios} @ {self.api_limit}/min{window} [{knobs}]"
        return f"{self.scenarios} scenarios @ {self.api_limit}/min"


# Speeds from calibration on a 2-core machine shared with other work: the highest that kept the
# loop within the lag limits (see bench.harness), so that the full run fits in about 15 minutes.
# The 1,000-scenario cases start at the floor: the engine's own stalls (see `stalls`) last as
# long at any speed.
FULL = [
    Case(20, 60, 15, 10), Case(20, 240, 15, 10),
    Case(200, 60, 15, 4), Case(200, 240, 15, 4),
    Case(1000, 60, 15, 3), Case(1000, 240, 15, 3),
]
QUICK = [Case(20, 240, 6, 30)]
PARALLEL_CASES = 2  # cases run at once (two processes each); the lag check guards the result
ADOPTION = [(1000, 60), (1000, 240)]
ADOPTION_SPEED = 2.0  # faster, the loop lags while the zone generates runs for 1,000 scenarios


TEAM = 1


def bench_world(case: Case) -> WorldSpec:
    """`generated_world(n)` with history, all scenarios in one team (see the module docstring)."""
    if case.workload != "generated":
        from bench.matrix import workload_world

        world = workload_world(case.workload, case.scenarios, seed=case.seed,
                               api_limit=case.api_limit)
        return world.model_copy(update={"history": case.history_s})
    world = generated_world(case.scenarios, seed=case.seed, api_limit=case.api_limit)
    if case.by_team:
        scenarios = [s.model_copy(update={"team_id": TEAM}) for s in world.scenarios]
        world = world.model_copy(update={"teams": [TeamSpec(id=TEAM, name="Everything")],
                                         "scenarios": scenarios})
    return world.model_copy(update={"history": case.history_s})


# ---------------------------------------------------------------- one side, in a child process

def run_side(kind: str, case: Case, anchor: float) -> dict[str, Any]:
    """Run one watcher ('makestream' or 'naive') against its own zone; returns raw figures."""
    return anyio.run(_side, kind, case, anchor)


async def _side(kind: str, case: Case, anchor: float) -> dict[str, Any]:
    clock = Clock(case.speed, anchor=anchor)
    world = bench_world(case)
    knobs = dict(case.variant)
    late = float(knobs.pop("log_lag", 0.0))
    org_readable = bool(knobs.get("organization_readable", True))
    zone = SimZone(world, clock=clock, seed=case.seed, faults=Faults(late_logs=late), **knobs)
    zone.truth()  # generate the history now, not inside the first request
    ids = [s.id for s in world.scenarios]
    first_pass = FirstPass(clock, ids)
    counter = NoticeCounter(forward=[first_pass])
    lag, cpu = LoopLag(), CpuMeter()
    out: dict[str, Any] = {}
    async with sim_client(zone, case.api_limit, clock=clock, observer=counter) as client:
        start = clock.now()
        end = start + case.minutes * 60
        cpu.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lag.run)
            if kind == "makestream":
                out = await _makestream(
                    client, ids, end, counter, by_team=case.by_team,
                    api_limit=None if org_readable else case.api_limit,
                )
            else:
                out = await _naive(client, ids, case, end)
            tg.cancel_scope.cancel()
        out.update(cpu.stop())
    counted = [
        (r.execution_id, r.ended_at)
        for r in zone.truth()
        if start + 1 <= r.ended_at <= end - TAIL_S
    ]
    per_minute = zone.requests_per_minute()
    first_minute = zone.started_ms // 60_000
    window = [
        per_minute[m - first_minute]
        for m in range(math.ceil(start / 60), math.floor(end / 60))
        if 0 <= m - first_minute < len(per_minute)
    ]
    out.update(
        kind=kind, start=start, end=end, expected=counted, rpm=window,
        limited=zone.limited, throttled=counter.throttled, requests=counter.requests,
        failed_requests=counter.failed, **lag.summary(),
        first_pass_s=None if first_pass.done_at is None else round(first_pass.done_at - start, 1),
        first_pass_scanned=len(first_pass.seen), rescans_in_first_pass=first_pass.rescans,
    )
    return out


class FirstPass:
    """Client observer: when every scenario's logs had been read once, and how many log reads
    went to scenarios already read before that moment."""

    def __init__(self, clock: Clock, ids: list[int]) -> None:
        self.clock = clock
        self.left = set(ids)
        self.seen: set[int] = set()
        self.done_at: float | None = None
        self.rescans = 0

    def __call__(self, notice: ApiNotice) -> None:
        parts = notice.path.strip("/").split("/")
        if notice.kind != "request" or len(parts) != 3 or parts[2] != "logs":
            return
        sid = int(parts[1])
        if self.done_at is None and sid in self.seen:
            self.rescans += 1
        self.seen.add(sid)
        self.left.discard(sid)
        if not self.left and self.done_at is None:
            self.done_at = self.clock.now()


async def _makestream(
    client: MakeClient, ids: list[int], end: float, counter: NoticeCounter, *, by_team: bool,
    api_limit: int | None = None,
) -> dict[str, Any]:
    clock = client.clock
    options = (WatchOptions(team_id=TEAM, api_limit=api_limit) if by_team
               else WatchOptions(scenario_ids=ids, api_limit=api_limit))
    watch = Watch(client, options)
    counter.forward.append(watch.on_notice)
    detected: dict[str, float] = {}
    reports: Counter[str] = Counter()
    opened: float | None = None
    events = 0

    def take(event: Any) -> None:
        nonlocal opened, events
        events += 1
        if event.type == "execution.finished":
            eid = event.execution_id
            reports[eid] += 1
            detected.setdefault(eid, _epoch(event.ts))
        elif event.type == "stream.opened":
            opened = _epoch(event.ts)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch.run)
        with anyio.move_on_after(clock.real(end - clock.now())):
            async for event in watch.events:
                take(event)
        watch.stop("bench")
        async for event in watch.events:
            take(event)
        watch.events.close()
    return {"detected": detected, "reports": dict(reports), "opened": opened, "events": events,
            "closed": watch.outcome.reason}


async def _naive(client: MakeClient, ids: list[int], case: Case, end: float) -> dict[str, Any]:
    poller = NaiveLogPoller(client, ids, per_minute=SHARE * case.api_limit, clock=client.clock)
    with anyio.move_on_after(client.clock.real(end - client.clock.now())):
        await poller.run()
    return {"detected": poller.detected, "reports": poller.reports, "opened": poller.started_at,
            "errors": poller.errors}


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------- adoption by id, in a child

def run_adoption(scenarios: int, api_limit: int, speed: float, anchor: float) -> dict[str, Any]:
    """How long `Watch(scenario_ids=all)` takes to open its stream (one GET per scenario)."""
    return anyio.run(_adoption, scenarios, api_limit, speed, anchor)


async def _adoption(scenarios: int, api_limit: int, speed: float, anchor: float) -> dict[str, Any]:
    clock = Clock(speed, anchor=anchor)
    case = Case(scenarios, api_limit, 0, speed, by_team=False)
    zone = SimZone(bench_world(case), clock=clock, seed=case.seed)
    zone.truth()  # generate the history now, not inside the first request
    ids = [s.id for s in zone.world.scenarios]
    counter = NoticeCounter()
    lag = LoopLag()
    async with sim_client(zone, api_limit, clock=clock, observer=counter) as client:
        start = clock.now()
        watch = Watch(client, WatchOptions(scenario_ids=ids))
        opened: float | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(lag.run)
            tg.start_soon(watch.run)
            async for event in watch.events:
                if event.type == "stream.opened":
                    opened = clock.now()
                    watch.stop("bench")
            watch.events.close()
            tg.cancel_scope.cancel()
    health = lag.summary()
    return {"scenarios": scenarios, "api_limit": api_limit, "speed": speed,
            "opened_after_s": None if opened is None else round(opened - start, 1),
            "requests": counter.requests, "limited": zone.limited,
            "lag_mean_ms": health["lag_mean_ms"], "lag_p95_ms": health["lag_p95_ms"]}


# ---------------------------------------------------------------- analysis, in the parent

def summarize(side: dict[str, Any], case: Case) -> dict[str, Any]:
    """The figures of one side of one case."""
    detected: dict[str, float] = side["detected"]
    reports: dict[str, int] = side["reports"]
    expected: list[tuple[str, float]] = side["expected"]
    latencies = [detected.get(eid, math.inf) - ended for eid, ended in expected]
    middle = (side["start"] + side["end"]) / 2
    late = [lat for lat, (_, ended) in zip(latencies, expected, strict=True) if ended >= middle]
    first = [lat for lat, (_, ended) in zip(latencies, expected, strict=True)
             if ended <= side["start"] + 60]
    rpm: list[int] = side["rpm"]
    budget = SHARE * case.api_limit
    counted_min = (side["end"] - TAIL_S - side["start"] - 1) / 60
    return {
        "expected": len(expected),
        "runs_per_min": round(len(expected) / counted_min, 1),
        "missed": sum(1 for x in latencies if not math.isfinite(x)),
        "duplicated": sum(1 for n in reports.values() if n > 1),
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "p99_s": percentile(latencies, 99),
        "p95_2nd_half_s": percentile(late, 95),
        "p50_first_min_s": percentile(first, 50),
        "p95_first_min_s": percentile(first, 95),
        "first_min_runs": len(first),
        "percentiles_s": {str(q): percentile(latencies, q) for q in (10, 25, 50, 75, 90, 95, 99)},
        "rpm_mean": round(sum(rpm) / len(rpm), 1) if rpm else math.nan,
        "rpm_max": max(rpm) if rpm else 0,
        "rpm_max_pct_limit": round(100 * max(rpm) / case.api_limit, 1) if rpm else math.nan,
        "within_budget": bool(rpm) and max(rpm) <= math.floor(budget + 1e-9),
        "limited_429": side["limited"],
        "throttled": side["throttled"],
        "opened_after_s": (
            round(side["opened"] - side["start"], 1) if side.get("opened") is not None else None
        ),
        "lag_mean_ms": side["lag_mean_ms"],
        "lag_p95_ms": side["lag_p95_ms"],
        "lag_max_ms": side["lag_max_ms"],
        "lagging": side["lagging"],
        "stalls": side["stalls"],
        "longest_stalls": side["longest_stalls"],
        "cpu_share": side["cpu_share"],
        "requests": side["requests"],
        "events": side.get("events"),
        "first_pass_s": side["first_pass_s"],
        "first_pass_scanned": side["first_pass_scanned"],
        "rescans_in_first_pass": side["rescans_in_first_pass"],
    }


def run_wave(
    cases: list[Case], pool: ProcessPoolExecutor
) -> list[tuple[Case, dict[str, dict[str, Any]]]]:
    """Both sides of several cases at once; a case whose loop lagged runs again, slower."""
    done: list[tuple[Case, dict[str, dict[str, Any]]]] = []
    while cases:
        anchor = time.time()
        futures = [
            (case, {kind: pool.submit(run_side, kind, case, anchor) for kind in SIDES})
            for case in cases
        ]
        again: list[Case] = []
        for case, sides_f in futures:
            sides = {kind: f.result() for kind, f in sides_f.items()}
            lagging = [s for s in sides.values() if s["lagging"]]
            if lagging and case.speed / 2 >= MIN_SPEED:
                worst = max(lagging, key=lambda s: s["lag_p95_ms"])
                print(f"  {case.label}: {worst['kind']} loop lag p95 {worst['lag_p95_ms']:.1f} ms,"
                      f" mean {worst['lag_mean_ms']:.1f} ms at speed {case.speed:g}; "
                      f"again at {case.speed / 2:g}", flush=True)
                again.append(replace(case, speed=case.speed / 2))
            else:
                done.append((case, {k: summarize(s, case) for k, s in sides.items()}))
        cases = again
    return done


SIDES = ("makestream", "naive")


def bench(quick: bool = False, cases: list[Case] | None = None) -> Result:
    chosen = cases if cases is not None else (QUICK if quick else FULL)
    result = Result("latency", "Request economy and detection latency (simulated zone)")
    ctx = multiprocessing.get_context("spawn")
    done: list[tuple[Case, dict[str, dict[str, Any]]]] = []
    adoption: list[dict[str, Any]] = []
    waves: dict[int, list[Case]] = {}
    for case in chosen:
        waves.setdefault(case.scenarios, []).append(case)
    with ProcessPoolExecutor(max_workers=2 * PARALLEL_CASES, mp_context=ctx) as pool:
        for size, wave in waves.items():
            t0 = time.perf_counter()
            print(f"latency: {size} scenarios, limits "
                  f"{', '.join(f'{c.api_limit}/min' for c in wave)}, "
                  f"{wave[0].minutes:g} simulated min at speed {wave[0].speed:g} ...", flush=True)
            for i in range(0, len(wave), PARALLEL_CASES):
                done += run_wave(wave[i : i + PARALLEL_CASES], pool)
            print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
        if not quick and cases is None:
            adoption = measure_adoption(pool)
    _fill(result, done, adoption)
    return result


def measure_adoption(pool: ProcessPoolExecutor) -> list[dict[str, Any]]:
    """Time to stream.opened when the scenarios are named by id, for each of ADOPTION."""
    which = ", ".join(f"{n} @ {lim}/min" for n, lim in ADOPTION)
    print(f"latency: adoption by id ({which}) at speed {ADOPTION_SPEED:g} ...", flush=True)
    anchor = time.time()
    pending = [pool.submit(run_adoption, n, limit, ADOPTION_SPEED, anchor)
               for n, limit in ADOPTION]
    return [f.result() for f in pending]


def adoption_bench(quick: bool = False) -> Result:
    """Only the adoption table (`python -m bench latency --adoption-only`)."""
    result = Result("adoption", "Adoption by id: time to stream.opened (simulated zone)")
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(ADOPTION), mp_context=ctx) as pool:
        adoption = measure_adoption(pool)
    _fill(result, [], adoption)
    result.rows, result.notes = result.tables.pop()[1], []
    return result


def _fill(
    result: Result,
    done: list[tuple[Case, dict[str, dict[str, Any]]]],
    adoption: list[dict[str, Any]],
) -> None:
    economy: list[dict[str, Any]] = []
    stalls: list[dict[str, Any]] = []
    for case, sides in done:
        ms, nv = sides["makestream"], sides["naive"]
        for kind, s in sides.items():
            mine = kind == "makestream"
            result.rows.append({
                "case": case.label, "watcher": kind, "runs/min": s["runs_per_min"],
                "expected": s["expected"],
                "missed": s["missed"], "dup": s["duplicated"],
                "p50 s": s["p50_s"], "p95 s": s["p95_s"], "p99 s": s["p99_s"],
                "p95 2nd half s": s["p95_2nd_half_s"],
                "p50 vs naive": ratio(s["p50_s"], nv["p50_s"]) if mine else None,
                "p95 vs naive": ratio(s["p95_s"], nv["p95_s"]) if mine else None,
            })
            economy.append({
                "case": case.label, "watcher": kind, "speed": case.speed,
                "req/min": s["rpm_mean"], "max/min": s["rpm_max"],
                "max % limit": s["rpm_max_pct_limit"], "429": s["limited_429"],
                "throttled": s["throttled"], "opened s": s["opened_after_s"],
                "1st pass s": s["first_pass_s"], "rescans in 1st pass": s["rescans_in_first_pass"],
                "lag mean ms": s["lag_mean_ms"], "lag p95 ms": s["lag_p95_ms"],
                "lag max ms": s["lag_max_ms"], "lagging": s["lagging"],
                "stalls ≥100ms": s["stalls"], "cpu": s["cpu_share"],
            })
            if s["longest_stalls"]:
                top = s["longest_stalls"][0]
                stalls.append({"case": case.label, "watcher": kind, "stalls": s["stalls"],
                               "longest ms": top["ms"],
                               "where (innermost first)": " < ".join(reversed(top["stack"][-4:]))})
        p95_ok = math.isfinite(ms["p95_s"]) and ms["p95_s"] <= nv["p95_s"] / 3
        result.goals += [
            (f"{case.label}: zero missed ({ms['missed']} of {ms['expected']})", ms["missed"] == 0),
            (f"{case.label}: zero duplicated ({ms['duplicated']})", ms["duplicated"] == 0),
            (f"{case.label}: zero 429 ({ms['limited_429']} limited, {ms['throttled']} throttled)",
             ms["limited_429"] == 0 and ms["throttled"] == 0),
            (f"{case.label}: at most 80% of the limit (max {ms['rpm_max']}/min)",
             ms["within_budget"]),
            (f"{case.label}: p95 at most 1/3 of naive ({_s(ms['p95_s'])} vs {_s(nv['p95_s'])})",
             p95_ok),
        ]
        result.raw[case.label] = {"case": asdict(case), **sides}
    if done:
        result.tables.append(("Request economy and the process's health:", economy))
    if stalls:
        result.tables.append(("Loop stalls of 100 ms or more (the longest, and where the loop's "
                              "thread was):", stalls))
    if done:
        result.tables.append(("makestream requests by endpoint (whole window):", [
            {"case": case.label, **sides["makestream"]["requests"]} for case, sides in done
        ]))
    if adoption:
        result.tables.append(
            ("Adoption by id (`WatchOptions(scenario_ids=all)`): time to stream.opened:", [
                {"scenarios": a["scenarios"], "limit/min": a["api_limit"], "speed": a["speed"],
                 "opened after s": a["opened_after_s"], **a["requests"], "429": a["limited"],
                 "lag mean ms": a["lag_mean_ms"], "lag p95 ms": a["lag_p95_ms"]}
                for a in adoption
            ]))
        result.raw["adoption_by_id"] = adoption
    result.notes += [
        "latency = clock time of the report - the run's true end, in simulated seconds; "
        "percentiles (nearest rank) over the runs that ended in [start+1 s, end-2 min] "
        "('expected'; runs/min = their rate); "
        "a missed run counts as ∞; '2nd half' keeps the runs that ended in the window's 2nd half",
        "makestream adopts the scenarios as `--team` does (the world's scenarios are in one "
        "team); adopting by id costs one request per scenario first (see the adoption table)",
        "req/min: mean and max over full clock minutes inside the window, as the zone counted "
        "them; 429 = answers of the organization limit; throttled = the client's 429 notices",
        "opened s: simulated seconds from the watcher's start to stream.opened; 1st pass s: "
        "until every scenario's logs had been read once (- when the window ended first); "
        "rescans in 1st pass: log reads of already-read scenarios before that",
        "each case runs both watchers at once in two processes, each with its own zone (same "
        "seed, one shared clock); speed = the clock speed used after the loop-lag check "
        f"(a 10 ms sleep's overshoot: p95 under {LAG_LIMIT_MS:g} ms and mean under "
        f"{LAG_MEAN_LIMIT_MS:g} ms, else half the speed, down to {MIN_SPEED:g}); a case still "
        "lagging at its last speed is marked in 'lagging'",
    ]


def _s(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.1f} s"

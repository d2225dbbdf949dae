"""The workload x API-variant matrix: makestream against the naive loop in each cell.

Each cell is a `bench.latency.Case` run as the latency benchmark runs one (two processes, each
with its own zone from the same seed on one shared fast clock; the naive round-robin log poller
at the same 80 % of the limit). makestream names the scenarios by id (as a user does), with
`--api-limit` where the organization is unreadable.

The full factorial (6 workloads x 12 variants x 4 sizes x 2 windows) does not fit on two
cores, so the design is: the *conservative* variant (the side of every open question in
make-api.md that is hardest for a client: runs in flight absent from `/logs`, the log 1 s after
the end, `operations` growing when the log appears, queue depth and organization unreadable,
`--api-limit 60`) with every workload, then one factor varied at a time on the all-active
workload, then the counter variants the all-active workload loses (`operations` never kept,
30 s late) on three other workloads, and last the variants that take a signal away or move it
on other sizes and workloads (every variant on 20 scenarios; the counter, log, queue and
organization variants on 3, 100 and 1,000 where they matter; runs in flight listed on 3, 20
and 100, and with the log 5 s late on 20). Both windows come from one run: the first minute
after start, and the whole window.

    python -m bench matrix            # the cells of CELLS
    python -m bench matrix --quick    # SMOKE only
    python -m bench matrix --cells 0,counters=never --seeds 1,2,3   # two cells, three seeds each

One seed is one draw of each workload (arrivals, lengths, outcomes): a cell's p95 moves by a
few seconds from seed to seed and from run to run on a shared machine, so a verdict worth
trusting holds over several seeds.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import random
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from bench.latency import Case, run_wave
from bench.report import Result, ratio
from makestream.sim.flows import blueprint, module
from makestream.sim.world import (
    OrganizationSpec,
    Profile,
    ScenarioSpec,
    TeamSpec,
    WebhookSpec,
    WorldSpec,
    generated_world,
)

CONSERVATIVE: tuple[tuple[str, Any], ...] = (
    ("running_in_logs", False), ("log_lag", 1.0), ("counters", "log"),
    ("queue_readable", False), ("organization_readable", False), ("log_timestamp", "start"),
)


def _vary(**changes: Any) -> tuple[tuple[str, Any], ...]:
    return tuple((k, changes.get(k, v)) for k, v in CONSERVATIVE)


def workload_world(name: str, n: int, *, seed: int, api_limit: int) -> WorldSpec:
    """The workloads of the matrix.

    idle       generated_world(n): scheduled every 1-15 min, webhooks, on-demand that never run
    active     half scheduled every 60 s, half webhooks 40 s apart; 10 % warnings, 10 % errors
               (from 100 scenarios on: about 20 runs a minute in all, every 3n s and 3n s
               apart: 300 s with 100 scenarios, 3,000 s with 1,000)
    scheduled  every scenario scheduled every 60 s
    poisson    every scenario a webhook, 40 s apart on average
    overload   webhooks bringing 1.5 x as many runs a minute as the budget has requests
    bursts     half webhooks 1 a minute, half webhooks whose senders batch: 10 requests in 5 s,
               a batch every 8 minutes on average (with 20 scenarios about 22 runs a minute)
    polling    every scenario scheduled every 60 s; half are polling triggers whose check
               finds nothing new 4 times in 5 (a check run: not listed, no counter moved)
    """
    if name == "idle":
        world = generated_world(n, seed=seed, api_limit=api_limit)
        return world.model_copy(update={"scenarios": [
            s.model_copy(update={"team_id": 1}) for s in world.scenarios
        ], "teams": [TeamSpec(id=1, name="All")]})
    rng = random.Random(f"matrix/{name}/{seed}")
    scenarios = []
    for i in range(n):
        sid = 1000 + i
        kind = {"active": "scheduled" if i % 2 == 0 else "webhook", "scheduled": "scheduled",
                "polling": "scheduled", "poisson": "webhook", "overload": "webhook",
                "bursts": "webhook"}[name]
        calm = name == "active" and n >= 100
        bursting = name == "bursts" and i % 2 == 1
        if name == "overload":
            rate = 1.5 * 0.8 * api_limit / n  # webhook arrivals a minute
        elif calm:
            rate = 20 / n
        elif name == "bursts":
            rate = 0.125 if bursting else 1.0
        else:
            rate = 1.5
        mean = rng.choice([2.0, 4.0, 6.0, 10.0])
        first = (module(1, "gateway:CustomWebHook", listener=True) if kind == "webhook"
                 else module(1, "http:ActionGetFile"))
        spec: dict[str, Any] = {
            "id": sid, "name": f"{name} {i + 1}", "team_id": 1,
            "blueprint": blueprint(f"{name} {i + 1}", [first, module(2, "json:ParseJSON")],
                                   instant=kind == "webhook"),
            "profile": Profile(duration_mean=mean, duration_stddev=mean / 4,
                               warning_rate=0.1, error_rate=0.1,
                               check_rate=0.8 if name == "polling" and i % 2 == 0 else 0.0),
        }
        if kind == "scheduled":
            spec["scheduling"] = {"type": "indefinitely", "interval": 3 * n if calm else 60}
        else:
            spec["scheduling"] = {"type": "immediately"}
            spec["webhook"] = WebhookSpec(rate_per_minute=round(rate, 3), hook_id=sid,
                                          parallel=10 if bursting else 4,
                                          burst=10 if bursting else 1,
                                          burst_s=5.0 if bursting else 0.0)
        scenarios.append(ScenarioSpec.model_validate(spec))
    return WorldSpec(organization=OrganizationSpec(api_limit=api_limit),
                     teams=[TeamSpec(id=1, name="All")], scenarios=scenarios)


def _cell(workload: str, n: int, variant: tuple[tuple[str, Any], ...], *, minutes: float = 5,
          speed: float = 10, limit: int = 60) -> Case:
    return Case(n, limit, minutes, speed, by_team=False, workload=workload, variant=variant,
                history_s=600.0)


CELLS = [
    _cell("active", 20, CONSERVATIVE),
    _cell("overload", 20, CONSERVATIVE),
    _cell("active", 100, CONSERVATIVE, speed=5),
    _cell("active", 1000, CONSERVATIVE, speed=5),
    _cell("active", 3, CONSERVATIVE, speed=20),
    *(_cell(w, 20, CONSERVATIVE) for w in ("idle", "scheduled", "poisson", "bursts")),
    _cell("active", 20, _vary(counters="end")),
    _cell("active", 20, _vary(counters="never")),
    _cell("active", 20, _vary(running_in_logs=True)),
    _cell("active", 20, _vary(log_lag=0.0)),
    _cell("active", 20, _vary(log_lag=5.0)),
    _cell("active", 20, _vary(queue_readable=True, organization_readable=True)),
    _cell("active", 20, _vary(counters="late")),
    _cell("active", 20, _vary(log_timestamp="end")),
    _cell("active", 20, CONSERVATIVE, minutes=10),
    _cell("poisson", 20, _vary(counters="never")),
    _cell("bursts", 20, _vary(counters="never")),
    _cell("scheduled", 20, _vary(counters="late")),
    # Other sizes and other workloads with the variants that take a signal away or move it.
    _cell("active", 3, _vary(counters="never"), speed=20),
    _cell("active", 100, _vary(counters="never"), speed=5),
    _cell("active", 100, _vary(counters="late"), speed=5),
    _cell("idle", 20, _vary(counters="never")),
    _cell("scheduled", 20, _vary(counters="never")),
    _cell("overload", 20, _vary(counters="never")),
    _cell("poisson", 20, _vary(running_in_logs=True)),
    _cell("poisson", 20, _vary(log_lag=5.0, log_timestamp="end")),
    _cell("bursts", 20, _vary(queue_readable=True, organization_readable=True)),
    # The log and organization variants on other sizes; 1,000 scenarios without counters.
    _cell("active", 3, _vary(log_lag=5.0, log_timestamp="end"), speed=20),
    _cell("active", 100, _vary(log_lag=5.0, log_timestamp="end"), speed=5),
    _cell("active", 100, _vary(queue_readable=True, organization_readable=True), speed=5),
    _cell("active", 1000, _vary(counters="never"), speed=5),
    _cell("active", 1000, _vary(counters="late"), speed=5),
    # The log, queue and organization variants at 1,000 scenarios; runs in flight listed on
    # the other sizes.
    _cell("active", 1000, _vary(log_lag=5.0, log_timestamp="end"), speed=5),
    _cell("active", 1000, _vary(queue_readable=True, organization_readable=True), speed=5),
    _cell("active", 3, _vary(running_in_logs=True), speed=20),
    _cell("active", 100, _vary(running_in_logs=True), speed=5),
    _cell("active", 20, _vary(running_in_logs=True, log_lag=5.0)),
    _cell("poisson", 20, _vary(running_in_logs=True, log_lag=5.0)),
    # Polling triggers: scheduled slots that mostly list nothing (check runs).
    _cell("polling", 20, CONSERVATIVE),
]
SMOKE = [_cell("active", 6, CONSERVATIVE, minutes=3.5, speed=20)]


def select(picks: list[str]) -> list[Case]:
    """The cells named by number (their place in CELLS, from 0) or by a fragment of their
    label; ValueError names a pick that matches none."""
    chosen: list[Case] = []
    for pick in picks:
        if not pick:
            raise ValueError("an empty pick")
        if pick.isascii() and pick.isdigit():
            if int(pick) >= len(CELLS):
                raise ValueError(f"no cell {pick}: there are {len(CELLS)} (0-{len(CELLS) - 1})")
            found = [CELLS[int(pick)]]
        else:
            found = [c for c in CELLS if pick in c.label]
            if not found:
                raise ValueError(f"no cell's label contains {pick!r}")
        chosen += [c for c in found if c not in chosen]
    return chosen


def bench(quick: bool = False, cells: list[Case] | None = None,
          seeds: tuple[int, ...] = (1,)) -> Result:
    chosen = cells if cells is not None else (SMOKE if quick else CELLS)
    seeds = tuple(dict.fromkeys(seeds))  # each once
    chosen = [dataclasses.replace(case, seed=seed) for case in chosen for seed in seeds]
    result = Result("matrix", "Workload x API variant: makestream against the naive loop")
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        done = []
        for case in chosen:
            print(f"matrix: {case.label} ...", flush=True)
            got = run_wave([case], pool)
            for _, sides in got:
                ms, nv = sides["makestream"], sides["naive"]
                print(f"  runs {ms['expected']}: p50 {ms['p50_s']:.1f} p95 {ms['p95_s']:.1f} "
                      f"(1st min {ms['p95_first_min_s']:.1f}) missed {ms['missed']} | naive "
                      f"p50 {nv['p50_s']:.1f} p95 {nv['p95_s']:.1f} "
                      f"(1st min {nv['p95_first_min_s']:.1f}) missed {nv['missed']} | "
                      f"req/min {ms['rpm_mean']} 429 {ms['limited_429']}", flush=True)
            done += got
    for case, sides in done:
        ms, nv = sides["makestream"], sides["naive"]
        name = f"{case.label} seed {case.seed}" if len(seeds) > 1 else case.label
        result.rows.append({
            "cell": name,
            "runs": ms["expected"],
            "p50 s": ms["p50_s"], "p95 s": ms["p95_s"],
            "naive p50 s": nv["p50_s"], "naive p95 s": nv["p95_s"],
            "p95 vs naive": ratio(ms["p95_s"], nv["p95_s"]),
            "1st min p95 s": ms["p95_first_min_s"], "naive 1st min p95 s": nv["p95_first_min_s"],
            "missed": ms["missed"], "naive missed": nv["missed"], "dup": ms["duplicated"],
            "req/min": ms["rpm_mean"], "max req/min": ms["rpm_max"],
            "429": ms["limited_429"] + ms["throttled"],
        })
        result.goals.append((
            f"{name}: p95 ≤ naive and no more missed",
            ms["p95_s"] <= nv["p95_s"] and ms["missed"] <= nv["missed"],
        ))
        result.raw[name] = {"case": repr(case), **sides}
    result.notes.append(
        "latency = report time - the run's true end (simulated s), over runs that ended in "
        "[start+1 s, end-2 min]; '1st min' keeps those that ended in the first minute; missed = "
        "not reported when the window ended; 429 = the zone's limit answers plus throttle notices"
    )
    return result

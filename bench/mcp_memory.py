"""Benchmark: what one `makestream mcp` monitor costs in memory, at 20 scenarios per monitor.

    python -m bench.mcp_memory [--quick]

The zone runs in this process and is served over TCP (uvicorn on 127.0.0.1); the MCP server's
engine runs in a child process (`python -m bench.mcp_memory child URL K`): one `MakeClient`, the
`Service` and the built MCP server, with K monitors started as `start_monitoring` starts them,
each on its own 20 scenarios, and drained every simulated minute as `get_execution_state` would.
This process reads the child's `VmRSS` every simulated minute and its `VmHWM` at the end.

Baseline, side by side in the same run: the same child with K = 0 (client, service and server
built, idle). A monitor's cost is (RSS with K monitors - baseline RSS) / K, at the last sample.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import anyio

from bench.latency import Case, bench_world
from bench.memory import sample_child
from bench.report import Result, emit
from makestream.clock import Clock
from makestream.sim import SimZone

PER_MONITOR = 20  # scenarios each monitor watches
API_LIMIT = 240
FULL = (10.0, 30.0, [0, 1, 10, 25])  # simulated minutes, clock speed, monitor counts
QUICK = (3.0, 30.0, [0, 1, 5])
GOAL_MB = 5.0


async def measure(monitors: int, minutes: float, speed: float, scenarios: int) -> dict[str, Any]:
    clock = Clock(speed)
    world = bench_world(Case(scenarios, API_LIMIT, minutes, speed))
    zone = SimZone(world, clock=clock, seed=1)
    zone.truth()
    samples, peak, requests = await sample_child(
        zone, clock, ["bench.mcp_memory", str(monitors)], minutes)
    return {"monitors": monitors, "samples": samples, "last_mb": samples[-1],
            "peak_mb": peak, "requests": requests}


def bench(quick: bool = False) -> Result:
    minutes, speed, counts = QUICK if quick else FULL
    scenarios = PER_MONITOR * max(1, max(counts))
    runs = []
    for k in counts:
        t0 = time.perf_counter()
        print(f"mcp-memory: {k} monitors x {PER_MONITOR} scenarios, {minutes:g} simulated min "
              f"at speed {speed:g} ...", flush=True)
        runs.append(anyio.run(measure, k, minutes, speed, scenarios))
        print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    base = runs[0]
    result = Result("mcp-memory", f"MCP monitors: RSS of the server process (MB), "
                                  f"{PER_MONITOR} scenarios per monitor")
    worst = 0.0
    for r in runs:
        per = None
        if r["monitors"]:
            per = round((r["last_mb"] - base["last_mb"]) / r["monitors"], 2)
            worst = max(worst, per)
        result.rows.append({
            "monitors": r["monitors"] or "baseline: server, no monitor",
            "last MB": r["last_mb"], "peak (VmHWM) MB": r["peak_mb"],
            "MB per monitor": per, "requests": r["requests"],
        })
    result.goals.append((f"a monitor at {PER_MONITOR} scenarios costs under {GOAL_MB:g} MB "
                         f"(worst {worst} MB)", worst < GOAL_MB))
    result.notes += [
        f"{minutes:g} simulated minutes at clock speed {speed:g}, {API_LIMIT}/min limit, one "
        "request budget shared by every monitor; RSS sampled every simulated minute",
        "MB per monitor = (last RSS with K monitors - last RSS of the baseline) / K",
    ]
    result.raw = {"runs": runs}
    return result


# ---------------------------------------------------------------- the child process

async def _child(url: str, monitors: int) -> None:
    from pathlib import Path

    from makestream.engine.alerts import AlertEvaluator
    from makestream.engine.rules import EffectiveThresholds
    from makestream.make.budget import Budget
    from makestream.make.client import MakeClient, Token
    from makestream.mcp.server import build_server
    from makestream.mcp.service import running
    from makestream.sim import DEMO_TOKEN

    clock = Clock.from_env()
    holder: list[Any] = []
    async with MakeClient(url, Token(DEMO_TOKEN), budget=Budget(API_LIMIT, clock=clock),
                          clock=clock,
                          observer=lambda n: holder[0].on_notice(n) if holder else None
                          ) as client, running(client, None, api_limit=None,
                                               config_path=Path("/nonexistent")) as service:
        holder.append(service)
        build_server(service)
        books = []

        async def start(i: int) -> None:
            ids = [1000 + n for n in range(i * PER_MONITOR, (i + 1) * PER_MONITOR)]
            monitor = await service.start_monitor(ids, None,
                                                  AlertEvaluator(EffectiveThresholds()))
            books.append(monitor.book)

        # At once, as clients that start monitors together would: each start queues its
        # requests in the one budget beside the others'.
        async with anyio.create_task_group() as tg:
            for i in range(monitors):
                tg.start_soon(start, i)
        print("ready", flush=True)
        while True:
            await clock.sleep(60)
            for book in books:  # as get_execution_state would
                book.drain(client.budget.snapshot())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mcp_memory")
    parser.add_argument("role", nargs="?", choices=["child"])
    parser.add_argument("url", nargs="?")
    parser.add_argument("monitors", nargs="?", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.role == "child":
        anyio.run(_child, args.url, args.monitors)
        return 0
    result = bench(args.quick)
    emit(result, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

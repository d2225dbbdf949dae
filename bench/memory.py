"""Benchmark 5: memory — the RSS of a process that runs a watch, over ten simulated minutes.

The zone runs in this process and is served over TCP (uvicorn on 127.0.0.1); the watch runs in a
child process (`python -m bench.memory child ...`) that builds a `MakeClient` and a
`Watch(WatchOptions(team_id=1))` in process, on the same clock (`MAKESTREAM_CLOCK`), and writes
every event as NDJSON to /dev/null — so the child's RSS is the watch's alone, without the
simulated world. This process reads the child's `VmRSS` from `/proc/<pid>/status` once every
simulated minute, and its `VmHWM` (peak) at the end.

Worlds: `generated_world(n)` for n = 1, 100 and 1,000 (in one team, with a quarter hour of
history) at a 240/min limit. Baseline: a child that imports the same modules and waits, without
watching (the floor every watch process pays).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import uvicorn

from bench.latency import Case, bench_world
from bench.report import ROOT, Result
from makestream.clock import ENV as CLOCK_ENV
from makestream.clock import Clock
from makestream.sim import SimZone

API_LIMIT = 240
FULL = [(1, 10.0, 30.0), (100, 10.0, 30.0), (1000, 10.0, 10.0)]  # scenarios, minutes, speed
QUICK = [(1, 3.0, 30.0), (100, 3.0, 30.0)]
GOAL_MB = 150.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


async def sample_child(zone: SimZone, clock: Clock, child_args: list[str],
                       minutes: float) -> tuple[list[float], float, int]:
    """Serve `zone` over TCP, start `python -m <child_args…> URL` on the same clock (it prints
    "ready" once set up), and read its RSS every simulated minute: the samples (MB), its peak
    (VmHWM, MB) and the requests the zone saw meanwhile."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(zone.app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    samples: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await anyio.sleep(0.01)
        env = {**os.environ, CLOCK_ENV: clock.spec()}
        module, *rest = child_args
        argv = [sys.executable, "-m", module, "child", f"http://127.0.0.1:{port}/api/v2", *rest]
        child = await anyio.open_process(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                         stderr=None)
        try:
            assert child.stdout is not None
            ready = await child.stdout.receive()
            if not ready.startswith(b"ready"):
                raise RuntimeError(f"{module} child did not start: {ready!r}")
            start = clock.now()
            requests0 = zone.request_count()
            for minute in range(1, int(minutes) + 1):
                await clock.sleep(start + minute * 60 - clock.now())
                if child.returncode is not None:
                    raise RuntimeError(f"{module} child ended early with {child.returncode}")
                samples.append(round(_status(child.pid)["VmRSS"] / 1024, 1))
            peak = round(_status(child.pid)["VmHWM"] / 1024, 1)
            requests = zone.request_count() - requests0
        finally:
            child.terminate()
            await child.wait()
        server.should_exit = True
    return samples, peak, requests


async def measure(scenarios: int, minutes: float, speed: float) -> dict[str, Any]:
    """One world: serve it, run the child, sample its RSS every simulated minute."""
    clock = Clock(speed)
    watching = scenarios > 0
    zone = SimZone(bench_world(Case(max(1, scenarios), API_LIMIT, minutes, speed)), clock=clock,
                   seed=1)
    zone.truth()
    rss, peak, requests = await sample_child(
        zone, clock, ["bench.memory", "--watch" if watching else "--idle"], minutes)
    samples = [{"minute": n, "rss_mb": mb} for n, mb in enumerate(rss, 1)]
    return {"scenarios": scenarios, "minutes": minutes, "speed": speed, "samples": samples,
            "first_mb": rss[0], "last_mb": rss[-1], "max_mb": max(rss), "peak_hwm_mb": peak,
            "requests": requests, "runs_in_zone": len(zone.truth())}


def bench(quick: bool = False) -> Result:
    plan = QUICK if quick else FULL
    minutes = plan[0][1]
    print("memory: baseline (imports only) ...", flush=True)
    runs = [anyio.run(measure, 0, min(2.0, minutes), 30.0)]
    for scenarios, mins, speed in plan:
        t0 = time.perf_counter()
        print(f"memory: {scenarios} scenarios, {mins:g} simulated min at speed {speed:g} ...",
              flush=True)
        runs.append(anyio.run(measure, scenarios, mins, speed))
        print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    base = runs[0]
    result = Result("memory", "Memory: RSS of a watch process (MB), sampled every simulated "
                              "minute")
    for r in runs:
        result.rows.append({
            "world": "baseline: imports, no watch" if r["scenarios"] == 0
            else f"{r['scenarios']} scenarios",
            "minutes": r["minutes"], "speed": r["speed"], "first MB": r["first_mb"],
            "last MB": r["last_mb"], "max MB": r["max_mb"], "peak (VmHWM) MB": r["peak_hwm_mb"],
            "last - first MB": round(r["last_mb"] - r["first_mb"], 1),
            "max vs baseline": round(r["max_mb"] / base["max_mb"], 2),
            "requests": r["requests"] if r["scenarios"] else None,
        })
    result.tables.append(("RSS by simulated minute (MB):", [
        {"minute": m + 1, **{f"{r['scenarios']} scen.": r["samples"][m]["rss_mb"]
                             for r in runs[1:] if m < len(r["samples"])}}
        for m in range(max(len(r["samples"]) for r in runs[1:]))
    ]))
    big = runs[-1]
    growth = big["last_mb"] - big["first_mb"]
    result.goals += [
        (f"under {GOAL_MB:g} MB at {big['scenarios']} scenarios (max {big['max_mb']} MB, "
         f"peak {big['peak_hwm_mb']} MB)", big["peak_hwm_mb"] < GOAL_MB),
        (f"flat over time at {big['scenarios']} scenarios (last - first {growth:+.1f} MB)",
         abs(growth) <= max(5.0, 0.05 * big["first_mb"])),
    ]
    result.notes += [
        "'flat' = last sample within max(5 MB, 5 %) of the first",
        "the child watches over TCP (the zone runs in the benchmark process), so its RSS holds "
        "the watch, httpx and the interpreter, not the simulated world",
    ]
    result.raw = {"runs": runs}
    return result


# ---------------------------------------------------------------- the child process

async def _child(url: str, watch: bool, sink: BinaryIO) -> None:
    from makestream.engine.watch import Watch, WatchOptions
    from makestream.events import encode
    from makestream.make.budget import Budget
    from makestream.make.client import MakeClient, Token
    from makestream.sim import DEMO_TOKEN

    clock = Clock.from_env()
    if not watch:
        print("ready", flush=True)
        await anyio.sleep_forever()
    async with MakeClient(url, Token(DEMO_TOKEN), budget=Budget(API_LIMIT, clock=clock),
                          clock=clock) as client:
        w = Watch(client, WatchOptions(team_id=1))
        print("ready", flush=True)
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.run)
            async for event in w.events:
                sink.write(encode(event))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("role", choices=["child"])
    parser.add_argument("url")
    parser.add_argument("--watch", action="store_true")
    parser.add_argument("--idle", action="store_true")
    args = parser.parse_args(argv)
    with open(os.devnull, "wb") as sink:
        anyio.run(_child, args.url, args.watch, sink)


if __name__ == "__main__":
    main(sys.argv[1:])

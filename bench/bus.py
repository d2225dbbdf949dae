"""Benchmark: scale-out on Redis — three `serve-sse --bus` replicas against one serve-sse.

Two set-ups, side by side in one run, each on the same world, clock and number of subscribers
(fresh processes for each, so every run starts from the same state):

    one        `makestream sim serve` + one `makestream serve-sse` (no bus) holding N subscribers
    cluster    `makestream sim serve` + a `redis-server` (free loopback port, temporary folder,
               `--save "" --appendonly no`) + three `makestream serve-sse --bus redis://...`
               replicas, N/3 subscribers on each

Every serve-sse runs with `--no-store` (the replicas would otherwise share one SQLite file on
this machine) and `--idle-stop 0`. The load is bench/sse.py's: spawned worker processes holding
raw SSE connections (one worker per replica in the cluster, as many on the single process), and
the figures are its analysis: delivery latency "vs ts" (receive time minus the event's `ts` in
real time) over every (event, subscriber) pair of the window, a missed delivery counted as
infinite and as missing. The replicas give every event the same id (its position in the
stream), so the events of all subscribers are merged by id as on one process.

Per set-up: upstream requests to Make over the window (the sum of every serve-sse's own
`makestream_api_requests_total`; in the cluster only the lease holder should send any), those
requests per simulated minute against the 80 % cap (0.8 x the world's `api_limit`), the lease
holders at both ends of the window (replicas whose /readyz says `"lease": "held"`: exactly one),
RSS (VmRSS) and CPU of every server process (redis-server included).

Worlds: `demo` (the built-in demo, about 10 runs a simulated minute) and `busy` (the demo's
scenarios with the form webhook at 20 runs a minute, the off one switched on at 12 a minute and
the schedules up to twice as often: about 4 x the runs), the latter given to
`sim serve --world FILE`.

    python -m bench bus            # 3 x 3,000 against 1 x 9,000, both worlds (about 4 minutes)
    python -m bench bus --quick    # 3 x 100 against 1 x 300, busy world only (about 30 s)
    python -m bench.bus --subscribers 6000 --worlds demo --window 60   # other sizes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import ROOT, Result, emit
from bench.sse import (
    GOAL_P99_MS,
    HOST,
    Clock,
    Load,
    _http_get,
    _wait_port,
    analyse,
    api_requests_at,
    cpu_s,
    finish_load,
    free_port,
    kill_load,
    log_tail,
    metrics_at,
    raise_nofile,
    rss_kb,
    run_window,
    shown_command,
    spawn_sse,
    split,
    start_load,
    start_sim,
    stop_process,
    stop_processes,
    wait_connected,
    wait_ready,
    zone_env,
)

REPLICAS = 3
BUDGET_SHARE = 0.8  # serve-sse's default --budget-share


@dataclass(frozen=True)
class Plan:
    subscribers: int  # in all, for each set-up (the cluster: subscribers / REPLICAS each)
    speed: float
    window_s: float
    settle_s: float
    workers: int  # load worker processes, for each set-up
    worlds: tuple[str, ...] = ("demo", "busy")
    warmup_s: float = 2.0  # after /readyz, before connecting: the upstream's first scans


# Speed 2, as bench/sse.py's full run: at thousands of subscribers a faster clock measures the
# saturation of two shared cores, not the fan-out.
FULL = Plan(subscribers=9000, speed=2.0, window_s=30.0, settle_s=5.0, workers=3)
# The busy world only: both worlds take about a minute on two cores (a cluster's run is ~15 s,
# most of it three Pythons starting at once), and the busy one has more events to check.
QUICK = Plan(subscribers=300, speed=10.0, window_s=4.0, settle_s=0.5, workers=3,
             worlds=("busy",), warmup_s=1.0)


# ---------------------------------------------------------------- worlds


def busy_world() -> Any:
    """The demo's scenarios (same ids), with about four times the runs."""
    from makestream.sim.world import Profile, WebhookSpec, demo_world

    world = demo_world()
    scenarios = []
    for sc in world.scenarios:
        update: dict[str, Any] = {}
        if sc.scheduling.get("type") == "indefinitely":
            # Twice as often, down to Make's floor of a minute.
            interval = max(60, sc.scheduling["interval"] // 2)
            update["scheduling"] = {**sc.scheduling, "interval": interval}
        if sc.id == 104:  # sequential: shorter runs, so that 20 a minute do not queue up
            assert sc.webhook is not None
            update["webhook"] = sc.webhook.model_copy(update={"rate_per_minute": 20})
            update["profile"] = sc.profile.model_copy(update={"duration_mean": 2.0,
                                                              "duration_stddev": 0.5})
        if sc.id == 108:  # the legacy intake, switched on
            update["is_active"] = True
            update["webhook"] = WebhookSpec(rate_per_minute=12, queue_limit=1000, hook_id=2108,
                                            name="Typeform")
            update["profile"] = Profile(duration_mean=3.0, duration_stddev=1.0, error_rate=0.05)
        scenarios.append(sc.model_copy(update=update))
    return world.model_copy(update={"scenarios": scenarios})


def world_args(name: str, logdir: Path) -> tuple[list[str], int]:
    """`sim serve` arguments for a world, and its organization's request limit per minute."""
    if name == "demo":
        from makestream.sim.world import demo_world

        return [], demo_world().organization.api_limit
    if name == "busy":
        world = busy_world()
        world = type(world).model_validate(world.model_dump(by_alias=True))  # as sim serve reads it
        path = logdir / "busy-world.json"
        path.write_text(world.model_dump_json(by_alias=True))
        return ["--world", str(path)], world.organization.api_limit
    raise ValueError(f"unknown world {name!r}")


# ---------------------------------------------------------------- processes


def start_redis(logdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A throw-away redis-server on a free loopback port; returns once it answers PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    data = logdir / "redis"
    data.mkdir()
    with open(logdir / "redis.log", "wb") as log:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--dir", str(data), "--loglevel", "warning"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, 20)
        deadline = time.monotonic() + 20
        while True:
            with socket.create_connection((HOST, port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, port
            if time.monotonic() > deadline:
                raise TimeoutError("redis-server does not answer PING")
            time.sleep(0.1)
    except BaseException:
        proc.kill()
        raise


@dataclass
class Fleet(Clock):
    """The processes of one set-up: the zone, maybe Redis, and one or more serve-sse."""

    sim: subprocess.Popen[bytes]
    logdir: Path
    commands: list[str]
    redis: subprocess.Popen[bytes] | None = None
    servers: list[tuple[subprocess.Popen[bytes], int]] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [port for _, port in self.servers]

    def readyz(self, port: int) -> dict[str, Any]:
        try:
            body: dict[str, Any] = json.loads(_http_get(port, "/readyz", timeout=30))
            return body
        except (OSError, ValueError) as exc:
            return {"status": f"unanswered: {exc}"}

    def lease_holders(self) -> list[int]:
        """Indexes of the replicas whose /readyz says they hold the lease."""
        return [i for i, port in enumerate(self.ports) if self.readyz(port).get("lease") == "held"]

    def stop(self) -> dict[str, int | None]:
        # All at once: each takes a while to end its streams.
        ends = stop_processes([proc for proc, _ in self.servers])
        codes = {f"sse{i}": code for i, code in enumerate(ends)}
        if self.redis is not None:
            codes["redis"] = stop_process(self.redis)
        codes["sim"] = stop_process(self.sim)
        return codes


def start_fleet(plan: Plan, world: str, replicas: int) -> Fleet:
    """`sim serve` and either one serve-sse (replicas == 0) or a Redis and `replicas` of them
    with --bus; returns once every serve-sse answers /readyz and (with a bus) one holds the
    lease."""
    anchor = time.time()
    logdir = Path(tempfile.mkdtemp(prefix="makestream-bench-bus-"))
    sim_args, _ = world_args(world, logdir)
    sim_port = free_port()
    env = zone_env(plan.speed, anchor, sim_port)
    sim, sim_cmd = start_sim(env, sim_port, logdir, sim_args=sim_args)
    fleet = Fleet(plan.speed, anchor, sim, logdir, [shown_command(sim_cmd)])
    try:
        per = plan.subscribers // max(1, replicas) + 100
        sse_args = ["--no-store", "--idle-stop", "0", "--max-clients", str(per),
                    "--max-per-address", str(per)]
        if replicas:
            fleet.redis, redis_port = start_redis(logdir)
            sse_args += ["--bus", f"redis://{HOST}:{redis_port}/0"]
            fleet.commands.append(f"redis-server --port {redis_port} --bind {HOST} --save '' "
                                  "--appendonly no --dir TMP")
        for i in range(max(1, replicas)):
            port = free_port()
            proc, cmd = spawn_sse(env, port, logdir, name=f"sse{i}", sse_args=sse_args)
            fleet.servers.append((proc, port))
        fleet.commands.append(shown_command(cmd) + (f"  (x{replicas})" if replicas else ""))
        for i, (proc, port) in enumerate(fleet.servers):
            try:
                wait_ready(port, proc)
            except BaseException:
                print(log_tail(logdir, f"sse{i}"), file=sys.stderr)
                raise
        if replicas:
            deadline = time.monotonic() + 30
            while len(fleet.lease_holders()) != 1:
                if time.monotonic() > deadline:
                    raise TimeoutError("no single lease holder after 30 s")
                time.sleep(0.2)
    except BaseException:
        fleet.stop()
        raise
    return fleet


# ---------------------------------------------------------------- one set-up


def measure(plan: Plan, world: str, replicas: int) -> dict[str, Any]:
    """One set-up (replicas == 0: a single serve-sse without a bus), one window; raw figures."""
    n = plan.subscribers
    t_start = time.monotonic()
    fleet = start_fleet(plan, world, replicas)
    _, api_limit = world_args(world, fleet.logdir)
    pids = [proc.pid for proc, _ in fleet.servers]
    out: dict[str, Any] = {
        "world": world, "setup": f"{replicas} replicas on Redis" if replicas else "one serve-sse",
        "replicas": replicas, "n": n, "speed": plan.speed, "api_limit": api_limit,
        "commands": fleet.commands,
    }
    load: Load | None = None
    try:
        time.sleep(plan.warmup_s)  # the upstream has opened (readyz); let its first scans pass
        out["rss0_kb"] = [rss_kb(pid) for pid in pids]
        # Workers spread over the serve-sse processes in turn, subscribers split evenly.
        counts = split(n, len(fleet.ports))
        per_port = [sum(1 for w in range(plan.workers) if w % len(fleet.ports) == i)
                    for i in range(len(fleet.ports))]
        shares = [(port, count) for port, count, k in zip(fleet.ports, counts, per_port,
                                                          strict=True)
                  for count in split(count, k)]
        load = start_load(shares)
        out.update(wait_connected(load, 20 + n / 100))
        print(f"  {out['connected']}/{n} connected in {out['connect_s']} s", flush=True)
        time.sleep(plan.settle_s)
        # -- the window
        out["loadavg_1m"] = os.getloadavg()[0]  # the machine is shared: how busy it was
        out["holders_start"] = fleet.lease_holders() if replicas else []
        req0 = [api_requests_at(port) for port in fleet.ports]
        watched = pids + ([fleet.redis.pid] if fleet.redis is not None else [])
        window = run_window(watched, plan.window_s)
        req1 = [api_requests_at(port) for port in fleet.ports]
        out["holders_end"] = fleet.lease_holders() if replicas else []
        finals = [metrics_at(port) for port in fleet.ports]
        out["requests"] = [sum(after.get(k, 0) - before.get(k, 0) for k in after)
                           for before, after in zip(req0, req1, strict=True)]
        out["lagged_total"] = sum(m.get("makestream_sse_lagged_clients_total", 0) for m in finals)
        out["bus_lag"] = [m.get("makestream_bus_lag_events") for m in finals]
        out["readyz_end"] = [fleet.readyz(port) for port in fleet.ports]
        out["rss_peak_kb"] = [max(window.rss_samples[pid]) for pid in pids]
        out["rss_median_kb"] = [statistics.median(window.rss_samples[pid]) for pid in pids]
        out["cpu_share"] = [window.cpu_share[pid] for pid in pids]
        if fleet.redis is not None:
            out["redis_rss_peak_kb"] = max(window.rss_samples[fleet.redis.pid])
            out["redis_cpu_share"] = window.cpu_share[fleet.redis.pid]
        out["sim_cpu_s"] = round(cpu_s(fleet.sim.pid), 1)
        w0, w1 = window.w0, window.w1
        out.update(window=(w0, w1), window_sim_min=(w1 - w0) * plan.speed / 60)
        worker_results = finish_load(load)
        out.update(analyse(worker_results, fleet, w0, w1))
        out["client_cpu_s"] = round(sum(r["cpu_s"] for r in worker_results), 1)
        out["per_worker_connected"] = [r["connected"] for r in worker_results]
    finally:
        out["exit_codes"] = fleet.stop()
        kill_load(load)
    out["elapsed_s"] = round(time.monotonic() - t_start, 1)
    return out


# ---------------------------------------------------------------- the benchmark


def bench(quick: bool = False, plan: Plan | None = None) -> Result:
    plan = plan or (QUICK if quick else FULL)
    result = Result("bus", f"Scale-out on Redis: {REPLICAS} serve-sse --bus replicas against "
                           "one serve-sse, the same subscribers")
    runs: list[dict[str, Any]] = []
    for world in plan.worlds:
        for replicas in (0, REPLICAS):
            what = (f"{REPLICAS} x {plan.subscribers // REPLICAS}" if replicas
                    else f"1 x {plan.subscribers}")
            print(f"bus: world {world}, {what} subscribers, speed {plan.speed:g}, "
                  f"window {plan.window_s:g} s ...", flush=True)
            runs.append(measure(plan, world, replicas))
            print(f"  done in {runs[-1]['elapsed_s']} s", flush=True)
    fill(result, runs, plan)
    return result


def _each(values: list[Any], fmt: str = "{:.0f}") -> str:
    return " / ".join("-" if v is None else fmt.format(v) for v in values)


def fill(result: Result, runs: list[dict[str, Any]], plan: Plan) -> None:
    for r in runs:
        cap = BUDGET_SHARE * r["api_limit"]
        r["requests_total"] = sum(r["requests"])
        r["req_per_sim_min"] = r["requests_total"] / r["window_sim_min"]
        r["cap_per_min"] = cap
        r["senders"] = sum(1 for q in r["requests"] if q > 0)
        result.rows.append({
            "world": r["world"], "setup": r["setup"],
            "subscribers": f"{r['replicas'] or 1} x {r['n'] // (r['replicas'] or 1)}",
            "held": r["present"], "events": r["events"], "missing": r["missing"],
            "dup": r["duplicated"], "p50 ms": r["p50_ms"], "p99 ms": r["p99_ms"],
            "max ms": r["max_ms"], "upstream req": r["requests_total"],
            "req/sim min": f"{r['req_per_sim_min']:.1f} / {cap:g}",
            "lease holders": (f"{len(r['holders_start'])} / {len(r['holders_end'])}"
                              if r["replicas"] else "-"),
            "RSS MB (each)": _each([kb / 1024 for kb in r["rss_peak_kb"]], "{:.1f}"),
            "server cpu": sum(r["cpu_share"]) + r.get("redis_cpu_share", 0.0),
        })
    result.tables.append(("Per run:", [{
        "world": r["world"], "setup": r["setup"], "window sim min": round(r["window_sim_min"], 1),
        "req by replica": _each(r["requests"]),
        "cpu by process": _each(r["cpu_share"], "{:.2f}")
        + (f" + redis {r['redis_cpu_share']:.2f}" if "redis_cpu_share" in r else ""),
        "RSS0 MB": _each([kb / 1024 for kb in r["rss0_kb"]], "{:.1f}"),
        "redis RSS MB": (r["redis_rss_peak_kb"] / 1024 if "redis_rss_peak_kb" in r else None),
        "spread p99 ms": r["spread_p99_ms"], "last delivery p99 ms": r["last_delivery_p99_ms"],
        "bus lag (end)": _each(r["bus_lag"]) if r["replicas"] else "-",
        "lagged": r["lagged_total"], "connect s": r["connect_s"],
        "client cpu s": r["client_cpu_s"], "load avg": r["loadavg_1m"], "run s": r["elapsed_s"],
    } for r in runs]))
    clusters = [r for r in runs if r["replicas"]]
    singles = [r for r in runs if not r["replicas"]]
    result.goals += [
        ("every subscriber held through the window got every event of the window once "
         f"(missing {_each([r['missing'] for r in runs])}, duplicated "
         f"{_each([r['duplicated'] for r in runs])})",
         all(r["missing"] == 0 and r["duplicated"] == 0 and r["events"] > 0 for r in runs)),
        ("every subscriber connected and held through the window",
         all(r["present"] == r["n"] for r in runs)),
        ("cluster: exactly one lease holder, the same at both ends of the window",
         all(len(r["holders_start"]) == 1 and r["holders_start"] == r["holders_end"]
             for r in clusters)),
        ("cluster: only the lease holder sent requests to Make "
         f"({'; '.join(_each(r['requests']) for r in clusters)} by replica)",
         all(r["senders"] <= 1 and (not r["requests_total"]
                                    or r["requests"][r["holders_end"][0]] == r["requests_total"])
             for r in clusters if r["holders_end"])),
        ("requests per simulated minute within the 80 % cap "
         f"({_each([r['req_per_sim_min'] for r in runs], '{:.1f}')})",
         all(r["req_per_sim_min"] <= r["cap_per_min"] * 1.05 for r in runs)),
        (f"cluster: p99 delivery (vs ts) under {GOAL_P99_MS:g} ms "
         f"({_each([r['p99_ms'] for r in clusters])} ms)",
         all(r["p99_ms"] < GOAL_P99_MS for r in clusters)),
    ]
    if singles and clusters:
        result.goals.append((
            "cluster: no more upstream requests than the single process (+10 %) "
            f"({_each([r['requests_total'] for r in clusters])} against "
            f"{_each([r['requests_total'] for r in singles])})",
            all(c["requests_total"] <= s["requests_total"] * 1.10 + 2
                for c, s in zip(clusters, singles, strict=False))))
    result.notes += [
        f"clock speed {plan.speed:g}; window {plan.window_s:g} real s = "
        f"{plan.window_s * plan.speed / 60:g} simulated min; fresh processes for every run; "
        f"{plan.workers} load worker processes in each set-up (in the cluster one per replica)",
        "p50/p99/max ms: receive wall time - the event's ts in real time, over every (event, "
        "subscriber) pair of the events emitted in the window (except its last 2 s); a missing "
        "delivery counts as ∞ (bench/sse.py's analysis). In the cluster ts is stamped by the "
        "lease holder's watch, so the figure includes the trip through Redis (XADD, XREAD)",
        "upstream req: the sum over serve-sse processes of makestream_api_requests_total (all "
        "statuses) over the window; req/sim min: that per simulated minute / the cap "
        f"({BUDGET_SHARE:g} x the organization's api_limit)",
        "lease holders: replicas whose /readyz says \"lease\": \"held\", at the start / end of "
        "the window",
        "RSS MB: VmRSS peak over the window's 1 s samples, per serve-sse; server cpu: CPU "
        "seconds per second of window of every serve-sse (and redis-server), summed (1.0 = one "
        "core)",
        f"all on loopback, on {os.cpu_count()} CPUs shared by the zone, Redis, the servers and "
        "the load clients: the cluster's three replicas do not get three machines' worth of CPU "
        "here, so this shows correctness and per-process cost, not a scale-out speed-up",
        "commands: " + "  |  ".join(dict.fromkeys(c for r in runs for c in r["commands"])),
    ]
    result.raw["runs"] = runs
    result.raw["plan"] = plan.__dict__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bus", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"3 x {QUICK.subscribers // 3} against 1 x {QUICK.subscribers}")
    parser.add_argument("--subscribers", type=int, help="in all, for each set-up")
    parser.add_argument("--speed", type=float)
    parser.add_argument("--window", type=float, help="real seconds of measurement")
    parser.add_argument("--worlds", help="comma-separated: demo, busy")
    args = parser.parse_args(argv)
    raise_nofile()
    plan = QUICK if args.quick else FULL
    if args.subscribers or args.speed or args.window or args.worlds:
        plan = Plan(
            subscribers=args.subscribers or plan.subscribers, speed=args.speed or plan.speed,
            window_s=args.window or plan.window_s, settle_s=plan.settle_s, workers=plan.workers,
            worlds=tuple(args.worlds.split(",")) if args.worlds else plan.worlds,
            warmup_s=plan.warmup_s,
        )
    result = bench(args.quick, plan=plan)
    path = emit(result, quick=args.quick)
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: soak — serve-sse against a faulty zone, clients that come and go, over simulated time.

Processes: `makestream sim serve` with 10 % of requests faulted (a chaos mix of 429, 5xx, slow,
dropped and malformed answers) and `makestream serve-sse` watching it, both on one fast clock
(see `bench.sse.start_servers`). The clients run in this process, on raw asyncio sockets
(`bench.sse.SseConnection`):

* one **reference** client that connects first and never disconnects: the truth of what the
  server emitted;
* K **churn** clients, half unfiltered and half with `?type=execution.finished`: each connects,
  stays a random while, drops the connection (a transport abort, as a vanished client does),
  stays away a random while, and reconnects with `Last-Event-ID` = the last id it received. The
  server runs with a small replay ring (`--replay-buffer`), so that short absences resume from
  the ring and long ones from Make's logs (the hub's catch-up). For the last `final_s` real
  seconds every churn client is connected, so that every resume has finished.

Checks, per churn client: the union of the `execution.finished` execution ids it received over
all its connections must equal the reference's `execution.finished` emitted in its lifetime —
from the moment its first connection's response head arrived (an event emitted after that must
reach it) to `end_cut` (5 s before everyone stops). Lost = expected but never received;
duplicated = an execution id received more than once by the same client, across reconnects.

The reference itself is checked against the simulator's ground truth without HTTP: a replica
`SimZone` (same world, seed and clock) built in this process next to the served one generates
the same executions (ids are seeded by scenario and run number; times are shifted by the
difference between the two zones' start, which is estimated from the matched runs). Runs that
ended between the reference's first report + 1 simulated minute and 3 simulated minutes before
the end must all have been reported, once, and nothing else.

RSS of serve-sse (VmRSS) is sampled every 5 simulated minutes, with its open fds and its
`makestream_sse_clients` gauge.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.report import ROOT, Result, emit
from bench.sse import (
    Servers,
    SseConnection,
    block_fields,
    open_fds,
    parse_ts,
    raise_nofile,
    rss_kb,
    shown_command,
    start_servers,
)

FAULTS = ["429:0.02", "500:0.02", "502:0.01", "503:0.01", "slow:0.02", "drop:0.01",
          "malformed:0.01"]  # 10 % of requests
API_LIMIT = 240
SAMPLE_SIM_S = 300.0  # RSS every 5 simulated minutes
RSS_GOAL_PCT = 5.0


@dataclass(frozen=True)
class Plan:
    sim_minutes: float
    speed: float
    churners: int
    ring: int  # serve-sse --replay-buffer
    stay_sim_s: tuple[float, float]
    gap_sim_s: tuple[float, float]
    final_s: float  # real seconds at the end with every client connected


FULL = Plan(sim_minutes=60, speed=10.0, churners=12, ring=30, stay_sim_s=(30, 400),
            gap_sim_s=(5, 300), final_s=40.0)
QUICK = Plan(sim_minutes=10, speed=20.0, churners=6, ring=30, stay_sim_s=(20, 120),
             gap_sim_s=(5, 200), final_s=10.0)


@dataclass
class Client:
    name: str
    path: str
    last_id: str | None = None
    first_head_at: float | None = None  # real time the first response head arrived
    finished: Counter[str] = field(default_factory=Counter)
    order: list[tuple[str, float]] = field(default_factory=list)  # (execution id, ts real)
    connections: int = 0
    resumes: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    server_ends: Counter[str] = field(default_factory=Counter)  # streams the server ended
    control: Counter[str] = field(default_factory=Counter)  # id-less events
    drops: int = 0  # connections this client dropped on purpose
    resume_ids: list[tuple[str, float]] = field(default_factory=list)  # (Last-Event-ID, when)
    all_ids: list[tuple[str, float]] = field(default_factory=list)  # reference only
    # One entry per connection: head time, Last-Event-ID sent, end time, finished received.
    conns: list[dict[str, Any]] = field(default_factory=list)


class Soak:
    def __init__(self, servers: Servers, plan: Plan, seed: int = 7) -> None:
        self.servers, self.plan = servers, plan
        self.rng = random.Random(seed)
        self.ids: dict[bytes, tuple[str, str | None, float]] = {}  # id -> (type, exec id, ts)
        self.started: dict[str, float] = {}  # execution id -> started_at (clock s), as reported

    def _meta(self, block: bytes) -> tuple[bytes | None, tuple[str, str | None, float] | None,
                                           bytes | None]:
        eid, event, data = block_fields(block)
        if eid is None:
            return None, None, event
        meta = self.ids.get(eid)
        if meta is None:
            doc = json.loads(data or b"{}")
            meta = self.ids[eid] = (doc.get("type", "?"), doc.get("execution_id"),
                                    self.servers.clock_to_real(parse_ts(doc["ts"])))
            if doc.get("started_at") and doc.get("execution_id"):
                self.started[doc["execution_id"]] = parse_ts(doc["started_at"])
        return eid, meta, event

    def handler(self, client: Client, *, keep_all: bool = False) -> Any:
        def on_block(block: bytes, now: float) -> None:
            if block.startswith((b":", b"retry:")):
                return
            eid, meta, event = self._meta(block)
            if eid is None:
                client.control[(event or b"?").decode()] += 1
                return
            assert meta is not None
            client.last_id = eid.decode()
            if keep_all:
                client.all_ids.append((client.last_id, meta[2]))
            if meta[0] == "execution.finished" and meta[1]:
                client.finished[meta[1]] += 1
                client.order.append((meta[1], meta[2]))
                if client.conns:
                    client.conns[-1]["finished"].append((meta[1], round(meta[2], 3)))
        return on_block

    async def connect(self, client: Client, on_block: Any) -> SseConnection | None:
        if client.conns and client.conns[-1]["end"] is None:
            client.conns[-1]["end"] = time.time()
        conn = SseConnection(on_block)
        resume = client.last_id
        try:
            status = await conn.open(self.servers.sse_port, client.path, resume, timeout=30)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            client.refused[type(exc).__name__] += 1
            return None
        if status != 200:
            client.refused[str(status)] += 1
            conn.abort()
            return None
        client.connections += 1
        client.conns.append({"head": conn.connected_at, "resume": resume, "end": None,
                             "finished": []})
        if resume:
            client.resumes += 1
            client.resume_ids.append((resume, time.time()))
        if client.first_head_at is None:
            client.first_head_at = conn.connected_at
        return conn

    async def reference(self, client: Client, stop_at: float) -> None:
        await self.stay(client, self.handler(client, keep_all=True), stop_at, pause_s=0.0)

    async def stay(self, client: Client, on_block: Any, stop_at: float, pause_s: float) -> None:
        """Stay connected until `stop_at`, resuming whenever the server ends the stream (after
        `pause_s`) or refuses it."""
        while time.time() < stop_at:
            conn = await self.connect(client, on_block)
            if conn is None:
                await asyncio.sleep(1.0)
                continue
            try:
                await asyncio.wait_for(conn.read(), max(0.1, stop_at - time.time()))
                client.server_ends[conn.end or "?"] += 1  # the server ended it: resume
                await asyncio.sleep(pause_s)
            except TimeoutError:
                pass
            finally:
                conn.abort()

    async def churner(self, client: Client, final_at: float, stop_at: float,
                      rng: random.Random) -> None:
        on_block = self.handler(client)
        speed = self.plan.speed
        while time.time() < final_at:
            conn = await self.connect(client, on_block)
            if conn is None:
                await asyncio.sleep(1.0)
                continue
            reader = asyncio.create_task(conn.read())
            stay = rng.uniform(*self.plan.stay_sim_s) / speed
            deadline = time.time() + stay
            # Stay `stay`, and in any case until there is an id to resume from.
            while not reader.done() and time.time() < final_at and (
                    time.time() < deadline or client.last_id is None):
                await asyncio.wait({reader}, timeout=0.2)
            if reader.done():
                client.conns[-1]["end"] = conn.ended_at
                client.server_ends[conn.end or "?"] += 1
                await asyncio.sleep(1.0)  # the server ended it (lagged, replay failed): resume
                continue
            conn.abort()
            client.conns[-1]["end"] = time.time()
            client.drops += 1
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            gap = rng.uniform(*self.plan.gap_sim_s) / speed
            await asyncio.sleep(max(0.0, min(gap, final_at - time.time())))
        # The last stretch: connected (resumed) until everyone stops.
        await self.stay(client, on_block, stop_at, pause_s=1.0)

    async def sampler(self, stop_at: float, samples: list[dict[str, Any]]) -> None:
        pid = self.servers.sse.pid
        start = time.time()
        every = SAMPLE_SIM_S / self.plan.speed
        k = 0
        while True:
            at = start + k * every
            if at > stop_at + 0.5:
                return
            await asyncio.sleep(max(0.0, at - time.time()))
            try:
                clients = self.servers.metrics().get("makestream_sse_clients")
            except OSError:
                clients = None
            samples.append({"sim_min": round((time.time() - start) * self.plan.speed / 60, 1),
                            "rss_kb": rss_kb(pid), "fds": open_fds(pid), "sse_clients": clients})
            k += 1

    async def run(self) -> dict[str, Any]:
        plan = self.plan
        t0 = time.time()
        duration = plan.sim_minutes * 60 / plan.speed
        stop_at = t0 + duration
        final_at = stop_at - plan.final_s
        ref = Client("reference", "/v1/events")
        churners = [Client(f"churn{i}", "/v1/events" if i % 2 == 0
                           else "/v1/events?type=execution.finished")
                    for i in range(plan.churners)]
        samples: list[dict[str, Any]] = []
        tasks = [asyncio.create_task(self.reference(ref, stop_at)),
                 asyncio.create_task(self.sampler(stop_at, samples))]
        await asyncio.sleep(1.0)  # the reference is in first
        for i, c in enumerate(churners):
            rng = random.Random(f"{i}")
            tasks.append(asyncio.create_task(self.churner(c, final_at, stop_at, rng)))
            await asyncio.sleep(rng.uniform(0, 30 / plan.speed))  # staggered first joins
        await asyncio.wait_for(asyncio.gather(*tasks), duration + 120)
        return {"t0": t0, "stop_at": stop_at, "final_at": final_at, "reference": ref,
                "churners": churners, "samples": samples}


# ---------------------------------------------------------------- checks


def check_client(c: Client, ref: Client, end_cut: float) -> dict[str, Any]:
    ref_times = {eid: ts for eid, ts in ref.order}
    start = c.first_head_at or math.inf
    expected = {eid for eid, ts in ref.order if start <= ts <= end_cut}
    got = set(c.finished)
    lost = sorted(expected - got)
    dup = {eid: n for eid, n in c.finished.items() if n > 1}
    # Received, but not in the reference at all (beyond the boundary slack of the first connect).
    unknown = sorted(eid for eid in got if eid not in ref_times)
    return {
        "lost_detail": [_lost_detail(c, eid, ref_times[eid], ref) for eid in lost[:5]],
        "dup_detail": [_dup_detail(c, eid, ref_times.get(eid), ref) for eid in list(dup)[:5]],
        "client": c.name, "filter": "execution.finished" if "type=" in c.path else "all",
        "connections": c.connections, "resumes": c.resumes, "drops": c.drops,
        "expected": len(expected), "received": len(got), "lost": len(lost),
        "duplicated": len(dup), "not in reference": len(unknown),
        "server ended": sum(c.server_ends.values()),
        "control": dict(c.control), "refused": dict(c.refused), "lost_ids": lost[:20],
        "dup_ids": dict(list(dup.items())[:20]), "unknown_ids": unknown[:20],
    }


def _lost_detail(c: Client, eid: str, emitted: float, ref: Client) -> dict[str, Any]:
    """Where a lost event fell in a client's connection timeline, and the resume after it."""
    ts_of = dict(ref.all_ids)
    out: dict[str, Any] = {"execution_id": eid, "emitted": round(emitted, 3)}
    for i, k in enumerate(c.conns):
        end = k["end"] or math.inf
        if k["head"] <= emitted <= end:
            out["during_connection"] = i
        if i and c.conns[i - 1]["end"] and c.conns[i - 1]["end"] < emitted < k["head"]:
            out["in_gap_before_connection"] = i
    for i, k in enumerate(c.conns):
        if k["head"] >= emitted or (k["head"] <= emitted <= (k["end"] or math.inf)):
            resume = k["resume"]
            position = [x for x, _ in ref.all_ids].index(resume) if resume in ts_of else None
            out["connection"] = {
                "index": i, "head": round(k["head"], 3),
                "end": None if k["end"] is None else round(k["end"], 3),
                "resume_id_emitted": None if resume not in ts_of else round(ts_of[resume], 3),
                "resume_id_in_live_stream": resume in ts_of,
                "events_between_resume_and_head": None if position is None else sum(
                    1 for _, ts in ref.all_ids[position + 1:] if ts <= k["head"]),
                "first_finished": k["finished"][:6],
            }
            if i:
                prev = c.conns[i - 1]
                out["previous_connection"] = {"head": round(prev["head"], 3),
                                              "end": prev["end"] and round(prev["end"], 3),
                                              "last_finished": prev["finished"][-3:]}
            break
    return out


def _dup_detail(c: Client, eid: str, emitted: float | None, ref: Client) -> dict[str, Any]:
    """On which connections a duplicated event arrived, each copy's `ts` (a copy from the live
    stream has the reference's; one from a catch-up has the catch-up's), and how each of those
    connections resumed."""
    ts_of = dict(ref.all_ids)
    copies = []
    for i, k in enumerate(c.conns):
        for got, ts in k["finished"]:
            if got == eid:
                resume = k["resume"]
                copies.append({
                    "connection": i, "head": round(k["head"], 3), "copy_ts": ts,
                    "resume_id_in_live_stream": resume in ts_of,
                    "resume_id_emitted": None if resume not in ts_of else round(ts_of[resume], 3),
                })
    return {"execution_id": eid, "emitted": None if emitted is None else round(emitted, 3),
            "copies": copies}


def resumes_beyond_ring(c: Client, ref: Client, ring: int) -> int:
    """Resumes whose Last-Event-ID was more than `ring` events back (estimated from the
    reference's sequence of all events): served by a catch-up from Make's logs."""
    position = {eid: i for i, (eid, _) in enumerate(ref.all_ids)}
    times = [ts for _, ts in ref.all_ids]
    out = 0
    for resume, at in c.resume_ids:
        pos = position.get(resume)
        if pos is None:
            out += 1  # not an id of the live stream (a catch-up's cursor): not in the ring
            continue
        emitted_since = sum(1 for ts in times[pos + 1:] if ts <= at)
        if emitted_since > ring:
            out += 1
    return out


def check_truth(ref: Client, replica: Any, servers: Servers, t0: float, stop_at: float,
                started: dict[str, float]) -> dict[str, Any]:
    """The reference against the replica zone's ground truth (same executions, shifted times)."""
    truth = {r.execution_id: r for r in replica.truth()}
    offsets = []
    basis = "started_at"
    for eid in ref.finished:
        rec = truth.get(eid)
        if rec is not None and eid in started:
            offsets.append(started[eid] - rec.started_at)
    if not offsets:
        # The events carry no started_at: align on the report's ts instead (which adds the
        # detection latency, a few clock seconds, to the offset: well inside the margins).
        basis = "ts"
        reported = {eid: servers.real_to_clock(ts) for eid, ts in ref.order}
        offsets = [reported[eid] - truth[eid].ended_at for eid in ref.finished if eid in truth]
    if not offsets:
        return {"matched": 0, "note": "no reported run found in the replica",
                "truth_runs": len(truth), "reported": len(ref.finished)}
    offset = statistics.median(offsets)
    spread = max(offsets) - min(offsets)
    first = min(ts for _, ts in ref.order) if ref.order else t0
    lo = servers.real_to_clock(first) + 60.0
    hi = servers.real_to_clock(stop_at) - 180.0
    due = {eid for eid, r in truth.items() if lo <= r.ended_at + offset <= hi}
    reported_in = {eid for eid in ref.finished
                   if eid in truth and lo <= truth[eid].ended_at + offset <= hi}
    return {
        "matched": len(offsets), "aligned_on": basis, "offset_s": round(offset, 3),
        "offset_spread_s": round(spread, 3),
        "truth_runs_in_window": len(due), "reported_in_window": len(reported_in),
        "missed_vs_truth": len(due - set(ref.finished)),
        "not_in_truth": sum(1 for eid in ref.finished if eid not in truth),
        "window_sim_min": round((hi - lo) / 60, 1),
        "missed_ids": sorted(due - set(ref.finished))[:20],
    }


# ---------------------------------------------------------------- the benchmark


def measure(plan: Plan) -> dict[str, Any]:
    from makestream.clock import Clock
    from makestream.sim import SimZone, demo_world

    anchor = time.time()
    # The replica first, then the served zone: both generate the same runs, shifted in time.
    spec = demo_world().with_api_limit(API_LIMIT)
    replica = SimZone(spec, clock=Clock(plan.speed, anchor=anchor), seed=0)
    fault_args = [a for f in FAULTS for a in ("--fault", f)]
    servers = start_servers(plan.speed, anchor=anchor,
                            sim_args=[*fault_args, "--api-limit", str(API_LIMIT)],
                            sse_args=["--idle-stop", "0", "--replay-buffer", str(plan.ring),
                                      "--api-limit", str(API_LIMIT)])
    try:
        rss0 = rss_kb(servers.sse.pid)
        soak = Soak(servers, plan)
        outcome = asyncio.run(soak.run())
        requests = servers.api_requests()
        metrics = servers.metrics()
    finally:
        codes = servers.stop()
    end_cut = outcome["stop_at"] - 5.0
    return {
        "plan": plan.__dict__, "rss0_kb": rss0, "outcome": outcome, "requests": requests,
        "metrics": {k: v for k, v in metrics.items() if k.startswith((
            "makestream_api_", "makestream_sse_", "makestream_events_total"))},
        "exit_codes": codes, "end_cut": end_cut, "servers": servers, "replica": replica,
        "soak": soak,
    }


def bench(quick: bool = False, plan: Plan | None = None) -> Result:
    plan = plan or (QUICK if quick else FULL)
    result = Result("soak", "Soak: serve-sse on a faulty zone, clients dropping and resuming")
    print(f"soak: {plan.sim_minutes:g} simulated min at speed {plan.speed:g} "
          f"({plan.sim_minutes * 60 / plan.speed:.0f} s), {plan.churners} churn clients + 1 "
          f"reference, faults {' '.join(FAULTS)} ...", flush=True)
    t = time.monotonic()
    m = measure(plan)
    print(f"  done in {time.monotonic() - t:.0f} s", flush=True)
    out = m["outcome"]
    ref: Client = out["reference"]
    servers: Servers = m["servers"]
    checks = [check_client(c, ref, m["end_cut"]) for c in out["churners"]]
    for c, row in zip(out["churners"], checks, strict=True):
        row["resumes beyond ring"] = resumes_beyond_ring(c, ref, plan.ring)
    ref_dups = sum(1 for n in ref.finished.values() if n > 1)
    truth = check_truth(ref, m["replica"], servers, out["t0"], out["stop_at"],
                        m["soak"].started)
    for row in checks:
        result.rows.append({k: row[k] for k in (
            "client", "filter", "connections", "resumes", "resumes beyond ring", "expected",
            "received", "lost", "duplicated", "not in reference", "server ended")})
    result.rows.append({"client": "reference", "filter": "all", "connections": ref.connections,
                        "resumes": ref.resumes, "resumes beyond ring": None,
                        "expected": truth.get("truth_runs_in_window"),
                        "received": len(ref.finished), "lost": truth.get("missed_vs_truth"),
                        "duplicated": ref_dups, "not in reference": truth.get("not_in_truth"),
                        "server ended": sum(ref.server_ends.values())})
    samples = out["samples"]
    result.tables.append(("serve-sse every 5 simulated minutes:", [
        {"sim min": s["sim_min"], "RSS MB": s["rss_kb"] / 1024, "fds": s["fds"],
         "sse clients": s["sse_clients"]} for s in samples]))
    rss = [s["rss_kb"] for s in samples]
    warm = 2 if len(rss) > 4 else 1  # from the 10-minute sample on (5 in quick)
    base, last = rss[warm], rss[-1]
    growth = 100 * (last - base) / base
    slope = _slope([s["sim_min"] for s in samples[warm:]], rss[warm:])  # kB per sim minute
    lost = sum(r["lost"] for r in checks)
    dups = sum(r["duplicated"] for r in checks)
    beyond = sum(r["resumes beyond ring"] for r in checks)
    resumes = sum(r["resumes"] for r in checks)
    result.goals += [
        (f"zero lost execution.finished over every churn client's lifetime ({lost} lost, "
         f"{sum(r['expected'] for r in checks)} expected over {len(checks)} clients)", lost == 0),
        (f"zero duplicated execution.finished per churn client across reconnects ({dups})",
         dups == 0),
        (f"churn clients got nothing the reference did not "
         f"({sum(r['not in reference'] for r in checks)})",
         all(r["not in reference"] == 0 for r in checks)),
        (f"reference vs simulator truth: every run that ended in the window reported once "
         f"({truth.get('missed_vs_truth')} missed of {truth.get('truth_runs_in_window')}, "
         f"{ref_dups} duplicated, {truth.get('not_in_truth')} unknown)",
         truth.get("missed_vs_truth") == 0 and ref_dups == 0 and truth.get("not_in_truth") == 0),
        (f"flat RSS: {last / 1024:.1f} MB at the end vs {base / 1024:.1f} MB at "
         f"{samples[warm]['sim_min']:g} sim min ({growth:+.1f} %, slope "
         f"{slope * 60 / 1024:+.2f} MB per sim hour; at most +{RSS_GOAL_PCT:g} %)",
         growth <= RSS_GOAL_PCT),
    ]
    sent = sum(m["requests"].values())
    faulted = sum(v for k, v in m["requests"].items() if k != "200")
    result.notes += [
        f"{plan.sim_minutes:g} simulated minutes at clock speed {plan.speed:g}; zone faults "
        f"{' '.join(FAULTS)} (10 % of requests); org limit {API_LIMIT}/min on both sides",
        f"serve-sse sent {sent:g} requests, {faulted:g} answered other than 200 or not at all "
        f"({100 * faulted / sent:.1f} %): {m['requests']}" if sent else "no requests counted",
        f"{resumes} resumes with Last-Event-ID, {beyond} of them (estimated) older than the "
        f"{plan.ring}-event replay ring, i.e. served from Make's logs (the hub's catch-up)",
        f"churn: stays {plan.stay_sim_s[0]:g}-{plan.stay_sim_s[1]:g} sim s, absences "
        f"{plan.gap_sim_s[0]:g}-{plan.gap_sim_s[1]:g} sim s (transport abort), every client "
        f"connected for the last {plan.final_s:g} real s; clients 0, 2, 4... unfiltered, "
        "1, 3, 5... ?type=execution.finished",
        "expected per client: the reference's execution.finished whose ts (in real time) falls "
        "between the client's first response head and 5 s before the end",
        f"reference vs truth: a replica SimZone in this process (offset {truth.get('offset_s')} "
        f"clock s, spread {truth.get('offset_spread_s')} s over {truth.get('matched')} runs), "
        f"runs that ended from 1 sim min after the first report to 3 sim min before the end "
        f"({truth.get('window_sim_min')} sim min)",
        f"commands: {shown_command(servers.sim_args)}  |  {shown_command(servers.sse_args)}"
        " (ports vary), with MAKESTREAM_CLOCK=SPEED@ANCHOR MAKE_API_URL=... MAKE_API_TOKEN=...",
        f"serve-sse exit codes after SIGTERM: {m['exit_codes']}",
    ]
    result.raw.update(
        plan=plan.__dict__, clients=checks, truth=truth, samples=samples, rss0_kb=m["rss0_kb"],
        requests=m["requests"], metrics=m["metrics"],
        reference={"finished": len(ref.finished), "events": len(ref.all_ids),
                   "server_ends": dict(ref.server_ends), "control": dict(ref.control)},
        rss_growth_pct=round(growth, 2), rss_slope_kb_per_sim_min=round(slope, 2),
    )
    return result


def _slope(xs: list[float], ys: list[int]) -> float:
    if len(xs) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 simulated minutes")
    args = parser.parse_args(argv)
    raise_nofile()
    result = bench(args.quick)
    path = emit(result, quick=args.quick)
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

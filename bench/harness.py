"""Shared wiring: a client on the simulated zone in process, and the process's own health.

A fast clock only gives true latencies while the event loop keeps up with it: a loop that is
busy for 20 ms at `Clock(20)` delays everything by 0.4 simulated seconds, and a saturated loop
delays everything without bound. `LoopLag` measures that directly (a task sleeps 10 ms of real
time and records how late it wakes up); `CpuMeter` says how much of one core the process used.
Benchmarks report both next to their figures, and lower the clock speed when the lag is high.
"""

from __future__ import annotations

import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from bench.report import percentile
from makestream.clock import Clock
from makestream.make.budget import Budget
from makestream.make.client import ApiNotice, MakeClient, RetryPolicy, Token
from makestream.sim import DEMO_TOKEN, SimZone

BASE_URL = "http://sim.bench/api/v2"
# The loop is taken as not keeping up with the clock when the overshoot of a 10 ms sleep passes
# either limit. The p95 has a floor of about 5 ms in this harness whatever the speed: handling one
# request in process (zone + client) is a chunk of that size, so a p95 limit under it would slow
# every case down without making it more accurate; the mean catches a loop that falls behind.
LAG_LIMIT_MS = 8.0
LAG_MEAN_LIMIT_MS = 2.0


def sim_client(
    zone: SimZone,
    api_limit: int,
    *,
    clock: Clock,
    observer: Callable[[ApiNotice], None] | None = None,
) -> MakeClient:
    """A MakeClient on `zone` through httpx.ASGITransport, with its own Budget (80 % share)."""
    return MakeClient(
        BASE_URL,
        Token(DEMO_TOKEN),
        budget=Budget(api_limit, clock=clock),
        clock=clock,
        transport=httpx.ASGITransport(app=zone.app),
        observer=observer,
        retry=RetryPolicy(),
    )


@dataclass
class NoticeCounter:
    """Client observer: requests by endpoint kind, throttled notices, errors."""

    requests: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    retries: int = 0
    failed: int = 0
    forward: list[Callable[[ApiNotice], None]] = field(default_factory=list)

    def __call__(self, notice: ApiNotice) -> None:
        if notice.kind == "throttled":
            self.throttled += 1
        elif notice.kind == "retry":
            self.retries += 1
        elif notice.kind == "request":
            kind = endpoint_kind(notice.method, notice.path)
            self.requests[kind] = self.requests.get(kind, 0) + 1
            if notice.status is None or notice.status >= 400:
                self.failed += 1
        for listener in self.forward:
            listener(notice)


def endpoint_kind(method: str, path: str) -> str:
    """A request's endpoint with ids replaced: 'GET /scenarios/{id}/logs'."""
    parts = [p for p in path.split("/") if p]
    out: list[str] = []
    for i, part in enumerate(parts):
        if part.isdigit() or (i > 0 and parts[i - 1] in ("logs", "executions")):
            out.append("{id}")
        else:
            out.append(part)
    return f"{method} /" + "/".join(out)


class LoopLag:
    """Samples how late a 10 ms real-time sleep wakes up, in milliseconds.

    A watchdog thread also catches *stalls*: when the loop has not woken the sampler for
    `stall_ms`, it records where the loop's thread is (the innermost frames of makestream, the
    simulator or the benchmark), so that a long block can be traced to the code that caused it.
    """

    def __init__(self, interval_s: float = 0.010, stall_ms: float = 100.0) -> None:
        self.interval_s = interval_s
        self.stall_ms = stall_ms
        self.samples: list[float] = []
        self.stalls: list[dict[str, Any]] = []
        self._beat = time.perf_counter()
        self._thread_id = threading.get_ident()
        self._stop = threading.Event()

    async def run(self) -> None:
        self._thread_id = threading.get_ident()
        watchdog = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        watchdog.start()
        try:
            while True:
                t0 = time.perf_counter()
                self._beat = t0
                await anyio.sleep(self.interval_s)
                now = time.perf_counter()
                self._beat = now
                lag = (now - t0 - self.interval_s) * 1000
                self.samples.append(lag)
                if self.stalls and self.stalls[-1]["ms"] is None:
                    self.stalls[-1]["ms"] = round(lag, 1)
        finally:
            self._stop.set()

    def _watch(self) -> None:
        caught = 0.0
        while not self._stop.wait(0.01):
            beat = self._beat
            late = (time.perf_counter() - beat) * 1000 - self.interval_s * 1000
            if late < self.stall_ms or beat == caught:
                continue
            caught = beat
            frame = sys._current_frames().get(self._thread_id)
            if frame is None:
                continue
            where = [
                f"{Path(f.filename).name}:{f.lineno} {f.name}"
                for f in traceback.extract_stack(frame)
                if any(part in f.filename for part in ("/makestream/", "/bench/"))
            ]
            if len(self.stalls) < 200:
                self.stalls.append({"ms": None, "stack": where[-6:]})

    def summary(self) -> dict[str, Any]:
        s = self.samples or [0.0]
        stalls = sorted(self.stalls, key=lambda x: x["ms"] or 0.0, reverse=True)
        return {
            "lag_mean_ms": round(sum(s) / len(s), 3),
            "lag_p50_ms": round(percentile(s, 50), 3),
            "lag_p95_ms": round(percentile(s, 95), 3),
            "lag_p99_ms": round(percentile(s, 99), 3),
            "lag_max_ms": round(max(s), 3),
            "lagging": percentile(s, 95) > LAG_LIMIT_MS or sum(s) / len(s) > LAG_MEAN_LIMIT_MS,
            "stalls": len(self.stalls),
            "longest_stalls": stalls[:5],
        }


class CpuMeter:
    """CPU seconds of this process per real second, between `start()` and `stop()`."""

    def __init__(self) -> None:
        self._cpu0 = self._wall0 = 0.0
        self.cpu_s = self.wall_s = 0.0

    def start(self) -> None:
        self._cpu0, self._wall0 = time.process_time(), time.perf_counter()

    def stop(self) -> dict[str, Any]:
        self.cpu_s = time.process_time() - self._cpu0
        self.wall_s = time.perf_counter() - self._wall0
        return {
            "cpu_s": round(self.cpu_s, 2),
            "wall_s": round(self.wall_s, 2),
            "cpu_share": round(self.cpu_s / self.wall_s, 3) if self.wall_s else None,
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }

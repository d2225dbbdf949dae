"""The baselines: what a Make user writes with curl in a loop.

`NaiveLogPoller` walks the scenarios round-robin and asks each one's
`GET /scenarios/{id}/logs` (newest first, one page of 50) at a fixed interval; a run is
reported the first time its id shows up in a terminal state, so it never reports twice. Runs
that ended before the poller started are history, not news — like a script that remembers the
ids of its first answer. `NaiveRunPoller` starts a run and polls `GET /executions/{id}` every
`interval` until its status is terminal.

Both use makestream's own `MakeClient` (same HTTP stack, same parsing, a `Budget` of their own)
so that the comparison is about *what* is asked and *when*, not about the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from makestream.clock import Clock
from makestream.errors import MakestreamError
from makestream.make.budget import Priority
from makestream.make.client import MakeClient

PAGE = 50


@dataclass
class NaiveLogPoller:
    """Round-robin `GET /scenarios/{id}/logs`, one request every `60 / per_minute` seconds."""

    client: MakeClient
    scenario_ids: Sequence[int]
    per_minute: float
    clock: Clock
    detected: dict[str, float] = field(default_factory=dict)  # execution id -> clock time
    reports: dict[str, int] = field(default_factory=dict)  # execution id -> times reported
    errors: int = 0
    started_at: float = 0.0

    async def run(self) -> None:
        """Poll until cancelled."""
        interval = 60.0 / self.per_minute
        self.started_at = self.clock.now()
        start_ms = int(self.started_at * 1000)
        seen: set[str] = set()
        due = self.clock.now()
        turn = 0
        while True:
            sid = self.scenario_ids[turn % len(self.scenario_ids)]
            turn += 1
            try:
                page = await self.client.logs(sid, limit=PAGE, priority=Priority.NORMAL)
            except MakestreamError:
                self.errors += 1
            else:
                now = self.clock.now()
                for entry in page.items:
                    if not entry.status.terminal or entry.id in seen:
                        continue
                    seen.add(entry.id)
                    ended_ms = entry.timestamp_ms + (entry.duration_ms or 0)
                    if ended_ms >= start_ms:
                        self.detected[entry.id] = now
                        self.reports[entry.id] = self.reports.get(entry.id, 0) + 1
            due += interval
            await self.clock.sleep(due - self.clock.now())


@dataclass
class NaiveRunPoller:
    """`POST /run`, then `GET /executions/{id}` every `interval_s` until the run has ended."""

    client: MakeClient
    interval_s: float
    clock: Clock
    polls: int = 0

    async def run_and_wait(self, scenario_id: int) -> tuple[str, float, str]:
        """Start a run; returns (execution id, clock time its end was seen, status)."""
        result = await self.client.run(scenario_id)
        eid = result.execution_id
        due = self.clock.now()
        while True:
            due += self.interval_s
            await self.clock.sleep(due - self.clock.now())
            try:
                detail = await self.client.execution(scenario_id, eid, priority=Priority.HIGH)
            except MakestreamError:
                continue
            finally:
                self.polls += 1
            if detail.status.terminal:
                return eid, self.clock.now(), detail.status.value

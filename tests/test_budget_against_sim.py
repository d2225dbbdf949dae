"""The shared budget in front of the simulated zone: many callers, one organization limit."""

from __future__ import annotations

import anyio
import httpx
import pytest

from makestream.clock import Clock
from makestream.make.budget import Budget, Priority
from makestream.make.client import ApiNotice, MakeClient, Token
from makestream.sim import DEMO_TOKEN, SimZone, demo_world

pytestmark = pytest.mark.anyio


class RecordingBudget(Budget):
    """Records when each request was let through (clock seconds)."""

    sent: list[float]

    async def acquire(self, priority: Priority = Priority.NORMAL) -> None:
        await super().acquire(priority)
        self.sent = getattr(self, "sent", [])
        self.sent.append(self.clock.monotonic())


async def test_fifty_callers_for_two_minutes_stay_under_48_a_minute_with_no_429() -> None:
    # The demo organization: 60/min. At 20x the two minutes take six seconds of real time; a
    # faster clock turns a moment of a loaded machine's real time into many clock seconds.
    zone = SimZone(demo_world(), clock=Clock(20), seed=1)
    notices: list[ApiNotice] = []

    budget = RecordingBudget(60, clock=zone.clock)
    async with MakeClient("http://sim.test/api/v2", Token(DEMO_TOKEN), budget=budget,
                          clock=zone.clock, transport=httpx.ASGITransport(app=zone.app),
                          observer=notices.append) as client:

        async def caller(n: int) -> None:
            while True:
                await client.scenario(101 + n % 8)

        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(caller, n)
            await zone.clock.sleep(120)
            tg.cancel_scope.cancel()
    assert not [n for n in notices if n.kind == "throttled"]
    assert zone.limited == 0
    sends = budget.sent
    windows = [sum(1 for t in sends if s <= t < s + 60) for s in sends]
    assert max(windows) <= 48
    # And the budget is actually used: its busiest minute comes close to the cap. (A count over
    # the whole two minutes would also count the start: fifty callers starting at once on a
    # loaded machine can hold the first sends back for many clock seconds.)
    assert max(windows) >= 44

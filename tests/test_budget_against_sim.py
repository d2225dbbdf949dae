"""The shared budget in front of the simulated zone: many callers, one organization limit."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from makestream.clock import Clock
from makestream.make.budget import Budget
from makestream.make.client import ApiNotice, MakeClient, Token
from makestream.sim import DEMO_TOKEN, SimZone, demo_world

pytestmark = pytest.mark.anyio


async def test_fifty_callers_for_two_minutes_stay_under_48_a_minute_with_no_429() -> None:
    zone = SimZone(demo_world(), clock=Clock(60), seed=1)  # the demo organization: 60/min
    sends: list[float] = []  # when each request reached the zone
    notices: list[ApiNotice] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            sends.append(zone.clock.now())
        await zone.app(scope, receive, send)

    budget = Budget(60, clock=zone.clock)
    async with MakeClient("http://sim.test/api/v2", Token(DEMO_TOKEN), budget=budget,
                          clock=zone.clock, transport=httpx.ASGITransport(app=recording),
                          observer=notices.append) as client:

        async def caller(n: int) -> None:
            while True:
                await client.scenario(101 + n % 8)

        start = zone.clock.now()
        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(caller, n)
            await zone.clock.sleep(120)
            tg.cancel_scope.cancel()
    assert not [n for n in notices if n.kind == "throttled"]
    assert zone.limited == 0
    windows = [sum(1 for t in sends if s <= t < s + 60) for s in sends]
    assert max(windows) <= 48
    assert len([t for t in sends if t < start + 120]) >= 90  # and the budget is actually used

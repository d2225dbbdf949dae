"""Queue depth where Make will not tell it: every face that reads it goes on without it.

`GET /scenarios/{id}/triggers` is refused (403) for some tokens and may be absent from other
implementations of the API; `makestream state`, `watch --snapshot` and `thresholds test` must
then report the rest, and ask once, not once per webhook scenario.
"""

from __future__ import annotations

import httpx
import pytest
from worlds import busy_world

from makestream.clock import Clock
from makestream.engine.snapshot import read_snapshot
from makestream.engine.state import fetch_state
from makestream.engine.tracker import Tracker
from makestream.errors import AuthError
from makestream.make.budget import Budget
from makestream.make.client import ApiNotice, MakeClient, Token
from makestream.sim import DEMO_TOKEN, SimZone

pytestmark = pytest.mark.anyio


def client_for(zone: SimZone, paths: list[str], token: str = DEMO_TOKEN) -> MakeClient:
    def observe(notice: ApiNotice) -> None:
        if notice.kind == "request":
            paths.append(notice.path)

    return MakeClient(
        "http://sim.test/api/v2", Token(token), budget=Budget(600, clock=zone.clock),
        clock=zone.clock, transport=httpx.ASGITransport(app=zone.app), observer=observe,
    )


@pytest.mark.parametrize("readable", [True, False])
async def test_state_reports_every_scenario_whether_or_not_queues_are_readable(
    readable: bool,
) -> None:
    zone = SimZone(busy_world(4, api_limit=600), clock=Clock(50), seed=2,
                   queue_readable=readable)
    paths: list[str] = []
    async with client_for(zone, paths) as client:
        document = await fetch_state(client, scenario_ids=[s.id for s in zone.world.scenarios])
    assert [s["scenario_id"] for s in document["scenarios"]] == [300, 301, 302, 303]
    queues = [s["queue_count"] for s in document["scenarios"]]
    triggers = [p for p in paths if p.endswith("/triggers")]
    if readable:
        assert all(isinstance(q, int) for q in queues) and len(triggers) == 4
    else:
        assert queues == [None] * 4 and len(triggers) == 1


async def test_a_snapshot_goes_on_without_queue_depth() -> None:
    zone = SimZone(busy_world(3, api_limit=600), clock=Clock(50), seed=2, queue_readable=False)
    paths: list[str] = []
    async with client_for(zone, paths) as client:
        scenarios = [await client.scenario(s.id) for s in zone.world.scenarios]
        events = await read_snapshot(client, scenarios, Tracker())
    assert [e.scenario_id for e in events] == [300, 301, 302]
    assert all(e.queue_count is None for e in events)
    assert sum(p.endswith("/triggers") for p in paths) == 1


async def test_a_token_make_does_not_accept_is_not_taken_for_an_unreadable_queue() -> None:
    zone = SimZone(busy_world(1, api_limit=600), clock=Clock(50), seed=2)
    async with client_for(zone, [], token="not-a-token") as client:
        with pytest.raises(AuthError) as caught:
            await client.queue_depth(300)
    assert caught.value.status == 401

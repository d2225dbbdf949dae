"""`--timeout` holds while Make is down or slow at start-up: CI jobs gate on it.

Before, the timeout was checked only between start-up tries, each of which retries for longer
than a short --timeout (a closed port: 18 s for 10 s; a slow Make: 41 s).
"""

from __future__ import annotations

import anyio
import httpx
import pytest

from makestream.clock import Clock
from makestream.engine.watch import Watch, WatchOptions
from makestream.errors import ExitCode
from makestream.make.budget import Budget
from makestream.make.client import MakeClient, Token

pytestmark = pytest.mark.anyio
TOKEN = "3f2b5c1e-8a4d-4f6b-9c2e-7d1a0b9e4c3f"


@pytest.mark.parametrize(("answer", "target"), [
    ("down", None),  # a following watch retries an outage at start-up for ever
    ("slow", None),
    ("slow", "a" * 32),  # --execution gives up after 4 tries, each bounded at 20 s here
])
async def test_the_timeout_ends_a_watch_that_cannot_start(answer: str, target: str | None) -> None:
    clock = Clock(50)

    async def handler(request: httpx.Request) -> httpx.Response:
        if answer == "slow":
            await clock.sleep(25)  # each answer takes longer than the client waits
        return httpx.Response(503, json={"detail": "Service unavailable", "code": "SC503"})

    client = MakeClient("https://eu1.make.com/api/v2", Token(TOKEN), clock=clock,
                        budget=Budget(60, clock=clock), transport=httpx.MockTransport(handler),
                        timeout=20)
    watch = Watch(client, WatchOptions(scenario_ids=[5], execution_id=target, timeout_s=10))
    began = clock.now()
    async with client:
        with anyio.fail_after(clock.real(60)):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch.run)
                async for _ in watch.events:
                    pass
        watch.events.close()
    took = clock.now() - began
    assert watch.outcome.exit_code == ExitCode.TIMEOUT, watch.outcome
    assert 9.5 <= took <= 12.5  # at the timeout: neither before it nor long after

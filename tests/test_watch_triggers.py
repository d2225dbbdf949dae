"""Webhook queue depth: read a scenario at a time, and a growing queue heats the scenario."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from makestream.clock import Clock
from makestream.engine.poller import ScanTarget
from makestream.engine.watch import Watch, WatchOptions
from makestream.events import ScenarioChanged
from makestream.make.budget import Budget, Priority
from makestream.make.client import MakeClient, Token
from makestream.make.models import Scenario, Trigger

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(10)]
NOW = 1_800_000_000.0


async def test_one_queue_read_at_a_time_and_a_growing_queue_heats_the_scenario() -> None:
    clock = Clock(1.0, anchor=NOW)
    client = MakeClient("http://make.test/api/v2", Token("t"), budget=Budget(60, clock=clock),
                        clock=clock)
    watch = Watch(client, WatchOptions(scenario_ids=[1, 2, 3]))
    queues = {1: 0, 2: 0, 3: 0}
    busy = 0
    most = 0
    release = anyio.Event()

    async def triggers(sid: int, *, priority: Priority = Priority.NORMAL) -> list[Trigger]:
        # A read that waits, as one does in a busy budget's queue.
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        await release.wait()
        busy -= 1
        return [Trigger.model_validate({"id": sid, "queueCount": queues[sid]})]

    client.triggers = triggers  # type: ignore[method-assign]
    with watch.events, watch._send:
        for sid in queues:
            state = watch.tracker.add_scenario(sid, floor_ms=0)
            state.info = Scenario.model_validate({"id": sid, "name": f"s{sid}", "hookId": sid})
            watch.schedule.scans[sid] = ScanTarget(sid)
        async with anyio.create_task_group() as tg:
            for sid in queues:
                tg.start_soon(watch._triggers, sid)
            await anyio.wait_all_tasks_blocked()
            release.set()
        assert most == 1
        [first] = [sid for sid in queues if watch.tracker.scenarios[sid].queue_count == 0]
        queues[first] = 5
        release = anyio.Event()
        release.set()
        await watch._triggers(first)
        events: list[Any] = []
        while True:
            try:
                events.append(watch.events.receive_nowait())
            except anyio.WouldBlock:
                break
        changed = [e for e in events if isinstance(e, ScenarioChanged)]
        assert changed and changed[-1].queue_count == 5
        target = watch.schedule.scans[first]
        assert target.hot_until > clock.now()

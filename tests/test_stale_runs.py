"""An entry Make lists in flight and never turns terminal (an unknown status, a stale RUNNING).

make-api.md leaves statuses open (`PAUSED`, `pending`, unknown values). Such an entry must not
be looked at in the listing forever: past its expected end every read of its scenario's logs
counts as a look, and after `LOG_FOLLOWS_MAX` looks its status settles it; and it must not hold
its scenario's floor (so every scan pages further back) for longer than Make lets a run go.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qsl

import anyio
import httpx
import pytest

from makestream.clock import Clock
from makestream.engine.watch import Watch, WatchOptions
from makestream.events import ExecutionFinished
from makestream.make.budget import Budget
from makestream.make.client import MakeClient, Token

pytestmark = pytest.mark.anyio

STUCK = "f" * 32
TOKEN = "3f2b5c1e-8a4d-4f6b-9c2e-7d1a0b9e4c3f"


async def test_a_stale_entry_in_a_busy_scenario_is_settled_by_its_status() -> None:
    clock = Clock(200)
    t0 = clock.now()
    hits: Counter[str] = Counter()

    def listing(now: float) -> list[dict[str, object]]:
        # The stale entry (status 0, forever), and a 2 s run every 15 s.
        entries: list[dict[str, object]] = [
            {"imtId": f"{int((t0 + 5) * 1000)}_scenario.5.auto.{STUCK}", "id": STUCK,
             "status": 0}]
        k = 0
        while t0 + 10 + k * 15 + 2 <= now:
            entries.append({"imtId": f"{int((t0 + 10 + k * 15) * 1000)}_scenario.5.auto.{k:032x}",
                            "id": f"{k:032x}", "status": 1, "duration": 2000, "operations": 1})
            k += 1
        return sorted(entries, key=lambda e: str(e["imtId"]), reverse=True)

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v2")
        query = dict(parse_qsl(request.url.query.decode()))
        if path == "/scenarios/5" or path == "/scenarios":
            body = {"id": 5, "name": "s", "teamId": 7, "isActive": True}
            return httpx.Response(200, json={"scenario": body, "scenarios": [body]})
        if path == "/scenarios/5/logs":
            hits["pages"] += "pg[last]" in query
            hits["scans"] += "pg[last]" not in query
            last, limit = query.get("pg[last]"), int(query["pg[limit]"])
            items = [e for e in listing(clock.now()) if last is None or str(e["imtId"]) < last]
            return httpx.Response(200, json={"scenarioLogs": items[:limit]})
        if path == f"/scenarios/5/executions/{STUCK}":
            hits["status"] += 1
            return httpx.Response(200, json={"status": "SUCCESS"})
        return httpx.Response(404, json={"detail": "Not found.", "code": "SC404"})

    client = MakeClient("https://eu1.make.com/api/v2", Token(TOKEN), clock=clock,
                        budget=Budget(240, clock=clock), transport=httpx.MockTransport(handler))
    watch = Watch(client, WatchOptions(scenario_ids=[5], api_limit=240))
    settled: list[ExecutionFinished] = []
    async with client, anyio.create_task_group() as tg:
        tg.start_soon(watch.run)
        with anyio.move_on_after(clock.real(3 * 60)):
            async for event in watch.events:
                if isinstance(event, ExecutionFinished) and event.execution_id == STUCK:
                    settled.append(event)
        watch.stop("test")
        async for _ in watch.events:
            pass
        watch.events.close()
    assert [e.status for e in settled] == ["success"]
    assert hits["status"] <= 3
    # No longer running: it holds its scenario's floor (how far back each scan pages) no more.
    assert STUCK not in watch.tracker.scenarios[5].running
    assert STUCK not in watch.schedule.polls

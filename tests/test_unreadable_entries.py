"""A log entry Make lists that cannot be read is left out and said once; the rest flows on.

Before, one such entry made the whole page a PayloadError, retried as transient for ever: the
scenario's other runs were never reported again.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import anyio
import httpx
import pytest

from makestream.clock import Clock
from makestream.engine.watch import Watch, WatchOptions
from makestream.events import ExecutionFinished, StreamError
from makestream.make import shapes
from makestream.make.budget import Budget
from makestream.make.client import MakeClient, Token

pytestmark = pytest.mark.anyio

TOKEN = "3f2b5c1e-8a4d-4f6b-9c2e-7d1a0b9e4c3f"
BROKEN = 3  # the run whose entry is broken
RUNS = 70  # more than one page of 50, so that paging passes the broken entry too


def entry(t0: float, k: int) -> dict[str, object]:
    item: dict[str, object] = {
        "imtId": f"{int((t0 + 10 + k * 4) * 1000)}_scenario.5.auto.{k:032x}",
        "id": f"{k:032x}", "status": 1, "duration": 1000, "operations": 1}
    if k == BROKEN:
        item["operations"] = "many"  # not a count
    return item


def test_a_page_keeps_its_readable_entries_and_says_which_it_left_out() -> None:
    body = {"scenarioLogs": [entry(0, 2), entry(0, BROKEN), {"status": 1}, entry(0, 4)]}
    page = shapes.log_page(body)
    assert [e.id for e in page.items] == [f"{2:032x}", f"{4:032x}"]
    assert page.size == 4
    assert len(page.rejected) == 2
    assert page.rejected[0].startswith(f"imtId {entry(0, BROKEN)['imtId']}: operations")
    assert page.rejected[1].startswith("no id: ")
    with pytest.raises(ValueError, match="not a list"):
        shapes.log_page({"scenarioLogs": {"imtId": "x"}})


async def test_one_unreadable_entry_does_not_stall_its_scenario() -> None:
    clock = Clock(200)
    t0 = clock.now()

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v2")
        query = dict(parse_qsl(request.url.query.decode()))
        if path in ("/scenarios/5", "/scenarios"):
            body = {"id": 5, "name": "s", "teamId": 7, "isActive": True}
            return httpx.Response(200, json={"scenario": body, "scenarios": [body]})
        if path == "/scenarios/5/logs":
            now = clock.now()
            listed = [entry(t0, k) for k in range(RUNS) if t0 + 10 + k * 4 + 1 <= now]
            listed.sort(key=lambda e: str(e["imtId"]), reverse=True)
            last, limit = query.get("pg[last]"), int(query["pg[limit]"])
            items = [e for e in listed if last is None or str(e["imtId"]) < last]
            return httpx.Response(200, json={"scenarioLogs": items[:limit]})
        return httpx.Response(404, json={"detail": "Not found.", "code": "SC404"})

    client = MakeClient("https://eu1.make.com/api/v2", Token(TOKEN), clock=clock,
                        budget=Budget(240, clock=clock), transport=httpx.MockTransport(handler))
    watch = Watch(client, WatchOptions(scenario_ids=[5], api_limit=240))
    finished: list[str] = []
    errors: list[StreamError] = []
    async with client, anyio.create_task_group() as tg:
        tg.start_soon(watch.run)
        with anyio.move_on_after(clock.real(10 + RUNS * 4 + 60)):
            async for event in watch.events:
                if isinstance(event, ExecutionFinished):
                    finished.append(event.execution_id)
                elif isinstance(event, StreamError):
                    errors.append(event)
        watch.stop("test")
        async for _ in watch.events:
            pass
        watch.events.close()
    wanted = [f"{k:032x}" for k in range(RUNS) if k != BROKEN]
    assert sorted(finished) == wanted  # every other run, once each
    # The broken one said once, naming it and what is wrong, though every scan lists it.
    assert len(errors) == 1, [e.message for e in errors]
    assert not errors[0].fatal
    assert f"{BROKEN:032x}" in errors[0].message and "operations" in errors[0].message

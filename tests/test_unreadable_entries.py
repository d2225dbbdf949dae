"""An entry of Make's answers that cannot be read in full costs only what cannot be read.

A field that cannot be read is taken as absent; an entry that still cannot be read (no readable
id) is left out; either is said once, as a non-fatal `stream.error`, and the rest flows on.
Before, one such entry made its whole page a PayloadError, retried as transient for ever: the
scenario's other runs were never reported again, and a team listing never started the watch.
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
BROKEN = 3  # the run whose `operations` cannot be read
LOST = 7  # the run whose entry has no readable id
RUNS = 70  # more than one page of 50, so that paging passes the broken entry too


def entry(t0: float, k: int) -> dict[str, object]:
    item: dict[str, object] = {
        "imtId": f"{int((t0 + 10 + k * 4) * 1000)}_scenario.5.auto.{k:032x}",
        "id": f"{k:032x}", "status": 1, "duration": 1000, "operations": 1}
    if k == BROKEN:
        item["operations"] = "many"  # not a count
    if k == LOST:
        item["imtId"], item["id"] = "garbled", ["not", "an", "id"]
    return item


def test_a_page_takes_unreadable_fields_as_absent_and_leaves_out_unreadable_entries() -> None:
    body = {"scenarioLogs": [entry(0, 2), entry(0, BROKEN), {"status": 1}, entry(0, LOST)]}
    page = shapes.log_page(body)
    assert [e.id for e in page.items] == [f"{2:032x}", f"{BROKEN:032x}"]
    assert page.items[1].operations == 0 and page.items[1].duration_ms == 1000
    assert page.size == 4
    assert page.problems[0].startswith(
        f"imtId {entry(0, BROKEN)['imtId']}: operations taken as absent (operations: ")
    assert page.problems[1].startswith("an entry without id: left out (")
    assert page.problems[2].startswith("imtId garbled: left out (id: ")
    with pytest.raises(ValueError, match="not a list"):
        shapes.log_page({"scenarioLogs": {"imtId": "x"}})


def test_a_long_label_is_cut() -> None:
    page = shapes.log_page({"scenarioLogs": [{"imtId": "x" * 5000, "id": [1]}]})
    assert not page.items and len(page.problems[0]) < 600


async def test_one_unreadable_entry_does_not_stall_its_scenario() -> None:
    clock = Clock(200)
    t0 = clock.now()

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v2")
        query = dict(parse_qsl(request.url.query.decode()))
        if path in ("/scenarios/5", "/scenarios"):
            # Its nextExec cannot be read: the scenario is watched all the same.
            body = {"id": 5, "name": "s", "teamId": 7, "isActive": True, "nextExec": "soon"}
            odd = {"id": "six", "name": "no readable id"}
            return httpx.Response(200, json={"scenario": body, "scenarios": [odd, body]})
        if path == "/scenarios/5/logs":
            now = clock.now()
            listed = [entry(t0, k) for k in range(RUNS) if t0 + 10 + k * 4 + 1 <= now]
            listed.sort(key=lambda e: str(e["imtId"]), reverse=True)
            last, limit = query.get("pg[last]"), int(query["pg[limit]"])
            items = [e for e in listed if last is None or str(e["imtId"]) < last]
            return httpx.Response(200, json={"scenarioLogs": items[:limit]})
        if path.startswith(("/organizations", "/teams", "/users")):
            return httpx.Response(403, json={"detail": "Forbidden.", "code": "SC403"})
        return httpx.Response(404, json={"detail": "Not found.", "code": "SC404"})

    watches: list[Watch] = []  # the client's observer is the watch, as the CLI wires it
    client = MakeClient("https://eu1.make.com/api/v2", Token(TOKEN), clock=clock,
                        budget=Budget(240, clock=clock), transport=httpx.MockTransport(handler),
                        observer=lambda notice: watches[0].on_notice(notice))
    watch = Watch(client, WatchOptions(team_id=7, api_limit=240))
    watches.append(watch)
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
    wanted = [f"{k:032x}" for k in range(RUNS) if k != LOST]
    assert sorted(finished) == wanted  # every other run, once each
    # Each entry that could not be read in full said once, naming it and the field at fault,
    # though every scan and sweep lists it again.
    said = sorted(e.message for e in errors)
    assert len(said) == 4, said
    assert not any(e.fatal for e in errors)
    assert any(f"{BROKEN:032x}: operations taken as absent" in m for m in said)
    assert any("imtId garbled: left out" in m for m in said)
    assert any("GET /scenarios with an entry" in m and "nextExec taken as absent" in m
               for m in said)
    assert any("GET /scenarios with an entry" in m and "id six: left out" in m for m in said)


async def test_a_one_shot_command_says_each_problem_once_on_stderr(
        capsys: pytest.CaptureFixture[str]) -> None:
    from makestream.cli.common import Connection, open_client

    async with open_client(Connection(demo=True, one_shot=True)) as (client, _):
        page = {"scenarioLogs": [{"imtId": "x\x1b]0;pwned\x07", "id": ["?"]}]}
        for _ in range(3):  # listed by three reads
            client._problems("/scenarios/1/logs", shapes.log_page(page).problems)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("makestream: warning: Make answered GET /scenarios/1/logs with "
                               "an entry that cannot be read in full: imtId x")
    assert "\x1b" not in lines[0] and "left out" in lines[0]

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
from makestream.events import ExecutionFinished, ScenarioChanged, StreamError
from makestream.make import shapes
from makestream.make.budget import Budget
from makestream.make.client import MakeClient, Token

pytestmark = pytest.mark.anyio

TOKEN = "3f2b5c1e-8a4d-4f6b-9c2e-7d1a0b9e4c3f"
BROKEN = (3, 13)  # the runs whose `operations` cannot be read
LOST = 7  # the run whose entry has no readable id
RUNS = 70  # more than one page of 50, so that paging passes the broken entry too


def entry(t0: float, k: int) -> dict[str, object]:
    item: dict[str, object] = {
        "imtId": f"{int((t0 + 10 + k * 4) * 1000)}_scenario.5.auto.{k:032x}",
        "id": f"{k:032x}", "status": 1, "duration": 1000, "operations": 1}
    if k in BROKEN:
        item["operations"] = "many"  # not a count
    if k == LOST:
        item["imtId"], item["id"] = "garbled", ["not", "an", "id"]
    return item


async def events_for(client: MakeClient, watch: Watch, real_s: float) -> list[object]:
    """Every event `watch` emits in `real_s` seconds, then stopped."""
    seen: list[object] = []
    async with client, anyio.create_task_group() as tg:
        tg.start_soon(watch.run)
        with anyio.move_on_after(real_s):
            async for event in watch.events:
                seen.append(event)
        watch.stop("test")
        async for _ in watch.events:
            pass
        watch.events.close()
    return seen


def test_a_page_takes_unreadable_fields_as_absent_and_leaves_out_unreadable_entries() -> None:
    body = {"scenarioLogs": [entry(0, 2), entry(0, 3), {"status": 1}, entry(0, LOST)]}
    page = shapes.log_page(body)
    assert [e.id for e in page.items] == [f"{2:032x}", f"{3:032x}"]
    assert page.items[1].unread == {"operations"} and page.items[1].duration_ms == 1000
    assert not page.items[0].unread
    assert page.size == 4
    assert str(page.problems[0]).startswith(
        f"imtId {entry(0, 3)['imtId']}: operations taken as absent (operations: ")
    assert str(page.problems[1]).startswith("an entry without id: left out (")
    assert str(page.problems[2]).startswith("imtId garbled: left out (id: ")
    with pytest.raises(ValueError, match="not a list"):
        shapes.log_page({"scenarioLogs": {"imtId": "x"}})


def test_a_long_label_is_cut() -> None:
    page = shapes.log_page({"scenarioLogs": [{"imtId": "x" * 5000, "id": [1]}]})
    assert not page.items and len(str(page.problems[0])) < 600


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
    operations: dict[str, int | None] = {}
    errors: list[StreamError] = []
    for event in await events_for(client, watch, clock.real(10 + RUNS * 4 + 60)):
        if isinstance(event, ExecutionFinished):
            finished.append(event.execution_id)
            operations[event.execution_id] = event.operations
        elif isinstance(event, StreamError):
            errors.append(event)
    wanted = [f"{k:032x}" for k in range(RUNS) if k != LOST]
    assert sorted(finished) == wanted  # every other run, once each
    # A figure Make sent unreadable is unknown, not 0.
    assert {eid for eid, ops in operations.items() if ops is None} == {
        f"{k:032x}" for k in BROKEN}
    assert all(ops == 1 for eid, ops in operations.items() if int(eid, 16) not in BROKEN)
    # Each entry left out said once, and each kind of field taken as absent once (not again
    # for the second run with it), naming the entry and the field at fault, though every scan
    # and sweep lists them again.
    said = sorted(e.message for e in errors)
    assert len(said) == 4, said
    assert not any(e.fatal for e in errors)
    assert any(f"{BROKEN[0]:032x}: operations taken as absent" in m for m in said)
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


async def test_a_flag_sent_unreadable_keeps_its_last_value_and_team_listings_page_on() -> None:
    clock = Clock(200)
    listings = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v2")
        query = dict(parse_qsl(request.url.query.decode()))
        if path == "/scenarios":
            listings["n"] += 1
            offset = int(query.get("pg[offset]", 0))
            if offset == 0:  # a full first page of which nothing can be read
                limit = int(query["pg[limit]"])
                return httpx.Response(200, json={"scenarios": [{"id": "?"}] * limit})
            # Scenario 5 is failing (isinvalid) and has 4 incomplete runs, but all but the
            # first sweep after start-up send both fields in a form that cannot be read; and
            # its teamId cannot be read at all.
            garbled = listings["n"] > 3
            body = {"id": 5, "name": "s", "teamId": [7], "isActive": True,
                    "isinvalid": {"?": 1} if garbled else True,
                    "dlqCount": [4] if garbled else 4}
            return httpx.Response(200, json={"scenarios": [body]})
        if path == "/scenarios/5/logs":
            return httpx.Response(200, json={"scenarioLogs": []})
        if path.startswith(("/organizations", "/teams", "/users")):
            return httpx.Response(403, json={"detail": "Forbidden.", "code": "SC403"})
        return httpx.Response(404, json={"detail": "Not found.", "code": "SC404"})

    client = MakeClient("https://eu1.make.com/api/v2", Token(TOKEN), clock=clock,
                        budget=Budget(240, clock=clock), transport=httpx.MockTransport(handler))
    watch = Watch(client, WatchOptions(team_id=7, api_limit=240))
    changes = [e for e in await events_for(client, watch, clock.real(5 * 60))
               if isinstance(e, ScenarioChanged)]
    assert watch.tracker.scenarios[5].team_id == 7  # the team listed, for per-team sweeps
    assert listings["n"] >= 2 * 4  # swept (two pages a listing) with the fields unreadable
    assert changes == []  # never reported as repaired, nor as failing again
    info = watch.tracker.scenarios[5].info
    assert info is not None and info.is_invalid and info.dlq_count == 4


async def test_paging_goes_on_past_an_entry_whose_imtid_cannot_be_read() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(parse_qsl(request.url.query.decode()))
        last = query.get("pg[last]")
        everything = [entry(0, k) for k in range(LOST)][::-1]  # 6 down to 0
        everything[3]["imtId"] = 12345  # 3's is not text: read from its id and timestamp
        everything[3]["timestamp"] = "1970-01-01T00:00:22Z"
        listed = [e for e in everything
                  if last is None or not isinstance(e["imtId"], str) or e["imtId"] < last]
        return httpx.Response(200, json={"scenarioLogs": listed[:4]})

    clock = Clock(200)
    client = MakeClient("https://eu1.make.com/api/v2", Token(TOKEN), clock=clock,
                        budget=Budget(240, clock=clock), transport=httpx.MockTransport(handler))
    async with client:
        entries = await client.recent_logs(5, LOST)
    assert sorted(e.id for e in entries) == [f"{k:032x}" for k in range(LOST)]


async def test_a_watch_says_only_the_problems_of_its_own_scenarios() -> None:
    from makestream.make.models import Problem

    clock = Clock(1)
    watches: list[Watch] = []
    client = MakeClient("https://eu1.make.com/api/v2", Token(TOKEN), clock=clock,
                        transport=httpx.MockTransport(lambda r: httpx.Response(404)),
                        observer=lambda notice: watches[0].on_notice(notice))
    watch = Watch(client, WatchOptions(scenario_ids=[5]))
    watches.append(watch)
    watch.tracker.add_scenario(5, floor_ms=0)
    for path in ("/scenarios/6/logs", "/scenarios/5/logs", "/scenarios", "/scenarios/5/logs"):
        client._problems(path, [Problem("imtId x", "", "odd")])
    said = []
    while True:
        try:
            said.append(watch.events.receive_nowait())
        except anyio.WouldBlock:
            break
    assert [e.message.split(" with ")[0] for e in said if isinstance(e, StreamError)] == [
        "Make answered GET /scenarios/5/logs", "Make answered GET /scenarios"]
    watch._send.close()
    watch.events.close()
    await client.aclose()


def test_a_module_log_page_keeps_what_it_can_read() -> None:
    good = {"imtId": "1", "executionId": "a" * 32, "timestamp": "2026-01-01T00:00:00Z",
            "status": 1, "bundles": 3}
    odd = {**good, "executionId": "b" * 32, "bundles": -1}  # not a count: taken as absent
    lost = {**good, "executionId": None, "imtId": "x"}  # no run to tie it to: left out
    page = shapes.module_log_page({"moduleLogs": [good, odd, lost]})
    assert [(m.execution_id[0], m.bundles, m.unread) for m in page.items] == [
        ("a", 3, frozenset()), ("b", 0, frozenset({"bundles"}))]
    assert page.size == 3
    assert [str(p).split(":")[0] for p in page.problems] == ["imtId 1", "imtId x"]

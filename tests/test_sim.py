"""The simulated Make zone: documented shapes, behaviour over time, faults, determinism."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
import uvicorn

from makestream.clock import Clock
from makestream.errors import ConfigError
from makestream.sim import (
    DEMO_TOKEN,
    Faults,
    ScenarioSpec,
    SimZone,
    WorldSpec,
    demo_world,
    generated_world,
    load_world,
)
from makestream.sim.flows import blueprint, module
from makestream.sim.world import InputSpec, Profile, TeamSpec, WebhookSpec

# Make's example payloads, kept with their LICENSE
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "make"
T0 = 1_790_000_000.0
AUTH = {"Authorization": f"Token {DEMO_TOKEN}"}
IMT_ID = re.compile(r"^(\d{13})_scenario\.(\d+)\.(auto|manual)\.([0-9a-f]{32})$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class ManualClock(Clock):
    """A clock that moves only when told to (or when someone sleeps on it)."""

    def __init__(self, start: float = T0) -> None:
        super().__init__(1.0)
        self.t = start

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()

    def tick(self, seconds: float) -> None:
        self.t += seconds


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def ms(seconds: float) -> int:
    return int(seconds * 1000)


def one_scenario_world(**overrides: Any) -> WorldSpec:
    """A world with scenario 1 (on-demand, fixed 10 s runs) plus whatever `overrides` change."""
    spec: dict[str, Any] = {
        "id": 1,
        "name": "Fixed",
        "team_id": 1,
        "blueprint": blueprint("Fixed", [module(1, "http:ActionSendData"),
                                         module(2, "json:ParseJSON")]),
        "scheduling": {"type": "on-demand"},
        "profile": Profile(duration_mean=10, duration_stddev=0),
    }
    spec.update(overrides)
    return WorldSpec(teams=[TeamSpec(id=1, name="T")], scenarios=[ScenarioSpec(**spec)])


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def demo(clock: ManualClock) -> SimZone:
    return SimZone(demo_world(), clock=clock, seed=7)


@asynccontextmanager
async def client_for(zone: SimZone, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=zone.app),
        base_url="http://sim/api/v2",
        headers=headers or AUTH,
    ) as client:
        yield client


def keys(obj: dict[str, Any]) -> set[str]:
    return set(obj)


# ------------------------------------------------------------------ shapes


@pytest.mark.anyio
async def test_scenario_shapes_match_makes_examples(demo: SimZone) -> None:
    async with client_for(demo) as client:
        listed = (await client.get("/scenarios", params={"teamId": 1})).json()
        got = (await client.get("/scenarios/101")).json()
    example = fixture("scenarios/list.json")
    assert keys(example) == keys(listed)
    assert keys(example["pg"]) == keys(listed["pg"])
    for item in listed["scenarios"]:
        assert keys(example["scenarios"][0]) <= keys(item)
        assert item["teamId"] == 1
    assert keys(fixture("scenarios/get.json")["scenario"]) <= keys(got["scenario"])
    [spec] = [s for s in demo.world.scenarios if s.id == 101]
    assert got["scenario"]["scheduling"] == spec.scheduling
    assert spec.scheduling["type"] == "indefinitely"
    assert ISO_MS.match(got["scenario"]["nextExec"])


@pytest.mark.anyio
async def test_log_shapes_ids_and_timestamps(demo: SimZone) -> None:
    async with client_for(demo) as client:
        listed = (await client.get("/scenarios/104/logs")).json()
        first = listed["scenarioLogs"][0]
        one = (await client.get(f"/scenarios/104/logs/{first['id']}")).json()
    example = fixture("executions/list.json")
    assert keys(example) == keys(listed)
    assert keys(example["pg"]) == keys(listed["pg"])
    assert listed["pg"]["sortBy"] == "imtId" and listed["pg"]["limit"] == 50
    assert listed["pg"]["last"] == listed["scenarioLogs"][-1]["imtId"]
    for entry in listed["scenarioLogs"]:
        assert keys(entry) == keys(example["scenarioLogs"][0])
        match = IMT_ID.match(entry["imtId"])
        assert match, entry["imtId"]
        assert match.group(2) == "104" and match.group(4) == entry["id"]
        assert ISO_MS.match(entry["timestamp"])
        stamp = entry["timestamp"]
        assert int(match.group(1)) == _iso_ms(stamp)
        assert entry["status"] in (1, 2, 3) and entry["instant"] is True
    imt_ids = [entry["imtId"] for entry in listed["scenarioLogs"]]
    assert imt_ids == sorted(imt_ids, reverse=True)
    assert keys(fixture("executions/get.json")) == keys(one)
    assert one["scenarioLog"] == first


def _iso_ms(stamp: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.mark.anyio
async def test_other_documented_shapes(demo: SimZone) -> None:
    async with client_for(demo) as client:
        bp = (await client.get("/scenarios/103/blueprint")).json()
        iface = (await client.get("/scenarios/107/interface")).json()
        org = (await client.get("/organizations/1")).json()
        orgs = (await client.get("/organizations")).json()
        teams = (await client.get("/teams", params={"organizationId": 1})).json()
        team = (await client.get("/teams/1")).json()
        me = (await client.get("/users/me")).json()
        hook = (await client.get("/scenarios/104/triggers")).json()
        versions = (await client.get("/scenarios/101/blueprints")).json()
    example = fixture("blueprints/get.json")
    assert keys(example["response"]) == keys(bp["response"]) and bp["code"] == "OK"
    assert keys(example["response"]["blueprint"]) <= keys(bp["response"]["blueprint"])
    assert keys(fixture("scenarios/interface.json")["interface"]) == keys(iface["interface"])
    first_input = iface["interface"]["input"][0]
    assert keys(fixture("scenarios/interface.json")["interface"]["input"][0]) == keys(first_input)
    assert keys(fixture("organizations/get.json")["organization"]) <= keys(org["organization"])
    assert org["organization"]["license"]["apiLimit"] == 60
    assert keys(fixture("organizations/list.json")) == keys(orgs)
    assert keys(fixture("teams/list.json")["teams"][0]) == keys(teams["teams"][0])
    assert keys(fixture("teams/get.json")["team"]) == keys(team["team"])
    assert keys(fixture("users/me.json")["authUser"]) == keys(me["authUser"])
    assert {"id", "name", "udid", "scope", "queueCount", "queueLimit", "typeName", "type", "url",
            "flags"} == keys(hook)
    assert keys(fixture("blueprints/versions.json")["scenariosBlueprints"][0]) == keys(
        versions["scenariosBlueprints"][0])


@pytest.mark.anyio
async def test_incomplete_executions_from_dlq_scenario(clock: ManualClock) -> None:
    world = one_scenario_world(
        blueprint=blueprint("DLQ", [module(1, "http:ActionSendData"), module(2, "json:ParseJSON")],
                            dlq=True, max_errors=99),
        profile=Profile(duration_mean=1, duration_stddev=0, error_rate=1, failing_module=2),
    )
    zone = SimZone(world, clock=clock)
    for _ in range(3):
        zone.start_execution(1)
    clock.tick(5)
    async with client_for(zone) as client:
        listed = (await client.get("/dlqs", params={"scenarioId": 1})).json()
        one = (await client.get(f"/dlqs/{listed['dlqs'][0]['id']}")).json()
        bundle = (await client.get(f"/dlqs/{listed['dlqs'][0]['id']}/bundle")).json()
        scenario = (await client.get("/scenarios/1")).json()["scenario"]
        missing = await client.get("/dlqs")
    assert len(listed["dlqs"]) == 3 == scenario["dlqCount"]
    assert keys(fixture("incomplete-executions/list.json")["dlqs"][0]) == keys(listed["dlqs"][0])
    assert keys(fixture("incomplete-executions/get.json")["dlq"]) == keys(one["dlq"])
    assert list(bundle["response"]) == ["2"] and bundle["code"] == "OK"
    assert missing.status_code == 400


# ---------------------------------------------------------------- requests


@pytest.mark.anyio
async def test_auth_errors_and_revocation(demo: SimZone) -> None:
    unauthorized = {"detail": "Invalid credentials.", "message": "Unauthorized", "code": "IM102"}
    async with client_for(demo, Accept="application/json") as anonymous:
        response = await anonymous.get("/users/me")
        assert response.status_code == 401 and response.json() == unauthorized
    async with client_for(demo, Authorization="Token 00000000-0000-4000-8000-000000000000") as bad:
        assert (await bad.get("/users/me")).status_code == 401
    async with client_for(demo, Authorization=f"Bearer {DEMO_TOKEN}") as bearer:
        assert (await bearer.get("/users/me")).status_code == 200
    async with client_for(demo) as client:
        assert (await client.get("/users/me")).status_code == 200
        demo.revoke_token(DEMO_TOKEN)
        response = await client.get("/users/me")
        assert response.status_code == 401 and response.json() == unauthorized


@pytest.mark.anyio
async def test_list_parameters_and_errors(demo: SimZone) -> None:
    async with client_for(demo) as client:
        both = await client.get("/scenarios", params={"teamId": 1, "organizationId": 1})
        neither = await client.get("/scenarios")
        by_org = (await client.get("/scenarios", params={"organizationId": 1,
                                                          "pg[limit]": 100})).json()
        some = (await client.get("/scenarios?organizationId=1&id[]=101&id[]=104")).json()
        inactive = (await client.get("/scenarios", params={"organizationId": 1,
                                                            "isActive": "false"})).json()
        paged = (await client.get("/scenarios", params={"organizationId": 1, "pg[limit]": 3,
                                                         "pg[offset]": 3})).json()
        foreign = await client.get("/scenarios", params={"teamId": 99})
        missing = await client.get("/scenarios/999")
        wrong_case = await client.get("/Scenarios/101")
    assert both.status_code == 400
    assert both.json()["detail"] == "teamId and organizationId cannot be used together"
    assert neither.status_code == 400
    assert neither.json()["detail"] == "Missing required parameter teamId or organizationId"
    assert len(by_org["scenarios"]) == 8
    assert sorted(s["id"] for s in some["scenarios"]) == [101, 104]
    assert [s["id"] for s in inactive["scenarios"]] == [108]
    assert len(paged["scenarios"]) == 3 and paged["pg"]["offset"] == 3
    assert foreign.status_code == 403 and keys(foreign.json()) == {"detail", "message", "code"}
    assert missing.status_code == 404 and missing.json()["code"] == "SC404"
    assert wrong_case.status_code == 404


@pytest.mark.anyio
async def test_rate_limit_is_plain_text_per_clock_minute(clock: ManualClock) -> None:
    clock.t = (T0 // 60) * 60 + 40  # 20 s before a minute boundary
    zone = SimZone(one_scenario_world().with_api_limit(5), clock=clock)
    async with client_for(zone) as client:
        statuses = [(await client.get("/scenarios/1")).status_code for _ in range(5)]
        limited = await client.get("/scenarios/1")
        run = await client.post("/scenarios/1/run", json={})
        clock.tick(20)
        after = await client.get("/scenarios/1")
    assert statuses == [200] * 5
    assert limited.status_code == 429
    assert limited.text == "Requests limit for organization exceeded, please try again later."
    assert limited.headers["content-type"].startswith("text/plain")
    assert "retry-after" not in limited.headers
    assert run.status_code == 200  # POST /run is exempt from the organization limit
    assert after.status_code == 200
    assert zone.request_count() == 8
    zone.limit_retry_after = True
    async with client_for(zone) as client:
        for _ in range(5):
            await client.get("/scenarios/1")
        assert (await client.get("/scenarios/1")).headers["retry-after"] == "60"
    assert zone.requests_per_minute() == [7, 7]


@pytest.mark.anyio
async def test_run_is_running_then_success_and_log_carries_start(clock: ManualClock) -> None:
    zone = SimZone(one_scenario_world(), clock=clock)
    async with client_for(zone) as client:
        started = clock.now()
        execution_id = (await client.post("/scenarios/1/run", json={"data": {}})).json()[
            "executionId"]
        assert re.fullmatch(r"[0-9a-f]{32}", execution_id)
        clock.tick(5)
        assert (await client.get(f"/scenarios/1/executions/{execution_id}")).json() == {
            "status": "RUNNING"}
        assert (await client.get("/scenarios/1/logs")).json()["scenarioLogs"] == []
        assert (await client.get(f"/scenarios/1/logs/{execution_id}")).status_code == 404
        clock.tick(5)
        assert (await client.get(f"/scenarios/1/executions/{execution_id}")).json() == {
            "status": "SUCCESS"}
        entry = (await client.get("/scenarios/1/logs")).json()["scenarioLogs"][0]
        unknown = await client.get(f"/scenarios/1/executions/{'0' * 32}")
    assert entry["id"] == execution_id and entry["type"] == "manual" and entry["authorId"] == 1
    assert entry["imtId"].startswith(f"{ms(started)}_scenario.1.manual.")
    assert entry["duration"] == 10_000
    assert unknown.status_code == 404 and keys(unknown.json()) == {"detail", "message", "code"}
    (truth,) = zone.truth()
    assert (truth.started_at, truth.ended_at, truth.status) == (started, started + 10, "success")
    assert truth.log_visible_at == truth.ended_at and truth.source == "manual"


@pytest.mark.anyio
async def test_log_timestamp_can_be_the_end(clock: ManualClock) -> None:
    zone = SimZone(one_scenario_world(), clock=clock, log_timestamp="end")
    execution_id = zone.start_execution(1)
    clock.tick(10)
    async with client_for(zone) as client:
        entry = (await client.get(f"/scenarios/1/logs/{execution_id}")).json()["scenarioLog"]
    assert entry["imtId"].startswith(f"{ms(clock.now())}_")


@pytest.mark.anyio
@pytest.mark.parametrize("log_range", ["ms", "s", "ignored"])
async def test_the_logs_from_parameter_can_be_read_three_ways(
    clock: ManualClock, log_range: str
) -> None:
    zone = SimZone(one_scenario_world(), clock=clock, log_range=log_range)  # type: ignore[arg-type]
    zone.start_execution(1)
    clock.tick(10)
    since_ms = ms(clock.now()) - 60_000
    async with client_for(zone) as client:
        in_ms = (await client.get("/scenarios/1/logs", params={"from": since_ms})).json()
        in_s = (await client.get("/scenarios/1/logs", params={"from": since_ms // 1000})).json()
        before = (await client.get("/scenarios/1/logs", params={"to": since_ms})).json()
    # Milliseconds read as seconds lie far in the future; seconds read as milliseconds, in 1970.
    listed = {"ms": (1, 1, 0), "s": (0, 1, 1), "ignored": (1, 1, 1)}[log_range]
    assert tuple(len(page["scenarioLogs"]) for page in (in_ms, in_s, before)) == listed


def test_an_unknown_reading_of_from_is_refused() -> None:
    with pytest.raises(ValueError, match="log_range"):
        SimZone(one_scenario_world(), log_range="minutes")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_failed_run_detail_names_the_cause(clock: ManualClock) -> None:
    world = one_scenario_world(profile=Profile(duration_mean=2, duration_stddev=0, error_rate=1,
                                               failing_module=1))
    zone = SimZone(world, clock=clock)
    execution_id = zone.start_execution(1)
    clock.tick(3)
    async with client_for(zone) as client:
        detail = (await client.get(f"/scenarios/1/executions/{execution_id}")).json()
        log = (await client.get(f"/scenarios/1/logs/{execution_id}")).json()["scenarioLog"]
    assert detail["status"] == "ERROR" and log["status"] == 3
    assert keys(detail["error"]) == {"name", "message", "causeModule"}
    assert detail["error"]["causeModule"] == {"name": "http:ActionSendData", "appName": "http"}


# ------------------------------------------------------------------ paging


def _webhook_world() -> WorldSpec:
    # maxErrors high enough that the error rate never stops the scenario.
    flow = [module(1, "gateway:CustomWebHook", listener=True), module(2, "json:ParseJSON")]
    return one_scenario_world(
        blueprint=blueprint("Hook", flow, max_errors=1000, instant=True),
        scheduling={"type": "immediately"},
        webhook=WebhookSpec(rate_per_minute=6, parallel=4),
        profile=Profile(duration_mean=3, duration_stddev=1, error_rate=0.2, warning_rate=0.2),
    ).model_copy(update={"history": 3600})


@pytest.mark.anyio
@pytest.mark.parametrize("direction", ["desc", "asc"])
async def test_keyset_paging_returns_every_entry_once(clock: ManualClock, direction: str) -> None:
    zone = SimZone(_webhook_world(), clock=clock, seed=3)
    visible = {r.execution_id for r in zone.truth() if r.log_visible_at <= clock.now()}
    assert len(visible) > 250
    seen: list[str] = []
    last: str | None = None
    async with client_for(zone) as client:
        while True:
            params: dict[str, str | int] = {"pg[limit]": 17, "pg[sortDir]": direction}
            if last:
                params["pg[last]"] = last
            page = (await client.get("/scenarios/1/logs", params=params)).json()
            seen += [entry["id"] for entry in page["scenarioLogs"]]
            if not page["scenarioLogs"]:
                assert page["pg"]["last"] is None
                break
            last = page["pg"]["last"]
        again = (await client.get("/scenarios/1/logs", params={
            "pg[limit]": 1, "pg[last]": last or "", "pg[showLast]": "true",
            "pg[sortDir]": direction})).json()
        capped = (await client.get("/scenarios/1/logs", params={"pg[limit]": 5000})).json()
        bad = await client.get("/scenarios/1/logs", params={"pg[last]": "nonsense"})
    assert len(seen) == len(set(seen)) and set(seen) == visible
    assert again["scenarioLogs"][0]["imtId"] == last
    assert capped["pg"]["limit"] == 200 and len(capped["scenarioLogs"]) == 200
    assert bad.status_code == 400


@pytest.mark.anyio
async def test_from_to_and_status_filters(clock: ManualClock) -> None:
    zone = SimZone(_webhook_world(), clock=clock, seed=4)
    records = [r for r in zone.truth() if r.log_visible_at <= clock.now()]
    records.sort(key=lambda r: r.started_at)
    low, high = records[10], records[40]
    async with client_for(zone) as client:
        window = (await client.get("/scenarios/1/logs", params={
            "from": ms(low.started_at), "to": ms(high.started_at), "pg[limit]": 200})).json()
        errors = (await client.get("/scenarios/1/logs", params={"status": 3,
                                                                 "pg[limit]": 200})).json()
        invalid = await client.get("/scenarios/1/logs", params={"status": 7})
    inside = {r.execution_id for r in records if low.started_at <= r.started_at <= high.started_at}
    assert {entry["id"] for entry in window["scenarioLogs"]} == inside
    assert {entry["id"] for entry in errors["scenarioLogs"]} == {
        r.execution_id for r in records if r.status == "error"}
    assert invalid.status_code == 400


# --------------------------------------------------------------------- run


@pytest.mark.anyio
async def test_run_validation_and_responsive_outputs(demo: SimZone) -> None:
    async with client_for(demo) as client:
        invalid = await client.post("/scenarios/107/run", json={"data": {"amount": "x"}})
        ok = await client.post("/scenarios/107/run", json={
            "data": {"customer": "Ann", "amount": 12}, "responsive": True})
        inactive = await client.post("/scenarios/108/run", json={})
        unknown = await client.post("/scenarios/999/run", json={})
        wrong_method = await client.get("/scenarios/107/run")
    example = fixture("mcp-server/run-error.json")
    body = invalid.json()
    assert invalid.status_code == 400 and keys(body) == keys(example)
    assert body["detail"] == "Validation failed for 2 parameter(s)."
    assert {"message": "Missing value of required parameter 'customer'.", "name": "Error"} in (
        body["suberrors"])
    assert ok.status_code == 200
    assert keys(fixture("mcp-server/run.json")) <= keys(ok.json())
    assert ok.json()["outputs"]["quote"] == "Q-Ann"
    assert inactive.status_code == 400 and keys(inactive.json()) == {"detail", "message", "code"}
    assert unknown.status_code == 404
    assert wrong_method.status_code == 405


@pytest.mark.anyio
async def test_responsive_run_times_out_after_40_seconds(clock: ManualClock) -> None:
    zone = SimZone(one_scenario_world(profile=Profile(duration_mean=100, duration_stddev=0)),
                   clock=clock)
    async with client_for(zone) as client:
        before = clock.now()
        response = await client.post("/scenarios/1/run", json={"responsive": True})
    assert response.status_code == 504 and clock.now() - before == 40
    assert re.fullmatch(r"[0-9a-f]{32}", response.json()["executionId"])


# ------------------------------------------------------------- module logs


async def _module_runs(client: httpx.AsyncClient, scenario_id: int,
                       module_ids: list[int]) -> dict[str, dict[int, dict[str, Any]]]:
    """executionId -> module id -> module log entry."""
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for module_id in module_ids:
        page = (await client.get(f"/scenarios/{scenario_id}/modules/{module_id}/logs",
                                 params={"pg[limit]": 200})).json()
        for entry in page["moduleLogs"]:
            runs.setdefault(entry["executionId"], {})[module_id] = entry
    return runs


@pytest.mark.anyio
async def test_module_logs_follow_router_filters(clock: ManualClock) -> None:
    zone = SimZone(demo_world().model_copy(update={"history": 4 * 3600}), clock=clock, seed=2)
    async with client_for(zone) as client:
        runs = await _module_runs(client, 102, [1, 2, 3, 4, 5, 6, 7])
        logs = (await client.get("/scenarios/102/logs", params={"pg[limit]": 200})).json()
        unknown = await client.get("/scenarios/102/modules/99/logs")
    assert unknown.status_code == 404
    assert set(runs) == {entry["id"] for entry in logs["scenarioLogs"]}
    branches_taken = set()
    for modules in runs.values():
        entry = next(iter(modules.values()))
        assert keys(entry) == {"imtId", "executionId", "organizationId", "teamId", "scenarioId",
                               "timestamp", "status", "bundles", "size", "warning", "error"}
        assert 1 in modules
        if 4 in modules:
            assert 3 in modules  # pagerduty only runs after the "Urgent" filter let it through
        if 7 in modules:
            assert 6 in modules
        branches_taken |= {m for m in (3, 5, 6) if m in modules}
    assert branches_taken == {3, 5, 6}


@pytest.mark.anyio
async def test_module_logs_show_error_handler_runs(clock: ManualClock) -> None:
    zone = SimZone(demo_world().model_copy(update={"history": 6 * 3600}), clock=clock, seed=2)
    async with client_for(zone) as client:
        runs = await _module_runs(client, 103, [1, 2, 3, 4, 5, 6])
        statuses = {entry["id"]: entry["status"] for entry in (await client.get(
            "/scenarios/103/logs", params={"pg[limit]": 200})).json()["scenarioLogs"]}
    failed = [eid for eid, modules in runs.items() if modules[2]["status"] == 3]
    assert failed, "the demo's error-handler scenario should fail sometimes"
    for execution_id in failed:
        modules = runs[execution_id]
        assert {5, 6} <= set(modules) and not {3, 4} & set(modules)
        assert modules[2]["error"]["message"]
        assert statuses[execution_id] == 1  # builtin:Ignore handles the error: the run succeeds
    for execution_id in set(runs) - set(failed):
        assert {1, 2, 3, 4} <= set(runs[execution_id]) and 5 not in runs[execution_id]


@pytest.mark.parametrize(
    ("directive", "status", "modules_run", "stored"),
    [("builtin:Ignore", "success", [1, 2, 5, 6], False),
     ("builtin:Resume", "success", [1, 2, 5, 6, 3], False),
     ("builtin:Commit", "success", [1, 2, 5, 6], False),
     ("builtin:Break", "warning", [1, 2, 5, 6], True),
     ("builtin:Rollback", "error", [1, 2, 5, 6], False)],
)
def test_error_handler_directives_decide_the_outcome(
    directive: str, status: str, modules_run: list[int], stored: bool
) -> None:
    import random

    from makestream.sim.runs import plan_run

    handler = [module(5, "slack:CreateMessage"), module(6, directive)]
    spec = ScenarioSpec(
        id=1, name="EH", team_id=1,
        blueprint=blueprint("EH", [module(1, "google-sheets:watchRows"),
                                   module(2, "http:ActionSendData", onerror=handler),
                                   module(3, "gmail:ActionSendEmail")]),
        profile=Profile(error_rate=1, failing_module=2, bundles=1),
    )
    plan = plan_run(spec, random.Random(1))
    assert plan.status == status
    assert [m.module_id for m in plan.modules] == modules_run
    assert [m.status for m in plan.modules if m.module_id == 2] == [3]
    assert (plan.dlq_reason is not None) == stored
    # The trigger costs one operation, slack one, directives none (+ gmail when resumed).
    assert plan.operations == 3 + (directive == "builtin:Resume")
    assert plan.centicredits == plan.operations * 100


# ---------------------------------------------------------- scenario state


@pytest.mark.anyio
async def test_schedule_next_exec_and_totals(clock: ManualClock) -> None:
    world = one_scenario_world(scheduling={"type": "indefinitely", "interval": 60},
                               profile=Profile(duration_mean=5, duration_stddev=0))
    zone = SimZone(world, clock=clock, seed=1)
    async with client_for(zone) as client:
        first = (await client.get("/scenarios/1")).json()["scenario"]
        due = _iso_ms(first["nextExec"]) / 1000
        assert T0 <= due < T0 + 60 and first["operations"] == 0
        clock.t = due + 6
        after = (await client.get("/scenarios/1")).json()["scenario"]
    (record,) = zone.truth()
    assert record.started_at == due and record.source == "auto"
    assert _iso_ms(after["nextExec"]) / 1000 == due + 60
    assert after["operations"] == record.operations > 0
    assert after["transfer"] == record.transfer


@pytest.mark.anyio
@pytest.mark.parametrize("check_rate", [0.0, 0.5, 1.0])
async def test_a_polling_trigger_that_finds_nothing_makes_a_check_run_nobody_sees(
    clock: ManualClock, check_rate: float
) -> None:
    world = one_scenario_world(scheduling={"type": "indefinitely", "interval": 60},
                               profile=Profile(duration_mean=5, duration_stddev=0,
                                               check_rate=check_rate))
    zone = SimZone(world, clock=clock, seed=1)
    async with client_for(zone) as client:
        due = _iso_ms((await client.get("/scenarios/1")).json()["scenario"]["nextExec"]) / 1000
        clock.t = due + 20 * 60 + 30
        after = (await client.get("/scenarios/1")).json()["scenario"]
        listed = (await client.get("/scenarios/1/logs")).json()["scenarioLogs"]
    # Every slot came (nextExec moved on by 21), but only runs that found something ran.
    assert _iso_ms(after["nextExec"]) / 1000 == due + 21 * 60
    runs = len(zone.truth())
    assert len(listed) == runs
    assert after["operations"] == sum(r.operations for r in zone.truth())
    assert {0.0: runs == 21, 0.5: 3 < runs < 18, 1.0: runs == 0}[check_rate]


@pytest.mark.anyio
async def test_consecutive_errors_make_a_scenario_invalid(clock: ManualClock) -> None:
    world = one_scenario_world(scheduling={"type": "indefinitely", "interval": 60},
                               profile=Profile(duration_mean=5, duration_stddev=0, error_rate=1))
    zone = SimZone(world, clock=clock, seed=1)
    clock.tick(600)
    async with client_for(zone) as client:
        scenario = (await client.get("/scenarios/1")).json()["scenario"]
        run = await client.post("/scenarios/1/run", json={})
    assert scenario["isinvalid"] is True and scenario["isActive"] is False
    assert scenario["nextExec"] is None
    assert len(zone.truth()) == 3  # maxErrors defaults to 3
    assert run.status_code == 400


@pytest.mark.anyio
async def test_webhook_queue_grows_while_off_or_busy(clock: ManualClock) -> None:
    busy = one_scenario_world(scheduling={"type": "immediately"},
                              webhook=WebhookSpec(rate_per_minute=30, parallel=1),
                              profile=Profile(duration_mean=20, duration_stddev=0))
    off = busy.model_copy(update={"scenarios": [busy.scenarios[0].model_copy(
        update={"is_active": False})]})
    zone_busy, zone_off = SimZone(busy, clock=clock), SimZone(off, clock=clock)
    clock.tick(300)
    async with client_for(zone_busy) as client:
        busy_hook = (await client.get("/scenarios/1/triggers")).json()
    async with client_for(zone_off) as client:
        off_hook = (await client.get("/scenarios/1/triggers")).json()
    assert busy_hook["queueCount"] > 50
    assert {r.source for r in zone_busy.truth()} == {"webhook"}
    starts = [r.started_at for r in zone_busy.truth()]
    assert all(b - a >= 20 for a, b in itertools.pairwise(starts))
    assert off_hook["queueCount"] > 100 and zone_off.truth() == []


def test_a_webhook_burst_brings_its_requests_spread_over_its_window(clock: ManualClock) -> None:
    world = one_scenario_world(scheduling={"type": "immediately"},
                               webhook=WebhookSpec(rate_per_minute=0.5, burst=10, burst_s=5,
                                                   parallel=10),
                               profile=Profile(duration_mean=2, duration_stddev=0))
    zone = SimZone(world, clock=clock, seed=4)
    clock.tick(600)
    starts = sorted(r.started_at for r in zone.truth())
    bursts: list[list[float]] = []
    for start in starts:
        if bursts and start - bursts[-1][-1] < 1.0:
            bursts[-1].append(start)
        else:
            bursts.append([start])
    whole = [b for b in bursts if b[0] < zone.origin_ms / 1000 + 590]  # not cut off by the end
    assert len(whole) >= 2
    for burst in whole:
        assert len(burst) == 10
        gaps = [b - a for a, b in itertools.pairwise(burst)]
        assert all(g == pytest.approx(0.5, abs=0.01) for g in gaps)  # 10 in 5 s


# ------------------------------------------------------------------ faults


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("spec", "status", "content_type"),
    [("429:1", 429, "text/plain"), ("500:1", 500, "application/json"),
     ("502:1", 502, "application/json"), ("503:1", 503, "application/json"),
     ("cdn403:1", 403, "text/html")],
)
async def test_error_faults(demo: SimZone, spec: str, status: int, content_type: str) -> None:
    demo.faults = Faults.parse([spec])
    async with client_for(demo) as client:
        response = await client.get("/scenarios/101")
    assert response.status_code == status
    assert response.headers["content-type"].startswith(content_type)
    assert "retry-after" not in response.headers
    if status >= 500:
        assert response.json()["code"] == f"SC{status}"
    if status == 403:
        assert "error code: 1010" in response.text


@pytest.mark.anyio
async def test_retry_after_slow_drop_and_malformed_faults(demo: SimZone,
                                                          clock: ManualClock) -> None:
    async with client_for(demo) as client:
        demo.faults = Faults.parse(["429-retry-after:1:7"])
        response = await client.get("/scenarios/101")
        assert response.status_code == 429 and response.headers["retry-after"] == "7"

        demo.faults = Faults.parse(["slow:1:12"])
        before = clock.now()
        assert (await client.get("/scenarios/101")).status_code == 200
        assert clock.now() - before == 12

        demo.faults = Faults.parse(["drop:1"])
        with pytest.raises(httpx.TransportError):
            await client.get("/scenarios/101")

        demo.faults = Faults.parse(["malformed:1"])
        response = await client.get("/scenarios/101")
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.text)

        demo.faults = Faults()
        assert (await client.get("/scenarios/101")).status_code == 200


@pytest.mark.anyio
async def test_late_logs_and_revoke_after(clock: ManualClock) -> None:
    zone = SimZone(one_scenario_world(), clock=clock,
                   faults=Faults.parse(["late-logs:5", "revoke-after:120"]))
    execution_id = zone.start_execution(1)
    async with client_for(zone) as client:
        clock.tick(12)
        assert (await client.get(f"/scenarios/1/executions/{execution_id}")).json() == {
            "status": "SUCCESS"}
        assert (await client.get(f"/scenarios/1/logs/{execution_id}")).status_code == 404
        clock.tick(3)
        assert (await client.get(f"/scenarios/1/logs/{execution_id}")).status_code == 200
        clock.tick(110)
        assert (await client.get("/users/me")).status_code == 401
    (record,) = zone.truth()
    assert record.log_visible_at == record.ended_at + 5


@pytest.mark.anyio
async def test_chaos_faults_about_the_given_share(clock: ManualClock) -> None:
    zone = SimZone(demo_world().with_api_limit(10_000), clock=clock, faults=Faults.chaos(0.1))
    failures = 0
    async with client_for(zone) as client:
        for _ in range(400):
            try:
                response = await client.get("/users/me")
                response.json()
                failures += response.status_code != 200
            except (httpx.TransportError, json.JSONDecodeError):
                failures += 1
    assert 20 <= failures <= 60


def test_fault_specs_parse_and_reject() -> None:
    faults = Faults.parse(["429:0.1", "500:0.05", "slow:0.1", "drop:0.05", "malformed:0.05",
                           "cdn403:0.02", "429-retry-after:0.1", "late-logs:5",
                           "revoke-after:120"])
    assert faults.rate_500 == 0.05 and faults.late_logs == 5 and faults.revoke_after == 120
    assert Faults.parse(faults.describe()) == faults
    for bad, words in [("nope:0.1", "unknown kind"), ("500", "expected"),
                       ("500:x", "not a number"), ("500:2", "between 0 and 1"),
                       ("late-logs:1:2", "expected")]:
        with pytest.raises(ValueError, match=words):
            Faults.parse([bad])
    with pytest.raises(ValueError, match="add up"):
        Faults.parse(["500:0.6", "502:0.6"])
    assert abs(Faults.chaos(0.1).total_rate() - 0.1) < 1e-9


@pytest.mark.anyio
async def test_dropped_connection_over_tcp_is_a_transport_error(demo: SimZone) -> None:
    demo.faults = Faults.parse(["drop:1"])
    server = uvicorn.Server(uvicorn.Config(demo.app, host="127.0.0.1", port=0,
                                           log_level="critical"))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        with anyio.fail_after(5):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
                await anyio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v2",
                                     headers=AUTH) as client:
            with pytest.raises(httpx.TransportError):
                await client.get("/scenarios/101")
            demo.faults = Faults()
            assert (await client.get("/scenarios/101")).status_code == 200
        server.should_exit = True


# ------------------------------------------------------------ determinism


def test_same_seed_same_world_other_seed_other_world() -> None:
    def run(seed: int) -> list[tuple[Any, ...]]:
        clock = ManualClock()
        zone = SimZone(demo_world(), clock=clock, seed=seed)
        clock.tick(900)
        return [(r.scenario_id, r.execution_id, r.started_at, r.ended_at, r.status)
                for r in zone.truth()]

    first = run(5)
    assert first == run(5)
    assert first != run(6)


def test_advancing_in_steps_equals_advancing_at_once() -> None:
    clock_a, clock_b = ManualClock(), ManualClock()
    stepped = SimZone(demo_world(), clock=clock_a, seed=9)
    at_once = SimZone(demo_world(), clock=clock_b, seed=9)
    for _ in range(60):
        clock_a.tick(15)
        stepped.advance()
    clock_b.tick(900)
    assert stepped.truth() == at_once.truth()


def test_generated_world_is_reproducible() -> None:
    world = generated_world(60, seed=1, api_limit=120)
    assert world == generated_world(60, seed=1, api_limit=120)
    assert world.organization.api_limit == 120 and len(world.scenarios) == 60
    kinds = {s.scheduling["type"] for s in world.scenarios}
    assert kinds == {"indefinitely", "immediately", "on-demand"}
    assert len(generated_world(20, seed=1, mix={"webhook": 1}).scenarios) == 20
    with pytest.raises(ValueError, match="mix"):
        generated_world(5, seed=1, mix={"cron": 1})


# ------------------------------------------------------------- world files


@pytest.fixture
def world_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "world.toml"
    path.write_text(
        """
history = 60
tokens = ["11111111-2222-4333-8444-555555555555"]
[organization]
apiLimit = 30
[[teams]]
id = 3
name = "Ops"
[[scenarios]]
id = 9
name = "Nightly export"
team_id = 3
scheduling = { type = "indefinitely", interval = 900 }
profile = { duration_mean = 4, error_rate = 0.1 }
inputs = [{ name = "day", type = "text", required = true }]
[scenarios.blueprint]
name = "Nightly export"
flow = [{ id = 1, module = "http:ActionSendData" }, { id = 2, module = "json:ParseJSON" }]
""",
        encoding="utf-8",
    )
    yield path


def test_load_world_reads_toml_and_json(world_file: Path, tmp_path: Path) -> None:
    world = load_world(world_file)
    assert world.organization.api_limit == 30 and world.scenarios[0].inputs == [
        InputSpec(name="day", required=True)]
    as_json = tmp_path / "world.json"
    as_json.write_text(world.model_dump_json(), encoding="utf-8")
    assert load_world(as_json) == world


def test_load_world_errors_name_file_and_key(world_file: Path, tmp_path: Path) -> None:
    world_file.write_text(world_file.read_text().replace("error_rate = 0.1", "error_rate = 3"))
    with pytest.raises(ConfigError, match=r"world\.toml: scenarios\.0\.profile\.error_rate: "):
        load_world(world_file)
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.json: not valid JSON"):
        load_world(broken)
    with pytest.raises(ConfigError, match="cannot read"):
        load_world(tmp_path / "missing.toml")
    unknown_team = tmp_path / "team.json"
    unknown_team.write_text(json.dumps({"scenarios": [{
        "id": 1, "name": "x", "team_id": 42,
        "blueprint": {"flow": [{"id": 1, "module": "json:ParseJSON"}]}}]}))
    with pytest.raises(ConfigError, match="unknown team_id 42"):
        load_world(unknown_team)

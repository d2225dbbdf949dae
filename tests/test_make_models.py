"""The payload models against Make's own example payloads and every documented variant."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from makestream.make import shapes
from makestream.make.failures import errors_from_response
from makestream.make.models import (
    Blueprint,
    BlueprintModule,
    BlueprintVersion,
    Dlq,
    ExecStatus,
    ExecutionDetail,
    ExecutionLog,
    ModuleLog,
    Organization,
    Page,
    RunResult,
    Scenario,
    ScenarioInterface,
    Team,
    Trigger,
    User,
    parse_imt_id,
)

# Make's example payloads, kept with their LICENSE
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "make"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# Every fixture file and how its body is read; a new fixture without an entry fails the test below.
PARSERS: dict[str, Any] = {
    "blueprints/get.json": shapes.blueprint,
    "blueprints/versions.json": lambda b: shapes.many(b, BlueprintVersion, "scenariosBlueprints"),
    "executions/blueprint.json": shapes.blueprint,
    "executions/dlq-get.json": lambda b: shapes.one(b, ExecutionLog, "dlqLog"),
    "executions/dlq-list.json": lambda b: shapes.many(b, ExecutionLog, "dlqLogs"),
    "executions/get-detail.json": shapes.execution_detail,
    "executions/get.json": lambda b: shapes.one(b, ExecutionLog, "scenarioLog"),
    "executions/list.json": shapes.log_page,
    "hooks/get.json": shapes.triggers,
    "hooks/list.json": shapes.triggers,
    "incomplete-executions/bundle.json": shapes.dlq_bundle,
    "incomplete-executions/get.json": lambda b: shapes.one(b, Dlq, "dlq"),
    "incomplete-executions/list.json": lambda b: shapes.many(b, Dlq, "dlqs"),
    "mcp-server/run.json": RunResult.model_validate,
    "mcp-server/run-error.json": lambda b: errors_from_response(
        httpx.Response(400, json=b, request=httpx.Request("POST", "https://eu1.make.com/x"))
    ),
    "organizations/get.json": lambda b: shapes.one(b, Organization, "organization"),
    "organizations/list.json": lambda b: shapes.many(b, Organization, "organizations"),
    "scenarios/get.json": lambda b: shapes.one(b, Scenario, "scenario"),
    "scenarios/interface.json": lambda b: shapes.one(b, ScenarioInterface, "interface"),
    "scenarios/list.json": lambda b: shapes.many(b, Scenario, "scenarios"),
    "scenarios/run.json": RunResult.model_validate,
    "teams/get.json": lambda b: shapes.one(b, Team, "team"),
    "teams/list.json": lambda b: shapes.many(b, Team, "teams"),
    "users/me.json": lambda b: shapes.one(b, User, "authUser"),
}


def fixture_files() -> list[str]:
    return sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.json"))


def test_fixtures_are_present() -> None:
    assert FIXTURES.is_dir(), f"Make's example payloads are missing: expected {FIXTURES}"
    assert set(fixture_files()) == set(PARSERS)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_fixture_parses(name: str) -> None:
    assert PARSERS[name](load(name))


# --- what the fixtures say ------------------------------------------------------------------


def test_scenario_list_fixture() -> None:
    first, second = shapes.many(load("scenarios/list.json"), Scenario, "scenarios")
    assert first.id == 418339
    assert first.team_id == 18
    assert first.hook_id == 222895
    assert first.folder_id == 99
    assert first.is_active is False and second.is_active is True
    assert first.is_invalid is False
    assert first.operations == 5748 and first.transfer == 40236
    assert first.scheduling is not None and first.scheduling.type == "immediately"
    assert first.scheduling.interval is None
    assert first.last_edit == datetime(2022, 10, 13, 13, 27, 45, 109000, tzinfo=UTC)
    assert "app#google-calendar" in first.used_packages
    assert (
        first.model_extra is not None and first.model_extra["customProperties"]["owner"] == "Patrik"
    )


def test_scenario_get_fixture() -> None:
    scenario = shapes.one(load("scenarios/get.json"), Scenario, "scenario")
    assert scenario.scheduling is not None
    assert (scenario.scheduling.type, scenario.scheduling.interval) == ("indefinitely", 900)
    assert scenario.next_exec == datetime(2021, 9, 22, 6, 41, 56, 692000, tzinfo=UTC)
    assert scenario.operations == 0  # absent: defaults


def test_log_list_fixture() -> None:
    page = shapes.log_page(load("executions/list.json"))
    (item,) = page.items
    assert item.id == "da518adcd14b4b64ac6358823ccb80ca"
    assert item.scenario_id == 1229  # from the imtId: logs carry no scenarioId
    assert item.status is ExecStatus.SUCCESS and item.raw_status == 1
    assert item.duration_ms == 19979 and item.centicredits == 1000
    assert item.timestamp == datetime(2021, 9, 23, 4, 35, 44, 497000, tzinfo=UTC)
    assert item.timestamp_ms == 1632371744497
    assert page.pg is not None
    assert page.pg.last == "1632371803593_scenario.1229.auto.3cf2f332f74f43f1b2c4ae431cbedb5b"
    assert page.pg.show_last is False and page.pg.sort_dir == "desc" and page.pg.limit == 50


def test_dlq_log_has_no_scenario_id() -> None:
    log = shapes.one(load("executions/dlq-get.json"), ExecutionLog, "dlqLog")
    assert log.scenario_id is None
    assert log.status is ExecStatus.ERROR


def test_organization_fixture_without_api_limit() -> None:
    org = shapes.one(load("organizations/get.json"), Organization, "organization")
    assert org.api_limit is None
    assert org.zone == "local.make.cloud"
    assert [(t.id, t.organization_id) for t in org.teams] == [(16, 10)]


def test_organization_api_limit_from_license() -> None:
    org = Organization.model_validate({"id": 1, "license": {"apiLimit": "120"}})
    assert org.api_limit == 120
    assert Organization.model_validate({"id": 1, "license": None}).api_limit is None


def test_hooks_as_triggers() -> None:
    hooks = shapes.triggers(load("hooks/list.json"))
    assert [(h.id, h.queue_count, h.queue_limit, h.scenario_id) for h in hooks] == [
        (11, 0, 10000, 1),
        (58, 0, 10000, 112),
    ]
    assert hooks[0].type_name == "gateway-webhook"


def test_execution_detail_and_run_fixtures() -> None:
    detail = shapes.execution_detail(load("executions/get-detail.json"))
    assert detail.status is ExecStatus.SUCCESS and detail.raw_status == "SUCCESS"
    assert detail.outputs == {"output1": "text output", "output2": 123}
    run = RunResult.model_validate(load("mcp-server/run.json"))
    assert run.execution_id == "9c4874979d974c3ebdef1e8aaa7dc452"
    assert run.status is None and run.outputs == {"number": 15}


def test_dlq_fixtures() -> None:
    dlq = shapes.one(load("incomplete-executions/get.json"), Dlq, "dlq")
    assert dlq.scenario_id == 3 and dlq.execution_id == "55602700-e840-45bf-b18c-0aef214dd967"
    assert dlq.attempts == 2 and dlq.resolved is False
    bundle = shapes.dlq_bundle(load("incomplete-executions/bundle.json"))
    assert bundle["1"].error is not None and bundle["1"].error.message == "IP address is not valid."
    assert bundle["3"].value == "Example error text."


# --- statuses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (0, ExecStatus.RUNNING),
        (1, ExecStatus.SUCCESS),
        (2, ExecStatus.WARNING),
        (3, ExecStatus.ERROR),
        (1.0, ExecStatus.SUCCESS),
        ("1", ExecStatus.SUCCESS),
        ("3", ExecStatus.ERROR),
        ("SUCCESS", ExecStatus.SUCCESS),
        ("success", ExecStatus.SUCCESS),
        (" Warning ", ExecStatus.WARNING),
        ("ERROR", ExecStatus.ERROR),
        ("RUNNING", ExecStatus.RUNNING),
        ("PENDING", ExecStatus.RUNNING),
        ("PAUSED", ExecStatus.PAUSED),
        ("weird", ExecStatus.UNKNOWN),
        (7, ExecStatus.UNKNOWN),
        (True, ExecStatus.UNKNOWN),
        (None, ExecStatus.UNKNOWN),
        ("", ExecStatus.UNKNOWN),
    ],
)
def test_status_parse(raw: object, status: ExecStatus) -> None:
    assert ExecStatus.parse(raw) is status


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text()))
def test_status_parse_never_fails(raw: object) -> None:
    assert isinstance(ExecStatus.parse(raw), ExecStatus)


def test_terminal_statuses() -> None:
    assert {s for s in ExecStatus if s.terminal} == {
        ExecStatus.SUCCESS,
        ExecStatus.WARNING,
        ExecStatus.ERROR,
    }


@pytest.mark.parametrize("raw", [1, "1", "SUCCESS", "success"])
def test_log_status_variants_keep_the_raw_value(raw: object) -> None:
    log = ExecutionLog.model_validate({**_log(), "status": raw})
    assert log.status is ExecStatus.SUCCESS
    assert log.raw_status == raw


def test_detail_status_variants() -> None:
    assert ExecutionDetail.model_validate({"status": "RUNNING"}).status is ExecStatus.RUNNING
    assert ExecutionDetail.model_validate({"status": "PAUSED"}).status is ExecStatus.PAUSED
    assert ExecutionDetail.model_validate({"status": 3}).status is ExecStatus.ERROR
    assert ExecutionDetail.model_validate({}).status is ExecStatus.UNKNOWN
    failed = ExecutionDetail.model_validate(
        {
            "status": "ERROR",
            "error": {
                "name": "RuntimeError",
                "message": "An error occurred while executing the scenario.",
                "causeModule": {"name": "HTTP", "appName": "http"},
            },
        }
    )
    assert failed.error is not None and failed.error.cause_module is not None
    assert failed.error.cause_module.app_name == "http"


@pytest.mark.parametrize(("raw", "status"), [(1, ExecStatus.SUCCESS), ("ERROR", ExecStatus.ERROR)])
def test_run_status_number_or_string(raw: object, status: ExecStatus) -> None:
    assert RunResult.model_validate({"executionId": "x", "status": raw}).status is status


# --- tolerance -------------------------------------------------------------------------------


# Keys the models read; anything else is an extra field and must be kept, never fatal.
TOLERANT: list[type[BaseModel]] = [
    Scenario,
    ExecutionLog,
    ExecutionDetail,
    Organization,
    Trigger,
    Blueprint,
]
KNOWN_KEYS = {
    key
    for model in TOLERANT
    for name, field in model.model_fields.items()
    for key in (name, field.alias, *getattr(field.validation_alias, "choices", ()))
} | {"license", "rawStatus"}


def _log(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "imtId": "1632398122946_scenario.5.manual.cc1c49323b344687a324888762206003",
        "id": "cc1c49323b344687a324888762206003",
        "timestamp": "2021-09-23T11:55:22.946Z",
        "status": 1,
    }
    return {**base, **changes}


def test_ids_as_numbers_and_numbers_as_strings() -> None:
    log = ExecutionLog.model_validate(
        _log(id=12345, operations="7", transfer="0", duration="5611", centicredits="200.0")
    )
    assert log.id == "12345"
    assert (log.operations, log.transfer, log.duration_ms, log.centicredits) == (7, 0, 5611, 200)
    scenario = Scenario.model_validate({"id": "42", "operations": "0", "dlqCount": "3"})
    assert (scenario.id, scenario.operations, scenario.dlq_count) == (42, 0, 3)
    assert Page.model_validate({"last": 1632371803593}).last == "1632371803593"
    assert RunResult.model_validate({"executionId": 99}).execution_id == "99"


def test_missing_and_null_fields_default() -> None:
    scenario = Scenario.model_validate(
        {"id": 1, "usedPackages": None, "isActive": None, "operations": None, "scheduling": None}
    )
    assert scenario.name == "" and scenario.used_packages == [] and scenario.is_active is False
    assert scenario.operations == 0 and scenario.scheduling is None and scenario.next_exec is None
    assert Scenario.model_validate({"id": 1, "scheduling": {}}).scheduling.type == "unknown"  # type: ignore[union-attr]
    assert Trigger.model_validate({}).queue_count == 0
    assert Blueprint.model_validate({}).flow == []


def test_extra_fields_are_kept_never_fatal() -> None:
    scenario = Scenario.model_validate({"id": 1, "brandNew": {"x": [1, 2]}, "isinvalid": True})
    assert scenario.is_invalid is True
    assert scenario.model_extra == {"brandNew": {"x": [1, 2]}}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text().filter(lambda k: k not in KNOWN_KEYS), json_values, max_size=6))
def test_unknown_fields_never_fail(extra: dict[str, Any]) -> None:
    bodies: list[dict[str, Any]] = [
        {"id": 1},
        _log(),
        {"status": "SUCCESS"},
        {"id": 1},
        {},
        {"flow": []},
    ]
    for model, body in zip(TOLERANT, bodies, strict=True):
        assert model.model_validate({**extra, **body}).model_extra is not None


def test_models_accept_field_names_too() -> None:
    assert Scenario.model_validate({"id": 1, "is_invalid": True, "team_id": 3}).team_id == 3
    assert Scenario.model_validate({"id": 1, "isInvalid": True}).is_invalid is True


def test_models_are_frozen() -> None:
    scenario = Scenario.model_validate({"id": 1})
    with pytest.raises(ValidationError):
        scenario.name = "changed"  # type: ignore[misc]


def test_a_scenario_without_an_id_is_refused() -> None:
    with pytest.raises(ValidationError):
        Scenario.model_validate({"name": "no id"})


def test_timestamps_are_utc() -> None:
    naive = ExecutionLog.model_validate(_log(timestamp="2021-09-23T11:55:22.946"))
    offset = ExecutionLog.model_validate(_log(timestamp="2021-09-23T13:55:22.946+02:00"))
    assert naive.timestamp == offset.timestamp
    assert naive.timestamp.tzinfo is UTC and offset.timestamp.tzinfo is UTC


def test_log_fields_filled_from_the_imt_id() -> None:
    log = ExecutionLog.model_validate(
        {"imtId": "1632398122946_scenario.5.manual.cc1c49323b344687a324888762206003"}
    )
    assert log.id == "cc1c49323b344687a324888762206003"
    assert log.scenario_id == 5
    assert log.timestamp_ms == 1632398122946
    assert log.status is ExecStatus.UNKNOWN
    explicit = ExecutionLog.model_validate(_log(scenarioId=77))
    assert explicit.scenario_id == 77


def test_parse_imt_id() -> None:
    assert parse_imt_id("1632371744497_scenario.1229.auto.da51") == (1632371744497, 1229, "da51")
    assert parse_imt_id("1594117724361_dlq.0094.manual.28a4") == (1594117724361, None, "28a4")
    assert parse_imt_id("garbage") is None


def test_module_log() -> None:
    log = ModuleLog.model_validate(
        {
            "imtId": "1632371744497_scenario.112.auto.abc",
            "executionId": "abc",
            "organizationId": 1,
            "timestamp": "2021-09-23T04:35:44.497Z",
            "status": 2,
            "bundles": 3,
            "size": "1234",
            "warning": {},
            "error": {},
        }
    )
    assert (log.scenario_id, log.status, log.bundles, log.size) == (
        112,
        ExecStatus.WARNING,
        3,
        1234,
    )


# --- blueprints ------------------------------------------------------------------------------

ROUTER = {
    "id": 5,
    "module": "builtin:BasicRouter",
    "version": 1,
    "parameters": {},
    "mapper": None,
    "routes": [
        {
            "flow": [
                {
                    "id": 7,
                    "module": "facebook-pages:CreatePost",
                    "version": 6,
                    "filter": {
                        "name": "Facebook posts only",
                        "conditions": [[{"a": "{{6.`0`}}", "b": "FB", "o": "text:contain"}]],
                    },
                    "mapper": {"message": "{{6.`1`}}"},
                }
            ]
        },
        {"flow": [{"id": 20, "module": "twitter:createATweet", "version": 6}]},
    ],
}


def test_walk_through_routers_and_error_handlers() -> None:
    blueprint = Blueprint.model_validate(
        {
            "name": "Routed",
            "flow": [
                {"id": 1, "module": "gateway:CustomWebHook", "listener": True},
                {
                    "id": 6,
                    "module": "http:ActionSendData",
                    "onerror": [{"id": 30, "module": "builtin:Ignore"}],
                },
                ROUTER,
            ],
        }
    )
    assert [m.id for m in blueprint.walk()] == [1, 6, 30, 5, 7, 20]
    router = blueprint.flow[2]
    assert router.routes[0].flow[0].filter is not None
    assert router.routes[0].flow[0].filter["name"] == "Facebook posts only"
    assert blueprint.flow[0].listener is True


def test_nested_routers_are_walked_depth_first() -> None:
    inner = {**ROUTER, "id": 8}
    outer = {
        "id": 2,
        "module": "builtin:BasicRouter",
        "routes": [{"flow": [{"id": 3, "module": "util:SetVariable"}, inner]}, {"flow": None}],
    }
    blueprint = Blueprint.model_validate({"flow": [outer, {"id": 99, "module": "json:ParseJSON"}]})
    assert [m.id for m in blueprint.walk()] == [2, 3, 8, 7, 20, 99]


@pytest.mark.parametrize(
    ("module", "app", "name"),
    [
        ("http:ActionSendData", "http", "ActionSendData"),
        ("app#my-custom:DoThing", "my-custom", "DoThing"),
        ("builtin:BasicRouter", "builtin", "BasicRouter"),
        ("placeholder", "placeholder", "placeholder"),
    ],
)
def test_module_app_and_name(module: str, app: str, name: str) -> None:
    node = BlueprintModule.model_validate({"id": 1, "module": module})
    assert (node.app, node.name) == (app, name)


def test_fixture_blueprint_modules() -> None:
    blueprint = shapes.blueprint(load("blueprints/get.json"))
    assert blueprint.name == "Empty integration"
    assert [(m.id, m.app, m.name) for m in blueprint.walk()] == [(2, "json", "ParseJSON")]
    assert blueprint.metadata is not None and blueprint.metadata["scenario"]["maxErrors"] == 3

"""`makestream flow`: the blueprint through the client, and one execution's module results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from typer.testing import CliRunner

from makestream.cli import app
from makestream.cli.common import Connection, open_client
from makestream.cli.flow import fetch_outcomes
from makestream.make.models import Blueprint, ModuleLog, ModuleLogPage
from makestream.render.flow import ModuleOutcome

FAST = ["--demo", "--speed", "1000"]
ENV = {"COLUMNS": "100", "NO_COLOR": ""}


def log(execution_id: str, status: int, bundles: int) -> ModuleLog:
    return ModuleLog.model_validate({"executionId": execution_id, "status": status,
                                     "bundles": bundles, "timestamp": "2026-11-26T10:00:00Z"})


@dataclass
class FakeClient:
    pages: dict[int, list[ModuleLog]]
    asked: list[int] = field(default_factory=list)

    async def module_logs(self, scenario_id: int, module_id: int, **_: Any) -> ModuleLogPage:
        self.asked.append(module_id)
        return ModuleLogPage(items=self.pages.get(module_id, []))


@pytest.mark.anyio
async def test_outcomes_come_from_each_modules_logs_for_that_execution() -> None:
    blueprint = Blueprint.model_validate({"flow": [
        {"id": 1, "module": "webhook:Custom"},
        {"id": 2, "module": "builtin:BasicRouter", "routes": [
            {"flow": [{"id": 3, "module": "http:ActionSendData",
                       "onerror": [{"id": 4, "module": "builtin:Ignore"}]}]},
        ]},
    ]})
    client = FakeClient({1: [log("other", 1, 9), log("run", 1, 2)], 3: [log("run", 3, 1)]})
    found = await fetch_outcomes(client, 7, blueprint, "run")  # type: ignore[arg-type]
    assert found == {1: ModuleOutcome("success", 2, 0), 3: ModuleOutcome("error", 1, 0)}
    assert client.asked == [1, 3]  # built-in modules cost no request


@pytest.mark.anyio
async def test_outcomes_of_a_simulated_run_match_its_log() -> None:
    async with open_client(Connection(demo=True, speed=1000)) as (client, _zone):
        blueprint = await client.blueprint(103)
        runs = await client.logs(103, limit=5)
        execution = runs.items[0]
        found = await fetch_outcomes(client, 103, blueprint, execution.id)
    assert found and 1 in found  # the trigger ran
    assert {o.status for o in found.values()} <= {"success", "warning", "error"}


def test_flow_command_draws_the_demo_router() -> None:
    result = CliRunner().invoke(app, ["flow", "102", *FAST], env=ENV)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Route support emails · scenario 102"
    assert "├─ route 1 · filter: Urgent" in result.stdout
    assert lines[-1] == "7 modules · 1 router"


def test_flow_for_an_execution_no_module_mentions_exits_6() -> None:
    result = CliRunner().invoke(app, ["flow", "103", *FAST, "--execution", "nope"], env=ENV)
    assert result.exit_code == 6
    assert "└─ on error" in result.stdout and "not run" not in result.stdout
    assert result.stderr.startswith("makestream: error: execution nope: no module logs")


def test_flow_of_a_missing_scenario_is_an_error() -> None:
    result = CliRunner().invoke(app, ["flow", "999", *FAST], env=ENV)
    assert result.exit_code == 6
    assert result.stdout == ""
    assert "Scenario not found" in result.stderr

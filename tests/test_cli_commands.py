"""The commands in process, against the demo zone: options, output shapes and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from makestream.cli import app
from makestream.events import KNOWN_TYPES

runner = CliRunner()
FAST = ["--speed", "100"]


def events_of(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("makestream ")


def test_schema_is_json_schema_of_every_event() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert set(schema["discriminator"]["mapping"]) == KNOWN_TYPES


def test_state_document() -> None:
    result = runner.invoke(app, ["state", "--demo", "101", "102", *FAST])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [s["scenario_id"] for s in doc["scenarios"]] == [101, 102]
    first = doc["scenarios"][0]
    for key in ("is_active", "is_invalid", "dlq_count", "queue_count", "running",
                "last_executions", "success_rate", "duration_p50_ms", "duration_p95_ms"):
        assert key in first
    assert first["last_executions"], "the demo has history"
    assert first["duration_p50_ms"] <= first["duration_p95_ms"]
    assert set(doc["budget"]) >= {"limit_per_min", "used_last_minute", "remaining"}


def test_state_exit_status_follows_the_latest_execution() -> None:
    result = runner.invoke(app, ["state", "--demo", "105", "--exit-status", *FAST])
    doc = json.loads(result.output)
    latest = doc["scenarios"][0]["last_executions"][0]["status"]
    assert result.exit_code == {"success": 0, "warning": 3, "error": 1}[latest]


def test_watch_compact_prints_one_line_per_event() -> None:
    result = runner.invoke(app, ["watch", "--demo", "--count", "2", "--format", "compact", *FAST])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split(" ", 1)[1].startswith("watching ")
    assert lines[-1].split(" ", 1)[1].startswith("closed   count")
    assert "\x1b[" not in result.output


def test_watch_team_with_include_glob() -> None:
    result = runner.invoke(app, ["watch", "--demo", "--team", "1", "--include", "Sync*",
                                 "--count", "1", *FAST])
    assert result.exit_code == 0, result.output
    events = events_of(result.output)
    assert events[0]["targets"] == [101]
    assert {e.get("scenario_id") for e in events if "scenario_id" in e} == {101}


def test_watch_since_no_follow_reports_recent_runs_and_exits() -> None:
    result = runner.invoke(app, ["watch", "--demo", "101", "--since", "30m", "--no-follow", *FAST])
    assert result.exit_code == 0, result.output
    events = events_of(result.output)
    assert events[-1]["reason"] == "caught up"
    assert [e for e in events if e["type"] == "execution.finished"]


def test_watch_modules_reports_each_module_after_a_run() -> None:
    data = '{"customer": "Ann", "amount": 3}'
    result = runner.invoke(app, ["watch", "--demo", "107", "--run", "--data", data, "--modules",
                                 *FAST])
    assert result.exit_code == 0, result.output
    events = events_of(result.output)
    types = [e["type"] for e in events]
    modules = [e for e in events if e["type"] == "module.result"]
    assert modules and types.index("execution.finished") < types.index("module.result")
    assert all(e["execution_id"] == modules[0]["execution_id"] for e in modules)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["watch", "--demo", "101", "--run", "--execution", "x"], "cannot be used together"),
        (["watch", "--demo", "101", "102", "--run"], "exactly one SCENARIO"),
        (["watch", "--demo", "101", "--data", "{}"], "--data goes with --run"),
        (["watch", "--demo", "101", "--include", "x*"], "filter the scenarios of --team"),
        (["watch", "--demo", "101", "--since", "yesterday"], "--since"),
        (["watch", "--demo", "107", "--run", "--data", "[1]"], "must be a JSON object"),
        (["watch", "--demo", "107", "--run", "--data", "@/nonexistent.json"], "cannot read"),
        (["watch", "--demo", "--team", "1", "--include", "Nope*"], "no scenario of team 1"),
        (["watch", "--demo", "107", "--run"], "--run: Make API 400"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args, *FAST])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.count("makestream: error:") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--log-range", "minutes"], "--log-range: use ms, s or ignored"),
        (["--log-timestamp", "middle"], "--log-timestamp: use start or end"),
    ],
)
def test_sim_serve_refuses_an_unknown_api_variant(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["sim", "serve", "--port", "0", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.count("makestream: error:") == 1


def test_missing_token_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAKE_API_TOKEN", raising=False)
    monkeypatch.setenv("MAKE_ZONE", "eu1.make.com")
    result = runner.invoke(app, ["watch", "101"])
    assert result.exit_code == 2
    assert "no API token" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["watch", "--demo", "101", "--since", "inf"], "--since"),
        (["watch", "--demo", "101", "--timeout", "inf"], "not a finite duration"),
        (["watch", "--demo", "101", "--interval", "1e300"], "more than a year"),
        (["watch", "--demo", "101", "--cursor-file", "/nonexistent/dir/c"], "--cursor-file"),
        (["watch", "--demo", "101", "--webhook", "ftp://example.invalid"], "--webhook"),
        (["watch", "--demo", "101", "--webhook", "http://[::1"], "--webhook"),
    ],
)
def test_bad_values_are_one_line_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args, *FAST])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_non_ascii_token_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAKE_API_TOKEN", "tökén-secret")
    monkeypatch.setenv("MAKE_ZONE", "eu1.make.com")
    result = runner.invoke(app, ["watch", "101"])
    assert result.exit_code == 2
    assert "non-ASCII" in result.output and "secret" not in result.output


def test_binary_cursor_file_is_a_usage_error(tmp_path: Path) -> None:
    cursor = tmp_path / "c.cur"
    cursor.write_bytes(b"\xff\xfe\x00garbage")
    result = runner.invoke(app, ["watch", "--demo", "101", "--cursor-file", str(cursor), *FAST])
    assert result.exit_code == 2 and "not UTF-8" in result.output
    assert cursor.read_bytes() == b"\xff\xfe\x00garbage"


def test_state_demo_without_ids_describes_every_demo_scenario() -> None:
    from makestream.sim import demo_world

    result = runner.invoke(app, ["state", "--demo", *FAST])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [s["scenario_id"] for s in doc["scenarios"]] == [s.id for s in demo_world().scenarios]


@pytest.mark.parametrize("speed", ["inf", "1e309", "5000", "0"])
@pytest.mark.parametrize("command", [["watch", "--demo", "--count", "1"], ["sim", "serve"]])
def test_a_clock_speed_out_of_range_is_a_usage_error(command: list[str], speed: str) -> None:
    # A speed of thousands swamped the event loop past Ctrl-C; infinity was a traceback.
    result = runner.invoke(app, [*command, "--speed", speed])
    assert result.exit_code == 2, result.output
    assert "--speed" in result.output and "Traceback" not in result.output


def test_a_clock_from_the_environment_out_of_range_is_a_usage_error() -> None:
    result = runner.invoke(app, ["watch", "--demo", "--count", "1"],
                           env={"MAKESTREAM_CLOCK": "5000"})
    assert result.exit_code == 2, result.output
    assert "MAKESTREAM_CLOCK" in result.output and "at most 1000" in result.output

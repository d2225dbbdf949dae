"""`makestream thresholds`: show, set, unset, reset, check and test, with exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from makestream.cli import app
from makestream.events import AlertRaised, AlertResolved, decode

BROKEN = b"# tuned by hand\n[thresholds]\nconsecutive_failures = 3\nerror_rate = { value = 1.5 }\n"


def cli(path: Path, *args: str) -> Result:
    return CliRunner().invoke(
        app, ["thresholds", *args], env={"MAKESTREAM_CONFIG": str(path), "MAKESTREAM_CLOCK": ""}
    )


def test_show_prints_the_effective_thresholds_as_json(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[thresholds]\nqueue_max = 5\n[scenarios.7.thresholds]\nqueue_max = 9\n")
    result = cli(path, "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["config"], document["exists"], document["scenario_id"]) == (
        str(path),
        True,
        None,
    )
    assert document["thresholds"]["queue_max"] == {
        "enabled": True,
        "value": 5.0,
        "unit": "items",
        "severity": "warning",
        "source": "config",
        "params": {},
        "summary": "webhook queue above value items",
    }
    own = json.loads(cli(path, "--scenario", "7", "--format", "json").stdout)
    assert (
        own["scenario_id"],
        own["thresholds"]["queue_max"]["value"],
        own["thresholds"]["queue_max"]["source"],
    ) == (7, 9.0, "scenario")


def test_show_as_a_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    result = cli(path, "--format", "table")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert (
        lines[0] == f"Thresholds for every scenario, from built-in defaults ({path} does not exist)"
    )
    assert lines[1].split() == ["RULE", "ON", "VALUE", "SEVERITY", "SOURCE", "PARAMETERS"]
    assert lines[9].split() == ["consecutive_failures", "on", "3", "runs", "critical", "default"]
    assert len(lines) == 2 + 15


def test_set_unset_and_reset_report_on_stderr_and_edit_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    result = cli(
        path, "set", "duration_max_s", "300", "--scenario", "123", "--severity", "critical"
    )
    assert (result.exit_code, result.stdout) == (0, "")
    assert (
        result.stderr == f"makestream: duration_max_s = 300 (critical) for scenario 123 in {path}\n"
    )
    assert 'duration_max_s = {value = 300, severity = "critical"}' in path.read_text()
    assert cli(path, "set", "consecutive_failures", "5").exit_code == 0
    result = cli(path, "unset", "duration_max_s", "--scenario", "123")
    assert result.stderr == f"makestream: duration_max_s removed for scenario 123 in {path}\n"
    result = cli(path, "unset", "duration_max_s", "--scenario", "123")
    assert (result.exit_code, result.stderr) == (
        0,
        f"makestream: duration_max_s was not set for scenario 123 in {path}\n",
    )
    result = cli(path, "reset")  # everything, from a script: refused without --yes
    assert result.exit_code == 2 and "add --yes to confirm" in result.stderr
    assert "consecutive_failures" in path.read_text()
    result = cli(path, "reset", "--yes")
    assert (result.exit_code, result.stderr) == (0, f"makestream: all thresholds reset in {path}\n")
    assert path.read_text() == "# makestream configuration (see: makestream thresholds --help)\n\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set", "nope", "1"], "unknown threshold 'nope'; `makestream thresholds` lists them"),
        (["set", "error_rate", "2"], "error_rate 2: value must be at most 1 (got 2)"),
        (["set", "queue_max", "many"], "queue_max: 'many' is not a number"),
        (["unset", "nope"], "unknown threshold 'nope'; `makestream thresholds` lists them"),
    ],
)
def test_unknown_keys_and_bad_values_exit_2_with_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    path = tmp_path / "config.toml"
    result = cli(path, *args)
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        f"makestream: error: {message}\n",
    )
    assert not path.exists()


def test_a_config_file_that_cannot_be_written_exits_2_with_one_line() -> None:
    path = Path("/proc/makestream-nowhere/config.toml")  # a folder that cannot be made
    result = cli(path, "set", "error_rate", "0.3")
    assert result.exit_code == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"makestream: error: {path}: cannot write the config file: ")
    assert "Traceback" not in result.stderr


def test_show_options_before_a_subcommand_are_refused(tmp_path: Path) -> None:
    result = cli(tmp_path / "c.toml", "--scenario", "5", "set", "queue_max", "1")
    assert (result.exit_code, result.stderr) == (
        2,
        "makestream: error: --scenario and --format go after the subcommand: makestream "
        "thresholds set ... --scenario ID\n",
    )
    assert not (tmp_path / "c.toml").exists()


def test_a_bad_severity_is_a_usage_error(tmp_path: Path) -> None:
    result = cli(tmp_path / "c.toml", "set", "queue_max", "5", "--severity", "fatal")
    assert result.exit_code == 2
    assert "fatal" in result.stderr


def test_check_accepts_a_valid_file_and_a_missing_default(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    result = cli(path, "check")
    assert (result.exit_code, result.stderr) == (
        0,
        f"makestream: no config file at {path}: the built-in defaults apply\n",
    )
    path.write_text("[thresholds]\nqueue_max = 5\n")
    result = cli(path, "check")
    assert (result.exit_code, result.stderr) == (0, f"makestream: {path}: valid\n")
    other = tmp_path / "other.toml"
    result = cli(path, "check", str(other))
    assert (result.exit_code, result.stderr) == (2, f"makestream: error: {other}: no such file\n")


def test_an_invalid_file_gives_its_line_and_key_exits_2_and_stays_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(BROKEN)
    expected = (
        f"makestream: error: {path}:4: thresholds.error_rate.value: must be at most 1 "
        "(got 1.5)"
    )
    for args in (["check"], ["check", str(path)], ["--format", "json"], ["test", "101", "--demo"]):
        result = cli(path, *args)
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", expected + "\n"), args
    for args in (["set", "queue_max", "5"], ["unset", "consecutive_failures"], ["reset", "--yes"]):
        result = cli(path, *args)
        assert (result.exit_code, result.stderr) == (
            2,
            expected + "; fix the file first, it was not changed\n",
        ), args
    assert path.read_bytes() == BROKEN
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_invalid_toml_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"[thresholds]\nqueue_max = = 3\n")
    result = cli(path, "check")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"makestream: error: {path}:2: invalid TOML: ")
    assert path.read_bytes() == b"[thresholds]\nqueue_max = = 3\n"


def test_test_replays_a_demo_scenario_through_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    # The demo's scenario 105 fails about a third of its runs.
    path.write_text(
        "[thresholds]\nconsecutive_failures = 1\nerror_rate = { value = 0.01, min_runs = 1 }\n"
    )
    result = cli(path, "test", "105", "--demo", "--format", "json", "--last", "20")
    assert result.exit_code == 0, result.stderr
    alerts = [decode(line) for line in result.stdout.splitlines()]
    assert alerts, result.stderr
    assert all(isinstance(a, AlertRaised | AlertResolved) for a in alerts)
    assert {a.model_dump()["alert_id"] for a in alerts} >= {
        "consecutive_failures:105",
        "error_rate:105",
    }
    assert result.stderr.startswith("makestream: ")
    assert "would have been raised over the last" in result.stderr
    assert [a.seq for a in alerts] == list(range(1, len(alerts) + 1))
    table = cli(path, "test", "105", "--demo", "--format", "table", "--last", "20")
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["WHEN", "EVENT", "SEVERITY", "ALERT", "MESSAGE"]
    assert any(r.split()[1:4] == ["raised", "critical", "consecutive_failures:105"] for r in rows)
    # Columns line up: every row's message starts where the header's does.
    start = header.index("MESSAGE")
    assert all(r[start - 2 : start] == "  " and r[start] != " " for r in rows)


def test_test_of_an_unknown_scenario_cannot_monitor(tmp_path: Path) -> None:
    result = cli(tmp_path / "c.toml", "test", "999999", "--demo")
    assert result.exit_code == 6
    assert result.stderr.startswith("makestream: error: ")

"""`makestream history` over a store of known runs, and `watch` writing the store beside its
stream: output shapes, hostile names, faults (exit 2 with one line; the watch streams on)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from makestream.cli import app
from makestream.events import AlertRaised, ExecutionFinished, json_schema, rfc3339
from makestream.store import SCHEMA_VERSION, StoreWriter, open_read, open_write, query
from makestream.store.query import Selection

runner = CliRunner()
FAST = ["--speed", "100"]
NOW_MS = int(time.time() * 1000)
HOSTILE = "=cmd|' /C calc'!A0 \x1b]0;pwned\x07\x1b[2J"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def fill(path: Path) -> list[ExecutionFinished]:
    """Three scenarios over the last five days: 101 errs every third run; 103 has a name that
    would run in a spreadsheet and retitle a terminal."""
    runs = []
    for i in range(30):
        ended = NOW_MS - (5 * 86400_000) + i * 4 * 3600_000
        sid = 101 + i % 3
        runs.append(ExecutionFinished(
            scenario_id=sid, execution_id=f"run{i:02d}",
            status="error" if sid == 101 and i % 2 == 0 else "success",
            ended_at=rfc3339(ended / 1000), duration_ms=1000 * (i + 1), operations=i,
            centicredits=i * 100, scenario_name=HOSTILE if sid == 103 else f"Scenario {sid}",
            error={"message": "boom"} if sid == 101 and i % 2 == 0 else None,
            url=f"https://eu1.make.com/1/scenarios/{sid}/logs/run{i:02d}",
            ts=rfc3339(ended / 1000 + 1), seq=i + 1, cursor="1.x~k.1",
        ))
    w = StoreWriter(path, keep_s=1e9).start()
    w.note_scenarios([(101, "Scenario 101", 7), (102, "Scenario 102", 7), (103, HOSTILE, 8)])
    for event in runs:
        w.offer(event)
    w.offer(AlertRaised(alert_id="consecutive_failures:101", rule="consecutive_failures",
                        severity="critical", message="3 failures", scenario_id=101,
                        ts=rfc3339(NOW_MS / 1000 - 3600)))
    w.close()
    return runs


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "history.db"
    fill(path)
    return path


def test_list_defaults_to_the_last_week_as_ndjson_events(store: Path) -> None:
    code, out, err = run("history", "--store", str(store))
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["execution_id"] for e in events] == [f"run{i:02d}" for i in range(30)]
    assert [e["seq"] for e in events] == list(range(1, 31))
    assert all(e["type"] == "execution.finished" and e["cursor"] == "" for e in events)
    # `history list` is the same command
    assert run("history", "list", "--store", str(store))[1] == out


def test_list_filters(store: Path) -> None:
    code, out, _ = run("history", "101", "--status", "error", "--since", "3d",
                       "--store", str(store))
    assert code == 0
    ids = [json.loads(line)["execution_id"] for line in out.splitlines()]
    assert ids and all(int(i[3:]) % 6 == 0 for i in ids)
    cutoff = NOW_MS - 3 * 86400_000
    assert all(int(i[3:]) * 4 * 3600_000 + NOW_MS - 5 * 86400_000 >= cutoff for i in ids)
    _, team, _ = run("history", "--team", "8", "--store", str(store))
    assert {json.loads(line)["scenario_id"] for line in team.splitlines()} == {103}
    _, last, _ = run("history", "-n", "2", "--store", str(store))
    assert [json.loads(line)["execution_id"] for line in last.splitlines()] == ["run28", "run29"]


def test_list_as_a_table_cleans_names_from_make(store: Path) -> None:
    code, out, err = run("history", "103", "--format", "table", "--store", str(store))
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    lines = out.splitlines()
    assert lines[0].split() == ["ENDED", "(UTC)", "SCENARIO", "NAME", "STATUS", "DURATION", "OPS",
                                "CREDITS", "EXECUTION"]
    assert len(lines) == 11 and "10 runs" in err


def test_list_as_csv_neutralises_formulas(store: Path) -> None:
    code, out, _ = run("history", "103", "-o", "csv", "--store", str(store))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 10
    assert rows[0]["scenario_name"] == "'" + HOSTILE
    assert rows[0]["url"].startswith("https://eu1.make.com/1/scenarios/103/logs/")


def test_stats_agree_with_the_runs(store: Path) -> None:
    code, out, err = run("history", "stats", "--since", "30d", "--store", str(store))
    assert code == 0, err
    rows = {r["scenario_id"]: r for r in map(json.loads, out.splitlines())}
    assert set(rows) == {101, 102, 103}
    runs101 = [i for i in range(30) if i % 3 == 0]
    errors = [i for i in runs101 if i % 2 == 0]
    first = rows[101]
    assert first["runs"] == len(runs101)
    assert first["error_rate"] == round(len(errors) / len(runs101), 4)
    durations = sorted(1000 * (i + 1) for i in runs101)
    assert first["p50_ms"] == query.percentile(durations, 50)
    assert first["p95_ms"] == query.percentile(durations, 95)
    assert first["max_ms"] == max(durations)
    assert first["operations"] == sum(runs101)
    assert first["centicredits"] == sum(runs101) * 100
    code, out, _ = run("history", "stats", "101", "--by", "day", "-o", "csv",
                       "--store", str(store))
    by_day = list(csv.DictReader(io.StringIO(out)))
    assert sum(int(r["runs"]) for r in by_day) == len(runs101)
    assert all(len(r["bucket"]) == 10 for r in by_day)
    code, out, _ = run("history", "stats", "-o", "table", "--store", str(store))
    assert out.splitlines()[0].split()[:4] == ["SCENARIO", "NAME", "RUNS", "OK"]


def test_plot_draws_one_column_per_stretch(store: Path) -> None:
    code, out, err = run("history", "plot", "101", "--width", "30", "--height", "4",
                         "--store", str(store))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("duration p50 (s) of 'Scenario 101' (101)")
    chart = lines[1:5]
    assert len(chart) == 4 and all("┤" in line or "│" in line for line in chart)
    assert "30.0" not in lines[1] and lines[1].split()[0] == "28"  # the longest of 101's runs
    code, out, _ = run("history", "plot", "101", "--metric", "errors", "--width", "30",
                       "--store", str(store))
    assert code == 0 and out.startswith("errors of")
    code, out, _ = run("history", "plot", "999", "--store", str(store))
    assert code == 0 and "nothing stored" in out


def test_plot_title_is_cleaned(store: Path) -> None:
    code, out, _ = run("history", "plot", "103", "--width", "20", "--store", str(store))
    assert code == 0 and "\x1b" not in out and "\x07" not in out


def test_export_is_the_stream_schema(store: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    code, out, err = run("history", "export", "--store", str(store))
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert len(events) == 31
    assert [e["type"] for e in events].count("alert.raised") == 1
    validator = jsonschema.Draft202012Validator(
        json_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for event in events:
        validator.validate(event)
    assert [e["seq"] for e in events] == list(range(1, 32))
    _, alerts, _ = run("history", "export", "--type", "alert.raised", "--store", str(store))
    assert len(alerts.splitlines()) == 1


def test_prune(store: Path) -> None:
    code, _, err = run("history", "prune", "--keep", "2d", "--store", str(store))
    assert code == 0 and err.startswith("makestream: pruned ")
    conn = open_read(store)
    assert conn is not None
    left = query.executions(conn, Selection())
    assert left and all(r["ended_ms"] >= NOW_MS - 2 * 86400_000 - 60_000 for r in left)


def test_no_store_yet_is_an_empty_answer(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    for args in (["history"], ["history", "stats"], ["history", "export"]):
        code, out, _ = run(*args, "--store", str(path))
        assert code == 0 and out == ""
    assert not path.exists()


@pytest.mark.parametrize("fault", ["damaged", "newer"])
def test_a_store_that_cannot_be_read_is_exit_2_with_one_line(tmp_path: Path, fault: str) -> None:
    path = tmp_path / "h.db"
    if fault == "damaged":
        path.write_bytes(b"this is not sqlite " * 300)
    else:
        open_write(path).close()
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    for args in (["history"], ["history", "stats"], ["history", "plot", "1"],
                 ["history", "export"], ["history", "prune"]):
        code, out, err = run(*args, "--store", str(path))
        assert code == 2, (args, err)
        assert out == "" and len(err.splitlines()) == 1
        assert err.startswith(f"makestream: error: history store {path}: ")


def test_bad_options_are_exit_2(store: Path) -> None:
    assert run("history", "--since", "yesterday-ish", "--store", str(store))[0] == 2
    assert run("history", "prune", "--keep", "0s", "--store", str(store))[0] == 2
    assert run("history", "stats", "--by", "week", "--store", str(store))[0] == 2
    assert run("history", "--store", str(store.parent))[0] == 2


def test_store_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAKESTREAM_STORE", "off")
    code, _, err = run("history")
    assert code == 2 and "MAKESTREAM_STORE is off" in err


# -- watch writes the store ----------------------------------------------------------------------


def test_watch_stores_every_finished_run_it_reports(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    code, out, err = run("watch", "--demo", "--count", "6", "--since", "15m", "-o", "ndjson",
                         "--store", str(path), *FAST)
    assert code == 0, err
    reported = {e["execution_id"] for e in map(json.loads, out.splitlines())
                if e["type"] == "execution.finished"}
    assert len(reported) >= 6
    conn = open_read(path)
    assert conn is not None
    stored = {r["execution_id"] for r in query.executions(conn, Selection())}
    assert stored == reported
    names = query.names(conn)
    assert names[101] == "Sync new orders to Google Sheets"
    teams = dict(conn.execute("SELECT scenario_id, team_id FROM scenarios"))
    assert teams[101] is not None
    assert "warning" not in err


def test_the_demo_keeps_no_history_unless_a_store_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    code, _, err = run("watch", "--demo", "--count", "1", "--since", "15m", "-o", "ndjson", *FAST)
    assert code == 0, err
    assert not (tmp_path / "makestream").exists()  # made-up scenarios stay out of history
    named = tmp_path / "demo.db"
    code, _, err = run("watch", "--demo", "--count", "1", "--since", "15m", "-o", "ndjson",
                       "--store", str(named), *FAST)
    assert code == 0, err
    assert named.is_file()


def _unwritable(tmp_path: Path) -> Path:
    import os

    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o555)
        return folder / "history.db"
    return Path("/proc/makestream-history.db")  # root ignores folder modes; /proc refuses


@pytest.mark.parametrize("fault", ["damaged", "read-only"])
def test_a_store_fault_leaves_the_watch_streaming(tmp_path: Path, fault: str) -> None:
    if fault == "damaged":
        path = tmp_path / "h.db"
        path.write_bytes(b"this is not sqlite " * 300)
    else:
        path = _unwritable(tmp_path)
    code, out, err = run("watch", "--demo", "--count", "4", "--since", "15m", "-o", "ndjson",
                         "--store", str(path), *FAST)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert sum(e["type"] == "execution.finished" for e in events) >= 4
    assert events[-1]["type"] == "stream.closed"
    errors = [e for e in events if e["type"] == "stream.error"]
    assert len(errors) == 1 and errors[0]["error_type"] == "store"
    assert not errors[0]["fatal"]
    assert errors[0]["message"].startswith(f"history store {path}: ")
    warnings = [line for line in err.splitlines() if line]
    assert warnings == [f"makestream: warning: {errors[0]['message']}"]


def test_thresholds_test_replays_the_store_without_a_request(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[thresholds]\nconsecutive_failures = {value = 1, severity = "critical"}\n')
    monkeypatch.setenv("MAKESTREAM_CONFIG", str(config))
    monkeypatch.setenv("MAKE_API_URL", "http://127.0.0.1:9/api/v2")  # nothing may be asked
    code, out, err = run("thresholds", "test", "101", "--from-store", "--store", str(store),
                         "--format", "json")
    assert code == 0, err
    alerts = [json.loads(line) for line in out.splitlines()]
    raised = [a for a in alerts
              if a["type"] == "alert.raised" and a["rule"] == "consecutive_failures"]
    # 101 ran at i = 0, 3, 6, ...: an error whenever i is even, so every other run fails and the
    # next one resolves it.
    runs = [i for i in range(30) if i % 3 == 0]
    assert len(raised) == sum(1 for i in runs if i % 2 == 0)
    assert f"over the last {len(runs)} stored runs of scenario 101" in err
    code, out, err = run("thresholds", "test", "999", "--from-store", "--store", str(store))
    assert code == 0 and out == "" and "over the last 0 stored runs" in err

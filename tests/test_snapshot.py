"""`watch --snapshot`: each scenario's current state as `scenario.state` events before following."""

from __future__ import annotations

import json

from factories import log_entry, scenario
from typer.testing import CliRunner

from makestream.cli import app
from makestream.engine.snapshot import scenario_snapshot
from makestream.engine.tracker import Tracker
from makestream.events import ScenarioState, decode, rfc3339

T0 = 1_790_000_000_000


def test_a_scenario_state_rests_on_its_recent_runs() -> None:
    logs = [
        log_entry(7, ts_ms=T0, duration=4000, status=1),
        log_entry(7, ts_ms=T0 + 60_000, duration=6000, status=3),
        log_entry(7, ts_ms=T0 + 120_000, duration=5000, status=2, execution_id="newest"),
    ]
    event = scenario_snapshot(scenario(7, dlqCount=2, nextExec=rfc3339(T0 / 1000 + 180)),
                              logs, queue_count=None, tracker=Tracker())
    assert isinstance(event, ScenarioState)
    assert event.last_run is not None
    assert (event.last_run.execution_id, event.last_run.status) == ("newest", "warning")
    assert event.last_run.started_at == rfc3339((T0 + 120_000) / 1000)  # start-stamped until seen
    assert (event.success_rate, event.sample_size) == (round(2 / 3, 4), 3)
    assert event.expected_duration_ms == 5000 and event.dlq_count == 2
    assert event.next_exec == rfc3339(T0 / 1000 + 180)
    empty = scenario_snapshot(scenario(8), [], queue_count=4, tracker=Tracker())
    assert (empty.last_run, empty.success_rate, empty.queue_count) == (None, None, 4)


def test_watch_snapshot_starts_with_one_state_per_scenario_then_follows() -> None:
    result = CliRunner().invoke(app, ["watch", "--demo", "--team", "1", "--snapshot", "-n", "1",
                                      "-o", "ndjson", "--speed", "100"])
    assert result.exit_code == 0, result.output
    events = [decode(line) for line in result.stdout.splitlines()]
    opened = events[0]
    assert opened.type == "stream.opened"
    targets = opened.targets  # type: ignore[attr-defined]
    states = events[1 : 1 + len(targets)]
    assert [e.type for e in states] == ["scenario.state"] * len(targets)
    assert [e.scenario_id for e in states] == targets
    assert opened.cursor and events[-1].cursor  # the position: where it was, where it ended
    assert any(e.last_run is not None for e in states)  # type: ignore[attr-defined]
    assert events[-1].type == "stream.closed"
    without = CliRunner().invoke(app, ["watch", "--demo", "--team", "1", "-n", "1",
                                       "-o", "ndjson", "--speed", "100"])
    assert "scenario.state" not in {json.loads(x)["type"] for x in without.stdout.splitlines()}

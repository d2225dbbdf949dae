"""The view model: running rows move to finished, alerts open and resolve, estimates are marked."""

from __future__ import annotations

from typing import Any

from snapshots import sample_events

from makestream.events import (
    AlertRaised,
    AlertResolved,
    ApiThrottled,
    ExecutionErrorInfo,
    ExecutionFinished,
    ExecutionProgress,
    ExecutionStarted,
    ModuleResult,
    ScenarioChanged,
    StreamClosed,
    StreamError,
    StreamHeartbeat,
    StreamOpened,
    rfc3339,
)
from makestream.render.flow import ModuleOutcome
from makestream.render.view import ViewState, apply, reduce

T0 = 1_795_687_200.0  # 2026-11-26T10:00:00Z


def at(seconds: float) -> dict[str, Any]:
    return {"ts": rfc3339(T0 + seconds)}


def started(eid: str = "e1", sid: int = 7, t: float = 0, expected: int | None = 10_000) -> Any:
    return ExecutionStarted(scenario_id=sid, execution_id=eid, source="auto",
                            started_at=rfc3339(T0 + t), expected_duration_ms=expected,
                            scenario_name="Orders", **at(t))


def finished(eid: str = "e1", sid: int = 7, t: float = 12, status: str = "success",
             **fields: Any) -> Any:
    return ExecutionFinished(scenario_id=sid, execution_id=eid, status=status,
                             duration_ms=12_000, operations=4, **fields, **at(t))


def alert(kind: type[Any], alert_id: str = "a1", t: float = 0) -> Any:
    return kind(alert_id=alert_id, rule="error_rate", severity="critical", value=0.5,
                threshold=0.2, message="half the runs failed", scenario_id=7, **at(t))


def test_a_started_execution_is_running_and_moves_to_finished() -> None:
    state = reduce([started(), finished()])
    assert state.running == {}
    [row] = state.finished
    assert (row.execution_id, row.status, row.duration_ms, row.operations) == ("e1", "success",
                                                                               12_000, 4)
    assert row.scenario_name == "Orders"
    assert state.counts == {"success": 1}


def test_running_rows_keep_their_start_order_and_only_the_finished_one_leaves() -> None:
    state = reduce([started("e1"), started("e2", sid=8, t=1), finished("e1", t=5)])
    assert list(state.running) == ["e2"]
    assert [row.execution_id for row in state.finished] == ["e1"]


def test_history_progress_is_an_estimate_that_follows_the_clock_and_stops_at_99() -> None:
    state = reduce([
        started(expected=10_000),
        ExecutionProgress(scenario_id=7, execution_id="e1", elapsed_ms=4000,
                          expected_duration_ms=10_000, percent=40.0, basis="history", **at(4)),
    ])
    row = state.running["e1"]
    assert row.estimate
    assert row.percent_at(T0 + 4) == 40.0
    assert row.percent_at(T0 + 6) == 60.0
    assert row.remaining_ms(T0 + 6) == 4000
    assert row.percent_at(T0 + 30) == 99.0  # overdue: never 100 until seen to end
    assert row.remaining_ms(T0 + 30) == -20_000


def test_module_based_progress_is_not_an_estimate_and_is_not_extrapolated() -> None:
    state = reduce([
        started(expected=None),
        ExecutionProgress(scenario_id=7, execution_id="e1", elapsed_ms=3000, percent=50.0,
                          basis="modules", **at(3)),
    ])
    row = state.running["e1"]
    assert not row.estimate
    assert row.percent_at(T0 + 9) == 50.0
    assert row.remaining_ms(T0 + 3) == 3000


def test_progress_for_an_unseen_run_creates_its_row_from_elapsed_time() -> None:
    state = reduce([
        ExecutionProgress(scenario_id=7, execution_id="late", elapsed_ms=5000, percent=None,
                          **at(10)),
    ])
    row = state.running["late"]
    assert row.started_at is None
    assert row.elapsed_at(T0 + 12) == 7000
    assert row.percent_at(T0 + 12) is None
    assert row.remaining_ms(T0 + 12) is None


def test_alerts_open_and_resolve_by_alert_id() -> None:
    state = reduce([alert(AlertRaised, "a1"), alert(AlertRaised, "a2"),
                    alert(AlertRaised, "a1", t=5), alert(AlertResolved, "a2", t=6)])
    assert list(state.alerts) == ["a1"]
    assert state.alerts_raised == 2  # raising a1 again updates it, it is not a new alert
    apply(state, alert(AlertResolved, "a1", t=7))
    assert state.alerts == {}
    apply(state, alert(AlertResolved, "never-raised", t=8))
    assert state.alerts == {}


def test_budget_comes_from_opened_heartbeat_and_throttle() -> None:
    state = reduce([StreamOpened(targets=[7], api_limit=60, budget_per_min=48, version="1",
                                 **at(0))])
    assert (state.budget_per_min, state.api_limit, state.used_last_minute) == (48, 60, None)
    apply(state, StreamHeartbeat(used_last_minute=12, budget_per_min=47.5, **at(10)))
    assert (state.budget_per_min, state.used_last_minute) == (47.5, 12)
    apply(state, ApiThrottled(retry_in_s=30, rate_per_min=40, **at(11)))
    assert state.budget_per_min == 40


def test_health_shows_a_throttle_until_its_retry_time() -> None:
    state = reduce([ApiThrottled(retry_in_s=30, **at(0))])
    assert state.health_at(T0 + 10) == ("warn", "throttled by Make, retry in 20s")
    assert state.health_at(T0 + 31) == ("ok", "ok")


def test_health_shows_a_transient_error_until_retry_and_a_fatal_one_for_good() -> None:
    state = reduce([StreamError(message="connection reset", retry_in_s=5, **at(0))])
    assert state.health_at(T0 + 1) == ("warn", "retrying in 4s: connection reset")
    # The retry time passed and nothing has shown a request succeed: not "ok".
    assert state.health_at(T0 + 6) == ("fail", "failing: connection reset")
    apply(state, StreamError(message="token revoked", fatal=True, **at(7)))
    assert state.health_at(T0 + 100) == ("fail", "failed: token revoked")


def test_an_error_without_retry_time_lasts_until_the_next_heartbeat() -> None:
    state = reduce([StreamError(message="HTTP 502", **at(0))])
    assert state.health_at(T0 + 60) == ("fail", "failing: HTTP 502")
    apply(state, StreamHeartbeat(**at(61)))
    assert state.health_at(T0 + 61) == ("ok", "ok")


def test_health_is_failing_while_heartbeats_say_requests_fail() -> None:
    # Heartbeats come from the clock, not from answers: one that says requests fail keeps the
    # view failing; an event only an answer produces, or a clean heartbeat, ends it.
    down = "Make unreachable at 127.0.0.1:9 (connection refused)"
    state = reduce([StreamOpened(api_limit=60, budget_per_min=48, version="1", **at(0)),
                    StreamHeartbeat(failing=down, **at(15))])
    assert state.health_at(T0 + 16) == ("fail", f"failing: {down}")
    apply(state, StreamHeartbeat(failing=down, **at(30)))
    assert state.health_at(T0 + 31)[0] == "fail"
    apply(state, finished(t=32))
    assert state.health_at(T0 + 33) == ("ok", "ok")
    apply(state, StreamHeartbeat(failing=down, **at(45)))
    apply(state, StreamHeartbeat(**at(60)))
    assert state.health_at(T0 + 61) == ("ok", "ok")


def test_scenario_flags_keep_the_last_known_value_of_each_field() -> None:
    state = reduce([
        ScenarioChanged(scenario_id=7, changed=["is_active"], is_active=True, is_invalid=False,
                        dlq_count=0, scenario_name="Orders", **at(0)),
        ScenarioChanged(scenario_id=7, changed=["dlq_count"], dlq_count=3, **at(5)),
    ])
    row = state.scenarios[7]
    assert (row.name, row.is_active, row.is_invalid, row.dlq_count) == ("Orders", True, False, 3)
    assert row.notable


def test_finished_error_names_the_module_first() -> None:
    error = ExecutionErrorInfo(message="503 Service Unavailable", cause_module="HTTP")
    state = reduce([finished(status="error", error=error)])
    assert state.finished[0].error == "HTTP: 503 Service Unavailable"
    assert state.counts == {"error": 1}


def test_module_results_are_kept_for_the_latest_execution_of_each_scenario() -> None:
    def result(eid: str, module_id: int, status: str) -> ModuleResult:
        return ModuleResult(scenario_id=7, execution_id=eid, module_id=module_id,
                            status=status, bundles=1, **at(0))

    state = reduce([result("e1", 1, "success"), result("e1", 2, "error"),
                    result("e2", 1, "warning")])
    assert state.modules[7] == ("e2", {1: ModuleOutcome("warning", 1)})


def test_focus_follows_the_latest_start_and_stays_while_that_scenario_runs() -> None:
    state = reduce([started("e1", sid=7), started("e2", sid=8, t=1)])
    assert state.focus == 8
    apply(state, finished("e1", sid=7, t=2))
    assert state.focus == 8  # scenario 8 is still running
    apply(state, finished("e2", sid=8, t=3))
    apply(state, finished("x", sid=9, t=4))
    assert state.focus == 9


def test_closed_stream_is_recorded() -> None:
    state = reduce([StreamClosed(reason="count reached", exit_code=0, summary={"finished": 1},
                                 **at(0))])
    assert state.closed is not None
    assert state.health_at(T0) == ("ok", "closed: count reached")


def test_the_sample_stream_rebuilds_the_expected_view() -> None:
    state = reduce(sample_events())
    assert state.targets == [101, 102, 103]
    runs = state.running.values()
    assert sorted(r.execution_id[:4] for r in runs if not r.expected) == ["6512", "d3d9"]
    assert [r.scenario_id for r in runs if r.expected] == [103]
    assert [r.status for r in state.finished] == ["success", "warning", "error"]
    assert list(state.alerts) == ["error_rate:103"]
    assert state.scenarios[103].is_invalid
    assert state.health.throttles_seen == 1 and state.health.errors_seen == 1
    assert state.closed is not None and state.closed.exit_code == 130


def test_events_without_time_stamps_do_not_move_the_clock() -> None:
    state = ViewState()
    apply(state, StreamHeartbeat(ts="", used_last_minute=3))
    assert state.now is None and state.used_last_minute == 3


def test_the_summary_lists_failures_first_and_shows_each_run_at_its_own_time() -> None:
    import io

    from rich.console import Console

    from makestream.render.compact import CompactWriter
    from makestream.render.summary import summary

    state = ViewState()
    events: list[Any] = []
    for i in range(94):
        status = "error" if i in (3, 40) else "warning" if i == 70 else "success"
        events.append(ExecutionFinished(
            scenario_id=1, execution_id=f"{i:032x}", status=status, ts="2026-12-01T12:00:00.000Z",
            ended_at=f"2026-12-01T10:{i % 60:02d}:00.000Z", duration_ms=1000,
            url=f"https://eu1.make.com/1/scenarios/1/logs/{i:032x}",
        ))
    for event in events:
        apply(state, event)
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(summary(state, last=5))
    text = out.getvalue()
    # 94 runs, 91 successes: the two errors and the warning are listed, then the latest two.
    assert text.count("✗ error") == 2 and text.count("⚠ warning") == 1
    assert text.count("✓ success") == 2
    assert f"logs/{70:032x}" in text  # a whole link for the warning
    # The compact line carries the run's own end and its link, not the write time.
    line = io.StringIO()
    CompactWriter(line).write(events[70])
    assert line.getvalue().startswith("10:10:00 warning") and f"logs/{70:032x}" in line.getvalue()


def test_an_expected_scheduled_run_shows_as_running_until_a_run_of_its_scenario_is_seen() -> None:
    from snapshots import render_text

    from makestream.events import ExecutionExpected
    from makestream.render.screen import screen

    expected = ExecutionExpected(scenario_id=7, due_at=rfc3339(T0), expected_duration_ms=10_000,
                                 scenario_name="Orders", **at(4))
    state = reduce([expected])
    [row] = state.running.values()
    assert row.expected and row.estimate and row.execution_id.startswith("expected:")
    assert row.percent_at(T0 + 5) == 50.0
    text = render_text(screen(state, now=T0 + 5, width=100, height=30), width=100, height=30)
    assert "expected" in text and "~50%" in text and "Orders" in text
    apply(state, finished(t=12))
    assert state.running == {}


def test_compact_names_the_basis_of_an_expected_run_and_a_scenario_state() -> None:
    from makestream.events import ExecutionExpected, LastRun, ScenarioState
    from makestream.render.compact import describe

    line = describe(ExecutionExpected(scenario_id=7, due_at=rfc3339(T0 + 65),
                                      expected_duration_ms=8000, scenario_name="Orders"))
    assert line.startswith("expected 7 'Orders'") and "scheduled 10:01:05 UTC" in line
    assert "not listed by Make yet" in line
    line = describe(ScenarioState(scenario_id=7, scenario_name="Orders", is_active=True,
                                  success_rate=0.9, sample_size=10, dlq_count=2,
                                  last_run=LastRun(execution_id="x", status="error",
                                                   started_at=rfc3339(T0))))
    assert line == ("state    7 'Orders' active · last run error 10:00:00 UTC · 90% ok of 10 · "
                    "2 incomplete runs")


def test_compact_heartbeat_says_failing_with_the_reason() -> None:
    from makestream.render.compact import describe

    line = describe(StreamHeartbeat(used_last_minute=3, running=0, failing="HTTP 503"))
    assert line == "budget   3 requests last minute · 0 running · failing: HTTP 503"
    assert "failing" not in describe(StreamHeartbeat(used_last_minute=3, running=0))

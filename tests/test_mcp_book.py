"""The sans-I/O parts of the MCP face: a monitor's book and a followed run, fed plain events."""

from __future__ import annotations

from makestream.events import (
    AlertRaised,
    AlertResolved,
    ExecutionErrorInfo,
    ExecutionFinished,
    ExecutionProgress,
    ExecutionStarted,
    ModuleResult,
    StreamClosed,
    StreamOpened,
)
from makestream.limits import MCP_BACKLOG_MAX, MCP_RECENT_RUNS
from makestream.make.budget import BudgetSnapshot
from makestream.mcp.follow import RunFollower
from makestream.mcp.monitor import MonitorBook

BUDGET = BudgetSnapshot(limit_per_min=60, rate_per_min=48.0, used_last_minute=3, remaining=45,
                        throttled_until=None, share=0.8)


def finished(eid: str, status: str = "success") -> ExecutionFinished:
    return ExecutionFinished(scenario_id=1, execution_id=eid, status=status,  # type: ignore[arg-type]
                             duration_ms=1000, operations=2)


def test_a_run_goes_from_in_flight_to_finished_and_is_handed_out_once() -> None:
    book = MonitorBook("m1", [1])
    assert book.apply(StreamOpened(targets=[1, 2], api_limit=60, budget_per_min=48,
                                   version="x")) is False
    assert book.status == "running" and book.scenario_ids == [1, 2]
    assert book.apply(ExecutionStarted(scenario_id=1, execution_id="a", source="auto",
                                       started_at="t", expected_duration_ms=10_000))
    assert not book.apply(ExecutionProgress(scenario_id=1, execution_id="a", elapsed_ms=4000,
                                            expected_duration_ms=10_000, percent=40.0))
    state = book.snapshot(BUDGET)
    [flying] = state.running
    assert (flying.percent, flying.eta_s, flying.basis) == (40.0, 6.0, "history")
    assert book.apply(finished("a"))
    first = book.drain(BUDGET)
    assert [r.execution_id for r in first.finished] == ["a"] and not first.running
    assert first.budget.remaining == 45
    assert book.drain(BUDGET).finished == []  # once
    assert [r.execution_id for r in book.snapshot(BUDGET).finished] == ["a"]  # still recent


def test_alerts_open_and_resolve() -> None:
    book = MonitorBook("m1", [1])
    fields = dict(scenario_id=1, alert_id="x", rule="error_rate", severity="warning",
                  message="too many errors", ts="t")
    book.apply(AlertRaised(**fields))  # type: ignore[arg-type]
    assert [a.alert_id for a in book.snapshot(BUDGET).open_alerts] == ["x"]
    book.apply(AlertResolved(**fields))  # type: ignore[arg-type]
    state = book.drain(BUDGET)
    assert [a.event for a in state.alerts] == ["raised", "resolved"] and not state.open_alerts


def test_the_backlog_is_capped_and_says_how_much_it_dropped() -> None:
    book = MonitorBook("m1", [1])
    total = MCP_BACKLOG_MAX + 25
    for n in range(total):
        book.apply(finished(str(n)))
    state = book.drain(BUDGET)
    assert len(state.finished) == MCP_BACKLOG_MAX and state.dropped == 25
    assert state.finished[-1].execution_id == str(total - 1)  # the newest are kept
    assert len(book.snapshot(BUDGET).finished) == MCP_RECENT_RUNS
    assert book.finished_total == total


def test_closing_clears_what_was_in_flight() -> None:
    book = MonitorBook("m1", [1])
    book.apply(ExecutionStarted(scenario_id=1, execution_id="a", source="auto", started_at="t"))
    assert book.apply(StreamClosed(reason="stopped", exit_code=0))
    state = book.snapshot(BUDGET)
    assert state.status == "closed" and state.closed_reason == "stopped" and not state.running


def test_a_followed_run_reports_growing_progress_and_its_end() -> None:
    follower = RunFollower(1, None)
    reports = [follower.apply(e) for e in [
        ExecutionStarted(scenario_id=1, execution_id="a", source="run", started_at="t",
                         expected_duration_ms=10_000, scenario_name="Orders"),
        ExecutionProgress(scenario_id=1, execution_id="a", elapsed_ms=5000,
                          expected_duration_ms=10_000, percent=50.0),
        ExecutionProgress(scenario_id=1, execution_id="a", elapsed_ms=6000,
                          expected_duration_ms=10_000, percent=50.0),
        ExecutionProgress(scenario_id=1, execution_id="other", elapsed_ms=1, percent=90.0),
        ModuleResult(scenario_id=1, execution_id="a", module_id=2, status="error"),
        ExecutionFinished(scenario_id=1, execution_id="a", status="error", duration_ms=9000,
                          centicredits=250, error=ExecutionErrorInfo(cause_module="json:Parse")),
    ]]
    values = [r.progress for r in reports if r is not None]
    assert values == sorted(values) and len(set(values)) == len(values) == 4
    assert reports[3] is None  # another run of the scenario
    assert reports[1] is not None and "50% (ETA 5.0s, by the history" in reports[1].message
    result = follower.outcome()
    assert result.status == "error" and result.credits == 2.5 and result.continue_with is None
    assert result.error is not None and result.error.cause_module == "json:Parse"
    assert [m.module_id for m in result.modules] == [2]


def test_a_run_not_ended_says_how_to_continue() -> None:
    waiting = RunFollower(7, None).outcome()
    assert waiting.status == "waiting" and waiting.continue_with is not None
    assert waiting.continue_with.execution_id is None
    follower = RunFollower(7, None)
    follower.apply(ExecutionStarted(scenario_id=7, execution_id="b", source="run",
                                    started_at="t"))
    result = follower.outcome()
    assert result.status == "running" and result.continue_with is not None
    assert result.continue_with.execution_id == "b"


def test_closing_clears_the_open_alerts() -> None:
    book = MonitorBook("m1", [1])
    book.apply(AlertRaised(scenario_id=1, alert_id="x", rule="error_rate",  # type: ignore[arg-type]
                           severity="warning", message="too many errors", ts="t"))
    book.apply(StreamClosed(reason="stopped", exit_code=0))
    assert book.open_alerts == {} and book.snapshot(BUDGET).open_alerts == []


def test_progress_never_passes_its_total() -> None:
    follower = RunFollower(1, "a")
    events = [ExecutionStarted(scenario_id=1, execution_id="a", source="auto", started_at="t",
                               expected_duration_ms=1000)]
    events += [ExecutionProgress(scenario_id=1, execution_id="a", elapsed_ms=900 + 100 * n,
                                 expected_duration_ms=1000, percent=99.0) for n in range(300)]
    events.append(finished("a"))  # type: ignore[arg-type]
    reports = [r for r in map(follower.apply, events) if r is not None]
    values = [r.progress for r in reports]
    assert values == sorted(set(values))  # each further on
    assert all(r.total == 100 and r.progress <= 100 for r in reports)
    assert values[-1] == 100 and "success" in reports[-1].message
    assert all(v < 100 for v in values[:-1])  # only the end reaches the total


def test_without_an_id_the_first_run_to_end_is_the_one_followed() -> None:
    follower = RunFollower(1, None)
    reports = [follower.apply(e) for e in [
        ExecutionStarted(scenario_id=1, execution_id="a", source="auto", started_at="t1",
                         expected_duration_ms=60_000),
        ExecutionStarted(scenario_id=1, execution_id="b", source="auto", started_at="t2",
                         expected_duration_ms=60_000),
        ExecutionProgress(scenario_id=1, execution_id="a", elapsed_ms=20_000,
                          expected_duration_ms=60_000, percent=33.0),
        finished("b", "warning"),  # b ends first, though a began first
        ExecutionProgress(scenario_id=1, execution_id="a", elapsed_ms=30_000,
                          expected_duration_ms=60_000, percent=50.0),
        ModuleResult(scenario_id=1, execution_id="b", module_id=3, status="warning"),
        finished("a"),
    ]]
    result = follower.outcome()
    assert (result.execution_id, result.status) == ("b", "warning")
    assert result.continue_with is None and [m.module_id for m in result.modules] == [3]
    values = [r.progress for r in reports if r is not None]
    assert values == sorted(set(values)) and values[-1] == 100
    assert reports[4] is None and reports[6] is None  # after b ended, a is not followed


def test_without_an_id_a_call_that_ends_early_continues_with_the_next_run_to_end() -> None:
    follower = RunFollower(1, None)
    follower.apply(ExecutionStarted(scenario_id=1, execution_id="a", source="auto",
                                    started_at="t1"))
    result = follower.outcome()
    assert result.status == "running" and result.execution_id == "a"
    assert result.continue_with is not None and result.continue_with.execution_id is None


def test_a_run_asked_for_whose_id_is_unknown_says_so() -> None:
    result = RunFollower(7, None, run=True).outcome()
    assert result.status == "waiting" and result.execution_id is None
    assert result.continue_with is None  # not "the next run": that could be another one
    assert result.note is not None and "execution id is unknown" in result.note
    follower = RunFollower(7, None, run=True)
    progress = follower.apply(ExecutionStarted(scenario_id=7, execution_id="r1",
                                               source="run", started_at="t"))
    assert progress is not None and "execution r1" in progress.message
    after = follower.outcome()
    assert after.note is None and after.continue_with is not None
    assert after.continue_with.execution_id == "r1"

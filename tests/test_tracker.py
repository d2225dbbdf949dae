"""The tracker: deduplication, late and out-of-order entries, status variants, cursors."""

from __future__ import annotations

from factories import detail, log_entry, scenario

from makestream.engine.cursor import Cursor
from makestream.engine.tracker import Tracker
from makestream.events import ExecutionFinished, ExecutionStarted, ScenarioChanged

T0 = 1_790_000_000_000


def tracker(floor_ms: int = T0) -> Tracker:
    t = Tracker(ui_base="https://eu1.make.com", stream="s1")
    t.add_scenario(1, floor_ms=floor_ms)
    return t


def finish(t: Tracker, entry, d=None, now: float = T0 / 1000 + 100):  # type: ignore[no-untyped-def]
    return t.finished(1, entry, d, execution_id=entry.id, now=now)


def test_a_finished_run_is_reported_once_with_its_figures() -> None:
    t = tracker()
    entry = log_entry(ts_ms=T0 + 10, duration=1234, operations=7)
    assert t.is_new(1, entry)
    [event] = finish(t, entry)
    assert isinstance(event, ExecutionFinished)
    assert (event.status, event.duration_ms, event.operations, event.centicredits) == (
        "success",
        1234,
        7,
        700,
    )
    assert event.url == f"https://eu1.make.com/7/scenarios/1/logs/{entry.id}"
    assert not t.is_new(1, entry)
    assert finish(t, entry) == []


def test_entries_below_the_floor_are_treated_as_delivered() -> None:
    t = tracker()
    old = log_entry(ts_ms=T0 - 1)
    assert not t.is_new(1, old)
    assert finish(t, old) == []


def test_late_entry_within_the_window_is_still_reported() -> None:
    t = tracker()
    newer = log_entry(ts_ms=T0 + 5000)
    finish(t, newer)
    t.scan_complete(1, T0)  # the floor stays below the late entry
    late = log_entry(ts_ms=T0 + 1000)
    assert t.is_new(1, late)
    assert len(finish(t, late)) == 1


def test_status_variants_map_to_the_three_outcomes() -> None:
    t = tracker()
    statuses = {1: "success", 2: "warning", 3: "error", "SUCCESS": "success", "ERROR": "error"}
    for raw, expected in statuses.items():
        [event] = finish(t, log_entry(ts_ms=T0 + 1, status=raw))
        assert isinstance(event, ExecutionFinished)
        assert event.status == expected


def test_detail_supplies_the_error_and_overrides_the_log_status() -> None:
    t = tracker()
    [event] = finish(t, log_entry(ts_ms=T0 + 1, status=1), detail("ERROR", "bad gateway", "HTTP"))
    assert isinstance(event, ExecutionFinished)
    assert event.status == "error"
    assert event.error is not None
    assert (event.error.message, event.error.cause_module) == ("bad gateway", "HTTP")


def test_finish_without_log_reports_what_is_known() -> None:
    t = tracker()
    t.started(1, "abc", now=T0 / 1000, source="run", started_at=T0 / 1000)
    [event] = t.finished(1, None, detail("WARNING"), execution_id="abc", now=T0 / 1000 + 5)
    assert isinstance(event, ExecutionFinished)
    assert event.status == "warning"
    assert event.duration_ms is None
    assert event.started_at == "2026-09-21T14:13:20.000Z"
    assert t.running_count == 0


def test_started_once_and_not_after_finish() -> None:
    t = tracker()
    [started] = t.started(1, "abc", now=T0 / 1000, source="run")
    assert isinstance(started, ExecutionStarted)
    assert t.started(1, "abc", now=T0 / 1000 + 1, source="run") == []
    t.finished(
        1, log_entry(ts_ms=T0 + 1, execution_id="abc"), None, execution_id="abc", now=T0 / 1000 + 2
    )
    assert t.started(1, "abc", now=T0 / 1000 + 3, source="auto") == []


def test_progress_is_an_estimate_capped_below_100() -> None:
    t = tracker()
    t.learn(1, [log_entry(ts_ms=T0 - 10_000, duration=10_000)])
    t.started(1, "abc", now=T0 / 1000, source="run", started_at=T0 / 1000)
    [half] = t.progress(T0 / 1000 + 5)
    assert half.percent == 50.0  # type: ignore[attr-defined]
    assert t.progress(T0 / 1000 + 5.5) == []  # throttled to one per interval
    [over] = t.progress(T0 / 1000 + 60)
    assert over.percent == 99.0  # type: ignore[attr-defined]
    assert over.basis == "history"  # type: ignore[attr-defined]


def test_progress_without_history_has_no_percent() -> None:
    t = tracker()
    t.started(1, "abc", now=T0 / 1000, source="run", started_at=T0 / 1000)
    [event] = t.progress(T0 / 1000 + 3)
    assert event.percent is None  # type: ignore[attr-defined]
    assert event.elapsed_ms == 3000  # type: ignore[attr-defined]


def test_scenario_changes_are_reported_by_field() -> None:
    t = tracker()
    assert t.scenario_seen(scenario(1)) == []
    [event] = t.scenario_seen(scenario(1, isinvalid=True, isActive=False, dlqCount=2))
    assert isinstance(event, ScenarioChanged)
    assert event.changed == ["is_active", "is_invalid", "dlq_count"]
    assert t.scenario_seen(scenario(1, isinvalid=True, isActive=False, dlqCount=2)) == []
    t.scenario_seen(scenario(1, isinvalid=True, isActive=False, dlqCount=2), queue_count=3)
    [queued] = t.scenario_seen(
        scenario(1, isinvalid=True, isActive=False, dlqCount=2), queue_count=9
    )
    assert queued.changed == ["queue_count"]  # type: ignore[attr-defined]


def test_cursor_round_trip_preserves_exactly_once() -> None:
    t = tracker()
    a, b = log_entry(ts_ms=T0 + 1), log_entry(ts_ms=T0 + 2)
    finish(t, a)
    cursor = t.cursor(5)
    finish(t, b)
    resumed = Tracker(stream="s2")
    resumed.restore(Cursor.decode(cursor))
    assert not resumed.is_new(1, a)
    assert resumed.is_new(1, b)
    assert Cursor.decode(cursor).seq == 5


def test_cursor_is_cached_until_positions_change() -> None:
    t = tracker()
    first = t.cursor(1)
    assert t.cursor(2).split("~")[0] == first.split("~")[0]
    finish(t, log_entry(ts_ms=T0 + 1))
    assert t.cursor(3).split("~")[0] != first.split("~")[0]


def test_floor_pruning_forgets_old_ids_but_keeps_them_delivered() -> None:
    t = tracker()
    old = log_entry(ts_ms=T0 + 1)
    finish(t, old)
    t.scan_complete(1, T0 + 10)
    assert t.scenarios[1].position.done == {}
    assert not t.is_new(1, old)


def test_a_back_filled_run_carries_its_own_start_and_end() -> None:
    t = tracker()
    entry = log_entry(ts_ms=T0 + 10_000, duration=90_000)
    [event] = finish(t, entry, now=T0 / 1000 + 3600)
    assert isinstance(event, ExecutionFinished)
    # Nothing says otherwise yet: the log's timestamp is taken as the start.
    assert event.started_at == "2026-09-21T14:13:30.000Z"
    assert event.ended_at == "2026-09-21T14:15:00.000Z"


def test_timestamps_at_the_end_are_learned_from_a_run_whose_start_was_seen() -> None:
    t = tracker()
    begun = T0 / 1000 + 5
    t.started(1, "seen", now=begun, source="run", started_at=begun)
    stamped_at_end = log_entry(ts_ms=T0 + 5000 + 60_000, duration=60_000, execution_id="seen")
    [first] = finish(t, stamped_at_end)
    assert isinstance(first, ExecutionFinished)
    assert (first.started_at, first.ended_at) == (
        "2026-09-21T14:13:25.000Z",
        "2026-09-21T14:14:25.000Z",
    )
    # Later runs nobody saw start are read the same way.
    [other] = finish(t, log_entry(ts_ms=T0 + 200_000, duration=30_000))
    assert isinstance(other, ExecutionFinished)
    assert (other.started_at, other.ended_at) == (
        "2026-09-21T14:16:10.000Z",
        "2026-09-21T14:16:40.000Z",
    )


def test_a_run_listed_in_flight_shows_timestamps_mark_the_start() -> None:
    t = tracker()
    t.stamp = "end"
    t.stamp_seen("start")
    [event] = finish(t, log_entry(ts_ms=T0 + 1000, duration=4000))
    assert isinstance(event, ExecutionFinished)
    assert (event.started_at, event.ended_at) == (
        "2026-09-21T14:13:21.000Z",
        "2026-09-21T14:13:25.000Z",
    )


def test_a_passed_next_exec_announces_an_expected_run_unless_it_was_seen() -> None:
    from makestream.events import ExecutionExpected, rfc3339

    t = tracker()
    t.learn(1, [log_entry(ts_ms=T0 - 60_000, duration=8000)])
    [event] = t.run_began(1, T0 + 60_000)
    assert isinstance(event, ExecutionExpected)
    assert (event.basis, event.expected_duration_ms, event.execution_id) == ("schedule", 8000, None)
    assert event.due_at == rfc3339((T0 + 60_000) / 1000)
    # The run at that slot was already reported (its entry is stamped at the slot or later).
    entry = log_entry(ts_ms=T0 + 120_000, duration=1000)
    finish(t, entry)
    assert t.run_began(1, T0 + 119_500) == []
    # A run seen in flight at that slot needs no announcement either.
    t.started(1, "live-1", now=T0 / 1000 + 300, source="auto", started_at=T0 / 1000 + 300)
    assert t.run_began(1, T0 + 300_000) == []


def test_a_slot_told_after_its_run_was_reported_does_not_hold_the_floor() -> None:
    t = tracker()
    t.learn(1, [log_entry(ts_ms=T0 - 60_000, duration=8000)])
    # The run of the T0 + 60 s slot is read before a sweep tells of the slot.
    finish(t, log_entry(ts_ms=T0 + 61_000, duration=9000, execution_id="slot-run"))
    assert t.run_began(1, T0 + 60_000) == []
    t.scan_complete(1, T0 + 300_000)
    assert t.scenarios[1].position.floor_ms == T0 + 300_000


def test_another_run_reported_after_a_slot_does_not_release_it() -> None:
    t = tracker()
    t.learn(1, [log_entry(ts_ms=T0 - 60_000, duration=8000)])
    # A run that began 90 s after the slot (on demand) is no sign that the slot's run, which
    # may be long and stamped at its start, was reported: the floor stays below the slot.
    finish(t, log_entry(ts_ms=T0 + 150_000, duration=2000, execution_id="other"))
    assert t.run_began(1, T0 + 60_000) == []  # not announced: an entry at or after the slot
    t.scan_complete(1, T0 + 300_000)
    assert t.scenarios[1].position.floor_ms == T0


def test_the_run_of_the_slot_before_does_not_release_a_slot() -> None:
    t = tracker()
    t.learn(1, [log_entry(ts_ms=T0 - 60_000, duration=8000)])
    # Every 30 s: the run of the T0 slot is reported; the T0 + 30 s slot is told of next.
    finish(t, log_entry(ts_ms=T0, duration=2000, execution_id="slot-before"))
    [expected] = t.run_began(1, T0 + 30_000)
    assert expected.type == "execution.expected"
    t.scan_complete(1, T0 + 300_000)
    assert t.scenarios[1].position.floor_ms == T0  # held (below the slot, as far as it can)


def test_a_run_in_flight_longer_than_make_allows_stops_holding_the_floor() -> None:
    t = tracker()
    start = T0 + 120_000
    t.started(1, "stuck", now=start / 1000, source="auto", started_at=start / 1000)
    t.scan_complete(1, start + 30 * 60_000)
    assert t.scenarios[1].position.floor_ms == start - 60_000  # held below its start
    assert "stuck" in t.scenarios[1].running
    t.scan_complete(1, start + 51 * 60_000)  # its start is past MAX_LOOKBACK_MS (50 min) now
    assert t.scenarios[1].position.floor_ms == start + 51 * 60_000
    assert "stuck" not in t.scenarios[1].running

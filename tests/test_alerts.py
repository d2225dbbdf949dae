"""Alert rules: each one raised and resolved from simulated executions, once per incident."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from factories import log_entry, scenario

from makestream.config import parse
from makestream.engine.alerts import AlertEvaluator, AlertEvent, fails, replay
from makestream.engine.history import History
from makestream.engine.rules import EffectiveThresholds
from makestream.engine.tracker import Running, ScenarioState
from makestream.events import (
    AlertRaised,
    AlertResolved,
    ExecutionFinished,
    ExecutionStarted,
    ScenarioChanged,
    StreamHeartbeat,
    rfc3339,
)
from makestream.make.budget import BudgetSnapshot

T = 1_790_000_000.0


def evaluator(toml: str = "") -> AlertEvaluator:
    return AlertEvaluator(parse(toml) if toml else EffectiveThresholds())


def run(
    status: str = "success", *, sid: int = 1, seconds: float = 1.0, eid: str = "e", **figures: int
) -> ExecutionFinished:
    return ExecutionFinished(
        scenario_id=sid,
        execution_id=eid,
        status=status,
        duration_ms=int(seconds * 1000),
        scenario_name="Orders",
        **figures,
    )


def kinds(events: Sequence[AlertEvent]) -> list[tuple[str, str]]:
    return [(e.type.split(".")[1], e.alert_id) for e in events]


def feed(
    ev: AlertEvaluator, events: Sequence[ExecutionFinished], start: float = T
) -> list[list[tuple[str, str]]]:
    """Each event's alerts, one second apart."""
    return [kinds(ev.observe(e, start + i)) for i, e in enumerate(events)]


# --- per-run limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "field", "over", "under"),
    [
        ("duration_max_s", "seconds", 11.0, 5.0),
        ("operations_max", "operations", 11, 5),
        ("transfer_max_bytes", "transfer_bytes", 11, 5),
        ("centicredits_max", "centicredits", 11, 5),
    ],
)
def test_a_per_run_limit_is_raised_once_and_resolved_by_a_run_within_it(
    key: str, field: str, over: float, under: float
) -> None:
    ev = evaluator(f"[thresholds]\n{key} = 10\n")
    runs = [run(**{field: over}), run(**{field: over + 1}), run(**{field: under})]  # type: ignore[arg-type]
    assert feed(ev, runs) == [[("raised", f"{key}:1")], [], [("resolved", f"{key}:1")]]


def test_per_run_limits_are_off_until_given_a_value() -> None:
    ev = evaluator()
    assert feed(ev, [run(seconds=10_000, operations=10**6, centicredits=10**6)]) == [[]]


def test_the_raised_alert_carries_value_threshold_severity_and_a_message() -> None:
    ev = evaluator('[thresholds]\nduration_max_s = { value = 300, severity = "critical" }\n')
    [alert] = ev.observe(run(seconds=412), T)
    assert isinstance(alert, AlertRaised)
    assert (alert.rule, alert.severity, alert.value, alert.threshold) == (
        "duration_max_s",
        "critical",
        412.0,
        300.0,
    )
    assert alert.scenario_id == 1
    assert alert.message == "scenario 1 (Orders): a run took 6.9 min, over the limit of 5.0 min"


def test_a_scenario_override_applies_to_that_scenario_only() -> None:
    ev = evaluator("[scenarios.2.thresholds]\nduration_max_s = 10\n")
    assert ev.observe(run(sid=1, seconds=60), T) == []
    assert kinds(ev.observe(run(sid=2, seconds=60), T)) == [("raised", "duration_max_s:2")]


# --- relative duration ----------------------------------------------------------------------------


def test_a_run_far_above_its_own_p95_is_raised_once_then_resolved() -> None:
    ev = evaluator("[thresholds]\nduration_p95_factor = { value = 2, min_samples = 20 }\n")
    history = [run(seconds=10)] * 20
    assert feed(ev, history) == [[]] * 20
    later = feed(ev, [run(seconds=25), run(seconds=40), run(seconds=10)], start=T + 10)
    alert = "duration_p95_factor:1"
    assert later == [[("raised", alert)], [], [("resolved", alert)]]


def test_relative_duration_waits_for_the_minimum_sample() -> None:
    ev = evaluator("[thresholds]\nduration_p95_factor = { value = 2, min_samples = 5 }\n")
    assert feed(ev, [run(seconds=10)] * 4 + [run(seconds=100)]) == [[]] * 5


def test_learned_history_counts_from_the_first_run_watched() -> None:
    ev = evaluator("[thresholds]\nduration_p95_factor = { value = 2, min_samples = 5 }\n")
    ev.learn(1, [10_000] * 5)
    [alert] = ev.observe(run(seconds=30), T)
    assert alert.alert_id == "duration_p95_factor:1"
    assert alert.value == 3.0
    assert "3x the p95 of 10 s (limit 2x)" in alert.message


# --- rates and streaks ----------------------------------------------------------------------------


@pytest.mark.parametrize("key,status", [("error_rate", "error"), ("warning_rate", "warning")])
def test_a_rate_over_a_window_of_runs_is_raised_and_resolved(key: str, status: str) -> None:
    ev = evaluator(
        f"[thresholds]\n{key} = {{ value = 0.5, window_runs = 4, min_runs = 4 }}\n"
        "consecutive_failures = false\n"
    )
    ok, bad = run(), run(status)
    # window at each step: s | s b | s b b (3 < min_runs) | s b b s = 50% | b b s s | b s s s
    steps = feed(ev, [ok, bad, bad, ok, ok, ok])
    alert = f"{key}:1"
    assert steps == [[], [], [], [("raised", alert)], [], [("resolved", alert)]]
    assert ev.active() == []


def test_a_rate_over_a_time_window_resolves_when_its_runs_age_out() -> None:
    ev = evaluator(
        "[thresholds]\nerror_rate = { value = 0.5, window_s = 60, min_runs = 2 }\n"
        "consecutive_failures = false\n"
    )
    steps = feed(ev, [run("error"), run("error")])
    assert steps == [[], [("raised", "error_rate:1")]]
    state = {1: ScenarioState(1)}
    assert ev.tick(T + 30, state, None) == []
    assert kinds(ev.tick(T + 62, state, None)) == [("resolved", "error_rate:1")]
    assert ev.tick(T + 63, state, None) == []


def test_consecutive_failures_count_errors_only_and_resolve_on_the_next_good_run() -> None:
    ev = evaluator("[thresholds]\nconsecutive_failures = 3\nerror_rate = false\n")
    alert = "consecutive_failures:1"
    steps = feed(
        ev,
        [
            run("error"),
            run("error"),
            run("warning"),
            run("error"),
            run("error"),
            run("error"),
            run("error"),
            run("warning"),
            run("error"),
        ],
    )
    assert steps == [[], [], [], [], [], [("raised", alert)], [], [("resolved", alert)], []]


def test_failing_runs_keep_one_incident_per_rule() -> None:
    ev = evaluator("[thresholds]\nconsecutive_failures = 2\nerror_rate = { min_runs = 2 }\n")
    events = [a for step in feed(ev, [run("error")] * 10) for a in step]
    assert events == [("raised", "error_rate:1"), ("raised", "consecutive_failures:1")]


# --- scenario flags, DLQ and queue ----------------------------------------------------------------


@pytest.mark.parametrize(
    "key,field", [("scenario_invalid", "is_invalid"), ("scenario_paused", "is_paused")]
)
def test_a_flag_from_scenario_changed_is_raised_and_resolved(key: str, field: str) -> None:
    ev = evaluator()
    on = ScenarioChanged(scenario_id=1, changed=[field], **{field: True})
    off = ScenarioChanged(scenario_id=1, changed=[field], **{field: False})
    assert kinds(ev.observe(on, T)) == [("raised", f"{key}:1")]
    assert ev.observe(on, T + 1) == []
    assert kinds(ev.observe(off, T + 2)) == [("resolved", f"{key}:1")]


def test_a_flag_already_set_when_watching_begins_is_raised_by_tick() -> None:
    ev = evaluator()
    state = ScenarioState(1, name="Orders", info=scenario(1, isinvalid=True, isActive=False))
    [alert] = ev.tick(T, {1: state}, None)
    assert (alert.alert_id, alert.severity) == ("scenario_invalid:1", "critical")
    assert alert.message == "scenario 1 (Orders): the scenario is deactivated by errors"
    assert ev.tick(T + 1, {1: state}, None) == []
    # the tracker's ScenarioChanged for the same fact does not raise it again
    changed = ScenarioChanged(scenario_id=1, changed=["is_invalid"], is_invalid=True)
    assert ev.observe(changed, T + 2) == []


def test_dlq_growth_counts_from_the_lowest_count_seen() -> None:
    ev = evaluator("[thresholds]\ndlq_growth = 2\n")

    def dlq(count: int, at: float) -> list[tuple[str, str]]:
        return kinds(ev.observe(ScenarioChanged(scenario_id=1, dlq_count=count), at))

    alert = "dlq_growth:1"
    assert [
        dlq(5, T),
        dlq(6, T + 1),
        dlq(7, T + 2),
        dlq(9, T + 3),
        dlq(6, T + 4),
        dlq(3, T + 5),
        dlq(5, T + 6),
    ] == [[], [], [("raised", alert)], [], [("resolved", alert)], [], [("raised", alert)]]


def test_a_webhook_queue_above_its_limit_is_raised_and_resolved() -> None:
    ev = evaluator("[thresholds]\nqueue_max = 10\n")
    state = ScenarioState(1, queue_count=11)
    assert kinds(ev.tick(T, {1: state}, None)) == [("raised", "queue_max:1")]
    state.queue_count = 50
    assert ev.tick(T + 1, {1: state}, None) == []
    resolved = ev.observe(ScenarioChanged(scenario_id=1, queue_count=10), T + 2)
    assert kinds(resolved) == [("resolved", "queue_max:1")]
    assert resolved[0].value == 10.0


# --- time rules -----------------------------------------------------------------------------------


def _running(eid: str, started: float, history: list[int]) -> ScenarioState:
    state = ScenarioState(1, history=History(durations=history))
    state.running[eid] = Running(eid, started, "auto", first_seen=started)
    return state


def test_a_run_far_past_its_p95_is_stuck_until_it_ends() -> None:
    ev = evaluator("[thresholds]\nstuck_factor = { value = 3, min_s = 60, min_samples = 5 }\n")
    state = _running("abc", T, [10_000] * 5 + [30_000])  # p95 30 s → stuck after 90 s
    assert ev.tick(T + 80, {1: state}, None) == []
    [alert] = ev.tick(T + 91, {1: state}, None)
    assert (alert.alert_id, alert.execution_id) == ("stuck_factor:1:abc", "abc")
    assert "running for 91 s, past 90 s (3x the p95 of 30 s)" in alert.message
    assert ev.tick(T + 200, {1: state}, None) == []
    done = ev.observe(run(eid="abc", seconds=250), T + 250)
    assert ("resolved", "stuck_factor:1:abc") in kinds(done)


def test_stuck_uses_min_s_and_the_fallback_without_history() -> None:
    ev = evaluator("[thresholds]\nstuck_factor = { min_s = 60, fallback_s = 600 }\n")
    state = _running("abc", T, [])
    assert ev.tick(T + 599, {1: state}, None) == []
    assert kinds(ev.tick(T + 601, {1: state}, None)) == [("raised", "stuck_factor:1:abc")]
    # a run that leaves the running set without a finished event is resolved by tick
    state.running.clear()
    assert kinds(ev.tick(T + 602, {1: state}, None)) == [("resolved", "stuck_factor:1:abc")]


def _scheduled(**fields: object) -> ScenarioState:
    return ScenarioState(1, name="Orders", info=scenario(1, **fields))


def test_a_missed_interval_schedule_is_raised_and_resolved_by_the_next_run() -> None:
    ev = evaluator("[thresholds]\nmissed_schedule_grace_s = 30\n")
    state = _scheduled(scheduling={"type": "indefinitely", "interval": 60})
    ev.learn(1, last_run_at=T)
    assert ev.tick(T, {1: state}, None) == []  # watching begins
    assert ev.tick(T + 80, {1: state}, None) == []  # due at T+60, within the grace
    [alert] = ev.tick(T + 91, {1: state}, None)
    assert alert.alert_id == "missed_schedule_grace_s:1"
    assert alert.message.startswith(
        f"scenario 1 (Orders): no run since a run was due at {rfc3339(T + 60)}"
    )
    assert ev.tick(T + 120, {1: state}, None) == []
    started = ExecutionStarted(
        scenario_id=1, execution_id="x", source="auto", started_at=rfc3339(T + 130)
    )
    assert kinds(ev.observe(started, T + 130)) == [("resolved", "missed_schedule_grace_s:1")]
    assert ev.tick(T + 131, {1: state}, None) == []


def test_a_passed_next_exec_without_a_run_is_missed() -> None:
    ev = evaluator("[thresholds]\nmissed_schedule_grace_s = 30\n")
    state = _scheduled(scheduling={"type": "daily"}, nextExec=rfc3339(T + 10))
    assert ev.tick(T, {1: state}, None) == []
    assert ev.tick(T + 39, {1: state}, None) == []
    assert kinds(ev.tick(T + 41, {1: state}, None)) == [("raised", "missed_schedule_grace_s:1")]
    resolved = ev.observe(run(), T + 50)
    assert ("resolved", "missed_schedule_grace_s:1") in kinds(resolved)
    # the run came after nextExec and a daily schedule has no interval: nothing is due now
    assert ev.tick(T + 500, {1: state}, None) == []


def test_a_next_exec_due_before_watching_began_gets_the_grace_from_then() -> None:
    ev = evaluator("[thresholds]\nmissed_schedule_grace_s = 30\n")
    state = _scheduled(scheduling={"type": "daily"}, nextExec=rfc3339(T - 3600))
    assert ev.tick(T, {1: state}, None) == []
    assert ev.tick(T + 29, {1: state}, None) == []
    assert kinds(ev.tick(T + 31, {1: state}, None)) == [("raised", "missed_schedule_grace_s:1")]


@pytest.mark.parametrize(
    "fields",
    [
        {"isActive": False},
        {"isPaused": True},
        {"scheduling": {"type": "immediately"}},
        {"scheduling": {"type": "on-demand"}},
    ],
)
def test_no_schedule_is_missed_when_none_is_expected(fields: dict[str, object]) -> None:
    ev = evaluator("[thresholds]\nmissed_schedule_grace_s = 30\nscenario_paused = false\n")
    state = _scheduled(**{"scheduling": {"type": "indefinitely", "interval": 60}, **fields})
    assert ev.tick(T, {1: state}, None) == []
    assert ev.tick(T + 10_000, {1: state}, None) == []


def test_a_running_execution_is_not_a_missed_schedule() -> None:
    ev = evaluator("[thresholds]\nmissed_schedule_grace_s = 30\nstuck_factor = false\n")
    state = _scheduled(scheduling={"type": "indefinitely", "interval": 60})
    state.running["r"] = Running("r", T + 1, "auto", first_seen=T + 1)
    assert ev.tick(T, {1: state}, None) == []
    assert ev.tick(T + 1000, {1: state}, None) == []


def _budget(used: int, rate: float = 48.0) -> BudgetSnapshot:
    return BudgetSnapshot(
        limit_per_min=60,
        rate_per_min=rate,
        used_last_minute=used,
        remaining=max(0, int(rate) - used),
        throttled_until=None,
        share=0.8,
    )


def test_request_budget_usage_is_raised_and_resolved() -> None:
    # Measured against the organization's limit (60 here): makestream's own cap is 48.
    ev = evaluator("[thresholds]\nbudget_usage = 0.75\n")
    assert ev.tick(T, {}, _budget(40)) == []
    [alert] = ev.tick(T + 1, {}, _budget(45))
    assert (alert.alert_id, alert.scenario_id, alert.value) == ("budget_usage", None, 0.75)
    assert ev.tick(T + 2, {}, _budget(48)) == []
    assert kinds(ev.tick(T + 3, {}, _budget(10))) == [("resolved", "budget_usage")]


def test_budget_usage_stays_quiet_while_makestream_keeps_to_its_share() -> None:
    ev = evaluator("")
    assert ev.tick(T, {}, _budget(48)) == []


# --- lifecycle ------------------------------------------------------------------------------------


def test_an_active_alert_is_renotified_on_its_interval_with_the_same_id() -> None:
    ev = evaluator("[alerts]\nrenotify_s = 60\n[thresholds]\nconsecutive_failures = 1\n")
    [raised] = ev.observe(run("error"), T)
    assert ev.tick(T + 59, {}, None) == []
    [again] = ev.tick(T + 60, {}, None)
    assert isinstance(again, AlertRaised)
    assert again.alert_id == raised.alert_id
    assert again.model_dump()["renotified"] is True
    assert ev.tick(T + 100, {}, None) == []
    assert len(ev.tick(T + 121, {}, None)) == 1
    [resolved] = ev.observe(run(), T + 130)
    assert isinstance(resolved, AlertResolved)
    assert ev.tick(T + 1000, {}, None) == []


def test_a_disabled_rule_never_fires() -> None:
    ev = evaluator(
        "[thresholds]\nconsecutive_failures = { value = 1, enabled = false }\nerror_rate = false\n"
    )
    assert feed(ev, [run("error")] * 5) == [[]] * 5


def test_events_without_a_scenario_are_ignored() -> None:
    assert evaluator().observe(StreamHeartbeat(), T) == []


@pytest.mark.parametrize(
    ("threshold", "severity", "expected"),
    [
        ("warning", "warning", True),
        ("warning", "critical", True),
        ("critical", "warning", False),
        ("critical", "critical", True),
    ],
)
def test_fails_counts_critical_for_warning(threshold: str, severity: str, expected: bool) -> None:
    alert = AlertRaised(alert_id="a", rule="r", severity=severity, message="m")
    resolved = AlertResolved(alert_id="a", rule="r", severity=severity, message="m")
    assert fails(threshold, alert) is expected  # type: ignore[arg-type]
    assert fails(threshold, resolved) is False  # type: ignore[arg-type]


def test_raised_and_resolved_alternate_for_every_alert_over_a_long_random_run() -> None:
    import random

    rng = random.Random(7)
    ev = evaluator(
        "[thresholds]\nconsecutive_failures = 2\nduration_max_s = 20\n"
        "error_rate = { value = 0.4, window_runs = 5, min_runs = 3 }\n"
        "warning_rate = { value = 0.4, window_runs = 5, min_runs = 3 }\n"
        "duration_p95_factor = { value = 1.5, min_samples = 5 }\n"
        "dlq_growth = 1\nqueue_max = 5\n"
    )
    seen: dict[str, str] = {}
    for i in range(2000):
        now = T + i
        if rng.random() < 0.8:
            status = rng.choice(["success", "success", "warning", "error"])
            seconds = rng.uniform(1, 10) if rng.random() < 0.95 else rng.uniform(10, 60)
            out = ev.observe(run(status, seconds=seconds), now)
        else:
            out = ev.observe(
                ScenarioChanged(
                    scenario_id=1, dlq_count=rng.randint(0, 3), queue_count=rng.randint(0, 8)
                ),
                now,
            )
        for alert in out:
            assert seen.get(alert.alert_id, "alert.resolved") != alert.type, alert
            seen[alert.alert_id] = alert.type
    assert sorted(seen) == [
        "consecutive_failures:1",
        "dlq_growth:1",
        "duration_max_s:1",
        "duration_p95_factor:1",
        "error_rate:1",
        "queue_max:1",
        "warning_rate:1",
    ]


# --- replay (thresholds test) ---------------------------------------------------------------------


def test_replay_shows_what_recent_runs_would_have_raised() -> None:
    ms = int(T * 1000)
    logs = [
        log_entry(1, ts_ms=ms + i * 60_000, status=s, duration=5000)
        for i, s in enumerate([1, 3, 3, 3, 1])
    ]
    thresholds = parse("[thresholds]\nconsecutive_failures = 3\nerror_rate = false\n")
    info = scenario(1, isPaused=True)
    alerts = replay(thresholds, info, list(reversed(logs)), now=T + 600)
    assert [(a.type, a.alert_id, a.ts) for a in alerts] == [
        ("alert.raised", "consecutive_failures:1", rfc3339(T + 180)),
        ("alert.resolved", "consecutive_failures:1", rfc3339(T + 240)),
        ("alert.raised", "scenario_paused:1", rfc3339(T + 600)),
    ]


def test_messages_tell_the_value_from_its_limit() -> None:
    from makestream.engine.alerts import _durations

    assert _durations(8.4, 8) == ["8.4 s", "8.0 s"]  # not "8 s, over the limit of 8 s"
    assert _durations(0.4, 0.3) == ["0.4 s", "0.3 s"]  # not "limit of 0 s"
    assert _durations(45, 30) == ["45 s", "30 s"]
    assert _durations(600, 599) == ["10.00 min", "9.98 min"]
    assert _durations(8, 8) == ["8 s", "8 s"]

"""The detection policy on its own: plain state in, one pick out (engine/policy.py)."""

from __future__ import annotations

import itertools
import math

import pytest

from makestream.engine.policy import (
    LOG_FOLLOWS_MAX,
    LOOKAHEAD,
    SWEEP_MAX_S,
    TRIGGERS_MIN_S,
    TRIGGERS_SHARE,
    Action,
    PolicyState,
    PollTarget,
    ScanTarget,
    SweepGroup,
    decide,
    poll_interval,
    scan_news,
)
from makestream.engine.poller import Schedule
from makestream.make.budget import Priority

T = 1_800_000_000.0


def state_with(n: int, *, scanned_at: float = T, runs: float = 0.0) -> PolicyState:
    state = PolicyState(rate_per_s=0.8)
    for sid in range(1, n + 1):
        state.scans[sid] = ScanTarget(sid, last_scan=scanned_at, scanned_once=True, since=T - 600,
                                      runs=runs)
    return state


def test_decide_changes_nothing() -> None:
    state = state_with(3)
    state.scans[2].signal, state.scans[2].hot_until = "sweep", T + 60
    before = repr(state)
    first = decide(state, T + 5)
    assert repr(state) == before
    assert decide(state, T + 5) == first


def test_a_known_end_goes_before_everything() -> None:
    state = state_with(3)
    state.scans[1].signal, state.scans[1].hot_until = "sweep", T + 60
    detail = Action("detail", 2, "e1", priority=Priority.URGENT)
    state.urgent.append(detail)
    for sid in (2, 3):
        state.scans[sid].in_flight = True  # even with the look-ahead full
    assert decide(state, T + 5).action is detail


def test_without_signals_it_is_round_robin_over_equal_scenarios() -> None:
    schedule = Schedule(rate_per_s=0.8, following=False)
    for sid in range(1, 6):
        schedule.scans[sid] = ScanTarget(sid, last_scan=T - sid, scanned_once=True, since=T - 600)
    order: list[int] = []
    now = T
    for _ in range(10):
        now += 1.5
        action, _ = schedule.next(now)
        assert action is not None and action.kind == "scan"
        order.append(action.scenario_id)
        schedule.scanned(action.scenario_id, now, now, ok=True)
    # the stalest first, then each in turn
    assert order[:5] == [5, 4, 3, 2, 1]
    assert order[5:] == order[:5]


def scan_in_turn(schedule: Schedule, slots: int, *, every_s: float) -> list[int]:
    """The scenarios the schedule reads in `slots` slots `every_s` apart, each read finding
    nothing."""
    picks = []
    now = T
    for _ in range(slots):
        now += every_s
        action, _ = schedule.next(now)
        assert action is not None
        picks.append(action.scenario_id)
        schedule.scanned(action.scenario_id, now, now, ok=True)
    return picks


def test_a_busier_scenario_is_read_more_often() -> None:
    schedule = Schedule(rate_per_s=0.8, following=False)
    schedule.scans[1] = ScanTarget(1, last_scan=T, scanned_once=True, since=T - 600, runs=60)
    schedule.scans[2] = ScanTarget(2, last_scan=T, scanned_once=True, since=T - 600, runs=1)
    picks = scan_in_turn(schedule, 120, every_s=1.0)
    # read when its expected news catches up, or when a round-robin over both would have
    # read it (every 2 / 0.8 = 2.5 s), whichever comes first
    assert picks.count(1) > 1.5 * picks.count(2) > 0
    seen = [i for i, sid in enumerate(picks) if sid == 2]
    assert max(b - a for a, b in itertools.pairwise(seen)) <= 2.5 + 1


def test_with_many_scenarios_a_busier_one_is_read_far_more_often() -> None:
    schedule = Schedule(rate_per_s=0.8, following=False)
    for sid in range(1, 41):
        schedule.scans[sid] = ScanTarget(sid, last_scan=T, scanned_once=True, since=T - 600,
                                         runs=60 if sid == 1 else 1)
    picks = scan_in_turn(schedule, 400, every_s=1.25)
    # the busy one by its expected news; each quiet one about once a round-robin (50 s)
    assert picks.count(1) > 5 * max(picks.count(s) for s in range(2, 41))
    assert min(picks.count(s) for s in range(2, 41)) >= 400 * 1.25 / 50 - 3


def test_a_signal_raises_a_scan_above_the_base_rate() -> None:
    state = state_with(20)
    state.scans[7].signal, state.scans[7].hot_until = "sweep", T + 60
    decision = decide(state, T + 10)
    assert decision.action is not None and decision.action.scenario_id == 7
    assert decision.action.signal == "sweep" and decision.action.priority == Priority.HIGH


def test_a_due_scheduled_run_is_read_at_its_expected_end_not_before() -> None:
    state = state_with(20)
    state.scans[4].due_at = T + 30
    early = decide(state, T + 20)
    assert early.action is not None and early.action.scenario_id != 4
    due = decide(state, T + 30)
    assert due.action is not None and due.action.scenario_id == 4 and due.action.signal == "due"


def test_a_due_scan_that_finds_nothing_looks_again_soon_then_gives_up() -> None:
    schedule = Schedule(rate_per_s=0.8, following=False)
    schedule.scans[1] = ScanTarget(1, last_scan=T, scanned_once=True, since=T - 600, due_at=T + 5)
    now = T + 5
    retries = []
    while schedule.scans[1].due_at is not None:
        schedule.scanned(1, now, now, ok=True, found=0, signal="due")
        if schedule.scans[1].due_at is not None:
            retries.append(schedule.scans[1].due_at - now)
            now = schedule.scans[1].due_at
    # a second at first, then a third of the wait so far; given up after a minute
    assert retries[0] == 1.0 and retries == sorted(retries) and retries[-1] > 5
    assert now - (T + 5) <= 60 + retries[-1]


def test_the_schedule_rolls_on_with_the_interval() -> None:
    schedule = Schedule(rate_per_s=0.8, following=False)
    schedule.scans[1] = ScanTarget(1, last_scan=T, scanned_once=True, since=T - 600,
                                   next_exec=T + 10, interval=60, expected_s=4)
    schedule.roll(T + 11)
    assert schedule.scans[1].due_at == T + 14.5 and schedule.scans[1].next_exec == T + 70
    schedule.scanned(1, T + 15, T + 15, ok=True, found=1, signal="due")
    assert schedule.scans[1].due_at is None
    schedule.roll(T + 71)
    assert schedule.scans[1].due_at == T + 74.5


def test_sweeps_that_earn_nothing_shrink() -> None:
    schedule = Schedule(rate_per_s=0.8)
    for sid in range(1, 21):
        schedule.scans[sid] = ScanTarget(sid, last_scan=T, scanned_once=True, since=T - 600,
                                         runs=200)  # every scenario busy
    schedule.sweeps[0] = SweepGroup(0, 1, last=T)
    sweeps: list[float] = []
    now = T
    for _ in range(240):  # four minutes at 60 requests a minute
        now += 1.0
        action, _ = schedule.next(now)
        assert action is not None
        if action.kind == "sweep":
            sweeps.append(now)
            schedule.swept(0)
            for sid in range(1, 21):
                schedule.heat(sid, now)  # every counter moved: no information
        elif action.kind == "scan":
            schedule.scanned(action.scenario_id, now, now, ok=True, found=1, signal=action.signal)
    late = [t for t in sweeps if t > T + 120]
    # at their full share, sweeps would go every 4.2 s: 28 in the last two minutes
    assert len(late) <= 10, sweeps
    assert all(b - a <= SWEEP_MAX_S + 1 for a, b in itertools.pairwise(sweeps))


def test_sweeps_that_point_at_the_runs_keep_their_share() -> None:
    schedule = Schedule(rate_per_s=0.8)
    for sid in range(1, 21):
        schedule.scans[sid] = ScanTarget(sid, last_scan=T, scanned_once=True, since=T - 600)
    schedule.sweeps[0] = SweepGroup(0, 1, last=T)
    sweeps = 0
    now = T
    for i in range(240):
        now += 1.25
        action, _ = schedule.next(now)
        assert action is not None
        if action.kind == "sweep":
            sweeps += 1
            schedule.swept(0)
            schedule.heat(1 + i % 20, now)  # one scenario ran since the last sweep
        elif action.kind == "scan":
            found = 1 if action.signal == "sweep" else 0
            schedule.scanned(action.scenario_id, now, now, ok=True, found=found,
                             signal=action.signal)
    assert sweeps >= 40  # far more than one a minute (five minutes here)
    assert sweeps <= 0.3 * 240 + 1  # within their share


def test_look_ahead_waits_while_enough_of_its_own_reads_are_queued() -> None:
    state = state_with(5)
    assert decide(state, T + 5).action is not None
    for sid in range(1, LOOKAHEAD + 2):
        state.scans[sid].in_flight = True
    decision = decide(state, T + 5)
    assert decision.action is None and 0 < decision.wait <= 0.1


def test_reads_that_find_no_run_wait_for_the_first_pass() -> None:
    schedule = Schedule(rate_per_s=0.8, following=False)
    for sid in range(1, 4):
        schedule.scans[sid] = ScanTarget(sid, fresh=True, since=T)
    schedule.later.append(Action("organization", priority=Priority.LOW))
    schedule.later_since = T
    kinds = []
    now = T
    for _ in range(4):
        action, _ = schedule.next(now)
        assert action is not None
        kinds.append(action.kind)
        if action.kind == "scan":
            schedule.scanned(action.scenario_id, now, now, ok=True)
        now += 0.1
    assert kinds == ["scan", "scan", "scan", "organization"]


def test_unreadable_queue_depth_is_no_longer_asked() -> None:
    schedule = Schedule(rate_per_s=0.8)
    schedule.scans[1] = ScanTarget(1, last_scan=T, scanned_once=True, since=T - 600, hooked=True)
    action, _ = schedule.next(T + 1)
    assert action is not None and action.kind == "triggers"
    schedule.queue_read(readable=False)
    for step in range(1, 100):
        action, _ = schedule.next(T + 40 * step)
        assert action is None or action.kind != "triggers"
        if action is not None and action.kind == "scan":
            schedule.scanned(1, T + 40 * step, T + 40 * step, ok=True)


def test_signal_worth_decays_toward_what_it_earns() -> None:
    state = PolicyState()
    sweep = state.signals["sweep"]
    assert math.isclose(sweep.worth(T), 1.0, rel_tol=1e-6)
    for i in range(30):
        sweep.paid_for(T + i)
        sweep.outcome(T + i, found=True, base=1.0)  # found what a blind read would have found
    assert sweep.worth(T + 30) < 0.1
    for i in range(30, 60):
        sweep.paid_for(T + i)
        sweep.outcome(T + i, found=True, base=0.1)  # runs it alone pointed at
    # More than the 0.46 it would be if nothing were forgotten: the older requests weigh less.
    assert sweep.worth(T + 60) > 0.48
    assert math.isclose(sweep.precision, 1.0, abs_tol=0.01)


def test_a_no_follow_watch_reads_each_scenarios_logs_once() -> None:
    # Runs that keep ending must not keep a --no-follow watch from being caught up: once every
    # scenario was read, no scan is picked however busy the scenarios are.
    schedule = Schedule(rate_per_s=0.8, following=False)
    schedule.rescans = False
    schedule.scans[1] = ScanTarget(1, last_scan=T - 60, scanned_once=True, since=T - 600, runs=60)
    schedule.scans[2] = ScanTarget(2, since=T - 600)
    action, _ = schedule.next(T)
    assert action is not None and (action.kind, action.scenario_id) == ("scan", 2)
    schedule.scanned(2, T, T, ok=True)
    action, _ = schedule.next(T + 30)
    assert action is None


def test_the_budget_is_saturated_when_runs_wait_in_half_the_scenarios() -> None:
    state = state_with(20)
    now = T + 5
    for sid in range(1, 10):
        state.scans[sid].due_at = now - 1
    assert not state.saturated(now)  # 9 of 20
    state.scans[10].signal, state.scans[10].owed_ops = "sweep", 3
    state.scans[10].hot_until = now + 60
    assert state.saturated(now)  # 10 of 20
    state.scans[10].hot_until = now - 1  # a counter's pointer does not go stale ...
    assert state.saturated(now)
    state.scans[10].owed_ops = 0  # ... until its runs are found
    assert not state.saturated(now)
    few = state_with(4)
    for target in few.scans.values():
        target.due_at = now - 1
    assert not few.saturated(now)  # at least SATURATED_MIN


def test_a_counters_pointer_waits_however_long_the_scans_queue() -> None:
    # A queue signal goes stale; a counter grown past the runs found proves a run, and stays
    # worth a sure run (more, the longer it waits) until a scan finds it.
    state = state_with(3, scanned_at=T)
    state.scans[1].signal, state.scans[1].hot_until, state.scans[1].pointed_at = "sweep", T + 60, T
    state.scans[1].owed_ops = 2
    state.scans[2].signal, state.scans[2].hot_until, state.scans[2].pointed_at = "queue", T + 60, T
    late = T + 300
    assert scan_news(state, state.scans[1], late) >= 1.0 + 0.1 * 300
    assert scan_news(state, state.scans[2], late) < 0.5
    assert decide(state, late).action == Action("scan", 1, priority=Priority.HIGH, signal="sweep")


def test_the_budget_is_saturated_when_runs_end_faster_than_it_can_follow() -> None:
    # 0.8 requests a second: 48 a minute; saturated from 36 runs found in the last minute by
    # scans taking at least 24 of those requests.
    schedule = Schedule(rate_per_s=0.8)
    for sid in range(1, 21):
        schedule.adopt(sid, T, fresh=False, hooked=True)
    now = T
    for i in range(35):
        now = T + i
        schedule.scanned(1 + i % 20, now, now, ok=True, found=1)
    assert not schedule.saturated(now)  # 35 runs in 35 s
    schedule.scanned(2, now, now, ok=True, found=1)
    assert schedule.saturated(now)  # the 36th
    assert not schedule.saturated(now + 30)  # the first ones are more than a minute old
    assert not schedule.saturated(now + 61)
    assert len(schedule.found) <= 36  # only the last minute is kept


def test_many_runs_from_few_reads_do_not_saturate_the_budget() -> None:
    # A busy scenario read every 30 s (--interval 30) lists 20 runs a read: 40 runs a minute
    # from 2 requests, with the budget nearly idle. Failed runs keep their detail read.
    schedule = Schedule(rate_per_s=0.8)
    schedule.adopt(1, T, fresh=False, hooked=True)
    schedule.scanned(1, T, T, ok=True, found=20)
    schedule.scanned(1, T + 30, T + 30, ok=True, found=20)
    assert not schedule.saturated(T + 31)


def test_the_first_queue_reads_go_at_their_share_of_the_budget() -> None:
    # 50 webhook scenarios: their first queue-depth reads one at a time, as the later ones go
    # (TRIGGERS_SHARE of 0.8 requests a second: one every 25 s), not all in the first minute,
    # which the first pass needs.
    schedule = Schedule(rate_per_s=0.8)
    for sid in range(1, 51):
        schedule.adopt(sid, T, fresh=False, hooked=True)
    firsts = sorted(t.triggers_after for t in schedule.scans.values())
    assert firsts[0] == pytest.approx(T + TRIGGERS_MIN_S)
    gap = 1 / (0.8 * TRIGGERS_SHARE)
    assert [b - a for a, b in itertools.pairwise(firsts)] == pytest.approx([gap] * 49)
    assert sum(1 for t in firsts if t < T + 120) == 4


def test_a_sweep_that_vouched_for_a_scenario_where_a_run_had_ended_loses_trust() -> None:
    schedule = Schedule(rate_per_s=0.8)
    schedule.sweeps[0] = SweepGroup(0, 1, last=T)
    schedule.scans[1] = ScanTarget(1, last_scan=T, scanned_once=True, since=T - 600,
                                   adopted_at=T - 600)
    schedule.recall = 0.8
    schedule.cleared(1, T + 30)  # "nothing new" ...
    schedule.found_ops(1, 5, T + 10)  # ... though this run had ended 20 s before
    schedule.scanned(1, T + 40, T + 40, ok=True, found=1)
    assert schedule.recall < 0.4
    # A run that ended just before the sweep (its log not shown yet) costs no trust.
    schedule.recall = 0.8
    schedule.cleared(1, T + 60)
    schedule.found_ops(1, 5, T + 58)
    schedule.scanned(1, T + 70, T + 70, ok=True, found=1)
    assert schedule.recall > 0.6


def swept_runs(ended_ago: float, sweeps: int) -> tuple[Schedule, float]:
    """A scenario whose every run a sweep points at `ended_ago` s after it ended, found by the
    scan the pointer prompts, one run every 10 s: the schedule, and the moment after."""
    schedule = Schedule(rate_per_s=0.8)
    schedule.sweeps[0] = SweepGroup(0, 1, last=T)
    schedule.scans[1] = ScanTarget(1, last_scan=T, scanned_once=True, since=T - 600,
                                   adopted_at=T - 600)
    now = T
    for _ in range(sweeps):
        now += 10
        schedule.heat(1, now)
        schedule.found_ops(1, 5, now - ended_ago)
        schedule.scanned(1, now + 1, now + 1, ok=True, found=1, signal="sweep")
    return schedule, now


def test_a_sweep_pointing_long_after_the_run_ended_earns_little() -> None:
    def worth_after(ended_ago: float) -> float:
        schedule, now = swept_runs(ended_ago, 10)
        return schedule.signals["sweep"].worth(now)

    assert worth_after(39) < 0.5 * worth_after(1)


def test_sweeps_pointing_long_after_the_runs_ended_earn_little_trust() -> None:
    # Counters updated 30 s late point at every run, but no sooner than blind reads would find
    # them: their "nothing new" must not hold those reads back.
    assert swept_runs(3, 20)[0].recall > 0.8
    assert swept_runs(30, 20)[0].recall < 0.4


def test_a_scan_a_sweep_prompted_that_finds_nothing_costs_the_sweeps_a_request() -> None:
    schedule = Schedule(rate_per_s=0.8)
    schedule.sweeps[0] = SweepGroup(0, 1, last=T)
    schedule.adopt(1, T - 600, fresh=False, hooked=False)
    schedule.scans[1].scanned_once = True
    schedule.counter_moved(1, 4, T)  # grew past the runs found: a pointer
    schedule.heat(1, T)
    before = schedule.signals["sweep"].paid
    schedule.scanned(1, T + 1, T + 1, ok=True, found=0, signal="sweep")
    assert schedule.signals["sweep"].paid == pytest.approx(before + 1, abs=0.01)
    schedule.scanned(1, T + 3, T + 3, ok=True, found=1, signal="sweep")
    # A find costs the sweeps nothing more.
    assert schedule.signals["sweep"].paid == pytest.approx(before + 1, abs=0.05)


def test_counters_that_lag_the_runs_found_cost_the_sweeps() -> None:
    schedule = Schedule(rate_per_s=0.8)
    schedule.sweeps[0] = SweepGroup(0, 1, last=T)
    schedule.adopt(1, T, fresh=False, hooked=False)
    schedule.found_ops(1, 3, T + 10)  # a run found; the counter does not show it yet
    paid = schedule.signals["sweep"].paid
    schedule.counter_moved(1, 0, T + 12)  # 2 s after its end: a counter may lag that much
    assert schedule.signals["sweep"].paid == paid
    schedule.counter_moved(1, 0, T + 20)  # 10 s after: the counter lags the runs
    assert schedule.signals["sweep"].paid == pytest.approx(paid + 1, abs=0.01)
    schedule.cleared(1, T + 20)  # and its "nothing moved" vouches for nothing
    assert schedule.scans[1].cleared_at == -math.inf
    schedule.counter_moved(1, 3, T + 25)  # caught up: nothing more to charge
    schedule.counter_moved(1, 0, T + 40)
    assert schedule.signals["sweep"].paid == pytest.approx(paid + 1, abs=0.01)


def test_a_run_whose_due_scan_answered_is_not_looked_for_again() -> None:
    schedule = Schedule(rate_per_s=0.8)
    schedule.adopt(1, T - 600, fresh=False, hooked=False)
    schedule.scan_at(1, T + 10, began=T)
    schedule.scanned(1, T + 10, T + 10, ok=True, found=1, signal="due")  # found at its moment
    assert schedule.scans[1].due_at is None
    # A sweep sees nextExec moved past T only now, and asks for a look at that run.
    schedule.scan_at(1, T + 30, began=T)
    assert schedule.scans[1].due_at is None
    schedule.scan_at(1, T + 70, began=T + 60)  # the next run: looked for
    assert schedule.scans[1].due_at == pytest.approx(T + 70 + schedule.due_lag)
    # A sweep that saw nextExec move past T only now does not take the next run's place.
    schedule.scan_at(1, T + 65, began=T)
    assert schedule.scans[1].due_at == pytest.approx(T + 70 + schedule.due_lag)
    assert schedule.scans[1].began == T + 60


def test_the_round_robin_bound_does_not_wait_for_first_reads_of_scheduled_scenarios() -> None:
    # Scenario 2 runs on a known schedule and was never read (its due scan will read it);
    # scenario 1, read long ago, is overdue for a round-robin and is worth a sure run.
    state = state_with(2, scanned_at=T)
    state.scans[2].scanned_once = False
    state.scans[2].interval, state.scans[2].next_exec = 3600.0, T + 3000
    now = T + 60  # a round-robin over 2 scenarios at 0.8 a second takes 2.5 s
    assert decide(state, now).action == Action("scan", 1, priority=Priority.HIGH)
    assert decide(state, now).news >= 1.0


def test_before_its_sure_moment_a_scheduled_run_is_worth_the_chance_it_is_over() -> None:
    target = ScanTarget(2, last_scan=T - 60, scanned_once=True, since=T - 600, interval=60.0,
                        next_exec=T + 60, began=T, due_at=T + 12,
                        lengths=(2.0, 3.0, 5.0, 8.0, 10.0))  # runs took 2-10 s lately
    assert target.visible_chance(T + 0.5) == 0.0  # not even its log lag yet
    early, middle = target.visible_chance(T + 3.0), target.visible_chance(T + 6.0)
    assert 0.0 < early < middle < 0.9
    assert middle == pytest.approx(0.5)  # the median run (5 s) plus 1 s for its log
    target.last_scan = T + 6.0  # looked then, and it was not over: what is left of the chance
    assert target.visible_chance(T + 6.0) == 0.0
    assert 0.0 < target.visible_chance(T + 9.0) < 0.9
    assert target.visible_chance(T + 12.0) == 0.0  # the due moment: the sure signal's turn
    state = state_with(20, scanned_at=T)
    state.scans[2] = target
    target.last_scan = T  # read when the others were: only the chance sets it apart
    # Reads of quiet scenarios (their base rates: next to nothing) or of the run likely over.
    decision = decide(state, T + 8.0)
    assert decision.action == Action("scan", 2, priority=Priority.HIGH)
    assert decision.news == pytest.approx(target.visible_chance(T + 8.0), abs=0.01)
    target.due_misses = 1  # missed at its due moment: its retries' timetable, not the chance
    assert target.visible_chance(T + 8.0) == 0.0


def test_growth_from_runs_that_ended_before_the_first_reading_is_explained_once_each() -> None:
    # Counters updated late: runs that ended before the watch took the scenario reach its
    # counter after the first reading. An empty pointed scan counts the latest of them against
    # the growth, only as far as needed, so that the next phantom growth is explained too
    # rather than pointing again (and a run older than EARLY_S explains nothing).
    schedule = Schedule(rate_per_s=0.8)
    schedule.sweeps[0] = SweepGroup(0, 1, last=T)
    schedule.adopt(1, T, fresh=False, hooked=False)
    schedule.scans[1].scanned_once = True
    schedule.listed(1, [("a", 2, T - 10), ("b", 2, T - 25), ("c", 2, T - 40), ("old", 2, T - 300)])
    assert schedule.counter_moved(1, 2, T + 8)  # a pointer
    schedule.heat(1, T + 8)
    assert schedule.explain(1)  # the scan found no new run: "a" explains it
    assert schedule.scans[1].owed_ops == 0
    schedule.scanned(1, T + 9, T + 9, ok=True, found=0, signal="sweep")
    assert schedule.scans[1].signal is None  # answered: no retries
    # "b" and "c" reach the counter. "a" ended 10 s before the first reading and did not show
    # in it: the counters lag, so this growth is explained at the sweep, with no scan.
    assert schedule.counters_lag
    assert not schedule.counter_moved(1, 4, T + 15)
    assert schedule.scans[1].owed_ops == 0
    assert set(schedule.scans[1].explained) == {"a", "b", "c"}
    assert schedule.counter_moved(1, 2, T + 60)  # nothing left to explain it: a run
    assert not schedule.explain(1)
    assert schedule.scans[1].owed_ops == 2


def test_once_counters_are_seen_to_lag_runs_from_before_adoption_explain_growth_unscanned() -> None:
    schedule = Schedule(rate_per_s=0.8)
    schedule.sweeps[0] = SweepGroup(0, 1, last=T)
    for sid in (1, 2, 3):
        schedule.adopt(sid, T, fresh=False, hooked=False)
        schedule.scans[sid].scanned_once = True
    schedule.listed(1, [("1a", 2, T - 2)])
    schedule.listed(2, [("2a", 2, T - 10)])
    schedule.listed(3, [("3a", 2, T - 10), ("3b", 3, T - 20)])
    # Counters kept up to date still reach a run that ended a moment before the first reading
    # only after it (its log lagged): explaining that growth says nothing of the counters.
    assert schedule.counter_moved(1, 2, T + 8)
    assert schedule.explain(1)
    assert not schedule.counters_lag
    # Growth is a pointer until the counters are seen to lag.
    assert schedule.counter_moved(2, 2, T + 8)
    assert schedule.explain(2)  # its scan found no new run: "2a", 10 s before, was missing
    assert schedule.counters_lag
    # From then on the runs from before adoption explain growth with no scan, latest first;
    # only growth beyond them points.
    assert not schedule.counter_moved(3, 2, T + 15)
    assert schedule.scans[3].explained == {"3a"}
    assert schedule.counter_moved(3, 5, T + 25)
    assert schedule.scans[3].explained == {"3a", "3b"}
    assert schedule.scans[3].owed_ops == 2
    # A run that ended more than EARLY_S before the growth explains none of it at a sweep: a
    # counter lagging that much would have shown it in the first reading.
    schedule.listed(2, [("2b", 2, T - 40)])
    assert schedule.counter_moved(2, 2, T + 30)
    assert "2b" not in schedule.scans[2].explained
    # A run found that a later counter lacks is no such evidence: its end is known only as
    # "by timestamp + duration" (a timestamp may mark the end), so it may have ended before the
    # first reading and be in it.
    other = Schedule(rate_per_s=0.8)
    other.sweeps[0] = SweepGroup(0, 1, last=T)
    other.adopt(1, T, fresh=False, hooked=False)
    other.found_ops(1, 3, T + 10)
    other.counter_moved(1, 0, T + 20)
    assert not other.counters_lag


def test_a_forgiven_pointer_keeps_what_runs_explained() -> None:
    # Growth a run that ended before adoption explained in part is not reset to zero when the
    # rest is forgiven: the explained part is growth still to come, which must not point again.
    schedule = Schedule(rate_per_s=0.8)
    schedule.sweeps[0] = SweepGroup(0, 1, last=T)
    schedule.adopt(1, T, fresh=False, hooked=False)
    schedule.scans[1].scanned_once = True
    schedule.listed(1, [("a", 5, T - 10)])
    assert schedule.counter_moved(1, 2, T + 8)
    schedule.heat(1, T + 8)
    assert schedule.explain(1)
    schedule.scanned(1, T + 9, T + 9, ok=True, found=0, signal="sweep")
    assert schedule.scans[1].owed_ops == -3
    assert not schedule.counter_moved(1, 3, T + 30)  # the rest of "a": no pointer


def test_a_run_seen_in_flight_in_the_logs_is_followed_by_reading_the_logs_again() -> None:
    state = state_with(20)  # (a round over them takes 25 s: no read is overdue at T + 5)
    state.polls["seen"] = PollTarget(1, "seen", T - 30, expected_s=10.0, polls=1,
                                     last_polled=T - 20, by_logs=True)
    state.polls["started"] = PollTarget(2, "started", T - 30, expected_s=10.0, polls=1,
                                        last_polled=T - 20)
    now = T + 5  # (both scenarios were read at T: past --interval's floor now)
    picked = decide(state, now).action
    assert picked is not None and (picked.kind, picked.scenario_id, picked.execution_id,
                                   picked.signal) in {("scan", 1, "seen", "poll"),
                                                      ("poll", 2, "started", None)}
    # One at a time: the other goes next; a scan of the scenario already in flight sees it.
    state.scans[1].in_flight = True
    picked = decide(state, now).action
    assert picked is not None and (picked.kind, picked.execution_id) == ("poll", "started")
    del state.polls["started"]
    picked = decide(state, now).action
    assert picked is None or (picked.kind != "poll" and picked.signal != "poll")
    # Alone, with its scenario free to read: followed by a scan of its logs, not by its status.
    state.scans[1].in_flight = False
    picked = decide(state, now).action
    assert picked == Action("scan", 1, "seen", priority=Priority.HIGH, signal="poll")


def test_a_run_followed_in_the_logs_keeps_to_the_scan_limits_and_ends_with_its_status() -> None:
    state = state_with(20)  # (a round over them takes 25 s: no read is overdue at T + 5)
    seen = PollTarget(1, "seen", T - 30, expected_s=10.0, polls=1, last_polled=T - 20,
                      by_logs=True)
    state.polls["seen"] = seen
    now = T + 5  # read at T: past --interval's floor, so only the limits below hold it back
    state.scans[1].not_before = T + 10  # its scenario's last read failed: no scan before then
    decision = decide(state, now)
    assert decision.action is None or decision.action.signal != "poll"
    state.scans[1].not_before = float("-inf")
    state.rescans = False  # --no-follow reads each scenario once
    decision = decide(state, now)
    assert decision.action is None or decision.action.signal != "poll"
    state.rescans = True
    assert decide(state, now).action == Action("scan", 1, "seen", priority=Priority.HIGH,
                                               signal="poll")  # (free of both: followed)
    # An entry that never turns terminal in the listing is settled by its status at last.
    seen.polls = LOG_FOLLOWS_MAX + 1
    picked = decide(state, now).action
    assert picked is not None and (picked.kind, picked.execution_id) == ("poll", "seen")


def test_a_run_that_stays_in_flight_is_polled_ever_more_rarely_and_never_overflows() -> None:
    state = state_with(20)
    for expected in (None, 10.0):
        run = PollTarget(1, "stuck", T, expected_s=expected, polls=10_000, by_logs=True)
        gaps = [poll_interval(state, run, T + age) for age in (30, 300, 600, 6000)]
        assert gaps[0] <= 5.0 and gaps == sorted(gaps) and gaps[-1] == 60.0


def test_every_read_of_the_logs_past_a_runs_expected_end_counts_as_a_look() -> None:
    schedule = Schedule(rate_per_s=0.8, following=True)
    schedule.watch_execution(1, "long", now=T, history=_History(), started=T, by_logs=True)
    run = schedule.polls["long"]
    assert run.expected_s == 10.0 and run.polls == 1
    schedule.logs_read(1, T + 5)  # before its expected end: the timetable moves, no look counts
    assert (run.polls, run.last_polled) == (1, T + 5)
    schedule.logs_read(1, T + 12, followed="long")  # its own poll-scan, counted when sent
    assert run.polls == 1
    for i in range(LOG_FOLLOWS_MAX):
        schedule.logs_read(1, T + 20 + i)  # read for other reasons: each is a look at it
    assert run.polls == LOG_FOLLOWS_MAX + 1
    # Now followed by its status: a listing that still shows it in flight does not put the
    # next status poll off.
    schedule.logs_read(1, T + 40)
    assert (run.polls, run.last_polled) == (LOG_FOLLOWS_MAX + 1, T + 20 + LOG_FOLLOWS_MAX - 1)
    picked = decide(schedule, T + 60).action
    assert picked is not None and (picked.kind, picked.execution_id) == ("poll", "long")


class _History:
    """What `watch_execution` reads of a scenario's history: runs of about 10 s."""

    def percentile(self, q: float) -> float:
        return 10_000.0 if q == 50 else 6_000.0


def test_slots_that_list_no_run_stop_their_looks_and_teach_no_lag() -> None:
    """A polling trigger that found nothing new makes a check run, which `/logs` does not list:
    its slot must not be looked for until the next one, nor push every scenario's due scans
    later by `due_lag`; its due scans are worth as much as its slots list runs."""
    schedule = Schedule(rate_per_s=0.8, following=False)
    poller = schedule.scans[1] = ScanTarget(1, last_scan=T, scanned_once=True, since=T - 600,
                                            next_exec=T + 10, interval=60, expected_s=4)
    schedule.roll(T + 11)
    schedule.scanned(1, T + 15, T + 15, ok=True, found=0, signal="due")  # first look: a miss
    assert schedule.due_lag == 0.5  # (logs may show later: learned, as before)
    assert poller.due_at is not None and poller.due_misses == 1
    schedule.roll(T + 71)  # the next slot came, the last one never listed its run
    assert (poller.slots_kept, poller.slots_empty, poller.began) == (0, 1, T + 70)
    assert poller.due_at == pytest.approx(T + 74.5 + schedule.due_lag)
    assert poller.slot_reliability == 0.5
    # Now that its slots are known to list nothing at times, a miss teaches nothing ...
    schedule.scanned(1, T + 75, T + 75, ok=True, found=0, signal="due")
    assert schedule.due_lag == 0.5
    # ... until a look again finds the run: logs did show later.
    poller.found_ended = T + 76
    schedule.scanned(1, poller.due_at or 0.0, T + 77, ok=True, found=1, signal="due")
    assert schedule.due_lag == 1.0 and poller.due_at is None and poller.slots_kept == 1
    # A due scan is worth what its slots list: less than one whose slots always do.
    steady = schedule.scans[2] = ScanTarget(2, last_scan=T, scanned_once=True, since=T - 600)
    for target in (poller, steady):
        target.due_at, target.due_misses = T + 130, 0
    poller.slots_empty = 4
    assert scan_news(schedule, poller, T + 131) < scan_news(schedule, steady, T + 131) / 2


def test_the_first_read_tells_how_many_slots_listed_a_run() -> None:
    schedule = Schedule(rate_per_s=0.8, following=False)
    schedule.scans[1] = ScanTarget(1, interval=60)
    schedule.scans[2] = ScanTarget(2)  # no schedule: nothing to tell
    schedule.slots_listed(1, 1, 300)
    schedule.slots_listed(2, 1, 300)
    assert (schedule.scans[1].slots_kept, schedule.scans[1].slots_empty) == (1, 4)
    assert (schedule.scans[2].slots_kept, schedule.scans[2].slots_empty) == (0, 0)


def test_a_slot_whose_long_run_may_still_be_going_keeps_its_looks_at_the_next_slot() -> None:
    schedule = Schedule(rate_per_s=0.8, following=False)
    long = schedule.scans[1] = ScanTarget(1, last_scan=T, scanned_once=True, since=T - 600,
                                          next_exec=T, interval=60, expected_s=40)
    schedule.roll(T + 1)
    schedule.scanned(1, T + 41, T + 41, ok=True, found=0, signal="due")  # not over yet
    retry = long.due_at
    assert retry is not None and long.due_misses == 1
    schedule.roll(T + 61)  # the next slot: the run may well still be going
    assert long.slots_empty == 0 and long.due_misses == 1 and long.due_at == retry

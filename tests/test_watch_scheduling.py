"""Watch scheduling details: webhook queue reads, and when a `--no-follow` watch is done."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from makestream.clock import Clock
from makestream.engine.policy import decide
from makestream.engine.poller import Action
from makestream.engine.watch import Watch, WatchOptions
from makestream.events import ScenarioChanged
from makestream.make.budget import Budget, Priority
from makestream.make.client import MakeClient, Token
from makestream.make.models import Scenario, Trigger

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(10)]
NOW = 1_800_000_000.0


async def test_one_queue_read_at_a_time_and_a_growing_queue_heats_the_scenario() -> None:
    clock = Clock(1.0, anchor=NOW)
    client = MakeClient("http://make.test/api/v2", Token("t"), budget=Budget(60, clock=clock),
                        clock=clock)
    watch = Watch(client, WatchOptions(scenario_ids=[1, 2, 3]))
    queues = {1: 0, 2: 0, 3: 0}

    async def triggers(sid: int, *, priority: Priority = Priority.NORMAL) -> list[Trigger]:
        return [Trigger.model_validate({"id": sid, "queueCount": queues[sid]})]

    client.triggers = triggers  # type: ignore[method-assign]
    with watch.events, watch._send:
        now = clock.now()
        for sid in queues:
            state = watch.tracker.add_scenario(sid, floor_ms=0)
            state.info = Scenario.model_validate({"id": sid, "name": f"s{sid}", "hookId": sid})
            target = watch.schedule.adopt(sid, now, fresh=False, hooked=True)
            target.scanned_once, target.last_scan = True, now + 39  # nothing else worth reading
        handed: list[Action] = []
        for _ in range(5):
            # (the first queue reads wait for the first pass: 30 s and more)
            action, _wait = watch.schedule.next(now + 40)
            if action is not None:
                handed.append(action)
        # The policy hands out one queue read at a time: it holds a worker while it waits.
        assert [a.kind for a in handed].count("triggers") == 1
        first = handed[[a.kind for a in handed].index("triggers")].scenario_id
        await watch._triggers(first)
        assert not watch.schedule.triggers_in_flight
        queues[first] = 5
        await watch._triggers(first)
        events: list[Any] = []
        while True:
            try:
                events.append(watch.events.receive_nowait())
            except anyio.WouldBlock:
                break
        changed = [e for e in events if isinstance(e, ScenarioChanged)]
        assert changed and changed[-1].queue_count == 5
        target = watch.schedule.scans[first]
        assert target.hot_until > clock.now() and target.signal == "queue"


async def test_a_no_follow_watch_is_not_caught_up_while_a_follow_up_is_in_flight() -> None:
    # A catch-up (`follow=False`) must not end while the error detail of a run it found is
    # still being fetched: the run would never be reported.
    clock = Clock(1.0, anchor=NOW)
    client = MakeClient("http://make.test/api/v2", Token("t"), budget=Budget(60, clock=clock),
                        clock=clock)
    watch = Watch(client, WatchOptions(scenario_ids=[1], follow=False))
    fetching = anyio.Event()
    release = anyio.Event()

    async def fetch_detail(action: Any) -> None:
        fetching.set()
        await release.wait()

    watch._fetch_detail = fetch_detail  # type: ignore[method-assign]
    with watch.events, watch._send:
        watch._pending = 1  # as a scan does when it finds a failed run
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch._perform, Action("detail", 1, "e1"))
            await fetching.wait()
            watch._check_caught_up()  # another worker finishing meanwhile
            assert watch._ending is None and not watch._done.is_set()
            release.set()
        assert watch._done.is_set()  # then it is


async def test_a_scheduled_run_begun_just_before_the_watch_is_looked_for_at_start_up() -> None:
    # nextExec already moved past a run that began as the watch started: no later sweep will
    # show it begin, and only the scenario's first read can find it. That first read is its
    # due scan (a run known to wait), not a read that waits behind every due scan.
    clock = Clock(1.0, anchor=NOW)
    client = MakeClient("http://make.test/api/v2", Token("t"), budget=Budget(60, clock=clock),
                        clock=clock)
    watch = Watch(client, WatchOptions(scenario_ids=[1, 2]))
    with watch.events, watch._send:
        now = clock.now()
        for sid, began_ago in ((1, 5.0), (2, 45.0)):
            watch.tracker.add_scenario(sid, floor_ms=0)
            watch.schedule.adopt(sid, now, fresh=True, hooked=False)
            next_exec = datetime.fromtimestamp(now - began_ago + 60, UTC)
            watch._plan_schedule(Scenario.model_validate({
                "id": sid, "name": f"s{sid}", "nextExec": next_exec.isoformat(),
                "scheduling": {"type": "indefinitely", "interval": 60},
            }), now)
        first, second = watch.schedule.scans[1], watch.schedule.scans[2]
        assert first.due_at is not None and first.began == pytest.approx(now - 5, abs=0.01)
        assert second.due_at is None  # began 45 s before: over before the watch, most likely
        action, _ = watch.schedule.next(first.due_at + 1)
        assert action is not None and (action.scenario_id, action.signal) == (1, "due")
        # Its first read lists only runs that ended before that run began: it is still on.
        watch.schedule.first_read(1, now - 30)
        assert first.due_at is not None
        # ... or the run itself, ended (news or history): the due scan is answered, no retry.
        watch.schedule.first_read(1, now - 1)
        assert first.due_at is None and first.due_misses == 0


async def test_a_run_that_overran_its_interval_is_read_for_like_a_scenario_without_one() -> None:
    # nextExec more than an interval ahead: Make skipped slots while a run begun earlier (before
    # the watch) is still going. No due scan times its end, so until a read finds a run that
    # ended since, the scenario is not exempt from the round-robin bound.
    clock = Clock(1.0, anchor=NOW)
    client = MakeClient("http://make.test/api/v2", Token("t"), budget=Budget(60, clock=clock),
                        clock=clock)
    watch = Watch(client, WatchOptions(scenario_ids=[1, 2, 3, 4]))

    def plan(sid: int, next_in: float | None, at: float) -> None:
        watch._plan_schedule(Scenario.model_validate({
            "id": sid, "name": f"s{sid}",
            "nextExec": (datetime.fromtimestamp(at + next_in, UTC).isoformat()
                         if next_in is not None else None),
            "scheduling": {"type": "indefinitely", "interval": 60},
        }), at)

    with watch.events, watch._send:
        now = clock.now()
        # (the one that overran last: equal scores go in order, the first first)
        for sid, next_in in ((1, 40.0), (2, 64.0), (3, 3600.0), (4, 100.0)):
            watch.tracker.add_scenario(sid, floor_ms=0)
            target = watch.schedule.adopt(sid, now, fresh=True, hooked=False)
            target.scanned_once, target.last_scan = True, now
            plan(sid, next_in, now)
        on_time, near, window, overran = (watch.schedule.scans[sid] for sid in (1, 2, 3, 4))
        assert overran.overrun_seen is not None  # it ends by nextExec, at the latest
        assert overran.next_exec == pytest.approx(now + 100, abs=0.01)
        assert not overran.scheduled
        # Within an interval and the slack for clocks that differ (6 s of 60): on schedule; an
        # hour ahead is more than a run can last (a time window, a start date): on schedule.
        assert on_time.scheduled and near.scheduled and window.scheduled
        # Unread for longer than a round over the four scenarios: the bound's sure run.
        later = now + 30
        decision = decide(watch.schedule, later)
        assert decision.action is not None
        assert (decision.action.kind, decision.action.scenario_id) == ("scan", 4)
        assert decision.news >= 1.0
        # A run found that ended before the overrun was seen is history, not that run ...
        watch.schedule.found_ops(4, 3, now - 10)
        assert overran.overrun_seen is not None
        # ... one that ended since is it: the schedule times the next runs again.
        watch.schedule.found_ops(4, 3, now + 20)
        assert overran.overrun_seen is None and overran.scheduled
        # Unfound, it ends by nextExec: when that slot comes, the schedule takes over.
        plan(4, 100.0, now)
        assert overran.overrun_seen is not None
        watch.schedule.roll(now + 101)
        assert overran.overrun_seen is None
        assert overran.began == pytest.approx(now + 100, abs=0.01)
        # A nextExec that moves back within an interval, or goes (paused), ends it too.
        plan(4, 100.0, now + 101)
        assert overran.overrun_seen is not None
        plan(4, 30.0, now + 102)
        assert overran.overrun_seen is None
        plan(4, 100.0, now + 103)
        plan(4, None, now + 104)
        assert overran.overrun_seen is None


async def test_a_due_look_is_answered_only_by_a_run_that_ended_after_the_scheduled_start() -> None:
    # A due look that finds only the run before (ended before this slot: it overran, or ended
    # as the watch began) has not found the scheduled run: it looks again.
    clock = Clock(1.0, anchor=NOW)
    client = MakeClient("http://make.test/api/v2", Token("t"), budget=Budget(60, clock=clock),
                        clock=clock)
    watch = Watch(client, WatchOptions(scenario_ids=[1]))
    with watch.events, watch._send:
        now = clock.now()
        watch.tracker.add_scenario(1, floor_ms=0)
        target = watch.schedule.adopt(1, now, fresh=False, hooked=False)
        target.scanned_once = True
        watch.schedule.scan_at(1, now + 5, began=now)
        action, _ = watch.schedule.next(now + 5)
        assert action is not None and action.signal == "due"
        watch.schedule.found_ops(1, 2, now - 3)  # the run before
        watch.schedule.scanned(1, now + 5, now + 5.5, ok=True, found=1, signal="due")
        assert target.due_at is not None and target.due_misses == 1
        action, _ = watch.schedule.next(target.due_at)
        assert action is not None and action.signal == "due"
        watch.schedule.found_ops(1, 2, now + 8)  # the scheduled run
        watch.schedule.scanned(1, target.due_at, target.due_at + 0.5, ok=True, found=1,
                               signal="due")
        assert target.due_at is None and target.due_misses == 0

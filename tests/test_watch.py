"""The streaming engine against the simulated Make zone, in process.

The zone and the engine share one fast clock, so simulated minutes pass in fractions of a second
and every rate (requests per minute, run lengths) stays as it would be in real time.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

import anyio
import httpx
import pytest
from worlds import busy_world, outcome_world

from makestream.clock import Clock
from makestream.engine.cursor import Cursor
from makestream.engine.watch import Watch, WatchOptions
from makestream.errors import ExitCode
from makestream.events import ExecutionFinished, ScenarioChanged, _Event
from makestream.make.budget import Budget
from makestream.make.client import MakeClient, Token
from makestream.sim import DEMO_TOKEN, Faults, SimZone, demo_world
from makestream.sim.world import WorldSpec

pytestmark = pytest.mark.anyio


def make_client(zone: SimZone, watch_holder: list[Watch], api_limit: int = 60) -> MakeClient:
    return MakeClient(
        "http://sim.test/api/v2",
        Token(DEMO_TOKEN),
        budget=Budget(api_limit, clock=zone.clock),
        clock=zone.clock,
        transport=httpx.ASGITransport(app=zone.app),
        observer=lambda n: watch_holder[0].on_notice(n) if watch_holder else None,
    )


async def collect(
    zone: SimZone,
    options: WatchOptions,
    *,
    until: Callable[[list[_Event]], bool] | None = None,
    max_clock_s: float = 3600,
    api_limit: int = 60,
) -> tuple[list[_Event], Watch]:
    """Run a watch until it ends, `until(events)` holds, or `max_clock_s` passes."""
    holder: list[Watch] = []
    events: list[_Event] = []
    async with make_client(zone, holder, api_limit) as client:
        watch = Watch(client, options)
        holder.append(watch)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch.run)
            with anyio.move_on_after(zone.clock.real(max_clock_s)) as scope:
                async for event in watch.events:
                    events.append(event)
                    if until is not None and until(events):
                        watch.stop("test")
            if scope.cancelled_caught:
                watch.stop("test timeout")
                async for event in watch.events:
                    events.append(event)
            watch.events.close()
    return events, watch


def finished(events: list[_Event]) -> list[ExecutionFinished]:
    return [e for e in events if isinstance(e, ExecutionFinished)]


@pytest.mark.parametrize(
    ("scenario", "status", "code"),
    [
        (201, "success", ExitCode.OK),
        (202, "warning", ExitCode.EXECUTION_WARNING),
        (203, "error", ExitCode.EXECUTION_ERROR),
    ],
)
async def test_run_follows_the_triggered_execution_to_its_end(
    scenario: int, status: str, code: ExitCode
) -> None:
    zone = SimZone(outcome_world(), clock=Clock(50), seed=1)
    events, watch = await collect(
        zone, WatchOptions(scenario_ids=[scenario], run=True, exit_status=True), max_clock_s=300
    )
    types = [e.type for e in events]
    assert types[0] == "stream.opened" and types[-1] == "stream.closed"
    assert types.index("execution.started") < types.index("execution.finished")
    [done] = finished(events)
    truth = {r.execution_id: r for r in zone.truth()}
    record = truth[done.execution_id]
    assert done.status == status == record.status
    assert done.operations == record.operations and done.duration_ms is not None
    assert abs(done.duration_ms / 1000 - (record.ended_at - record.started_at)) < 0.01
    if status != "success":
        assert done.error is not None and done.error.message
    assert watch.outcome.exit_code == code
    assert events[-1].exit_code == code  # type: ignore[attr-defined]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_without_exit_status_outcomes_do_not_set_the_code() -> None:
    zone = SimZone(outcome_world(), clock=Clock(50), seed=1)
    _, watch = await collect(zone, WatchOptions(scenario_ids=[203], run=True), max_clock_s=300)
    assert watch.outcome.exit_code == ExitCode.OK


async def test_timeout_ends_with_exit_5() -> None:
    zone = SimZone(outcome_world(duration=600), clock=Clock(100), seed=1)
    events, watch = await collect(
        zone, WatchOptions(scenario_ids=[201], run=True, timeout_s=30), max_clock_s=300
    )
    assert watch.outcome.exit_code == ExitCode.TIMEOUT
    assert watch.outcome.reason == "timeout"
    assert not finished(events)


async def test_revoked_token_is_fatal_with_exit_6() -> None:
    zone = SimZone(demo_world(), clock=Clock(50), seed=1)
    zone.faults.revoke_after = 30
    events, watch = await collect(zone, WatchOptions(scenario_ids=[101, 102]), max_clock_s=600)
    assert watch.outcome.exit_code == ExitCode.CANNOT_MONITOR
    fatal = [e for e in events if e.type == "stream.error" and e.fatal]  # type: ignore[attr-defined]
    assert len(fatal) == 1 and DEMO_TOKEN not in fatal[0].message  # type: ignore[attr-defined]
    assert events[-1].type == "stream.closed"


async def test_unknown_scenario_is_fatal_with_a_clear_message() -> None:
    zone = SimZone(demo_world(), clock=Clock(50), seed=1)
    events, watch = await collect(zone, WatchOptions(scenario_ids=[999]), max_clock_s=60)
    assert watch.outcome.exit_code == ExitCode.CANNOT_MONITOR
    assert "scenario 999 not found" in events[0].message  # type: ignore[attr-defined]


async def test_count_stops_after_n_finished() -> None:
    zone = SimZone(demo_world(), clock=Clock(100), seed=3)
    ids = [s.id for s in zone.world.scenarios]
    events, watch = await collect(zone, WatchOptions(scenario_ids=ids, count=3), max_clock_s=3600)
    assert len(finished(events)) == 3
    assert watch.outcome.reason == "count"


def _check_exactly_once(
    zone: SimZone, reported: list[ExecutionFinished], start: float, end: float
) -> int:
    """Assert every run that ended in [start+1, end] was reported once, correctly."""
    truth = {r.execution_id: r for r in zone.truth()}
    counts = Counter(e.execution_id for e in reported)
    duplicated = [eid for eid, n in counts.items() if n > 1]
    assert not duplicated, f"{len(duplicated)} executions reported twice"
    expected = {eid for eid, r in truth.items() if start + 1 <= r.ended_at <= end}
    missing = expected - set(counts)
    assert not missing, f"{len(missing)} of {len(expected)} executions never reported"
    for event in reported:
        record = truth[event.execution_id]
        assert event.status == record.status
        assert event.operations == record.operations
        assert event.centicredits == record.centicredits
        assert event.transfer_bytes == record.transfer
    return len(expected)


def _caught_up_after(
    zone: SimZone, start: float, stop_at: float, *, tail_s: float = 60,
    already: Collection[str] = (),
) -> Callable[[list[_Event]], bool]:
    """An `until` for `collect`: past `stop_at`, true once every run that ended in
    [start+1, stop_at-tail_s] was reported (here or in `already`). Lag is allowed (a loaded
    machine slows the fast clock's reader); loss is what the caller's check then finds."""
    missing: set[str] | None = None
    checked = 0

    def done(evs: list[_Event]) -> bool:
        nonlocal missing, checked
        if zone.clock.now() < stop_at:
            return False
        if missing is None:
            missing = {r.execution_id for r in zone.truth()
                       if start + 1 <= r.ended_at <= stop_at - tail_s} - set(already)
        missing -= {e.execution_id for e in finished(evs[checked:])}
        checked = len(evs)
        return not missing

    return done


def _world_clock(world: WorldSpec, speed: float) -> SimZone:
    return SimZone(world, clock=Clock(speed), seed=7, faults=Faults.chaos(0.10))


@pytest.mark.timeout(240)
async def test_two_thousand_executions_with_faults_exactly_once_across_a_restart() -> None:
    zone = _world_clock(busy_world(20, rate_per_minute=10.0, api_limit=240), speed=60)
    ids = [s.id for s in zone.world.scenarios]
    start = zone.clock.now()
    # First part: watch until about 1,000 executions were reported, then "kill" the watch.
    first, _ = await collect(
        zone,
        WatchOptions(scenario_ids=ids),
        until=lambda evs: len(finished(evs)) >= 1000,
        api_limit=240,
    )
    cursor = next(e.cursor for e in reversed(first) if e.type == "execution.finished")
    # Events after that cursor were never "delivered": cut the stream there, as a crash would.
    cut = next(i for i, e in enumerate(first) if e.cursor == cursor)
    delivered = finished(first[: cut + 1])
    await anyio.sleep(zone.clock.real(20))  # the watch is down for 20 simulated seconds
    stop_at = start + 14.5 * 60
    delivered_ids = {e.execution_id for e in delivered}
    # Past the end of the workload, keep going until every run that ended two minutes before it
    # has been reported: the budget tightens after injected 429s, so the stream may lag, but it
    # must not lose anything.
    caught_up = _caught_up_after(zone, start, stop_at, tail_s=120, already=delivered_ids)

    second, _ = await collect(
        zone,
        WatchOptions(scenario_ids=ids, resume=Cursor.decode(cursor)),
        until=caught_up,
        api_limit=240,
        max_clock_s=3 * 3600,
    )
    reported = delivered + finished(second)
    expected = _check_exactly_once(zone, reported, start, stop_at - 120)
    assert expected >= 2000
    assert zone.limited == 0, "the budget let the organization limit answer 429"


async def test_no_follow_reports_what_is_new_since_the_cursor_and_exits() -> None:
    zone = SimZone(demo_world(), clock=Clock(200), seed=5)
    ids = [s.id for s in zone.world.scenarios]
    first, watch = await collect(zone, WatchOptions(scenario_ids=ids, follow=False))
    assert watch.outcome.reason == "caught up"
    assert finished(first), "the last hour of the demo has runs"
    cursor = first[-1].cursor
    await anyio.sleep(zone.clock.real(600))
    second, watch2 = await collect(
        zone, WatchOptions(scenario_ids=ids, follow=False, resume=Cursor.decode(cursor))
    )
    assert watch2.outcome.reason == "caught up"
    again = {e.execution_id for e in finished(first)} & {e.execution_id for e in finished(second)}
    assert not again
    assert finished(second), "ten minutes of demo produce runs"


async def test_sweeps_report_scenario_changes() -> None:
    zone = SimZone(outcome_world(duration=2), clock=Clock(60), seed=2)
    for _ in range(3):  # three failures in a row: Make deactivates the scenario (isinvalid)
        zone.start_execution(203)
        await anyio.sleep(zone.clock.real(3))

    def invalid(evs: list[_Event]) -> bool:
        return any(isinstance(e, ScenarioChanged) and e.is_invalid for e in evs)

    already_events, _ = await collect(zone, WatchOptions(scenario_ids=[201, 203]), until=invalid,
                                    max_clock_s=60)
    assert not invalid(already_events)  # already invalid before the watch: no change to report
    zone = SimZone(outcome_world(duration=2), clock=Clock(60), seed=2)

    async def fail_three_times() -> None:
        await anyio.sleep(zone.clock.real(5))
        for _ in range(3):
            zone.start_execution(203)
            await anyio.sleep(zone.clock.real(3))

    async with anyio.create_task_group() as tg:
        tg.start_soon(fail_three_times)
        events, _ = await collect(zone, WatchOptions(scenario_ids=[201, 203]), until=invalid,
                                  max_clock_s=120)
    [changed] = [e for e in events if isinstance(e, ScenarioChanged)]
    assert changed.scenario_id == 203 and changed.is_invalid and changed.is_active is False
    assert set(changed.changed) >= {"is_invalid", "is_active"}


def _kinds(events: list[Any]) -> Counter[str]:
    return Counter(e.type for e in events)


async def test_render_of_saved_ndjson_reproduces_the_watch_view(tmp_path: Any) -> None:
    """What `watch | tee run.ndjson` showed is what `render run.ndjson` shows later."""
    import io

    from makestream.events import encode
    from makestream.render.live import LiveWriter

    zone = SimZone(demo_world(), clock=Clock(100), seed=4, running_in_logs=True)
    ids = [s.id for s in zone.world.scenarios]
    events, _ = await collect(zone, WatchOptions(scenario_ids=ids, count=4))
    shown = io.StringIO()
    live = LiveWriter(shown, color="never")
    for event in events:
        live.write(event)
    live.close()
    saved = tmp_path / "run.ndjson"
    saved.write_bytes(b"".join(encode(e) for e in events))
    replayed = await anyio.run_process(
        [sys.executable, "-m", "makestream", "render", str(saved), "--format", "pretty",
         "--color", "never"], check=False,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.decode() == shown.getvalue()
    assert "4 finished" in shown.getvalue()


async def test_execution_follows_a_run_that_began_before_the_watch() -> None:
    zone = SimZone(outcome_world(duration=20), clock=Clock(50), seed=1)
    eid = zone.start_execution(202)
    await anyio.sleep(zone.clock.real(5))
    events, watch = await collect(
        zone, WatchOptions(scenario_ids=[202], execution_id=eid, exit_status=True),
        max_clock_s=300,
    )
    [done] = finished(events)
    assert done.execution_id == eid and done.status == "warning"
    assert watch.outcome.exit_code == ExitCode.EXECUTION_WARNING


async def test_a_run_unknown_to_executions_for_a_moment_after_it_started_is_followed() -> None:
    """A run just started can lag its listing; `/executions` answering 404 for the first
    seconds after `POST /run` must not end the watch while the run goes on."""
    clock = Clock(50)
    eid = "9c4874979d974c3ebdef1e8aaa7dc452"
    started: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path, now = request.url.path.removeprefix("/api/v2"), clock.now()
        body = {"id": 5, "name": "s", "teamId": 7, "isActive": True}
        if path in ("/scenarios/5", "/scenarios"):
            return httpx.Response(200, json={"scenario": body, "scenarios": [body]})
        if path == "/scenarios/5/run":
            started.append(now)
            return httpx.Response(200, json={"executionId": eid})
        if path == f"/scenarios/5/executions/{eid}" and now - started[0] >= 3:
            return httpx.Response(200, json={"status": "RUNNING" if now - started[0] < 6
                                             else "SUCCESS"})
        if path == "/scenarios/5/logs":
            return httpx.Response(200, json={"scenarioLogs": []})
        return httpx.Response(404, json={"detail": "Not found.", "code": "SC404"})

    token = Token("3f2b5c1e-8a4d-4f6b-9c2e-7d1a0b9e4c3f")
    client = MakeClient("https://eu1.make.com/api/v2", token, budget=Budget(60, clock=clock),
                        clock=clock, transport=httpx.MockTransport(handler))
    watch = Watch(client, WatchOptions(scenario_ids=[5], run=True, exit_status=True,
                                       api_limit=60))
    events: list[_Event] = []
    async with client, anyio.create_task_group() as tg:
        tg.start_soon(watch.run)
        with anyio.move_on_after(clock.real(120)):
            async for event in watch.events:
                events.append(event)
        watch.events.close()
    [done] = finished(events)
    assert (done.execution_id, done.status) == (eid, "success")
    assert watch.outcome.exit_code == ExitCode.OK


async def test_unknown_execution_is_fatal() -> None:
    zone = SimZone(outcome_world(), clock=Clock(50), seed=1)
    events, watch = await collect(
        zone, WatchOptions(scenario_ids=[201], execution_id="0" * 32), max_clock_s=120
    )
    assert watch.outcome.exit_code == ExitCode.CANNOT_MONITOR
    assert "not found" in (watch.outcome.error or "")
    # Nothing is said about a run that does not exist.
    assert not [e for e in events if e.type.startswith("execution.")]


async def test_execution_that_already_ended_is_reported_from_its_log_alone() -> None:
    zone = SimZone(outcome_world(duration=2), clock=Clock(50), seed=1)
    eid = zone.start_execution(203)
    await anyio.sleep(zone.clock.real(10))
    events, watch = await collect(
        zone, WatchOptions(scenario_ids=[203], execution_id=eid, exit_status=True),
        max_clock_s=300,
    )
    [done] = finished(events)
    assert done.execution_id == eid and done.status == "error"
    assert [e.type for e in events if e.type.startswith("execution.")] == [
        "execution.started", "execution.finished"
    ]
    assert watch.outcome.exit_code == ExitCode.EXECUTION_ERROR


async def test_team_filters_match_names_regardless_of_case() -> None:
    zone = SimZone(outcome_world(), clock=Clock(50), seed=1)
    events, _ = await collect(
        zone,
        WatchOptions(team_id=1, include=["OUTCOME 20[12]"], exclude=["*202"], follow=False),
        max_clock_s=120,
    )
    [opened] = [e for e in events if e.type == "stream.opened"]
    assert opened.targets == [201]  # type: ignore[attr-defined]


async def test_a_team_make_refuses_names_both_possible_causes() -> None:
    zone = SimZone(outcome_world(), clock=Clock(50), seed=1)
    _, watch = await collect(zone, WatchOptions(team_id=99, follow=False), max_clock_s=120)
    assert watch.outcome.exit_code == ExitCode.CANNOT_MONITOR
    error = watch.outcome.error or ""
    assert "team 99" in error and "may not exist" in error and "scenarios:read" in error


@pytest.mark.parametrize("stamp", ["start", "end"])
@pytest.mark.parametrize("running_in_logs", [False, True])
async def test_both_log_variants_are_reported_exactly_once(
    stamp: str, running_in_logs: bool
) -> None:
    """Make's docs leave open whether a log's timestamp is the run's start or end, and whether
    runs in flight are listed; every combination must give the same, complete stream."""
    zone = SimZone(busy_world(6, rate_per_minute=8.0, api_limit=240), clock=Clock(80), seed=3,
                   log_timestamp=stamp, running_in_logs=running_in_logs)  # type: ignore[arg-type]
    events = await _four_busy_minutes_reported_once(zone)
    if running_in_logs:
        assert any(e.type == "execution.started" for e in events)


@pytest.mark.parametrize("log_range", ["ms", "s", "ignored"])
async def test_every_reading_of_the_logs_from_parameter_gives_a_complete_stream(
    log_range: str,
) -> None:
    """Whether `/logs` reads `from` in milliseconds or seconds is unconfirmed (make-api.md §6);
    a server reading milliseconds as seconds answers a `from` with nothing, and one that ignores
    it lists the whole history. Scans of 6 scenarios at 8 runs a minute (more than a page of
    history each) must report every run once under each reading."""
    zone = SimZone(busy_world(6, rate_per_minute=8.0, api_limit=240), clock=Clock(80), seed=5,
                   log_range=log_range)  # type: ignore[arg-type]
    await _four_busy_minutes_reported_once(zone)


async def _four_busy_minutes_reported_once(zone: SimZone) -> list[_Event]:
    """Watch every scenario of `zone` for four minutes; each run that ended in them (but the
    last minute's) is reported exactly once, and there are over a hundred."""
    ids = [s.id for s in zone.world.scenarios]
    start = zone.clock.now()
    events, _ = await collect(zone, WatchOptions(scenario_ids=ids), api_limit=240,
                              until=_caught_up_after(zone, start, start + 4 * 60),
                              max_clock_s=30 * 60)
    expected = _check_exactly_once(zone, finished(events), start, start + 4 * 60 - 60)
    assert expected > 100
    return events


@pytest.mark.parametrize("stamp", ["start", "end"])
async def test_a_run_far_longer_than_its_history_is_not_lost(stamp: str) -> None:
    """Start-stamped log entries of a long run land far below recent ones when it ends."""
    from makestream.sim.flows import blueprint, module
    from makestream.sim.world import OrganizationSpec, Profile, ScenarioSpec, TeamSpec

    def scenario(sid: int, interval: int, duration: float) -> ScenarioSpec:
        return ScenarioSpec(
            id=sid, name=f"S{sid}", team_id=1,
            blueprint=blueprint("b", [module(1, "http:ActionSendData")]),
            scheduling={"type": "indefinitely", "interval": interval},
            profile=Profile(duration_mean=duration, duration_stddev=1),
        )

    world = WorldSpec(
        organization=OrganizationSpec(api_limit=240), teams=[TeamSpec(id=1, name="t")],
        scenarios=[scenario(1, 300, 240.0), scenario(2, 60, 2.0)],
    )
    zone = SimZone(world, clock=Clock(200), seed=1, log_timestamp=stamp)  # type: ignore[arg-type]
    start = zone.clock.now()
    events, _ = await collect(zone, WatchOptions(scenario_ids=[1, 2]), max_clock_s=12 * 60,
                              api_limit=240)
    _check_exactly_once(zone, finished(events), start, zone.clock.now() - 60)
    assert any(e.scenario_id == 1 for e in finished(events))


async def test_started_events_count_the_modules_once_the_blueprint_is_read() -> None:
    zone = SimZone(
        busy_world(1, rate_per_minute=20, api_limit=600), clock=Clock(50), seed=3,
        running_in_logs=True,
    )
    events, _ = await collect(
        zone,
        WatchOptions(scenario_ids=[300], blueprints=True),
        until=lambda evs: sum(e.type == "execution.started" for e in evs) >= 6,
        max_clock_s=900,
        api_limit=600,
    )
    started = [e for e in events if e.type == "execution.started"]
    assert len(started) >= 6
    # The blueprint is read at low priority once; every run seen after it carries the count.
    assert started[-1].modules_total == 3  # type: ignore[attr-defined]


async def test_heartbeats_say_failing_while_every_request_fails_and_clear_after() -> None:
    from makestream.events import StreamHeartbeat

    zone = SimZone(demo_world(), clock=Clock(100), seed=1)
    phases: dict[str, float] = {}

    def until(events: list[_Event]) -> bool:
        now = zone.clock.now()
        beats = [e for e in events if isinstance(e, StreamHeartbeat)]
        if "down" not in phases and any(e.type == "stream.opened" for e in events):
            phases["down"] = now
            zone.faults.rate_503 = 1.0
        elif "up" not in phases and "down" in phases and now - phases["down"] > 60:
            phases["up"] = now
            zone.faults.rate_503 = 0.0
        return "up" in phases and now - phases["up"] > 60 and bool(beats)

    events, _ = await collect(zone, WatchOptions(scenario_ids=[101, 104], heartbeat_s=5),
                              until=until, max_clock_s=600)
    beats = [e for e in events if isinstance(e, StreamHeartbeat)]
    failing = [e for e in beats if e.failing]
    assert failing and "503" in (failing[0].failing or "")
    assert beats[-1].failing is None  # requests succeed again


async def test_without_runs_in_flight_scheduled_runs_are_announced_as_expected() -> None:
    # Make's conservative variant (the demo's default): runs appear in /logs only once they end.
    # A passed nextExec is announced as execution.expected, and the run it announced follows.
    from makestream.events import ExecutionExpected
    from makestream.render.text import parse_ts

    zone = SimZone(demo_world(), clock=Clock(200), seed=3)
    events, _ = await collect(zone, WatchOptions(scenario_ids=[101, 102, 103, 105, 106]),
                              max_clock_s=900)
    assert not [e for e in events if e.type == "execution.started"]
    expected = [e for e in events if isinstance(e, ExecutionExpected)]
    assert len(expected) >= 5 and all(e.basis == "schedule" for e in expected)
    truth = zone.truth()
    for event in expected[:-3]:  # the last few may still be running when the watch stops
        due = parse_ts(event.due_at)
        assert due is not None
        # The zone started a run of that scenario at the announced time...
        assert any(r.scenario_id == event.scenario_id and abs(r.started_at - due) < 1.0
                   for r in truth)
        # ...and the watch reported a run of that scenario after the announcement.
        assert any(isinstance(f, ExecutionFinished) and f.scenario_id == event.scenario_id
                   and f.seq > event.seq for f in events)


async def test_the_demo_is_honest_by_default() -> None:
    # Runs in flight are not listed (the conservative variant) and the clock is the wall clock.
    from makestream.cli.common import Connection, open_client

    async with open_client(Connection(demo=True)) as (_client, zone):
        assert zone is not None
        assert zone.running_in_logs is False
        assert zone.clock.speed == 1.0


async def test_cursors_only_where_the_position_moved_still_resume_exactly_once() -> None:
    # `watch` output: progress, heartbeats and the like carry no cursor; resuming from the
    # latest cursor seen before a crash loses and repeats nothing.
    zone = SimZone(busy_world(6, rate_per_minute=4.0), clock=Clock(60), seed=9,
                   running_in_logs=True)
    ids = [s.id for s in zone.world.scenarios]
    options = WatchOptions(scenario_ids=ids, cursor_every_event=False, heartbeat_s=5)
    start = zone.clock.now()
    first, _ = await collect(zone, options, until=lambda evs: len(finished(evs)) >= 40)
    assert all(e.cursor for e in first if e.type in ("stream.opened", "execution.finished",
                                                        "stream.closed"))
    quiet = [e for e in first if e.type in ("execution.progress", "stream.heartbeat")]
    assert quiet and sum(1 for e in quiet if e.cursor) < len(quiet) / 2
    # A crash right after a cursorless event: resume from the latest cursor before it.
    cut = max(i for i, e in enumerate(first[:-1]) if not e.cursor and i > len(first) // 2)
    cursor = next(e.cursor for e in reversed(first[: cut + 1]) if e.cursor)
    assert cursor is not None
    delivered = {e.execution_id for e in finished(first[: cut + 1])}
    second, _ = await collect(
        zone, WatchOptions(scenario_ids=ids, follow=False, resume=Cursor.decode(cursor),
                           cursor_every_event=False))
    again = [e.execution_id for e in finished(second)]
    assert not set(again) & delivered and len(again) == len(set(again))
    # Every run that ended while the stream ran (and not just now) was reported, once.
    ended_before = {r.execution_id for r in zone.truth() if r.ended_at is not None
                    and start + 1 < r.ended_at < zone.clock.now() - 90}
    assert ended_before and ended_before <= delivered | set(again)

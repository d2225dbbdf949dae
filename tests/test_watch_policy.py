"""The detection policy inside a watch, against the simulated zone: finished runs first, every
known end reported when the watch ends, and a cheap start-up (request counts from the zone)."""

from __future__ import annotations

import math
from typing import Any

import anyio
import httpx
import pytest
from worlds import busy_world

from makestream.clock import Clock
from makestream.engine.watch import Watch, WatchOptions
from makestream.events import ExecutionFinished, _Event
from makestream.make.budget import Budget, Priority
from makestream.make.client import ApiNotice, MakeClient, Token
from makestream.make.models import ExecutionDetail
from makestream.sim import DEMO_TOKEN, SimZone
from makestream.sim.world import TeamSpec

pytestmark = pytest.mark.anyio


async def _run(
    zone: SimZone, options: WatchOptions, *, until: Any = None, max_clock_s: float = 600,
    api_limit: int = 60, patch: Any = None, until_requests: Any = None,
) -> tuple[list[_Event], list[ApiNotice], Watch]:
    """Run a watch until it ends, `until(events)` or `until_requests(paths requested so far)`
    holds, or `max_clock_s` passes."""
    notices: list[ApiNotice] = []
    events: list[_Event] = []
    holder: list[Watch] = []

    def observe(notice: ApiNotice) -> None:
        notices.append(notice)
        if until_requests is not None and holder and until_requests(_requests(notices)):
            holder[0].stop("test")

    client = MakeClient(
        "http://sim.test/api/v2", Token(DEMO_TOKEN), budget=Budget(api_limit, clock=zone.clock),
        clock=zone.clock, transport=httpx.ASGITransport(app=zone.app), observer=observe,
    )
    async with client:
        if patch is not None:
            patch(client)
        watch = Watch(client, options)
        holder.append(watch)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch.run)
            with anyio.move_on_after(zone.clock.real(max_clock_s)):
                async for event in watch.events:
                    events.append(event)
                    if until is not None and until(events):
                        watch.stop("test")
            watch.stop("test timeout")
            async for event in watch.events:
                events.append(event)
            watch.events.close()
    return events, notices, watch


def _requests(notices: list[ApiNotice]) -> list[str]:
    return [n.path for n in notices if n.kind == "request"]


def _one_team(n: int, rate: float) -> Any:
    world = busy_world(n, rate_per_minute=rate, api_limit=60)
    return world.model_copy(update={"scenarios": [s.model_copy(update={"team_id": 1})
                                                  for s in world.scenarios]})


async def test_a_failed_run_is_reported_within_one_request_of_the_read_that_found_it() -> None:
    world = _one_team(6, 2.0)
    zone = SimZone(world, clock=Clock(50), seed=2)
    events, notices, _ = await _run(
        zone, WatchOptions(scenario_ids=[s.id for s in world.scenarios], timeout_s=240),
        max_clock_s=300,
    )
    paths = _requests(notices)
    failed = [e for e in events if isinstance(e, ExecutionFinished) and e.status != "success"]
    assert len(failed) >= 5
    # What the watch reports as it ends (--timeout) comes last, before stream.closed, with what
    # is known: a run found by the last reads may have had no detail read yet.
    last = max(i for i, e in enumerate(events)
               if not e.type.startswith(("execution.finished", "alert.", "stream.closed")))
    flushed = {id(e) for e in events[last + 1:]}
    for event in failed:
        path = f"/scenarios/{event.scenario_id}/executions/{event.execution_id}"
        if path not in paths and id(event) in flushed:
            continue
        detail_at = paths.index(path)
        # the log read that found it came just before: at most one request in between
        found_at = max(i for i, p in enumerate(paths[:detail_at]) if p.endswith("/logs"))
        assert detail_at - found_at <= 2, paths[found_at:detail_at + 1]


async def test_every_run_known_to_have_ended_is_reported_when_the_watch_ends() -> None:
    world = _one_team(3, 3.0)
    zone = SimZone(world, clock=Clock(50), seed=2)
    stuck: list[str] = []

    def patch(client: MakeClient) -> None:
        async def execution(sid: int, eid: str, *, priority: Priority = Priority.NORMAL
                            ) -> ExecutionDetail:
            stuck.append(eid)
            await anyio.sleep_forever()
            raise AssertionError

        client.execution = execution  # type: ignore[method-assign]

    events, _, watch = await _run(
        zone, WatchOptions(scenario_ids=[s.id for s in world.scenarios], timeout_s=120),
        max_clock_s=200, patch=patch,
    )
    assert watch.outcome.reason == "timeout"
    assert stuck, "the error run's detail was asked for"
    reported = {e.execution_id: e for e in events if isinstance(e, ExecutionFinished)}
    # the detail never came; the run is reported with what its log said, before the end
    for eid in stuck:
        assert reported[eid].status in ("warning", "error")
    assert events[-1].type == "stream.closed"


@pytest.mark.parametrize("organization", [True, False])
@pytest.mark.parametrize("n", [3, 20, 150])
async def test_named_scenarios_cost_one_listing_page_per_hundred_before_the_first_log_read(
    n: int, organization: bool
) -> None:
    world = _one_team(n, 1.0)
    zone = SimZone(world, clock=Clock(20), seed=1, organization_readable=organization)
    ids = [s.id for s in world.scenarios]
    wants_organization = organization and n <= 20

    def seen_enough(paths: list[str]) -> bool:
        # What the assertions below look at: the requests up to the first log read and, where
        # it is expected, the read of the organization. Later requests change neither.
        return (any(p.endswith("/logs") for p in paths)
                and (not wants_organization or "/organizations" in paths))

    _, notices, _watch = await _run(
        zone, WatchOptions(scenario_ids=ids, api_limit=60), max_clock_s=150,
        until_requests=seen_enough,
    )
    paths = _requests(notices)
    first_log = next(i for i, p in enumerate(paths) if p.endswith("/logs"))
    assert first_log <= math.ceil(n / 100) + 1, paths[:first_log]
    if wants_organization:
        assert "/organizations" in paths  # read later, for links and one listing for all teams


async def test_scenarios_of_several_teams_are_all_found() -> None:
    world = busy_world(8, rate_per_minute=1.0, api_limit=60)
    scenarios = [s.model_copy(update={"team_id": 1 + s.id % 2}) for s in world.scenarios]
    world = world.model_copy(update={"teams": [TeamSpec(id=1, name="a"), TeamSpec(id=2, name="b")],
                                     "scenarios": scenarios})
    zone = SimZone(world, clock=Clock(20), seed=1, organization_readable=False)
    ids = [s.id for s in world.scenarios]
    events, _, _ = await _run(
        zone, WatchOptions(scenario_ids=ids, api_limit=60),
        until=lambda ev: any(e.type == "stream.opened" for e in ev), max_clock_s=60,
    )
    [opened] = [e for e in events if e.type == "stream.opened"]
    assert sorted(opened.targets) == sorted(ids)  # type: ignore[attr-defined]


async def test_a_sweep_takes_each_page_as_of_its_own_read() -> None:
    # 150 scenarios: a sweep is two pages, seconds apart. A counter read on the first page says
    # nothing of the moment the second came back, so each page is taken as of its own answer.
    world = _one_team(150, 0.2)
    zone = SimZone(world, clock=Clock(20), seed=1, organization_readable=False)
    ids = [s.id for s in world.scenarios]

    def listings(paths: list[str]) -> int:
        return sum(1 for p in paths if p.rstrip("/").endswith("/scenarios"))

    _, notices, watch = await _run(
        zone, WatchOptions(scenario_ids=ids, api_limit=60), max_clock_s=600,
        until_requests=lambda paths: listings(paths) >= 5,  # start-up 2 pages, a sweep's 2
    )
    assert listings(_requests(notices)) >= 5
    first = {watch.schedule.scans[sid].counted_at for sid in ids[:99]}
    second = {watch.schedule.scans[sid].counted_at for sid in ids[99:]}
    assert len(first) == len(second) == 1
    assert second.pop() > first.pop()


async def test_a_run_seen_in_flight_is_reported_from_the_logs_without_a_status_read() -> None:
    """Where Make lists runs in flight, reading the scenario's logs again tells the run's end
    and its figures in one request; a status poll needs a second read for the figures."""
    from bench.matrix import workload_world
    from makestream.sim import Faults

    world = workload_world("active", 3, seed=1, api_limit=60)
    zone = SimZone(world, clock=Clock(50), seed=1, running_in_logs=True,
                   faults=Faults(late_logs=1.0))
    events, notices, watch = await _run(
        zone, WatchOptions(scenario_ids=[s.id for s in world.scenarios], timeout_s=300),
        max_clock_s=360,
    )
    started = {e.execution_id for e in events if e.type == "execution.started"}
    # Nothing reported is still followed (each look would cost a read).
    assert not set(watch.schedule.polls) & {e.execution_id for e in finished_events(events)}
    done = [e for e in events if isinstance(e, ExecutionFinished) and e.execution_id in started]
    assert len(done) >= 8
    assert all(e.operations is not None and e.duration_ms is not None for e in done)
    paths = _requests(notices)
    # No status polls and no log entry read by id; only failed runs' error details.
    assert not [p for p in paths if "/logs/" in p]
    failed = [e for e in finished_events(events) if e.status != "success"]
    assert len([p for p in paths if "/executions/" in p]) <= len(failed)


def finished_events(events: list[_Event]) -> list[ExecutionFinished]:
    return [e for e in events if isinstance(e, ExecutionFinished)]

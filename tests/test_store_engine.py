"""The engine with durations known before it reads Make's logs (`WatchOptions.history`, which the
history store fills): no log page only to learn them, and news still told from history."""

from __future__ import annotations

import anyio
import httpx
import pytest
from worlds import outcome_world

from makestream.clock import Clock
from makestream.engine.history import Seed
from makestream.engine.watch import Watch, WatchOptions
from makestream.events import ExecutionFinished, ExecutionStarted, _Event
from makestream.make.budget import Budget
from makestream.make.client import ApiNotice, MakeClient, Token
from makestream.sim import DEMO_TOKEN, SimZone, demo_world

pytestmark = pytest.mark.anyio


class Known:
    """A history source that knows every scenario ran `durations_ms`."""

    def __init__(self, durations_ms: list[int]) -> None:
        self.durations_ms = durations_ms
        self.asked: list[int] = []

    def recent(self, scenario_id: int) -> Seed | None:
        self.asked.append(scenario_id)
        return Seed(self.durations_ms, None) if self.durations_ms else None


async def run_watch(
    zone: SimZone, options: WatchOptions, *, until_clock: float | None = None
) -> tuple[list[_Event], list[str], Watch]:
    """Run a watch to its end (or to clock time `until_clock`); its events and request paths."""
    paths: list[str] = []
    holder: list[Watch] = []

    def observe(notice: ApiNotice) -> None:
        if notice.kind == "request":
            paths.append(notice.path)
        if holder:
            holder[0].on_notice(notice)

    events: list[_Event] = []
    async with MakeClient(
        "http://sim.test/api/v2", Token(DEMO_TOKEN), budget=Budget(600, clock=zone.clock),
        clock=zone.clock, transport=httpx.ASGITransport(app=zone.app), observer=observe,
    ) as client:
        watch = Watch(client, options)
        holder.append(watch)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch.run)
            limit = zone.clock.real((until_clock or zone.clock.now() + 600) - zone.clock.now())
            with anyio.move_on_after(limit):
                async for event in watch.events:
                    events.append(event)
            watch.stop("test")
            async for event in watch.events:
                events.append(event)
            watch.events.close()
    return events, paths, watch


async def test_execution_start_up_reads_no_log_page_for_durations() -> None:
    zone = SimZone(outcome_world(duration=20), clock=Clock(50), seed=1)
    eid = zone.start_execution(201)
    source = Known([20_000] * 9 + [30_000])
    events, paths, _ = await run_watch(
        zone, WatchOptions(scenario_ids=[201], execution_id=eid, history=source)
    )
    [started] = [e for e in events if isinstance(e, ExecutionStarted)]
    assert started.expected_duration_ms == 20_000  # the median of what the source knew
    [done] = [e for e in events if isinstance(e, ExecutionFinished)]
    assert done.execution_id == eid
    logs = [i for i, p in enumerate(paths) if p.endswith("/logs")]
    first_poll = next(i for i, p in enumerate(paths) if "/executions/" in p)
    assert all(first_poll < i for i in logs), paths  # no page of logs before the run
    assert source.asked == [201]

    # Without the source, that page is read first to learn the durations.
    zone = SimZone(outcome_world(duration=20), clock=Clock(50), seed=1)
    eid = zone.start_execution(201)
    _, paths, _ = await run_watch(zone, WatchOptions(scenario_ids=[201], execution_id=eid))
    assert next(i for i, p in enumerate(paths) if p.endswith("/logs")) < next(
        i for i, p in enumerate(paths) if "/executions/" in p), paths


async def test_with_known_durations_news_is_still_told_from_history() -> None:
    zone = SimZone(demo_world(), clock=Clock(80), seed=2, running_in_logs=True)
    zone.truth()
    ids = [s.id for s in zone.world.scenarios]
    began = zone.clock.now()
    source = Known([15_000] * 20)
    events, _, watch = await run_watch(zone, WatchOptions(scenario_ids=ids, history=source),
                                       until_clock=began + 400)
    reported = [e.execution_id for e in events if isinstance(e, ExecutionFinished)]
    assert len(reported) == len(set(reported))
    truth = {t.execution_id: t for t in zone.truth()}
    started_at = watch._started_at
    # Nothing that ended before the watch began is news; everything that ended well after it
    # (and well before the end) is reported.
    assert all(truth[eid].ended_at >= started_at for eid in reported)
    due = {eid for eid, t in truth.items() if started_at + 1 < t.ended_at < began + 300}
    assert due and due <= set(reported)
    assert sorted(set(source.asked)) == sorted(ids)

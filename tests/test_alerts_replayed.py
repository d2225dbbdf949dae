"""Alerts raised by the start-up catch-up over past runs carry `replayed: true`; sinks skip them,
and what is still active when the catch-up ends is raised once more, unmarked.

First the evaluator on its own (plain values, no clock), then a watch against the simulator with
`--since` over a history of failures, checking where the engine says the catch-up is over.
"""

from __future__ import annotations

import pytest
from test_watch import collect

from makestream.clock import Clock
from makestream.config import parse
from makestream.engine.alerts import AlertEvaluator, AlertEvent
from makestream.engine.rules import EffectiveThresholds
from makestream.engine.watch import WatchOptions
from makestream.events import (
    AlertRaised,
    AlertResolved,
    ExecutionFinished,
    ScenarioChanged,
    _Event,
    rfc3339,
)
from makestream.sim import SimZone
from makestream.sim.flows import blueprint, module
from makestream.sim.world import OrganizationSpec, Profile, ScenarioSpec, TeamSpec, WorldSpec
from makestream.sinks import WebhookSink

T = 1_790_000_000.0  # when the watch began


def begin(ev: AlertEvaluator) -> None:
    """The watch's first event: from now on, runs that ended earlier are the past."""
    assert ev.observe(ScenarioChanged(scenario_id=9, changed=[]), T) == []


def past(status: str, n: int, *, sid: int = 1) -> ExecutionFinished:
    """A run that ended `100 - n` minutes before the watch began."""
    ended = T - (100 - n) * 60
    return ExecutionFinished(scenario_id=sid, execution_id=f"p{n}", status=status,
                             duration_ms=1000, started_at=rfc3339(ended - 1),
                             ended_at=rfc3339(ended))


def live(status: str, n: int, *, sid: int = 1) -> ExecutionFinished:
    return ExecutionFinished(scenario_id=sid, execution_id=f"l{n}", status=status,
                             duration_ms=1000, started_at=rfc3339(T + n),
                             ended_at=rfc3339(T + n + 1))


def shown(alerts: list[AlertEvent]) -> list[tuple[str, str, bool]]:
    return [(a.type, a.alert_id, bool(a.replayed)) for a in alerts]


def feed(ev: AlertEvaluator, runs: list[ExecutionFinished]) -> list[AlertEvent]:
    out: list[AlertEvent] = []
    for i, event in enumerate(runs):
        out += ev.observe(event, T + 1 + i)
    return out


CF = "consecutive_failures:1"


def test_an_alert_from_past_runs_is_replayed_then_raised_again_when_the_catch_up_ends() -> None:
    ev = AlertEvaluator(EffectiveThresholds())
    begin(ev)
    assert shown(feed(ev, [past("error", n) for n in range(3)])) == [
        ("alert.raised", CF, True)
    ]
    again = ev.caught_up(T + 10)
    assert shown(again) == [("alert.raised", CF, False)]
    assert isinstance(again[0], AlertRaised) and again[0].message.endswith("3 runs in a row failed")
    assert ev.caught_up(T + 11) == []  # only once
    # From then on nothing is marked, and the alert resolves as any other.
    assert shown(feed(ev, [live("success", 1)])) == [("alert.resolved", CF, False)]


def test_an_alert_the_past_raised_and_resolved_is_never_raised_again() -> None:
    ev = AlertEvaluator(EffectiveThresholds())
    begin(ev)
    alerts = feed(ev, [*(past("error", n) for n in range(3)), past("success", 4)])
    assert shown(alerts) == [("alert.raised", CF, True), ("alert.resolved", CF, True)]
    assert ev.caught_up(T + 10) == []


def test_a_replayed_alert_resolved_live_during_the_catch_up_stays_replayed() -> None:
    # Its raising was never sent anywhere, so its resolution must not be either.
    ev = AlertEvaluator(EffectiveThresholds())
    begin(ev)
    feed(ev, [past("error", n) for n in range(3)])
    assert shown(ev.observe(live("success", 1), T + 5)) == [("alert.resolved", CF, True)]
    assert ev.caught_up(T + 10) == []


def test_live_alerts_during_the_catch_up_are_not_marked() -> None:
    ev = AlertEvaluator(EffectiveThresholds())
    begin(ev)
    feed(ev, [past("error", n, sid=1) for n in range(3)])
    alerts = feed(ev, [live("error", n, sid=2) for n in range(3)])
    assert shown(alerts) == [("alert.raised", "consecutive_failures:2", False)]
    assert shown(ev.caught_up(T + 10)) == [("alert.raised", CF, False)]


def test_a_re_notification_of_a_replayed_alert_is_replayed_too() -> None:
    ev = AlertEvaluator(parse("[alerts]\nrenotify_s = 60\n"))
    begin(ev)
    feed(ev, [past("error", n) for n in range(3)])
    renotified = [a for a in ev.tick(T + 120, {}, None) if a.alert_id == CF]
    assert [(a.replayed, getattr(a, "renotified", None)) for a in renotified] == [(True, True)]


def test_sinks_are_not_offered_replayed_alerts() -> None:
    sink = WebhookSink("http://127.0.0.1:9/")
    ev = AlertEvaluator(EffectiveThresholds())
    begin(ev)
    for alert in feed(ev, [past("error", n) for n in range(3)]) + ev.caught_up(T + 10):
        sink.offer(alert)
    queued = [sink.outbox.get_nowait().event for _ in range(sink.outbox.pending())]
    sink.outbox.dispose()
    assert shown(queued) == [("alert.raised", CF, False)]


# -- the engine: where the catch-up ends --------------------------------------------------------


def failing_world() -> WorldSpec:
    """One scenario that has failed every minute for the quarter of an hour before the watch."""
    return WorldSpec(
        organization=OrganizationSpec(api_limit=600),
        teams=[TeamSpec(id=1, name="Ops")],
        scenarios=[ScenarioSpec(
            id=401, name="Failing", team_id=1,
            # Make would turn it off after maxErrors failures in a row: not in this world.
            blueprint=blueprint("F", [module(1, "http:ActionSendData")], max_errors=10_000),
            scheduling={"type": "indefinitely", "interval": 60},
            profile=Profile(duration_mean=2.0, duration_stddev=0.0, error_rate=1.0),
        )],
        history=900,
    )


@pytest.mark.anyio
async def test_a_watch_since_an_hour_ago_replays_the_past_alerts_and_raises_them_once_caught_up(
) -> None:
    zone = SimZone(failing_world(), clock=Clock(100), seed=1)
    now = zone.clock.now()
    options = WatchOptions(scenario_ids=[401], since_ms=int((now - 3600) * 1000),
                           alerts=AlertEvaluator(EffectiveThresholds()))

    def live_run_after_the_catch_up(events: list[_Event]) -> bool:
        unmarked = [i for i, e in enumerate(events)
                    if isinstance(e, AlertRaised) and e.alert_id == "consecutive_failures:401"
                    and not e.replayed]
        return bool(unmarked) and any(
            isinstance(e, ExecutionFinished) and e.ended_at and e.ended_at > rfc3339(now)
            for e in events[unmarked[0]:])

    events, _ = await collect(zone, options, until=live_run_after_the_catch_up,
                              max_clock_s=1800, api_limit=600)
    history = [i for i, e in enumerate(events) if isinstance(e, ExecutionFinished)
               and e.ended_at and e.ended_at < rfc3339(now)]
    assert len(history) >= 10  # the quarter hour of failures was reported
    alerts = [(i, e) for i, e in enumerate(events) if isinstance(e, AlertRaised | AlertResolved)]
    replayed = [i for i, e in alerts if e.replayed]
    [(again, raised)] = [(i, e) for i, e in alerts
                         if e.alert_id == "consecutive_failures:401" and not e.replayed]
    assert replayed and max(replayed) < again  # everything marked came before the catch-up end
    assert max(history) < again  # and the catch-up ended after the last past run
    assert raised.type == "alert.raised" and "runs in a row failed" in raised.message
    # Each alert the past raised is raised once more, unmarked, if it is still active.
    marked_ids = {e.alert_id for i, e in alerts if e.replayed}
    assert marked_ids <= {e.alert_id for i, e in alerts if not e.replayed}

"""The Alertmanager sink against a real HTTP receiver: payload, re-sends, resolution, failures."""

from __future__ import annotations

import time
from typing import Any

import anyio
import orjson
import pytest
from test_sinks import Receiver, raised, resolved, started, until

from makestream.clock import Clock
from makestream.events import ExecutionFinished, rfc3339
from makestream.sinks import AlertmanagerSink
from makestream.sinks.alertmanager import alerts_url
from makestream.sinks.base import Backoff

pytestmark = pytest.mark.anyio

NOW = 1_790_000_000.0


class FastClock(Clock):
    """The watch's clock as the demo runs it, hours ahead of the wall; intervals still pass in
    real time. startsAt and endsAt must never come from it."""

    def now(self) -> float:
        return NOW + 3 * 3600


def sink(receiver: Receiver, errors: list[str], **options: Any) -> AlertmanagerSink:
    options.setdefault("resend_s", 60.0)
    return AlertmanagerSink(
        receiver.url,
        on_error=errors.append,
        clock=FastClock(),
        wall=lambda: NOW,
        backoff=Backoff(first_s=0.02, max_s=0.05),
        **options,
    )


def posts(receiver: Receiver) -> list[list[dict[str, Any]]]:
    return [orjson.loads(body) for _, body in receiver.requests]


async def test_a_raised_alert_is_posted_with_labels_annotations_and_wall_clock_starts_at(
) -> None:
    errors: list[str] = []
    async with Receiver().running() as receiver:
        am = sink(
            receiver,
            errors,
            labels={"instance": "ci-1"},
            generator_url="https://eu1.make.com/7/scenarios/1",
        )
        async with started(am):
            am.offer(ExecutionFinished(scenario_id=1, status="error"))
            am.offer(raised(1, execution_id="abc"))
            await until(lambda: len(receiver.accepted) == 1)
    assert [path for path, _ in receiver.requests] == ["/api/v2/alerts"]
    assert posts(receiver) == [
        [
            {
                "labels": {
                    "alertname": "makestream_consecutive_failures",
                    "rule": "consecutive_failures",
                    "severity": "critical",
                    "alert_id": "consecutive_failures:1",
                    "scenario_id": "1",
                    "execution_id": "abc",
                    "instance": "ci-1",
                },
                "annotations": {
                    "summary": "scenario 1: 3 runs in a row failed",
                    "description": "consecutive_failures: value 3, threshold 3",
                },
                # the wall clock when offered: not the event's ts, not the (fast) watch clock
                "startsAt": rfc3339(NOW),
                "generatorURL": "https://eu1.make.com/7/scenarios/1",
            }
        ]
    ]
    assert errors == []


async def test_active_alerts_are_re_sent_and_a_resolved_one_goes_once_with_ends_at() -> None:
    async with Receiver().running() as receiver:
        am = sink(receiver, [], resend_s=0.05)
        async with started(am):
            am.offer(raised(1))
            am.offer(raised(2))
            await until(lambda: len(receiver.accepted) >= 4)
            am.offer(resolved(1))
            await until(lambda: any("endsAt" in a for post in posts(receiver) for a in post))
            count = len(receiver.requests)
            await until(lambda: len(receiver.requests) >= count + 2)
            am.offer(resolved(2))
            await until(lambda: not am.active)
            await anyio.sleep(0.15)  # several resend intervals: nothing active, nothing sent
            quiet = len(receiver.requests)
            await anyio.sleep(0.15)
            assert len(receiver.requests) == quiet
    bodies = posts(receiver)
    ids = [[a["labels"]["alert_id"] for a in post] for post in bodies]
    first_resolution = next(i for i, post in enumerate(bodies) if any("endsAt" in a for a in post))
    # before: both firing, again and again; the resolution once; then only the other one
    assert all(
        set(p) == {"consecutive_failures:1", "consecutive_failures:2"}
        for p in ids[:first_resolution]
    )
    assert first_resolution >= 2
    ended = [a for a in bodies[first_resolution] if "endsAt" in a]
    assert [(a["labels"]["alert_id"], a["endsAt"], a["startsAt"]) for a in ended] == [
        ("consecutive_failures:1", rfc3339(NOW), rfc3339(NOW))
    ]
    assert all(p == ["consecutive_failures:2"] for p in ids[first_resolution + 1 : -1])
    assert [a.get("endsAt") for a in bodies[-1]] == [rfc3339(NOW)]


async def test_a_failing_alertmanager_is_reported_and_gets_the_resolution_after_recovery() -> None:
    errors: list[str] = []
    async with Receiver().running() as receiver:
        receiver.status = 500
        am = sink(receiver, errors)
        async with started(am):
            am.offer(raised(1))
            await until(lambda: len(errors) >= 2)
            am.offer(resolved(1))
            await until(lambda: len(errors) >= 4)
            receiver.status = 200
            await until(lambda: len(receiver.accepted) == 1)
    [delivered] = [orjson.loads(b) for b in receiver.accepted]
    assert [(a["labels"]["alert_id"], a["endsAt"]) for a in delivered] == [
        ("consecutive_failures:1", rfc3339(NOW))
    ]
    assert errors[0].startswith(
        f"alertmanager http://127.0.0.1:{receiver.port}/…: HTTP 500; retrying in "
    )


async def test_a_hanging_alertmanager_never_blocks_the_caller() -> None:
    errors: list[str] = []
    async with Receiver().running() as receiver:
        receiver.hang = True
        am = sink(receiver, errors, timeout_s=0.1)
        async with started(am):
            begun = time.perf_counter()
            for n in range(100):
                am.offer(raised(n))
            assert time.perf_counter() - begun < 0.05
            await until(
                lambda: any(
                    e.endswith("timed out; retrying in " + e.split()[-2] + " s") for e in errors
                )
            )
            receiver.hang = False
            await until(lambda: len(receiver.accepted) >= 1)
    assert len(orjson.loads(receiver.accepted[0])) == 100


async def test_close_sends_pending_resolutions_and_returns() -> None:
    async with Receiver().running() as receiver:
        am = sink(receiver, [])
        am.offer(raised(1))
        am.offer(resolved(1))
        am.offer(raised(2))
        am.close()
        with anyio.fail_after(5):
            await am.run()
    [post] = posts(receiver)
    assert [(a["labels"]["alert_id"], "endsAt" in a) for a in post] == [
        ("consecutive_failures:2", False),
        ("consecutive_failures:1", True),
    ]


async def test_close_gives_up_within_its_grace_when_alertmanager_stays_down() -> None:
    errors: list[str] = []
    async with Receiver().running() as receiver:
        receiver.status = 503
        am = sink(receiver, errors, grace_s=0.2)
        async with am:
            am.offer(raised(1))
            am.offer(resolved(1))
            begun = time.perf_counter()
        assert time.perf_counter() - begun < 1.0
    assert errors[-1].endswith("giving up at exit: 1 resolved alerts not delivered")


def test_the_alerts_path_is_added_once() -> None:
    assert alerts_url("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert alerts_url("http://am:9093/") == "http://am:9093/api/v2/alerts"
    assert alerts_url("https://x/prefix/api/v2/alerts/") == "https://x/prefix/api/v2/alerts"

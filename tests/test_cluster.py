"""What a replica publishes of the bus's events: each run's end once, whichever way it came.

The cluster's decisions about its own events are tested here on a stand-in hub; the whole of it,
with real processes and a real redis-server, is in test_bus_replicas.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from makestream.events import (
    ExecutionFinished,
    ExecutionProgress,
    ExecutionStarted,
    StreamError,
    _Event,
)
from makestream.server.cluster import Cluster, ClusterOptions


@dataclass
class StandIn:
    """The parts of a hub the cluster's publishing touches."""

    published: list[_Event] = field(default_factory=list)
    options: Any = field(default_factory=lambda: SimpleNamespace(
        recorder=None, watch=SimpleNamespace(alerts=None)))

    def apply(self, event: _Event) -> None:
        self.published.append(event)

    def mark_started(self) -> None:
        pass


def finished(seq: int, execution: str, stream: str = "e1") -> ExecutionFinished:
    return ExecutionFinished(seq=seq, cursor=f"2.x~{stream}.{seq}", scenario_id=7,
                             execution_id=execution, status="success")


def started(seq: int, execution: str, stream: str = "e1") -> ExecutionStarted:
    return ExecutionStarted(seq=seq, cursor=f"2.x~{stream}.{seq}", scenario_id=7,
                            execution_id=execution, source="auto",
                            started_at="2026-12-06T10:00:00Z")


def cluster() -> tuple[Cluster, StandIn]:
    hub = StandIn()
    return Cluster(hub, ClusterOptions(redis=None, name="n", holder="me")), hub  # type: ignore[arg-type]


def test_a_run_read_twice_is_published_once() -> None:
    c, hub = cluster()
    c._publish(finished(5, "a"))
    c._publish(finished(9, "a", stream="e2"))  # found again by a new holder, new epoch
    c._publish(finished(10, "b", stream="e2"))
    assert [e.execution_id for e in hub.published] == ["a", "b"]


class StandInWatch:
    def __init__(self) -> None:
        self.stopped: list[str] = []

    def stop(self, reason: str) -> None:
        self.stopped.append(reason)


def test_while_redis_is_away_the_holder_keeps_facts_in_order_and_drops_moments() -> None:
    c, hub = cluster()
    watch = StandInWatch()
    progress = ExecutionProgress(seq=4, cursor="2.x~e1.4", scenario_id=7, execution_id="a",
                                 elapsed_ms=10)
    for event in (started(3, "a"), progress, finished(5, "a")):
        c._keep(event, watch)  # type: ignore[arg-type]
    assert [e.seq for e in c._unsent] == [3, 5]  # the moment is gone by the time Redis answers
    assert not hub.published and not watch.stopped  # nobody publishes before the bus has it


def test_too_much_to_keep_stops_the_watch_rather_than_drop_a_run() -> None:
    c, _ = cluster()
    c.options.maxlen = 3
    watch = StandInWatch()
    for seq in range(4):
        c._keep(finished(seq + 1, f"r{seq}"), watch)  # type: ignore[arg-type]
    assert watch.stopped and not c._unsent and c._fenced


def test_an_old_failure_read_on_the_way_does_not_count_as_the_clusters_state() -> None:
    c, hub = cluster()
    marked: list[bool] = []
    hub.mark_started = lambda: marked.append(True)  # type: ignore[method-assign]
    failure = StreamError(seq=2, cursor="2.x~e1.2", message="token revoked", fatal=True)
    c._publish(failure, caught_up=False)
    assert not marked
    c._publish(failure, caught_up=True)
    assert marked

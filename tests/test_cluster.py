"""What a replica publishes of the bus's events: each run's end once, whichever way it came.

The cluster's decisions about its own events are tested here on a stand-in hub; the whole of it,
with real processes and a real redis-server, is in test_bus_replicas.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from makestream.events import ExecutionFinished, ExecutionStarted, _Event
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


def test_what_the_holder_published_itself_is_skipped_when_it_comes_back() -> None:
    c, hub = cluster()
    c._publish(started(3, "a"), local=True)  # Redis was away: published here directly
    c._publish(started(3, "a"))  # appended later, read back through the stream
    c._publish(started(3, "z", stream="e2"))
    assert [e.execution_id for e in hub.published] == ["a", "z"]


def test_dropping_what_redis_missed_forgets_it_but_still_publishes_each_end_once() -> None:
    c, hub = cluster()
    c._keep_unsent(finished(4, "a"))
    c._drop_unsent()  # the lease went elsewhere; its holder finds run a again
    assert not c._unsent
    c._publish(finished(4, "a"))
    c._publish(started(5, "q"))
    assert [e.execution_id for e in hub.published] == ["a", "q"]

"""The Redis building blocks of scale-out, against a real redis-server (tests/redis_server.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis_server import RedisServer, redis_server
from test_ledger import busiest, busy_callers

from makestream.bus.connect import BusUrl, client, parse_bus_url
from makestream.bus.lease import Lease
from makestream.bus.ledger import RedisLedger
from makestream.bus.log import EventLog, parse_id
from makestream.clock import Clock
from makestream.errors import UsageError
from makestream.make.budget import Budget
from makestream.make.ledger import WINDOW_S

pytestmark = pytest.mark.anyio


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as running:
        yield running


@pytest.fixture
async def redis(server: RedisServer) -> AsyncIterator[Any]:
    connection = client(parse_bus_url(server.url))
    try:
        yield connection
    finally:
        await connection.aclose()


# --- the URL --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "parsed"), [
    ("redis://127.0.0.1:6380/2", BusUrl(False, "127.0.0.1", 6380, 2)),
    ("redis://localhost", BusUrl(False, "localhost", 6379, 0)),
    ("rediss://bus.internal:6390/0", BusUrl(True, "bus.internal", 6390, 0)),
    ("redis://ops@[::1]:7000/1", BusUrl(False, "::1", 7000, 1, "ops")),
])
def test_bus_urls_parse(text: str, parsed: BusUrl) -> None:
    assert parse_bus_url(text) == parsed
    assert parse_bus_url(str(parsed)) == parsed


@pytest.mark.parametrize(("text", "says"), [
    ("http://127.0.0.1:6379", "expected redis://"),
    ("redis://:hunter2@127.0.0.1:6379/0", "does not belong in the URL"),
    ("redis://127.0.0.1:99999", "out of range"),
    ("redis://127.0.0.1:6379/two", "must be a number"),
    ("redis:///0", "no host"),
    ("redis://h/0?ssl=1", "no query"),
    ("redis://h/0?password=hunter2", "no query"),
])
def test_bad_bus_urls_are_one_line_naming_the_problem(text: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_bus_url(text)
    message = str(caught.value)
    assert says in message and "\n" not in message and "hunter2" not in message


# --- one budget for every replica -----------------------------------------------------------------


async def test_replicas_count_one_window_and_share_a_pause(redis: Any) -> None:
    a = RedisLedger(redis, "organization 1", me="a")
    b = RedisLedger(redis, "organization 1", me="b")
    other_org = RedisLedger(redis, "organization 2", me="c")
    for ledger in (a, b, a):
        claim = await ledger.claim(0.0, cap=3)
        assert claim is not None and claim.delay == 0
    refused = await b.claim(0.0, cap=3)
    assert refused is not None and 0 < refused.delay <= WINDOW_S
    assert (refused.senders, refused.members, refused.used) == (2, 2, 3)
    free = await other_org.claim(0.0, cap=3)  # another organization has its own window
    assert free is not None and free.delay == 0
    await a.pause(10.0, until=40.0)
    paused = await other_org.claim(0.0, cap=100)
    assert paused is not None and paused.delay == 0  # a pause is per organization too
    paused = await b.claim(0.0, cap=100)
    assert paused is not None and 25 < paused.delay <= 30 and paused.paused
    await b.pause(50.0, until=49.0)  # a pause that has ended already is no news, and no error
    assert b.available


async def test_a_redis_that_accepts_but_never_answers_costs_a_claim_one_second(
        tmp_path: Path) -> None:
    import socket

    # A network partition: the connection is accepted, nothing ever comes back.
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        silent = client(parse_bus_url(f"redis://127.0.0.1:{hole.getsockname()[1]}/0"))
        problems: list[str] = []
        ledger = RedisLedger(silent, "organization 3", me="a", on_problem=problems.append,
                             timeout_s=0.5, retry_s=60)
        budget = Budget(60, clock=Clock(1))
        budget.share_with(ledger)
        with anyio.fail_after(5):
            for _ in range(3):
                await budget.acquire()  # one timed-out claim, then alone until retry_s
        await silent.aclose()
    assert len(problems) == 1 and "no answer within 0.5 s" in problems[0]
    assert ledger.failures == 1


async def test_budgets_of_two_replicas_keep_to_one_share_in_redis(redis: Any) -> None:
    clock = Clock(120)
    budgets = {}
    for me in ("a", "b"):
        budget = Budget(60, clock=clock)
        budget.share_with(RedisLedger(redis, "organization 9", me=me, speed=clock.speed))
        budgets[me] = budget
    # A second of slack on the window also covers Redis's clock and this one read apart.
    sent = await busy_callers(budgets, clock, 150, callers=4)
    every = sent["a"] + sent["b"]
    assert busiest(every, WINDOW_S - 1) <= 48
    assert len(every) >= 80
    assert 0.3 <= len(sent["a"]) / len(every) <= 0.7
    assert budgets["a"].snapshot().processes == 2


async def test_with_redis_down_a_replica_goes_on_alone_at_its_part_and_says_so_once(
        server: RedisServer, redis: Any) -> None:
    problems: list[str] = []
    ledger = RedisLedger(redis, "organization 5", me="a", on_problem=problems.append,
                         retry_s=0.2)
    other = RedisLedger(redis, "organization 5", me="b")
    for _ in range(20):  # a busy replica: 20 requests in the window
        assert await other.claim(0.0, cap=100) is not None
    budget = Budget(60, clock=Clock(60))
    budget.share_with(ledger)
    await budget.acquire()
    assert budget.snapshot().processes == 2
    server.stop()
    with anyio.fail_after(10):
        for _ in range(3):
            await budget.acquire()  # never stuck on a dead Redis
    assert len(problems) == 1 and "unreachable" in problems[0]
    # Cut off, it keeps to the part of the rate it had: what the other left of 48 a minute.
    assert budget.snapshot().rate_per_min == pytest.approx(48 - 20)
    server.start()
    await anyio.sleep(0.3)
    with anyio.fail_after(10):
        # Polling: the state is Redis's, in another process.
        while await ledger.claim(0.0, cap=100) is None:  # noqa: ASYNC110
            await anyio.sleep(0.1)
    assert ledger.available


# --- who polls ------------------------------------------------------------------------------------


async def test_one_holder_at_a_time_and_a_new_epoch_for_each_new_holder(redis: Any) -> None:
    a = Lease(redis, "team-1", "replica-a", ttl_s=0.5)
    b = Lease(redis, "team-1", "replica-b", ttl_s=0.5)
    held = await a.acquire()
    assert held is not None
    assert await b.acquire() is None
    assert await b.renew() is False and await b.release() is False  # not b's to touch
    assert await a.current_holder() == "replica-a"
    again = await a.acquire()  # the holder asking again renews, same epoch
    assert again == held
    with anyio.fail_after(5):
        # a stops renewing (it died): the lease is free within its ttl.
        while (taken := await b.acquire()) is None:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    assert taken.epoch == held.epoch + 1
    assert await a.renew() is False
    # a, back from a long pause, cannot write as if it still held the lease.
    log = EventLog(redis, "team-1")
    assert await log.append(b"{}", "stale", lease=a) is None
    assert await log.append(b"{}", "fresh", lease=b) is not None
    assert [e.cursor for e in await log.after("0")] == ["fresh"]
    assert await b.release() is True
    assert await a.current_holder() is None


# --- the stream of events -------------------------------------------------------------------------


async def test_events_are_read_after_a_position_and_followed(redis: Any) -> None:
    log = EventLog(redis, "team-1", maxlen=100)
    ids = [await log.append(f'{{"seq":{n}}}'.encode(), f"cur{n}") for n in range(5)]
    assert all(parse_id(i) is not None for i in ids)
    assert [e.cursor for e in await log.after("0")] == [f"cur{n}" for n in range(5)]
    rest = await log.after(ids[1])
    assert [e.id for e in rest] == ids[2:] and rest[0].line == b'{"seq":2}'
    last = await log.last()
    assert last is not None and last.id == ids[-1] and last.cursor == "cur4"
    assert await log.follow(ids[-1], block_ms=50) == []
    with pytest.raises(ValueError, match="block_ms"):
        await log.follow(ids[-1], block_ms=60_000)  # would outlast the command deadline

    async def later() -> None:
        await anyio.sleep(0.1)
        await log.append(b'{"seq":5}', "cur5")

    async with anyio.create_task_group() as tg:
        tg.start_soon(later)
        with anyio.fail_after(5):
            news = await log.follow(ids[-1], block_ms=3000)
    assert [e.cursor for e in news] == ["cur5"]


async def test_a_trimmed_position_is_gone_and_a_lost_stream_changes_epoch(
        server: RedisServer, redis: Any) -> None:
    log = EventLog(redis, "team-2", maxlen=10)
    epoch = await log.epoch()
    assert await log.epoch() == epoch  # stable while the stream lives
    ids = [await log.append(b"{}", f"c{n}") for n in range(300)]
    assert await log.length() < 300  # MAXLEN ~ trims in whole nodes
    first = (await log.after("0"))[0]
    assert await log.at(ids[0]) is None and first.id != ids[0]  # trimmed from the front
    assert (await log.at(ids[-1])) == (await log.last())
    assert await log.at(f"{int(ids[-1].partition('-')[0]) + 1000}-0") is None
    server.stop()  # no persistence: the stream and its epoch are gone
    server.start()
    await anyio.sleep(0.2)
    assert await log.epoch() != epoch
    assert await log.at(ids[-1]) is None


# --- a stream that Redis lost -------------------------------------------------------------------


async def test_after_a_lost_stream_the_new_holder_appends_its_last_runs_again_for_the_others(
        server: RedisServer, redis: Any) -> None:
    from test_cluster import StandIn, finished, started

    from makestream.events import decode
    from makestream.server.cluster import Cluster, ClusterOptions

    class Replica(StandIn):
        def __init__(self, ring: list[Any]) -> None:
            super().__init__()
            self.ring = ring

        def recent(self, n: int) -> list[Any]:
            return self.ring[-n:]

    old = [started(1, "a"), finished(2, "a"), started(3, "b"), finished(4, "b")]

    def replica(name: str, ring: list[Any]) -> tuple[Cluster, Replica]:
        hub = Replica(ring)
        return Cluster(hub, ClusterOptions(redis=redis, name="team-3", holder=name)), hub  # type: ignore[arg-type]

    # Before Redis restarted, the holder-to-be and one other replica had read the run "b";
    # a third had not.
    holder, _ = replica("h", old)
    ahead, ahead_hub = replica("f", old)
    behind, behind_hub = replica("g", old[:2])
    for c, read in ((holder, old), (ahead, old), (behind, old[:2])):
        for event in read:
            c._publish(event)
    ahead_hub.published.clear()
    behind_hub.published.clear()
    server.stop()
    server.start()
    await anyio.sleep(0.2)

    epoch = await holder.log.epoch()
    assert await holder.lease.acquire() is not None
    assert await holder._carry_over(epoch, 4) == 6  # the watch goes on after seq 6
    entries = await holder.log.after("0")
    copies = [decode(e.line) for e in entries]
    assert [(e.id, c.seq, c.execution_id, c.cursor) for e, c in zip(entries, copies, strict=True)
            ] == [("5-0", 5, "a", f"2.x~{epoch}.5"), ("6-0", 6, "b", f"2.x~{epoch}.6")]
    for c in (ahead, behind):
        for copy in copies:
            c._publish(copy)
    assert not ahead_hub.published  # it has both: each run once
    assert [e.execution_id for e in behind_hub.published] == ["b"]  # the one it had missed

    # A replica that does not hold the lease appends nothing, nor does the holder once the
    # stream has begun: all the copies land or none.
    other, _ = replica("x", old)
    assert await other._carry_over(epoch, 10) is None
    assert await holder._carry_over(epoch, 10) is None
    assert len(await holder.log.after("0")) == 2

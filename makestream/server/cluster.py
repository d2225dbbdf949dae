"""Several `serve-sse` replicas on one Redis (``--bus``): one of them polls, all of them serve.

Who polls
    Each replica tries for the watched set's lease (`makestream.bus.lease`). The holder runs
    the watch, resumed from the cursor of the last event in the bus, and appends every event
    it makes to the set's stream (`makestream.bus.log`), each at the position ``SEQ-0`` where
    SEQ is the event's own seq: positions and seqs are one numbering, and an append only lands
    while Redis still names this replica the holder. The holder renews the lease every third
    of its time; a holder that dies stops renewing, and another replica takes over within the
    lease time and resumes from the last cursor in the stream. A run the dead holder found but
    never appended is found again; a run in the stream is in the cursor the new holder resumes
    from: none lost, none repeated. Alerts go to the sinks from the holder only, once for the
    cluster.

Who serves
    Every replica (the holder too) follows the stream (``XREAD BLOCK``) and publishes what it
    reads through its hub: the same events, in the same order, with the same ids, on every
    replica. On start a replica reads the whole stream, so its replay ring holds what the
    stream holds, and a client that reconnects to any replica with ``Last-Event-ID`` resumes
    right after its last event (older positions: from Make's logs, as on one process). The
    cursor's stream key is the bus's *epoch*, so an SSE id names the epoch and the position
    (its seq) in the stream; a Redis that lost its data draws a new epoch, and ids from the old
    one resume from their cursor instead of pointing into a new history.

Redis down
    Every replica says so once as a `stream.error` to its clients and on ``/readyz``
    (``"bus": "down"``) and keeps serving what it has. The holder keeps polling within its own
    share of the budget (the Redis budget ledger falls back by itself) and keeps the events it
    makes, in order (moments such as progress and heartbeats are dropped), to append when
    Redis answers again; nobody publishes them before the stream has them, so every replica
    serves one order. A holder that cannot renew for longer than the lease, that keeps more
    than the stream's length, or that finds its lease gone or a new epoch when Redis answers
    stops its watch and drops what it kept: whoever polls next resumes from the stream's last
    cursor and finds those runs again. A replica publishes each run's ``execution.finished``
    once, whichever way it came, so the replicas converge with nothing repeated. A stream that
    Redis lost altogether (restarted empty) has no last cursor: the next holder resumes from
    its own, and first appends again the runs among its last 1,000 events (all or none),
    since a replica that had not read them all when they were lost would otherwise never
    publish them; only such a replica publishes those copies.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from pydantic import ValidationError
from redis.exceptions import RedisError, ResponseError

from makestream.bus.lease import Lease
from makestream.bus.log import READ_COUNT, EventLog, parse_id
from makestream.engine.cursor import Cursor
from makestream.engine.state import build_state
from makestream.engine.watch import Watch
from makestream.errors import UsageError
from makestream.events import (
    AlertRaised,
    AlertResolved,
    ExecutionFinished,
    StreamClosed,
    StreamError,
    StreamOpened,
    _Event,
    decode,
    encode,
)
from makestream.limits import NDJSON_LINE_MAX_BYTES
from makestream.make.models import ExecutionLog, Scenario
from makestream.server.hub import EPHEMERAL

if TYPE_CHECKING:
    from makestream.server.hub import Hub

LEASE_LOST = "lease lost"
EPOCH_CHANGED = "bus history lost (new epoch)"
FOLLOW_BLOCK_MS = 1000
RETRY_S = 1.0  # between attempts while Redis does not answer
DELIVERED_MAX = 20_000  # execution ids remembered per replica for "published once"
SHARE_STATE_S = 1.0  # how often the holder shares what /v1/state shows
LOOK_AROUND_S = 1.0  # how often a follower checks the epoch, the figures and the shared state
CATCH_UP_S = 5.0  # a new holder waits at most this long to have read the stream to its end
FLUSH_CHUNK = 200  # events appended between two renewals once Redis is back
# After Redis lost the stream, the runs among this many of a new holder's last events are
# appended again, for replicas that had not read them yet (see `_carry_over`).
CARRY_OVER_EVENTS = 1_000
# Redis not answering, or answering with an error of its own: the bus is in trouble, not us.
_REDIS_TROUBLE = (RedisError, OSError, TimeoutError)
STATE_MAX_BYTES = 16 * 1024 * 1024  # a shared state larger than this is not read


@dataclass(frozen=True)
class SharedState:
    """What the holder last shared for the state document (`/v1/state`) of the others."""

    scenarios: list[Scenario]
    logs: dict[int, list[ExecutionLog]]
    queues: dict[int, int | None]
    cursor: str | None
    budget: dict[str, Any]  # the holder's, as the state document shows it


def encode_state(scenarios: list[Scenario], logs: dict[int, list[ExecutionLog]],
                 queues: dict[int, int | None], cursor: str | None,
                 budget: dict[str, Any]) -> bytes:
    return orjson.dumps({
        "budget": budget,
        "scenarios": [sc.model_dump(mode="json", by_alias=True) for sc in scenarios],
        "logs": {str(sid): [e.model_dump(mode="json", by_alias=True) for e in entries]
                 for sid, entries in logs.items()},
        "queues": {str(sid): n for sid, n in queues.items()},
        "cursor": cursor,
    })


def decode_state(raw: bytes) -> SharedState | None:
    """The shared state, or None for anything that is not one (never raises)."""
    if len(raw) > STATE_MAX_BYTES:
        return None
    try:
        data = orjson.loads(raw)
        return SharedState(
            scenarios=[Scenario.model_validate(sc) for sc in data["scenarios"]],
            logs={int(sid): [ExecutionLog.model_validate(e) for e in entries]
                  for sid, entries in data["logs"].items()},
            queues={int(sid): None if n is None else int(n) for sid, n in data["queues"].items()},
            cursor=data["cursor"] if isinstance(data["cursor"], str) else None,
            budget=dict(data["budget"]),
        )
    except (ValueError, TypeError, KeyError, AttributeError, ValidationError):
        return None


@dataclass
class ClusterOptions:
    """The bus a hub runs on: a Redis client, this replica's name and the set's name."""

    redis: Any
    name: str  # the watched set (see `set_name`)
    holder: str  # this replica (see `makestream.bus.ledger.replica_name`)
    lease_s: float = 10.0
    maxlen: int = 10_000
    prefix: str = "makestream"
    # One line for the operator when this replica starts or stops polling (serve-sse: stderr).
    say: Callable[[str], None] | None = None


def set_name(account: str, scenario_ids: list[int], team_id: int | None) -> str:
    """The name of a watched set: the same for every replica with the same account and
    scenarios, different otherwise (two clusters can share one Redis)."""
    what = f"{account}|team={team_id}|ids={','.join(map(str, sorted(scenario_ids)))}"
    return hashlib.sha256(what.encode()).hexdigest()[:16]


def _bus_error(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class Cluster:
    """Runs a hub as one replica of several; see the module docstring."""

    def __init__(self, hub: Hub, options: ClusterOptions) -> None:
        self.hub = hub
        self.options = options
        self.log = EventLog(options.redis, options.name, maxlen=options.maxlen,
                            prefix=options.prefix)
        self.state_key = f"{options.prefix}:state:{options.name}"
        self.opened_key = f"{options.prefix}:opened:{options.name}"
        self.shared: SharedState | None = None
        self._shared_raw = b""  # the bytes `shared` was decoded from
        self.lease = Lease(options.redis, options.name, options.holder, ttl_s=options.lease_s,
                           prefix=options.prefix)
        self.holding = False
        self.bus_up = True
        self.bus_problem: str | None = None
        self.epoch: str | None = None  # the epoch the follower reads
        self.position = "0"  # the follower's last position
        self.stream_length = 0
        self.lag = 0  # events in the stream beyond the follower's position
        # The holder's events that Redis did not take (it did not answer), in order, to append
        # when it answers; published by nobody until then.
        self._unsent: deque[_Event] = deque()
        self._delivered: OrderedDict[str, None] = OrderedDict()
        self._fenced: str | None = None  # why the current watch's events may no longer land
        self._opened_line: bytes | None = None  # the last stream.opened that landed
        self._renewed_at = 0.0  # monotonic time of the last renewal Redis confirmed
        self._read = anyio.Event()  # set (and replaced) each time the follower read entries

    # -- the whole --------------------------------------------------------------------------

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._follow)
            tg.start_soon(self._lead)
            await self.hub.wait_closed()
            tg.cancel_scope.cancel()
        if self.holding:
            # The next holder need not wait for the lease to expire.
            with anyio.move_on_after(2, shield=True), contextlib.suppress(RedisError, OSError):
                await self.lease.release()

    def _down(self, exc: BaseException) -> None:
        """Redis did not answer: say so once, to the clients and on /readyz."""
        if not self.bus_up:
            return
        self.bus_up = False
        self.bus_problem = _bus_error(exc)
        self.hub.publish(StreamError(
            message=f"the bus is unreachable ({self.bus_problem}); serving what this replica "
            "has until it answers", error_type="bus", fatal=False,
            ts=self.hub.now_rfc3339(),
        ), ring=False)

    def _up(self) -> None:
        self.bus_up = True
        self.bus_problem = None

    def _say(self, message: str) -> None:
        if self.options.say is not None:
            self.options.say(message)

    # -- serving: follow the stream -------------------------------------------------------------

    async def _follow(self) -> None:
        look_at = 0.0
        while True:
            try:
                if self.epoch is None or time.monotonic() >= look_at:
                    await self._look_around()
                    look_at = time.monotonic() + LOOK_AROUND_S
                entries = await self.log.follow(self.position, block_ms=FOLLOW_BLOCK_MS)
            except _REDIS_TROUBLE as exc:
                self._down(exc)
                await anyio.sleep(RETRY_S)
                continue
            self._up()
            # Published as soon as read: the figures around them are looked at separately.
            for entry in entries:
                self.position = entry.id
                event = _decoded(entry.line)
                if event is not None:
                    self._publish(event, caught_up=len(entries) < READ_COUNT)
            if entries:
                self._read.set()
                self._read = anyio.Event()

    async def _look_around(self) -> None:
        """What the follower checks once in a while rather than before each read: the epoch (a
        new one means a new stream, read from its start), the stream's end (one below the
        follower's position means Redis came back without its last entries: read on from
        what it has), the length and this replica's lag, the state the holder
        shares, and (until the upstream opened here) the holder's last `stream.opened`."""
        epoch = await self.log.epoch()
        if epoch != self.epoch:
            self.epoch, self.position = epoch, "0"
        self.stream_length = await self.log.length()
        newest = await self.log.last()
        at, top = parse_id(self.position), parse_id(newest.id) if newest else None
        if at is not None and top is not None and at > top and newest is not None:
            self.position = newest.id
            at = top
        self.lag = max(0, top[0] - at[0]) if at and top else 0
        if not self.holding:
            raw = await self.options.redis.execute_command("GET", self.state_key)
            if raw is not None and bytes(raw) != self._shared_raw:  # decoded once per change
                self._shared_raw = bytes(raw)
                self.shared = decode_state(self._shared_raw) or self.shared
        if not self.hub.opened:
            # The stream may have trimmed its stream.opened away long ago.
            raw = await self.options.redis.execute_command("GET", self.opened_key)
            opened = _decoded(bytes(raw)) if raw is not None else None
            if isinstance(opened, StreamOpened):
                self.hub.apply(opened)

    def _publish(self, event: _Event, *, caught_up: bool = True) -> None:
        """Publish an event read from the bus, each run's end once on this replica."""
        if isinstance(event, ExecutionFinished) and event.execution_id:
            eid = f"{event.scenario_id}:{event.execution_id}"
            if eid in self._delivered:
                return
            self._delivered[eid] = None
            if len(self._delivered) > DELIVERED_MAX:
                self._delivered.popitem(last=False)
        if self.hub.options.recorder is not None:
            self.hub.options.recorder.offer(event, None)
        alerts = self.hub.options.watch.alerts
        if alerts is not None and not self.holding \
                and not isinstance(event, AlertRaised | AlertResolved):
            # Kept warm on every replica (its alerts are the holder's to tell): a replica that
            # takes over goes on counting failures in a row, and knows which alerts are open,
            # by the same ids.
            alerts.observe(event, self.hub.client.clock.now())
        self.hub.apply(event)
        if isinstance(event, StreamError) and event.fatal and caught_up:
            # The cluster's watch failed, as of now (not an old failure read on the way).
            self.hub.mark_started()

    # -- polling: hold the lease --------------------------------------------------------------

    async def _lead(self) -> None:
        hub = self.hub
        while not hub.closing:
            try:
                held = await self.lease.acquire()
            except _REDIS_TROUBLE as exc:
                self._down(exc)
                await anyio.sleep(RETRY_S)
                continue
            if held is None:
                self.holding = False
                await anyio.sleep(self.options.lease_s / 3)
                continue
            self.holding = True
            self._say(f"holds the lease (epoch {held.epoch}): this replica polls Make")
            try:
                failed = await self._poll()
            except _REDIS_TROUBLE as exc:  # before the watch began: let go, try again later
                self._down(exc)
                failed = False
                await anyio.sleep(RETRY_S)
            self.holding = False
            if not hub.closing:
                self._say("gave up the lease" + (" (the watch failed)" if failed else
                          f" ({self._fenced})" if self._fenced else ""))
            if failed and not hub.closing:
                # Give the lease up for the wait, so that another replica may try.
                with contextlib.suppress(*_REDIS_TROUBLE):
                    await self.lease.release()
                with anyio.move_on_after(hub.options.retry_after_error_s):
                    await hub.wait_closed()

    async def _poll(self) -> bool:
        """Run the watch while this replica holds the lease; True if it failed."""
        hub = self.hub
        self._renewed_at = time.monotonic()
        epoch = await self.log.epoch()
        last = await self.log.last()
        if last is not None:
            # Read up to where the watch resumes first: the alert rules and the seq are then
            # those of the stream's end.
            with anyio.move_on_after(CATCH_UP_S):
                while (parse_id(self.position) or (0, 0)) < (parse_id(last.id) or (0, 0)):
                    await self._read.wait()
        resume = hub.options.watch.resume
        first_seq = hub.seq
        if last is not None:
            at = parse_id(last.id)
            first_seq = max(first_seq, at[0] if at else 0)
        if last is None and hub.last_cursor is not None:
            # This replica read a stream that Redis no longer has.
            carried = await self._carry_over(epoch, first_seq)
            if carried is None:
                return False  # the lease is another replica's by now
            self._say(f"Redis lost the stream (new epoch {epoch}): {carried - first_seq} "
                      "recent runs appended again for replicas that had not read them")
            first_seq = carried
        for text in (last.cursor if last is not None else None, hub.last_cursor):
            try:
                if text:
                    resume = Cursor.decode(text)
                    break
            except UsageError:
                continue  # not a cursor of ours: the next best, or the start's
        base = hub.options.watch
        watch = Watch(hub.client, replace(base, resume=resume, stream_key=epoch,
                                          first_seq=first_seq))
        watch.known_scenarios = hub.known_scenarios()
        watch.on_logs = hub.record_logs
        hub.watch, hub.running = watch, True
        hub.stats.upstream_starts += 1
        failed, self._fenced = False, None
        self._unsent.clear()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch.run)
                tg.start_soon(self._keep_lease, watch, epoch)
                tg.start_soon(self._share_state)
                async for event in watch.events:
                    if isinstance(event, StreamClosed):
                        # Not put in the stream: this replica's watch ends, the cluster's does
                        # not (the next holder goes on).
                        failed = watch.outcome.error is not None and not hub.closing
                        break
                    if self._fenced is None:  # see `_fence`: nothing after a refusal lands
                        await self._append(event, watch)
                tg.cancel_scope.cancel()
        finally:
            watch.events.close()
            hub.running = False
        return failed

    async def _carry_over(self, epoch: str, first_seq: int) -> int | None:
        """Redis lost the stream (it came back empty, under a new epoch). The watch resumes from
        this replica's cursor, which counts every run this replica read; a replica that had
        not read the last of them when they were lost would never publish them. So the runs
        among this replica's last CARRY_OVER_EVENTS events go into the new stream first, at
        the next positions, each with its own cursor under the new epoch; replicas that have
        them drop them (each run once). Alert sinks heard of them when they first landed.
        All of them land or none: a next holder that found only some would resume from the
        last one's cursor, older than this replica's, and count its later runs again. Returns
        the seq the watch goes on from, or None if Redis no longer names this replica the
        holder (or another holder has begun the stream)."""
        seq = first_seq
        copies: list[tuple[bytes, str, str]] = []
        for event in self.hub.recent(min(CARRY_OVER_EVENTS, self.options.maxlen)):
            if not isinstance(event, ExecutionFinished) or not event.cursor:
                continue
            seq += 1
            positions = event.cursor.rpartition("~")[0]
            cursor = f"{positions}~{epoch}.{seq}"
            copy = event.model_copy(update={"seq": seq, "cursor": cursor})
            copies.append((encode(copy), cursor, f"{seq}-0"))
        if copies and not await self.log.append_all(copies, self.lease):
            return None
        return seq

    async def _append(self, event: _Event, watch: Watch) -> None:
        """Put one event in the stream; with Redis away, keep it (in order) for later."""
        if self._unsent:
            self._keep(event, watch)
            return
        try:
            landed = await self._put(event)
        except _REDIS_TROUBLE as exc:
            self._down(exc)
            self._keep(event, watch)
            return
        if landed:
            self._landed(event)
        else:
            self._fence(watch, LEASE_LOST)

    async def _put(self, event: _Event) -> bool:
        """Append one event at its seq while this replica holds the lease: True if it is in
        the stream (also when an earlier try whose answer was lost put it there)."""
        try:
            return await self.log.append(encode(event), event.cursor or "", self.lease,
                                         at=f"{event.seq}-0") is not None
        except ResponseError as exc:
            if "equal or smaller" not in str(exc):
                raise  # Redis refusing for its own reasons (read-only, out of memory): trouble
            there = await self.log.at(f"{event.seq}-0")
            return there is not None and there.cursor == (event.cursor or "")

    def _landed(self, event: _Event) -> None:
        """An event is in the stream: only now do the alert sinks hear of it (once for the
        cluster), and a `stream.opened` is kept apart for replicas that start later."""
        self.hub.offer_sinks(event)
        if isinstance(event, StreamOpened):
            self._opened_line = encode(event)

    def _keep(self, event: _Event, watch: Watch) -> None:
        """Keep an event Redis did not take. Moments (progress, heartbeats) are gone by the
        time it answers and are not kept; past `maxlen` kept events the watch stops (the next
        resumes from the stream) rather than drop any."""
        if event.type in EPHEMERAL:
            return
        if len(self._unsent) >= self.options.maxlen:
            self._fence(watch, "too much to keep while Redis did not answer")
            return
        self._unsent.append(event)

    def _fence(self, watch: Watch, reason: str) -> None:
        """Stop this watch: the bus refused one of its events (the lease lapsed), or it can no
        longer vouch for what it holds. None of its later events may land even if this
        replica takes the lease back at once, since a later event's cursor counts the refused
        one as delivered; what it kept is dropped. The next watch resumes from the stream, and
        finds those runs again."""
        if self._fenced is None:
            self._fenced = reason
        self._unsent.clear()
        watch.stop(reason)

    async def _keep_lease(self, watch: Watch, epoch: str) -> None:
        """Renew the lease while the watch runs, and append what Redis missed once it is back.

        A holder cut off from Redis for longer than the lease cannot know whether another
        replica holds it by now: it stops polling."""
        pause = self.options.lease_s / 3
        while True:
            await anyio.sleep(pause if not self._unsent else 0.05)
            try:
                with anyio.fail_after(max(0.5, pause)):
                    renewed = await self.lease.renew()
                    if not renewed:
                        # Redis lost the lease (a restart), or it lapsed: take it back if it is
                        # free, else stop.
                        renewed = await self.lease.acquire() is not None
                if not renewed:
                    self._fence(watch, LEASE_LOST)
                    return
                self._renewed_at = time.monotonic()
                if await self.log.epoch() != epoch:
                    self._fence(watch, EPOCH_CHANGED)  # the next watch takes the new key
                    return
                for _ in range(min(FLUSH_CHUNK, len(self._unsent))):
                    event = self._unsent[0]
                    if not await self._put(event):
                        self._fence(watch, LEASE_LOST)
                        return
                    self._unsent.popleft()
                    self._landed(event)
            except _REDIS_TROUBLE as exc:
                self._down(exc)
                if time.monotonic() - self._renewed_at > self.options.lease_s:
                    self._fence(watch, "Redis did not answer for longer than the lease")
                    return
                pause = 0.5  # try again soon: the lease is running out
                continue
            pause = self.options.lease_s / 3
            self._up()

    async def _share_state(self) -> None:
        """Put what /v1/state shows where the other replicas read it, every SHARE_STATE_S;
        and the last `stream.opened`, for replicas whose stream no longer holds it."""
        ttl_ms = max(1000, round(self.options.lease_s * 3000))
        while True:
            await anyio.sleep(SHARE_STATE_S)
            scenarios, logs, queues = self.hub.state_inputs()
            budget = build_state([], {}, {}, self.hub.client.budget.snapshot(),
                                 now=self.hub.client.clock.now())["budget"]
            raw = encode_state(scenarios, logs, queues, self.hub.last_cursor, budget)
            with contextlib.suppress(*_REDIS_TROUBLE):
                if len(raw) <= STATE_MAX_BYTES:
                    await self.options.redis.execute_command("SET", self.state_key, raw,
                                                             "PX", ttl_ms)
                if self._opened_line is not None:
                    await self.options.redis.execute_command("SET", self.opened_key,
                                                             self._opened_line)

    # -- reports -------------------------------------------------------------------------------

    def readiness(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "bus": "up" if self.bus_up else "down",
            "lease": "held" if self.holding else "follower",
        }
        if self.bus_problem:
            body["bus_error"] = "unreachable"
        return body


def _decoded(line: bytes) -> _Event | None:
    """An entry's event, or None for one that is not (too long, not an event of ours)."""
    if len(line) > NDJSON_LINE_MAX_BYTES:
        return None
    try:
        return decode(line)
    except ValueError:
        return None

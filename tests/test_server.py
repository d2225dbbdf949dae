"""The SSE server in process: a real uvicorn on a free loopback port, a simulated Make zone.

`httpx.ASGITransport` buffers whole responses, so the server under test always listens on a real
socket and clients read it with `httpx.AsyncClient.stream`. The zone and the server share one
fast clock: simulated minutes pass in seconds, and runs finish every fraction of a second.
"""

from __future__ import annotations

import hmac
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from unittest import mock

import anyio
import anyio.lowlevel
import httpx
import pytest

from makestream.clock import Clock
from makestream.engine.watch import WatchOptions
from makestream.events import StreamHeartbeat, decode
from makestream.make.budget import Budget
from makestream.make.client import MakeClient, Token
from makestream.server import AppOptions, Hub, HubOptions, Metrics, bind, create_app, runner, serve
from makestream.sim import DEMO_TOKEN, SimZone, demo_world

pytestmark = pytest.mark.anyio
SPEED = 30.0


# -- a strict SSE reader -------------------------------------------------------------------------


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: dict[str, Any]


class SseReader:
    """Reads one response as the SSE spec frames it, and fails on anything off the contract:
    unknown fields, a block without exactly one event and one data line, data that is not the
    event's NDJSON line, an id that is not the event's cursor."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        self._lines = response.aiter_lines()
        self.retry: int | None = None
        self.comments: list[str] = []
        self.blocks = 0

    async def _line(self) -> str | None:
        try:
            return await self._lines.__anext__()
        except StopAsyncIteration:
            return None

    async def next(self) -> SseEvent | None:
        """The next event, or None at the end of the stream."""
        fields: dict[str, list[str]] = {}
        while True:
            line = await self._line()
            if line is None:
                assert not fields, "stream ended inside a block"
                return None
            if line == "":
                if not fields:
                    continue
                self.blocks += 1
                if set(fields) == {"retry"}:
                    assert self.blocks == 1, "retry comes first"
                    self.retry = int(fields["retry"][0])
                    fields = {}
                    continue
                return self._event(fields)
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, colon, value = line.partition(":")
            assert colon, f"not a field: {line!r}"
            assert name in ("id", "event", "data", "retry"), f"unknown field {name!r}"
            fields.setdefault(name, []).append(value.removeprefix(" "))

    def _event(self, fields: dict[str, list[str]]) -> SseEvent:
        assert set(fields) <= {"id", "event", "data"}, fields
        assert len(fields.get("event", [])) == 1 and len(fields.get("data", [])) == 1, fields
        assert len(fields.get("id", [])) <= 1
        data = json.loads(fields["data"][0])
        assert data["type"] == fields["event"][0]
        decode(fields["data"][0])  # valid against the event contract
        event_id = fields["id"][0] if "id" in fields else None
        if event_id is not None:
            assert event_id == data["cursor"]
        return SseEvent(event_id, fields["event"][0], data)

    async def until(self, done: Callable[[list[SseEvent]], bool],
                    events: list[SseEvent] | None = None) -> list[SseEvent]:
        events = [] if events is None else events
        while not done(events):
            event = await self.next()
            assert event is not None, "the stream ended early"
            events.append(event)
        return events


def finished_ids(events: list[SseEvent]) -> list[str]:
    return [e.data["execution_id"] for e in events if e.event == "execution.finished"]


def count_finished(n: int) -> Callable[[list[SseEvent]], bool]:
    return lambda events: len(finished_ids(events)) >= n


# -- a server under test -------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    hub: Hub
    zone: SimZone
    metrics: Metrics
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def http(self, **kw: Any) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(30.0), **kw)
        self.clients.append(client)
        return client


@asynccontextmanager
async def sse_server(
    *, speed: float = SPEED, scenarios: list[int] | None = None, team: int | None = None,
    hub: dict[str, Any] | None = None, app: dict[str, Any] | None = None,
    revoke_after: float | None = None, limits: runner.ConnectionLimits | None = None,
    watch: dict[str, Any] | None = None,
) -> AsyncIterator[Served]:
    zone = SimZone(demo_world(), clock=Clock(speed), seed=1)
    zone.faults.revoke_after = revoke_after
    hubs: list[Hub] = []
    client = MakeClient(
        "http://sim.test/api/v2", Token(DEMO_TOKEN), budget=Budget(60, clock=zone.clock),
        clock=zone.clock, transport=httpx.ASGITransport(app=zone.app),
        observer=lambda n: hubs[0].on_notice(n) if hubs else None,
    )
    if scenarios is None and team is None:
        scenarios = [s.id for s in zone.world.scenarios]
    metrics = Metrics()
    the_hub = Hub(client, HubOptions(
        watch=WatchOptions(scenario_ids=scenarios or [], team_id=team, **(watch or {})),
        **(hub or {})
    ), metrics)
    hubs.append(the_hub)
    web = create_app(the_hub, AppOptions(**(app or {})), metrics)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    served = Served(f"http://127.0.0.1:{port}", the_hub, zone, metrics)
    async with client, anyio.create_task_group() as tg:
        tg.start_soon(the_hub.run)
        assert await the_hub.started() is None
        tg.start_soon(partial(serve, web, the_hub, sock, shutdown_timeout_s=5,
                              handle_signals=False,
                              limits=limits or runner.ConnectionLimits()))
        try:
            yield served
        finally:
            for http in served.clients:
                await http.aclose()
            the_hub.close()


async def wait_for(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Poll state the server owns (it offers no event to wait on)."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.02)


# -- the stream ----------------------------------------------------------------------------------


async def test_events_are_well_formed_sse_with_a_retry_hint() -> None:
    async with sse_server() as srv:
        async with srv.http().stream("GET", "/v1/events") as response:
            assert response.headers["cache-control"] == "no-cache"
            reader = SseReader(response)
            events = await reader.until(count_finished(3))
            assert reader.retry == 3000
        seqs = [e.data["seq"] for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert all(e.id for e in events)
        assert "execution.finished" in {e.event for e in events}


async def test_heartbeat_comments_when_nothing_happens() -> None:
    # A filter nothing matches keeps the stream silent but for the pings.
    async with sse_server(app={"heartbeat_s": 0.1}) as srv, \
            srv.http().stream("GET", "/v1/events?type=module.result") as response:
        reader = SseReader(response)
        with anyio.move_on_after(1.0):
            await reader.next()
        assert reader.comments.count("ping") >= 3


async def test_scenario_and_type_filters() -> None:
    async with sse_server() as srv:
        url = "/v1/events?scenario=104,101&scenario=103&type=execution.finished&type=stream.*"
        async with srv.http().stream("GET", url) as response:
            events = await SseReader(response).until(count_finished(3))
        for event in events:
            assert event.event == "execution.finished" or event.event.startswith("stream.")
            if event.event == "execution.finished":
                assert event.data["scenario_id"] in (101, 103, 104)


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("scenario=abc", 400, "scenario: 'abc' is not a scenario id"),
        ("type=execution.nope", 400, "type: 'execution.nope' is not an event type"),
        ("cursor=garbage", 400, "invalid cursor"),
        ("scenario=999", 403, "scenario 999 is not served here"),
    ],
)
async def test_bad_requests_get_a_one_line_json_error(query: str, status: int, error: str) -> None:
    async with sse_server() as srv:
        response = await srv.http().get(f"/v1/events?{query}")
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert list(body) == ["error"] and body["error"].startswith(error)
        assert "\n" not in response.text


# -- replay --------------------------------------------------------------------------------------


async def _reconnect_case(srv: Served) -> tuple[list[str], list[str], list[str]]:
    """Client A reads, drops out mid-stream and reconnects with its last id, while client B
    stays. Returns A's finished ids before and after, and what A missed according to B."""
    http = srv.http()
    async with http.stream("GET", "/v1/events") as witness:
        b_reader = SseReader(witness)
        b_events: list[SseEvent] = []
        async with http.stream("GET", "/v1/events") as first:
            a_before = await SseReader(first).until(count_finished(2))
        last_id = a_before[-1].id
        assert last_id is not None
        # B reaches A's last event, then sees four more runs end while A is away.
        await b_reader.until(lambda evs: any(e.id == last_id for e in evs), b_events)
        at = next(i for i, e in enumerate(b_events) if e.id == last_id)
        await b_reader.until(lambda evs: len(finished_ids(evs[at + 1:])) >= 4, b_events)
        missed = finished_ids(b_events[at + 1:])
        async with http.stream("GET", "/v1/events", headers={"Last-Event-ID": last_id}) as again:
            a_after = await SseReader(again).until(
                lambda evs: set(missed) <= set(finished_ids(evs)))
    return finished_ids(a_before), finished_ids(a_after), missed


def _seq_grows(events: list[Any]) -> None:
    """seq only grows within one connection, whatever it replays (the event format's promise)."""
    seqs = [e.data["seq"] for e in events if isinstance(e.data, dict) and "seq" in e.data]
    assert seqs == sorted(set(seqs)), f"seq not strictly increasing: {seqs}"


def _exactly_the_missed(srv: Served, before: list[str], after: list[str],
                        missed: list[str]) -> None:
    together = before + after
    duplicated = [eid for eid, n in Counter(together).items() if n > 1]
    assert not duplicated, f"delivered twice: {duplicated}"
    assert set(missed) <= set(after)
    # Anything beyond what B saw is a run that really ended since (the catch-up may find runs
    # in Make's logs before the live watch reports them).
    truth = {r.execution_id for r in srv.zone.truth()}
    assert set(after) <= truth


async def test_last_event_id_replays_from_the_ring_exactly_the_missed_runs() -> None:
    async with sse_server() as srv:
        before, after, missed = await _reconnect_case(srv)
        _exactly_the_missed(srv, before, after, missed)
        assert srv.hub.stats.catchups == 0
        # The ring replays in order: what A gets after reconnecting is what B got.
        assert after[: len(missed)] == missed


async def test_last_event_id_past_the_ring_replays_from_make_logs() -> None:
    # A ring of a few events forgets A's position while it is away.
    async with sse_server(hub={"ring_size": 3}) as srv:
        before, after, missed = await _reconnect_case(srv)
        _exactly_the_missed(srv, before, after, missed)
        assert srv.hub.stats.catchups == 1


async def test_seq_grows_across_a_catch_up_on_a_young_server() -> None:
    # Replayed runs come first with small numbers; the live events, however young the
    # upstream, are numbered above every replayed one.
    async with sse_server(hub={"ring_size": 2}) as srv:
        async with srv.http().stream("GET", "/v1/events") as response:
            first = await SseReader(response).until(count_finished(1))
        cursor = first[0].data["cursor"].rsplit("~", 1)[0] + "~0badc0de.1"
        async with srv.http().stream("GET", "/v1/events?cursor=" + cursor) as response:
            events = await SseReader(response).until(count_finished(4))
        _seq_grows(events)
        assert srv.hub.stats.catchups == 1


async def test_cursor_from_another_stream_replays_from_make_logs() -> None:
    async with sse_server() as srv:
        async with srv.http().stream("GET", "/v1/events") as response:
            events = await SseReader(response).until(count_finished(4))
        first, rest = events[0], finished_ids(events[1:])
        # The same position under a stream key this server never had (a restarted server).
        foreign = first.data["cursor"].rsplit("~", 1)[0] + "~0badc0de.1"
        url = "/v1/events?type=execution.finished&cursor=" + foreign
        async with srv.http().stream("GET", url) as response:
            replayed = await SseReader(response).until(lambda evs: set(rest) <= set(
                finished_ids(evs)))
        ids = finished_ids(replayed)
        assert len(ids) == len(set(ids))
        assert srv.hub.stats.catchups == 1


# -- fan-out -------------------------------------------------------------------------------------


async def _requests_over(srv: Served, seconds: float) -> int:
    start = srv.zone.request_count()
    await anyio.sleep(seconds)
    return srv.zone.request_count() - start


def _seq(cursor: str | None) -> int:
    assert cursor is not None
    return int(cursor.rsplit(".", 1)[1])


async def test_two_hundred_clients_get_every_event_once_for_the_requests_of_one() -> None:
    n, window = 200, 3.0
    async with sse_server() as srv:
        http = srv.http(limits=httpx.Limits(max_connections=n + 10))
        async with http.stream("GET", "/v1/events") as response:
            await SseReader(response).until(count_finished(1))
            one = await _requests_over(srv, window)
        await wait_for(lambda: srv.hub.client_count == 0)

        received: list[list[int]] = [[] for _ in range(n)]
        stop_at: list[int] = []

        async def client(i: int) -> None:
            async with http.stream("GET", "/v1/events") as response:
                reader = SseReader(response)
                while not stop_at or not received[i] or received[i][-1] < stop_at[0]:
                    event = await reader.next()
                    assert event is not None
                    received[i].append(event.data["seq"])

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(client, i)
            await wait_for(lambda: srv.hub.client_count == n)
            first = _seq(srv.hub.last_cursor) + 1
            many = await _requests_over(srv, window)
            stop_at.append(_seq(srv.hub.last_cursor))
        assert srv.hub.stats.upstream_starts == 1 and srv.hub.stats.lagged == 0
    # Every client got every event of the window, in order, once.
    expected = list(range(first, stop_at[0] + 1))
    assert len(expected) >= 5
    for seqs in received:
        assert [s for s in seqs if first <= s <= stop_at[0]] == expected
    # Make sees the requests of one watch however many clients listen.
    # (Fewer is fine: 200 readers slow a 2-core machine's loop, and the budget paces by clock.)
    assert one > 0 and many <= max(one + 4, one * 1.25), (one, many)


async def test_a_client_that_stops_reading_is_dropped_and_the_others_keep_pace() -> None:
    queue = 200
    async with sse_server(hub={"queue_size": queue}, app={"send_timeout_s": 30}) as srv:
        host, port = srv.url.removeprefix("http://").split(":")
        # A raw socket with a small receive buffer fills up fast when nobody reads it.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect((host, int(port)))
        slow.sendall(b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        http = srv.http()
        async with http.stream("GET", "/v1/events") as fast:
            reader = SseReader(fast)
            await wait_for(lambda: srv.hub.client_count == 2)
            # Flood: far more than the slow client's socket buffers (4 MiB at most) and its
            # queue can hold, at a pace a reading client keeps up with.
            pad = "x" * 8_000
            total = 1100
            started = time.monotonic()

            async def flood() -> None:
                for i in range(total):
                    srv.hub.publish(StreamHeartbeat(seq=i + 1, cursor=f"1.x~flood.{i + 1}",
                                                    running=i, pad=pad))
                    if i % 5 == 0:
                        await anyio.sleep(0.005)

            got = 0
            async with anyio.create_task_group() as tg:
                tg.start_soon(flood)
                while got < total:
                    event = await reader.next()
                    assert event is not None and event.event != "stream.lagged"
                    if event.data.get("pad"):
                        assert event.data["running"] == got
                        got += 1
            elapsed = time.monotonic() - started
            assert srv.hub.stats.lagged == 1 and srv.hub.client_count == 1
            assert elapsed < 15
        # The slow client, reading at last, finds its stream ending with stream.lagged.
        def read_all() -> bytes:
            slow.settimeout(10)
            data = b""
            while chunk := slow.recv(1 << 20):
                data += chunk
            return data

        data = await anyio.to_thread.run_sync(read_all)
        slow.close()
        tail = data.rsplit(b"event: ", 1)[1]
        assert tail.startswith(b"stream.lagged\ndata: ")
        lagged = json.loads(tail.split(b"data: ", 1)[1].split(b"\n", 1)[0])
        assert lagged["type"] == "stream.lagged" and lagged["cursor"]
        assert b"id: " not in data.rsplit(b"\n\n", 2)[-2]  # the lagged block keeps the last id


async def test_a_frozen_client_is_cut_off_by_the_send_timeout() -> None:
    async with sse_server(hub={"queue_size": 100_000}, app={"send_timeout_s": 0.5}) as srv:
        host, port = srv.url.removeprefix("http://").split(":")
        frozen = socket.socket()
        frozen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        frozen.connect((host, int(port)))
        frozen.sendall(b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await wait_for(lambda: srv.hub.client_count == 1)
        await _flood_letting_the_server_write(srv, 3000, pad=2000)
        await wait_for(lambda: srv.hub.client_count == 0, within=10)
        frozen.close()
        assert srv.metrics.registry.get_sample_value("makestream_sse_lagged_clients_total") == 1


# -- idle upstream -------------------------------------------------------------------------------


async def test_upstream_stops_without_listeners_and_resumes_without_loss() -> None:
    async with sse_server(hub={"idle_stop_s": 0.3}) as srv:
        http = srv.http()
        async with http.stream("GET", "/v1/events") as response:
            before = await SseReader(response).until(count_finished(2))
        await wait_for(lambda: not srv.hub.running)
        idle = await _requests_over(srv, 1.0)
        assert idle == 0
        truth_before = {r.execution_id for r in srv.zone.truth()}
        await anyio.sleep(1.0)  # runs end while nobody watches
        ended_meanwhile = {r.execution_id for r in srv.zone.truth()
                           if r.ended_at < srv.zone.clock.now()} - truth_before
        last_id = before[-1].id
        async with http.stream("GET", "/v1/events", headers={"Last-Event-ID": last_id}) as again:
            after = await SseReader(again).until(
                lambda evs: ended_meanwhile <= set(finished_ids(evs))
                and any(e.event == "stream.opened" for e in evs))
        assert srv.hub.stats.upstream_starts == 2
        ids = finished_ids(before) + finished_ids(after)
        assert len(ids) == len(set(ids))
        # The restarted upstream goes on numbering: its stream.opened follows the replay.
        _seq_grows(before)
        _seq_grows(after)
        assert after[0].data["seq"] > before[-1].data["seq"]


async def test_a_fatal_upstream_error_ends_the_streams_and_readyz_tells() -> None:
    # The token is revoked a simulated minute in: the watch cannot go on.
    async with sse_server(revoke_after=60, hub={"retry_after_error_s": 600}) as srv:
        http = srv.http()
        async with http.stream("GET", "/v1/events") as response:
            events = await SseReader(response).until(
                lambda evs: bool(evs) and evs[-1].event == "stream.closed")
        [fatal] = [e for e in events if e.event == "stream.error" and e.data["fatal"]]
        assert DEMO_TOKEN not in fatal.data["message"]
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "failed"
        assert ready.json()["error"] == "upstream unreachable"  # not Make's words: it is open
        refused = await http.get("/v1/events")
        assert refused.status_code == 503 and "Retry-After" in refused.headers
        assert refused.json()["error"].startswith("upstream failed: ")


# -- other endpoints -----------------------------------------------------------------------------


async def test_state_health_ready_and_metrics() -> None:
    async with sse_server() as srv:
        http = srv.http()
        async with http.stream("GET", "/v1/events") as response:
            await SseReader(response).until(count_finished(2))
        requests = srv.zone.request_count()
        state = (await http.get("/v1/state?scenario=104&last=3")).json()
        assert srv.zone.request_count() == requests  # built from what the watch knows
        assert set(state) == {"v", "generated_at", "scenarios", "budget", "alerts", "cursor"}
        assert state["alerts"] == []  # this hub evaluates no thresholds
        assert isinstance(state["cursor"], str) and state["cursor"]  # /v1/events?cursor= resumes
        [entry] = state["scenarios"]
        assert entry["scenario_id"] == 104 and 1 <= len(entry["last_executions"]) <= 3
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        metrics = (await http.get("/metrics")).text
        assert 'makestream_events_total{type="execution.finished"}' in metrics
        assert 'makestream_executions_total{scenario_id="104",status=' in metrics
        assert 'makestream_api_requests_total{code="200",endpoint="/scenarios/{id}/logs",' \
            'method="GET"}' in metrics
        assert "makestream_sse_clients 0.0" in metrics
        assert "makestream_api_budget_per_minute 48.0" in metrics  # 80% of 60
        assert "makestream_detection_latency_seconds_count" in metrics
        assert "execution_id" not in metrics
        assert "_created" not in metrics


# -- security ------------------------------------------------------------------------------------

TOKEN = "s3cret-token-for-tests"


async def test_bearer_token_and_query_token() -> None:
    async with sse_server(app={"token": TOKEN}) as srv:
        http = srv.http()
        for path in ("/v1/events", "/v1/state", "/metrics"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                response = await http.get(path, headers=headers)
                assert response.status_code == 401
                assert response.json() == {"error": "unauthorized"}
        assert (await http.get("/v1/state?access_token=" + TOKEN)).status_code == 401
        ok = await http.get("/v1/state", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        for url, headers in (("/v1/events", {"Authorization": f"Bearer {TOKEN}"}),
                             (f"/v1/events?access_token={TOKEN}", {})):
            async with http.stream("GET", url, headers=headers) as response:
                await SseReader(response).until(lambda evs: bool(evs))
        for open_path in ("/", "/healthz", "/readyz", "/static/app.js"):
            assert (await http.get(open_path)).status_code == 200


async def test_tokens_are_compared_in_constant_time() -> None:
    async with sse_server(app={"token": TOKEN}) as srv:
        with mock.patch("hmac.compare_digest", wraps=hmac.compare_digest) as spy:
            response = await srv.http().get("/v1/events?access_token=guess")
        assert response.status_code == 401
        spy.assert_called_once_with(b"guess", TOKEN.encode())


async def test_cors_only_for_listed_origins() -> None:
    allowed = "https://dash.example.com"
    async with sse_server(app={"allow_origins": [allowed]}) as srv:
        http = srv.http()
        response = await http.get("/v1/state", headers={"Origin": allowed})
        assert response.headers["access-control-allow-origin"] == allowed
        other = await http.get("/v1/state", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers
        async with http.stream("GET", "/v1/events", headers={"Origin": allowed}) as stream:
            assert stream.headers["access-control-allow-origin"] == allowed
        preflight = await http.options("/v1/events", headers={
            "Origin": allowed, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id"})
        assert preflight.status_code == 200
    async with sse_server() as srv:
        response = await srv.http().get("/v1/state", headers={"Origin": allowed})
        assert "access-control-allow-origin" not in response.headers


async def test_only_get_and_head_reach_the_event_stream() -> None:
    async with sse_server() as srv:
        http = srv.http()
        head = await http.head("/v1/events")
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        post = await http.post("/v1/events")
        assert post.status_code == 405


async def test_connection_caps() -> None:
    async with sse_server(app={"max_clients": 3, "max_per_address": 2}) as srv:
        http = srv.http()
        async with http.stream("GET", "/v1/events") as a, http.stream("GET", "/v1/events") as b:
            assert a.status_code == b.status_code == 200
            third = await http.get("/v1/events")
            assert third.status_code == 429 and "Retry-After" in third.headers
            assert third.json() == {"error": "too many connections from this address"}
            # The peer address counts, not what a client claims to be forwarded for.
            forged = await http.get("/v1/events", headers={"X-Forwarded-For": "192.0.2.7"})
            assert forged.status_code == 429
        # The first two are gone: there is room again.
        async with http.stream("GET", "/v1/events") as again:
            assert again.status_code == 200
    async with sse_server(app={"max_clients": 1}) as srv:
        http = srv.http()
        async with http.stream("GET", "/v1/events") as first:
            assert first.status_code == 200
            second = await http.get("/v1/events")
            assert second.status_code == 503 and second.json() == {"error": "too many clients"}


async def test_shutdown_ends_every_stream_with_stream_closed() -> None:
    async with sse_server() as srv:
        http = srv.http()
        async with http.stream("GET", "/v1/events") as one, \
                http.stream("GET", "/v1/events?type=execution.finished") as two:
            readers = [SseReader(one), SseReader(two)]
            await readers[0].until(lambda evs: bool(evs))
            srv.hub.close()
            for reader in readers:
                events = await reader.until(lambda evs: bool(evs) and evs[-1].event
                                            == "stream.closed")
                assert events[-1].data["reason"] == "server shutting down"
                assert await reader.next() is None


# -- the direct-write path (httptools) -------------------------------------------------------------


def _raw_client(url: str, request: bytes, rcvbuf: int | None = None) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    sock.sendall(request)
    return sock


def _read(sock: socket.socket, seconds: float, rate: float | None = None) -> bytes:
    """Read for `seconds`, at most `rate` bytes a second if given."""
    sock.settimeout(0.05)
    data = b""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        allowed = 1 << 16
        if rate is not None:
            allowed = min(allowed, int((time.monotonic() - start) * rate) - len(data))
            if allowed <= 0:
                time.sleep(0.01)
                continue
        try:
            chunk = sock.recv(allowed)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    return data


async def _flood_letting_the_server_write(srv: Served, count: int, pad: int) -> None:
    """Publish `count` padded events, yielding now and then so that the writes go out."""
    for i in range(count):
        srv.hub.publish(StreamHeartbeat(seq=i + 1, cursor=f"1.x~flood.{i + 1}", pad="x" * pad))
        if i % 100 == 0:
            await anyio.lowlevel.checkpoint()


def _flood(srv: Served, count: int, pad: int = 0) -> None:
    for i in range(count):
        srv.hub.publish(StreamHeartbeat(seq=i + 1, cursor=f"1.x~flood.{i + 1}", running=i,
                                        **({"pad": "x" * pad} if pad else {})))


async def test_live_events_are_written_to_the_connection_directly() -> None:
    async with sse_server() as srv:
        http = srv.http()
        async with http.stream("GET", "/v1/events") as response:
            reader = SseReader(response)
            await reader.until(lambda events: any(e.event == "stream.heartbeat" for e in events)
                               or len(events) > 2)
            [sub] = srv.hub._subs
            assert sub.direct is not None and sub.queue is None
            _flood(srv, 3)
            got = await reader.until(lambda events: sum(
                1 for e in events if e.id and e.id.startswith("1.x~flood")) == 3)
            assert [e.data["running"] for e in got if e.id and "flood" in e.id] == [0, 1, 2]


async def test_a_pipelined_request_does_not_silence_the_stream() -> None:
    # A second request sent while the stream is open must neither divert the stream's writes
    # nor hide the client's hang-up.
    async with sse_server(app={"heartbeat_s": 5}) as srv:
        sock = _raw_client(srv.url, b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                                    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await wait_for(lambda: srv.hub.client_count == 1)
        _flood(srv, 5)
        data = await anyio.to_thread.run_sync(_read, sock, 1.0)
        assert data.count(b"event: stream.heartbeat") >= 5
        sock.close()
        await wait_for(lambda: srv.hub.client_count == 0, within=5)


async def test_a_busy_stream_gets_no_heartbeat_comments() -> None:
    async with sse_server(app={"heartbeat_s": 0.3}) as srv:
        sock = _raw_client(srv.url, b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await wait_for(lambda: srv.hub.client_count == 1)

        async def busy() -> None:
            for i in range(150):  # an event every 10 ms: never idle for 0.3 s
                srv.hub.publish(StreamHeartbeat(seq=i + 1, cursor=f"1.x~busy.{i + 1}"))
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            tg.start_soon(busy)
            data = await anyio.to_thread.run_sync(_read, sock, 1.2)
        sock.close()
        assert data.count(b"1.x~busy") >= 50
        assert b": ping" not in data


async def test_a_slow_but_steady_reader_survives_a_burst_longer_than_the_send_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 300 KB at once to a client that reads 100 KB/s: it needs three times the send timeout to
    # take it all, but takes some of it all the time, so it is not stuck. Small socket buffers
    # on both sides, so that the burst waits in the server, not in the kernel.
    protocol = runner._protocol()

    class SmallSendBuffer(protocol):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: Any) -> None:
            transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
            super().connection_made(transport)

    monkeypatch.setattr(runner, "_protocol", lambda: SmallSendBuffer)
    async with sse_server(app={"send_timeout_s": 1, "heartbeat_s": 5}) as srv:
        sock = _raw_client(srv.url, b"GET /v1/events?type=stream.heartbeat HTTP/1.1\r\n"
                                    b"Host: 127.0.0.1\r\n\r\n", rcvbuf=4096)
        await wait_for(lambda: srv.hub.client_count == 1)
        async with anyio.create_task_group() as tg:
            got: list[bytes] = []

            async def read() -> None:
                got.append(await anyio.to_thread.run_sync(_read, sock, 5.0, 100_000))

            tg.start_soon(read)
            _flood(srv, 150, pad=2000)
        sock.close()
        assert got[0].count(b"id: 1.x~flood") == 150
        assert srv.hub.stats.lagged == 0


async def test_a_lagging_client_that_also_times_out_is_counted_once() -> None:
    async with sse_server(hub={"queue_size": 200}, app={"send_timeout_s": 0.5}) as srv:
        frozen = _raw_client(srv.url, b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                             rcvbuf=4096)
        await wait_for(lambda: srv.hub.client_count == 1)
        await _flood_letting_the_server_write(srv, 3000, pad=2000)
        await wait_for(lambda: srv.hub.client_count == 0, within=10)
        await anyio.sleep(1.0)  # the stream's own end, after its send timeout
        frozen.close()
        assert srv.hub.stats.lagged == 1
        assert srv.metrics.registry.get_sample_value("makestream_sse_lagged_clients_total") == 1

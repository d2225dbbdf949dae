"""`EventStreamResponse` and `StreamKeeper` on a fake ASGI connection.

The server tests (test_server.py) run them on uvicorn with the ``makestream.connection``
extension; these cover what they cannot reach directly: another server without the extension
(disconnects learned from ``receive()``, timeouts by cancelling the write), and the keeper's
decisions, driven with explicit clock values instead of waiting.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from makestream.server.sse import (
    CONNECTION,
    DISCONNECTED,
    ENDED,
    PING,
    TIMED_OUT,
    Connection,
    EventStreamResponse,
    StreamKeeper,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(10)]


class Source:
    """A frame source fed by the test."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = deque(chunks)
        self.ended = False
        self.closed = False
        self._wakeup = anyio.Event()

    def put(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.wake()

    def end(self) -> None:
        self.ended = True
        self.wake()

    def take(self) -> bytes | None:
        if self.chunks:
            return b"".join(self.chunks.popleft() for _ in range(len(self.chunks)))
        return None if self.ended else b""

    async def wait(self) -> None:
        await self._wakeup.wait()
        self._wakeup = anyio.Event()

    def wake(self) -> None:
        self._wakeup.set()

    def close(self) -> None:
        self.closed = True

    def direct(self, write: Any) -> bool:
        return False  # the direct path is the hub's (tests/test_server.py)


class Peer:
    """The client side: records what the response sends; may stop reading or hang up."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.hang = False
        self.released = anyio.Event()  # a hung write returns (as when the server aborts)
        self.disconnected = anyio.Event()
        self.wrote = anyio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        if self.hang:
            await self.released.wait()
            return
        self.sent.append(message)
        self.wrote.set()
        self.wrote = anyio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


async def until(condition: Any) -> None:
    """Let the response's task run until `condition()` holds."""
    for _ in range(1000):
        if condition():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError("the response never got there")


async def _serve(response: EventStreamResponse, peer: Peer,
                 connection: Connection | None = None) -> None:
    scope: dict[str, Any] = {"type": "http", "extensions": {}}
    if connection is not None:
        scope["extensions"][CONNECTION] = connection
    await response(scope, peer.receive, peer.send)


def _response(source: Source, keeper: StreamKeeper) -> tuple[EventStreamResponse, list[str]]:
    outcomes: list[str] = []
    response = EventStreamResponse(source, keeper=keeper, retry_ms=1500,
                                   on_close=outcomes.append)
    return response, outcomes


async def test_frames_then_a_completed_response() -> None:
    source = Source(b"data: 1\n\n", b"data: 2\n\n")
    source.ended = True
    keeper = StreamKeeper(heartbeat_s=15, send_timeout_s=10)
    response, outcomes = _response(source, keeper)
    peer = Peer()
    await _serve(response, peer)
    start = peer.sent[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert b"content-length" not in headers
    assert peer.body == b"retry: 1500\n\ndata: 1\n\ndata: 2\n\n"
    assert peer.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert outcomes == [ENDED] and source.closed and not keeper.streams


async def test_without_the_extension_a_disconnect_is_read_from_receive() -> None:
    source = Source(b"data: 1\n\n")
    keeper = StreamKeeper(heartbeat_s=15, send_timeout_s=10)
    response, outcomes = _response(source, keeper)
    peer = Peer()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_serve, response, peer)
        while b"data: 1" not in peer.body:
            await peer.wrote.wait()
        peer.disconnected.set()
    assert outcomes == [DISCONNECTED] and source.closed
    # Never completed: the client is gone.
    assert all(m.get("more_body", True) for m in peer.sent[1:])


async def test_the_connection_extension_tells_of_a_disconnect() -> None:
    source = Source()
    keeper = StreamKeeper(heartbeat_s=15, send_timeout_s=10)
    response, outcomes = _response(source, keeper)
    connection = Connection(abort=lambda: None)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_serve, response, Peer(), connection)
        await until(lambda: keeper.streams)
        connection.connection_lost()
    assert outcomes == [DISCONNECTED] and source.closed


async def test_the_keeper_pings_idle_streams_only() -> None:
    source = Source()
    keeper = StreamKeeper(heartbeat_s=15, send_timeout_s=10)
    response, outcomes = _response(source, keeper)
    peer = Peer()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_serve, response, peer)
        await until(lambda: keeper.streams)
        [stream] = keeper.streams
        keeper.tick(stream.last_write + 5)  # written to recently: no ping
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        assert PING not in peer.body
        keeper.tick(stream.last_write + 14)  # idle for 0.9 of the interval: ping
        await peer.wrote.wait()
        assert peer.body.endswith(PING)
        source.put(b"data: 1\n\n")
        await peer.wrote.wait()
        source.end()
    assert peer.body == b"retry: 1500\n\n" + PING + b"data: 1\n\n"
    assert outcomes == [ENDED]


@pytest.mark.parametrize("with_extension", [True, False])
async def test_a_write_past_the_send_timeout_drops_the_client(with_extension: bool) -> None:
    source = Source()
    keeper = StreamKeeper(heartbeat_s=15, send_timeout_s=10)
    response, outcomes = _response(source, keeper)
    peer = Peer()
    aborted: list[bool] = []
    connection = None
    if with_extension:
        def abort() -> None:
            # What uvicorn does once the transport is gone: the pending write returns.
            aborted.append(True)
            assert connection is not None
            connection.connection_lost()
            peer.released.set()
        connection = Connection(abort)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_serve, response, peer, connection)
        await until(lambda: keeper.streams)
        peer.hang = True
        source.put(b"data: 1\n\n")
        [stream] = keeper.streams
        await until(lambda: stream.writing_since is not None)
        keeper.tick(stream.writing_since + 9)  # slow, not yet too slow
        assert not stream.timed_out
        keeper.tick(time.monotonic() + 10)
    assert outcomes == [TIMED_OUT] and source.closed
    assert aborted == ([True] if with_extension else [])


async def test_with_countable_progress_a_client_is_stuck_only_when_it_takes_nothing() -> None:
    source = Source()
    keeper = StreamKeeper(heartbeat_s=15, send_timeout_s=10)
    response, outcomes = _response(source, keeper)
    unsent = [0]
    aborted: list[bool] = []
    connection = Connection(lambda: aborted.append(True), unsent=lambda: unsent[0])
    async with anyio.create_task_group() as tg:
        tg.start_soon(_serve, response, Peer(), connection)
        await until(lambda: keeper.streams)
        [stream] = keeper.streams
        t = stream.last_write
        connection.wrote(500_000)
        unsent[0] = 400_000  # the client has taken the first 100 KB
        for step in range(1, 30):  # and keeps taking a little, for longer than the timeout
            unsent[0] -= 10_000
            keeper.tick(t + step)
        assert not stream.timed_out and not aborted
        assert not stream.ping_due  # bytes wait for it: it is not idle
        keeper.tick(t + 35)  # then it takes nothing (last progress at t + 29)
        keeper.tick(t + 38.9)
        assert not stream.timed_out
        keeper.tick(t + 39)  # for the whole timeout
        assert stream.timed_out and aborted == [True]
        connection.connection_lost()
    assert outcomes == [TIMED_OUT]

"""Server-Sent Events: the wire framing, and the ASGI response that streams it.

Framing (WHATWG HTML, "Server-sent events"): a stream starts with a ``retry:`` hint (how long a
browser waits before reconnecting), then carries one block per event, each ended by a blank
line::

    id: <the event's cursor>
    event: <the event's type>
    data: <the event as one NDJSON line, without its newline>

and comment lines (``: ping``) that keep idle connections and proxies awake. The ``id`` is the
cursor, so a browser's automatic reconnect sends it back as ``Last-Event-ID`` and resumes exactly
after the last event it saw. Events the server makes up for one connection (``stream.lagged``,
a ``stream.closed`` at shutdown, a replay failure) carry no ``id`` line, which leaves the
client's last id where it was.

Cost per connection
    A server with ten thousand open streams pays for every task, timer and lock per stream on
    every event. So a stream is one task — the one the ASGI server runs the request in — which
    writes its replay, then hands its connection's `Connection.write` to its source (the hub),
    which from then on writes each live frame to every connection itself, in one pass, with no
    task switch per client; the connection's send buffer is the client's queue. The task only
    wakes up again for a heartbeat or for the end. On a server without that extension the task
    writes every frame, whatever is ready in one ``send``.

    What would otherwise need a timer per stream is done for all streams at once by one
    `StreamKeeper` tick: heartbeat comments for idle streams, and the send timeout. A client
    that has taken none of the bytes waiting for it for `send_timeout_s` has stopped reading,
    and its connection is dropped; one that reads slowly but steadily is left alone (a lagging
    one is the hub's business). Where the server cannot count bytes, a write through ASGI that
    does not finish within the timeout counts as stuck. A closed connection is learned from
    the server's ``makestream.connection`` scope extension (see `runner`), else from a task
    reading ``receive()``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from makestream.events import _Event, encode

RETRY_MS = 3000
PING = b": ping\n\n"


def event_frame(event: _Event, *, with_id: bool = True) -> bytes:
    """One event block; the data line is exactly the event's NDJSON line."""
    data = encode(event).rstrip(b"\n")
    head = b"id: " + event.cursor.encode() + b"\n" if with_id and event.cursor else b""
    return head + b"event: " + event.type.encode() + b"\ndata: " + data + b"\n\n"


def comment_frame(text: str) -> bytes:
    return b": " + text.encode() + b"\n\n"


def retry_frame(ms: int) -> bytes:
    return b"retry: %d\n\n" % ms


# How a stream ended, as told to `on_close`.
ENDED, DISCONNECTED, TIMED_OUT = "ended", "disconnected", "timed out"
# The scope extension through which the server tells a response about its connection.
CONNECTION = "makestream.connection"


class Connection:
    """What the server lets a response know and do about its connection (see `runner`).

    A server that can also count what it puts on the wire (`unsent`, `framed`) lets the keeper
    judge a slow client by its progress rather than by how long one write waits; one that
    offers `write` lets the hub send live frames itself.
    """

    __slots__ = ("_on_lost", "abort", "framed", "last_write", "lost", "unsent", "write",
                 "written")

    def __init__(self, abort: Callable[[], None], *,
                 write: Callable[[bytes], int] | None = None,
                 unsent: Callable[[], int] | None = None,
                 framed: Callable[[int], int] = lambda size: size) -> None:
        self.abort = abort  # drop the connection at once, unsent bytes and all
        # Send one body chunk now, bypassing ASGI, once the response has started: returns the
        # bytes still unsent after it, or -1 if the connection is gone. None: not offered.
        self.write = write
        self.unsent = unsent  # bytes handed to the connection and not yet taken by the client
        self.framed = framed  # bytes on the wire for a body chunk of a given size
        self.written = 0  # bytes of body chunks handed to the connection, framing included
        self.last_write = 0.0  # monotonic time of the last `write`
        self.lost = False
        self._on_lost: Callable[[], None] | None = None

    def wrote(self, size: int) -> None:
        """Count `size` bytes (as framed) handed to the connection."""
        self.written += size
        self.last_write = time.monotonic()

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the connection is gone (at once if it already is)."""
        self._on_lost = callback
        if self.lost:
            self.connection_lost()

    def connection_lost(self) -> None:
        """The server's side: the peer closed, or the connection was aborted."""
        self.lost = True
        callback, self._on_lost = self._on_lost, None
        if callback is not None:
            callback()


class FrameSource(Protocol):
    """Where a stream's frames come from (the hub's `Subscription`)."""

    def take(self) -> bytes | None:
        """Every frame ready now, joined; ``b""`` if none yet; None once the stream has ended."""

    async def wait(self) -> None:
        """Until `take` may have something, or until `wake`."""

    def wake(self) -> None:
        """End a pending `wait` early."""

    def direct(self, write: Callable[[bytes], int]) -> bool:
        """Offer `write` (see `Connection.write`) for the source to send live frames itself.

        True if it will: from then on the response only waits for the end, writing what
        `take` still returns (heartbeats, a final event) through ASGI.
        """

    def close(self) -> None:
        """The connection is done with the source."""


class _Stream:
    """One open stream, as the keeper sees it."""

    __slots__ = ("abort", "cancel", "connection", "last_sent", "last_write", "lost",
                 "ping_due", "source", "stalled_since", "timed_out", "writing_since")

    def __init__(self, source: FrameSource, connection: Connection | None) -> None:
        self.source = source
        self.connection = connection
        self.last_write = time.monotonic()
        self.writing_since: float | None = None  # a write through ASGI is under way
        self.last_sent = 0  # bytes the client had taken at the keeper's last look
        self.stalled_since: float | None = None
        self.ping_due = False
        self.lost = False
        self.timed_out = False
        self.cancel: Callable[[], None] = lambda: None
        self.abort: Callable[[], None] | None = None

    def gone(self) -> None:
        self.lost = True
        self.source.wake()

    def time_out(self) -> None:
        # The client stopped reading: nothing sent to it can arrive any more.
        self.timed_out = True
        if self.abort is not None:
            self.abort()
        self.cancel()
        self.source.wake()


class StreamKeeper:
    """Heartbeats and send timeouts for every open stream, from one periodic task."""

    def __init__(self, heartbeat_s: float, send_timeout_s: float) -> None:
        self.heartbeat_s = heartbeat_s
        self.send_timeout_s = send_timeout_s
        self.tick_s = max(0.01, min(1.0, heartbeat_s / 4, send_timeout_s / 4))
        self.streams: set[_Stream] = set()

    async def run(self) -> None:
        """Tick until cancelled; run it beside the server (`runner.serve` does)."""
        while True:
            await anyio.sleep(self.tick_s)
            self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        idle_after = self.heartbeat_s * 0.9
        for stream in list(self.streams):
            if stream.timed_out:
                continue
            connection = stream.connection
            last_write = stream.last_write
            if connection is not None and connection.unsent is not None:
                # The client's progress is countable: it is stuck when bytes wait for it and
                # it has taken none of them for the whole timeout, however long any one write
                # has waited (a slow reader draining a burst is not stuck).
                unsent = connection.unsent()
                sent = connection.written - unsent
                progressed, stream.last_sent = sent > stream.last_sent, sent
                if unsent > 0:
                    if progressed or stream.stalled_since is None:
                        stream.stalled_since = now
                    elif now - stream.stalled_since >= self.send_timeout_s:
                        stream.time_out()
                    continue  # busy: no heartbeat needed
                stream.stalled_since = None
                last_write = max(last_write, connection.last_write)
            elif stream.writing_since is not None:
                if now - stream.writing_since >= self.send_timeout_s:
                    stream.time_out()
                continue
            if not stream.ping_due and now - last_write >= idle_after:
                stream.ping_due = True
                stream.source.wake()


class EventStreamResponse(Response):
    """A ``text/event-stream`` response fed by `source`, kept alive by `keeper`.

    It ends when the source ends (the response is then completed normally), when the client
    disconnects, or when one write takes longer than the keeper's send timeout: the connection
    is then dropped through the ``makestream.connection`` extension, or the write is cancelled.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        source: FrameSource,
        *,
        keeper: StreamKeeper,
        retry_ms: int = RETRY_MS,
        on_close: Callable[[str], None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # As StreamingResponse does: no body, so no Content-Length.
        self.status_code = 200
        self.background = None
        self.init_headers({
            "Cache-Control": "no-cache",
            # Reverse proxies (nginx) otherwise buffer the stream.
            "X-Accel-Buffering": "no",
            **(headers or {}),
        })
        self.source = source
        self.keeper = keeper
        self.retry_ms = retry_ms
        self.on_close = on_close
        self.outcome = ENDED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = scope.get("extensions", {}).get(CONNECTION)
        if not isinstance(connection, Connection):
            connection = None
        stream = _Stream(self.source, connection)

        async def disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            stream.gone()

        self.keeper.streams.add(stream)
        try:
            if connection is not None:
                # A timed-out write ends by itself: aborting the connection releases it.
                stream.abort = connection.abort
                connection.on_lost(stream.gone)
                await self._stream(stream, send, connection)
            else:  # another server: learn of the disconnect by reading; time out by cancelling
                with anyio.CancelScope() as cancel_scope:
                    stream.cancel = cancel_scope.cancel
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(disconnect)
                        await self._stream(stream, send, None)
                        tg.cancel_scope.cancel()
        finally:
            self.keeper.streams.discard(stream)
            if stream.timed_out:
                self.outcome = TIMED_OUT
            elif stream.lost:
                self.outcome = DISCONNECTED
            self.source.close()
            if self.on_close is not None:
                self.on_close(self.outcome)

    async def _stream(self, stream: _Stream, send: Send, connection: Connection | None) -> None:
        async def write(message: dict[str, object]) -> bool:
            stream.writing_since = time.monotonic()
            await send(message)
            stream.writing_since = None
            stream.last_write = time.monotonic()
            if connection is not None and message.get("body"):
                connection.wrote(connection.framed(len(message["body"])))  # type: ignore[arg-type]
            return not (stream.lost or stream.timed_out)

        def body(chunk: bytes, more: bool = True) -> dict[str, object]:
            return {"type": "http.response.body", "body": chunk, "more_body": more}

        start = {"type": "http.response.start", "status": self.status_code,
                 "headers": self.raw_headers}
        if not await write(start) or not await write(body(retry_frame(self.retry_ms))):
            return
        source = self.source
        direct = False
        while True:
            chunk = source.take()
            if chunk is None:
                await write(body(b"", more=False))
                return
            if not chunk:
                if stream.lost or stream.timed_out:
                    return
                if not stream.ping_due:
                    if connection is not None and connection.write is not None and not direct:
                        direct = source.direct(connection.write)
                    await source.wait()
                    continue
                chunk = PING
            stream.ping_due = False
            if not await write(body(chunk)):
                return


class QuietAbandonedStreams(logging.Filter):
    """Keep uvicorn's error log free of streams abandoned on purpose after a send timeout."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."

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

`EventStreamResponse` writes such a stream from an async iterator of frames. Every write, the
heartbeat comments included, must finish within a send timeout: a client that stops reading would
otherwise pin the connection and everything queued for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from makestream.events import _Event, encode

RETRY_MS = 3000


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
# A scope extension the server may provide: a callable that drops the connection at once.
ABORT = "makestream.abort"


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response fed by `frames`, with heartbeats and a send timeout.

    It ends when `frames` is exhausted (the response is then completed normally), when the
    client disconnects, or when one write takes longer than `send_timeout_s`: the connection is
    then dropped at once through the server's ``makestream.abort`` scope extension (see
    `runner`), or left to the server to close.
    """

    def __init__(
        self,
        frames: AsyncGenerator[bytes, None],
        *,
        heartbeat_s: float,
        send_timeout_s: float,
        retry_ms: int = RETRY_MS,
        on_close: Callable[[str], None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            frames,
            media_type="text/event-stream",
            headers={
                "Cache-Control": "no-cache",
                # Reverse proxies (nginx) otherwise buffer the stream.
                "X-Accel-Buffering": "no",
                **(headers or {}),
            },
        )
        self.frames = frames
        self.heartbeat_s = heartbeat_s
        self.send_timeout_s = send_timeout_s
        self.retry_ms = retry_ms
        self.on_close = on_close
        self.outcome = ENDED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lock = anyio.Lock()
        last_write = time.monotonic()

        async with anyio.create_task_group() as tg:

            async def write(message: dict[str, object]) -> bool:
                nonlocal last_write
                async with lock:
                    with anyio.move_on_after(self.send_timeout_s) as scope_:
                        await send(message)
                    if scope_.cancelled_caught:
                        self.outcome = TIMED_OUT
                        tg.cancel_scope.cancel()
                        return False
                    last_write = time.monotonic()
                    return True

            async def body(chunk: bytes) -> bool:
                return await write({"type": "http.response.body", "body": chunk,
                                    "more_body": True})

            async def disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                self.outcome = DISCONNECTED
                tg.cancel_scope.cancel()

            async def heartbeat() -> None:
                while True:
                    await anyio.sleep(self.heartbeat_s)
                    if time.monotonic() - last_write >= self.heartbeat_s * 0.9:
                        await body(comment_frame("ping"))

            tg.start_soon(disconnect)
            try:
                started = await write({
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                })
                if started and await body(retry_frame(self.retry_ms)):
                    tg.start_soon(heartbeat)
                    async for chunk in self.frames:
                        if not await body(chunk):
                            break
                    else:
                        if await write({"type": "http.response.body", "body": b"",
                                        "more_body": False}):
                            # A completed response reads as a disconnect to the watcher above.
                            self.outcome = ENDED
            finally:
                tg.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await self.frames.aclose()
                if self.outcome == TIMED_OUT:
                    abort = scope.get("extensions", {}).get(ABORT)
                    if callable(abort):
                        abort()  # else the server closes it once the client reads again
                if self.on_close is not None:
                    self.on_close(self.outcome)


class QuietAbandonedStreams(logging.Filter):
    """Keep uvicorn's error log free of streams abandoned on purpose after a send timeout."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."

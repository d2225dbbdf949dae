"""Running the app on uvicorn, and stopping so that every open stream ends properly.

uvicorn stops on SIGINT/SIGTERM by waiting for open connections to finish, which endless event
streams never do by themselves. So when uvicorn is asked to exit, the hub is closed first: each
stream gets a final `stream.closed` and ends, and uvicorn's wait ends with them. A client that
does not read any more is cut off by the send timeout; `shutdown_timeout_s` is the last resort.

Connections are bounded before the app sees them (`ConnectionLimits`, from `makestream.limits`):
a request head larger than HEADERS_MAX_BYTES is refused with 431 as soon as that much has
arrived, without buffering the rest; one not complete within HEADERS_TIMEOUT_S of its first byte
(or of the connection, for the first request) is closed; a kept-alive connection idle for
IDLE_TIMEOUT_S is closed. uvicorn has no head limit with httptools and no head timeout at all,
so both are done here, in the protocol classes. Running out of file descriptors is logged once
in a while (`ThrottledLog`), not once per refused accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ipaddress
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from types import FrameType
from typing import Any, ClassVar

import anyio
import orjson
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from makestream.errors import UsageError
from makestream.files import size_text
from makestream.limits import BACKLOG, HEADERS_MAX_BYTES, HEADERS_TIMEOUT_S, IDLE_TIMEOUT_S
from makestream.server.hub import Hub
from makestream.server.sse import CONNECTION, Connection, QuietAbandonedStreams, StreamKeeper

# How often a flood of one log message (out of descriptors, malformed requests) gets a line.
LOG_FLOOD_INTERVAL_S = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may cost before the app sees a request (see the module docstring).

    The defaults are `makestream.limits`; tests shorten the waits.
    """

    headers_max_bytes: int = HEADERS_MAX_BYTES
    headers_timeout_s: float = HEADERS_TIMEOUT_S
    idle_timeout_s: float = IDLE_TIMEOUT_S
    backlog: int = BACKLOG


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server to this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def bind(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """Listen on host:port now, so that a taken port is a one-line usage error (exit 2)."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class _ConnectionExtension:
    """Adds the ``makestream.connection`` scope extension to one of uvicorn's HTTP protocols.

    Through it a response learns at once that its client went away (without a task reading
    ``receive()`` for it), and can drop a connection whose client stopped reading: asyncio's
    `close()` would keep the socket and its unsent bytes until the client takes them, which it
    may never do; `transport.abort()` does not wait. Each request gets its own `Connection`,
    bound to that request's response cycle: a client may send the next request (pipelining)
    while a stream is still open.
    """

    transport: asyncio.Transport
    # Requests whose response has not completed: all of them hear of a lost connection.
    _open: dict[Any, Connection] | None = None

    def _attach(self, scope: Any, cycle: Any, connection: Connection) -> None:
        scope.setdefault("extensions", {})[CONNECTION] = connection
        if self._open is None:
            self._open = {}
        for done in [c for c in self._open if c.response_complete]:
            del self._open[done]
        self._open[cycle] = connection

    def _lost(self) -> None:
        for connection in list((self._open or {}).values()):
            connection.connection_lost()
        self._open = None


def refusal(status: int, message: str) -> bytes:
    """A whole HTTP response that ends the connection: a one-line JSON error."""
    body = orjson.dumps({"error": message})
    head = (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n")
    return head.encode() + body


class _HeadLimits:
    """The size cap and the timeout of a request head, for one of uvicorn's HTTP protocols.

    Bytes are counted as they arrive while a head is awaited (from the connection's start, or
    from the end of the previous request), before the parser sees them: past the cap the
    connection gets 431 and is closed, and the parser never holds more than the cap. The
    count is by whole reads, so a read that completes a head and carries more (a pipelined
    request) may be refused a little early; serve-sse has nothing to send a body to. The
    timer runs from the connection's start, or from the first byte of a later head; uvicorn's
    keep-alive timer covers the silence between requests.
    """

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _awaiting_head = True
    _head_bytes = 0
    _head_timer: asyncio.TimerHandle | None = None
    _refused = False

    def _response_in_flight(self) -> bool:
        raise NotImplementedError

    def _head_begins(self) -> None:
        """The next bytes start a request head (a response may still be under way)."""
        self._awaiting_head = True
        self._head_bytes = 0

    def _head_complete(self) -> None:
        self._awaiting_head = False
        self._head_bytes = 0
        self._stop_head_timer()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.headers_timeout_s,
                                                    self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if not self._response_in_flight():  # else a status line would land inside a body
            self.transport.write(refusal(408, "the request head was not sent in time"))
        self._refused = True
        self.transport.close()

    def _counted(self, data: bytes) -> bool:
        """Count `data` against the head cap; False if the connection was refused for it."""
        if self._refused:
            return False
        if not self._awaiting_head:
            return True
        self._head_bytes += len(data)
        if self._head_bytes > self.limits.headers_max_bytes:
            self._stop_head_timer()
            self._refused = True
            if not self.transport.is_closing():
                if not self._response_in_flight():
                    self.transport.write(refusal(431, "request head larger than "
                                                 f"{size_text(self.limits.headers_max_bytes)}"))
                self.transport.close()
            return False
        self._arm_head_timer()
        return True


class _Limited(_HeadLimits, _ConnectionExtension):
    """What both protocols share: the head timer from the start, bytes counted before the
    parser sees them, and the connection's streams told when it is lost."""

    cycle: Any  # the protocol's current request cycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._counted(data):
            super().data_received(data)  # type: ignore[misc]

    def _response_in_flight(self) -> bool:
        cycle = self.cycle
        return cycle is not None and cycle.response_started and not cycle.response_complete

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)  # type: ignore[misc]
        self._lost()


class _ConnectedH11(_Limited, H11Protocol):

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        cycle = self.cycle  # the ASGI task of a new request has not started yet
        if cycle is not before and cycle is not None:
            self._head_complete()
        if cycle is not None and (self._open is None or cycle not in self._open) \
                and not cycle.response_complete and self.transport is not None:
            self._attach(cycle.scope, cycle, Connection(self.transport.abort))

    def on_response_complete(self) -> None:
        # h11 reads the next request only from here on (pipelined bytes wait in its buffer).
        self._head_begins()
        super().on_response_complete()


def _protocol() -> type[asyncio.Protocol]:
    """httptools' parser where it is installed (faster, and less memory per connection than
    h11), else h11; both with the connection extension and the head limits."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return _ConnectedH11

    class _ConnectedHttpTools(_Limited, HttpToolsProtocol):
        """With `Connection.write`: a body chunk framed as uvicorn's own `send` frames it."""

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._head_begins()

        def on_headers_complete(self) -> None:
            self._head_complete()
            before = self.cycle
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is None or cycle is before:
                return  # an upgrade request: no new response cycle
            transport = self.transport

            def framed(size: int) -> int:
                # Bytes on the wire for a body chunk of `size`, as uvicorn's `send` frames it.
                return size + len(b"%x" % size) + 4 if cycle.chunked_encoding else size

            def write(data: bytes) -> int:
                # Only while this request's own response is open.
                if cycle.disconnected or cycle.response_complete or not cycle.response_started \
                        or transport.is_closing():
                    return -1
                try:
                    if cycle.chunked_encoding:
                        transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
                    else:
                        transport.write(data)
                    connection.wrote(framed(len(data)))
                    return transport.get_write_buffer_size()
                except Exception:  # a broken transport: the same as a lost connection
                    return -1

            connection = Connection(transport.abort, write=write,
                                    unsent=transport.get_write_buffer_size, framed=framed)
            self._attach(cycle.scope, cycle, connection)

    return _ConnectedHttpTools


class ThrottledLog(logging.Filter):
    """Lets one record of each flooding kind through per `interval_s`, as one line.

    `kinds` maps the start of a message to the line shown for it (the exception's text is
    added). At the descriptor limit asyncio logs "socket.accept() out of system resource" with
    a traceback for each refused accept, up to the backlog on every wake-up, and schedules as
    many retries, which fail with more tracebacks once the server has closed (CPython
    gh-151615): a hundred thousand tracebacks in seconds. A malformed-request flood does the
    same with uvicorn's warning. The line let through says how many were held back.
    """

    def __init__(self, kinds: dict[str, str], interval_s: float = LOG_FLOOD_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.kinds = kinds
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kind = next((k for k in self.kinds if message.startswith(k)), None)
        if kind is None:
            return True
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval_s:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        self._last[kind] = now
        line = self.kinds[kind]
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            line += f" ({exc})"
        held = self._held.pop(kind, 0)
        if held and last is not None:
            line += f"; {held} more like it in the last {now - last:.0f} s not shown"
        record.msg, record.args = line, None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


_ACCEPT = "socket.accept() out of system resource"
# One of each per process, however many servers run in it.
_FLOODS = {
    "asyncio": ThrottledLog({
        _ACCEPT: _ACCEPT + ": new connections wait until descriptors are free",
        "Exception in callback BaseSelectorEventLoop._start_serving":
            "asyncio failed to resume accepting connections",
    }),
    "uvicorn.error": ThrottledLog({
        "Invalid HTTP request received.": "Invalid HTTP request received.",
    }),
}


def _quiet_logs() -> None:
    """Install the log filters of a running server (once per process)."""
    errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietAbandonedStreams) for f in errors.filters):
        errors.addFilter(QuietAbandonedStreams())
    for name, filter_ in _FLOODS.items():
        logging.getLogger(name).addFilter(filter_)  # a no-op if it is there already


def server_config(app: Starlette, *, shutdown_timeout_s: float,
                  limits: ConnectionLimits = ConnectionLimits()) -> uvicorn.Config:
    """uvicorn's configuration for `app`, with the connection limits in its protocol class."""
    protocol = _protocol()
    bounded = type(protocol.__name__, (protocol,), {"limits": limits})
    return uvicorn.Config(
        app, lifespan="off", log_level="warning", access_log=False, http=bounded,
        # The peer address is the client's (see app.py's caps): X-Forwarded-For is not trusted,
        # not even from loopback, where any local process could claim any address with it.
        proxy_headers=False,
        timeout_graceful_shutdown=max(1, round(shutdown_timeout_s)),
        # uvicorn annotates it int, but hands it to call_later, which takes a float.
        timeout_keep_alive=limits.idle_timeout_s,  # type: ignore[arg-type]
        # The cap under h11 too (the protocol class refuses first, with 431).
        h11_max_incomplete_event_size=limits.headers_max_bytes,
        backlog=limits.backlog,
    )


class _Server(uvicorn.Server):
    """uvicorn, minus re-raising the stop signal afterwards: the command picks its exit code."""

    def __init__(self, config: uvicorn.Config, hub: Hub, *, handle_signals: bool) -> None:
        super().__init__(config)
        self.hub = hub
        self.loop = asyncio.get_running_loop()
        self.handle_signals = handle_signals
        self.stop_signal: int | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal = sig
        super().handle_exit(sig, frame)
        # A signal handler interrupts the loop at any point: close the hub from the loop itself.
        self.loop.call_soon_threadsafe(self.hub.close)


async def serve(app: Starlette, hub: Hub, sock: socket.socket, *, shutdown_timeout_s: float,
                handle_signals: bool = True,
                limits: ConnectionLimits = ConnectionLimits()) -> int | None:
    """Serve on `sock` until a signal, or until `hub.close()`; `hub.run()` runs elsewhere.

    Returns the signal that stopped the server, if one did.
    """
    _quiet_logs()
    config = server_config(app, shutdown_timeout_s=shutdown_timeout_s, limits=limits)
    server = _Server(config, hub, handle_signals=handle_signals)

    async def exit_when_closed() -> None:
        await hub.wait_closed()
        server.should_exit = True

    keeper = getattr(app.state, "keeper", None)
    async with anyio.create_task_group() as tg:
        tg.start_soon(exit_when_closed)
        if isinstance(keeper, StreamKeeper):
            tg.start_soon(keeper.run)
        await server.serve(sockets=[sock])
        tg.cancel_scope.cancel()
    return server.stop_signal

"""Running the app on uvicorn, and stopping so that every open stream ends properly.

uvicorn stops on SIGINT/SIGTERM by waiting for open connections to finish, which endless event
streams never do by themselves. So when uvicorn is asked to exit, the hub is closed first: each
stream gets a final `stream.closed` and ends, and uvicorn's wait ends with them. A client that
does not read any more is cut off by the send timeout; `shutdown_timeout_s` is the last resort.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import threading
from collections.abc import Generator
from types import FrameType
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from makestream.errors import UsageError
from makestream.server.hub import Hub
from makestream.server.sse import CONNECTION, Connection, QuietAbandonedStreams, StreamKeeper

BACKLOG = 4096  # a reconnect storm of thousands of clients should queue, not be refused


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server to this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def bind(host: str, port: int) -> socket.socket:
    """Listen on host:port now, so that a taken port is a one-line usage error (exit 2)."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=BACKLOG)
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


class _ConnectedH11(_ConnectionExtension, H11Protocol):
    def handle_events(self) -> None:
        super().handle_events()
        cycle = self.cycle  # the ASGI task of a new request has not started yet
        if cycle is not None and (self._open is None or cycle not in self._open) \
                and not cycle.response_complete and self.transport is not None:
            self._attach(cycle.scope, cycle, Connection(self.transport.abort))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._lost()


def _protocol() -> type[asyncio.Protocol]:
    """httptools' parser where it is installed (faster, and less memory per connection than
    h11), else h11; both with the connection extension."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return _ConnectedH11

    class _ConnectedHttpTools(_ConnectionExtension, HttpToolsProtocol):
        """With `Connection.write`: a body chunk framed as uvicorn's own `send` frames it."""

        def on_headers_complete(self) -> None:
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

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            self._lost()

    return _ConnectedHttpTools


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
                handle_signals: bool = True) -> int | None:
    """Serve on `sock` until a signal, or until `hub.close()`; `hub.run()` runs elsewhere.

    Returns the signal that stopped the server, if one did.
    """
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietAbandonedStreams) for f in logger.filters):
        logger.addFilter(QuietAbandonedStreams())
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", access_log=False, http=_protocol(),
        # The peer address is the client's (see app.py's caps): X-Forwarded-For is not trusted,
        # not even from loopback, where any local process could claim any address with it.
        proxy_headers=False,
        timeout_graceful_shutdown=max(1, round(shutdown_timeout_s)),
    )
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

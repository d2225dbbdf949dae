"""What every sink shares: the bounded outbox, backoff, HTTP posting and error reporting.

Every item in a sink's outbox is an `Offered`: the alert event and the wall-clock time it was
offered at. Receivers compare times with their own clocks (Alertmanager's ``startsAt``), so that
time is real time, whatever clock the watch runs on (the demo's runs many times faster), and it is
taken at `offer`, not when a busy sink gets round to the event.
"""

from __future__ import annotations

import contextlib
import random
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, NamedTuple, Self, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.abc
import httpx

from makestream import __version__
from makestream.clock import Clock
from makestream.events import AlertRaised, AlertResolved, _Event

T = TypeVar("T")
AlertEvent = AlertRaised | AlertResolved
ErrorCallback = Callable[[str], None]


class Offered(NamedTuple):
    """An alert event as a sink queues it, with the wall-clock time (epoch s) of `offer`."""

    event: AlertEvent
    at: float


class Outbox(Generic[T]):
    """A bounded queue whose `put` never waits: when full, the oldest item makes room."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("an outbox holds at least one item")
        self._send, self._receive = anyio.create_memory_object_stream[T](size)
        self.dropped = 0
        self.closed = False

    def put(self, item: T) -> None:
        if self.closed:
            return
        try:
            self._send.send_nowait(item)
        except anyio.WouldBlock:
            # Full means no receiver is waiting, so taking one here cannot steal from run().
            self._receive.receive_nowait()
            self.dropped += 1
            self._send.send_nowait(item)

    async def get(self) -> T:
        """The next item; anyio.EndOfStream once closed and empty."""
        return await self._receive.receive()

    def get_nowait(self) -> T:
        """The next item; anyio.WouldBlock when empty, anyio.EndOfStream once closed and empty."""
        return self._receive.receive_nowait()

    def pending(self) -> int:
        return self._receive.statistics().current_buffer_used

    def close(self) -> None:
        """No more puts; `get` drains what is queued, then raises EndOfStream."""
        self.closed = True
        self._send.close()

    def dispose(self) -> None:
        """Release both ends; whatever is still queued is discarded."""
        self.close()
        self._receive.close()


class Backoff:
    """Delays between retries: doubling from `first_s` up to `max_s`, with a little jitter so
    several makestream processes do not retry in step."""

    def __init__(self, first_s: float = 1.0, max_s: float = 60.0, factor: float = 2.0) -> None:
        self.first_s, self.max_s, self.factor = first_s, max_s, factor
        self._next = first_s

    def next(self) -> float:
        delay = self._next
        self._next = min(self.max_s, self._next * self.factor)
        return delay * random.uniform(0.9, 1.1)

    def reset(self) -> None:
        self._next = self.first_s


def describe(url: str) -> str:
    """The URL as shown in messages: scheme and host only. Webhook paths and query strings often
    carry a secret (Slack, Teams), and user info certainly does."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"


# What is read of a refusal's body for the message (Slack says `invalid_blocks`, Discord names
# the field); the rest is not read at all, so a hostile receiver cannot make the sink hold more.
REFUSAL_BODY_MAX_BYTES = 1024


@dataclass(frozen=True)
class Failure:
    """Why one delivery failed, and whether trying again may help.

    `status` is the HTTP status when the receiver answered, and `said` the start of its answer's
    body (for refusals), as sent: untrusted text, for `refusal` to clean before showing it."""

    message: str
    retry: bool
    status: int | None = None
    said: bytes = b""


async def post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: Sequence[tuple[str, str]]
) -> Failure | None:
    """POST `body` with `headers`; None on a 2xx answer. At most REFUSAL_BODY_MAX_BYTES of the
    answer's body are read (a short answer read whole leaves the connection fit for reuse)."""
    try:
        async with client.stream("POST", url, content=body, headers=list(headers)) as response:
            said = await _read_some(response)
    except httpx.TimeoutException:
        return Failure("timed out", retry=True)
    except httpx.HTTPError as exc:
        # httpx's messages name the failure ("Connection refused"), never the URL.
        return Failure(f"cannot deliver ({exc or type(exc).__name__})", retry=True)
    if response.is_success:
        return None
    # A 4xx other than these says the receiver will never take this body: retrying is futile.
    status = response.status_code
    retry = status >= 500 or status in (408, 425, 429)
    return Failure(f"HTTP {status}", retry=retry, status=status, said=said)


async def _read_some(response: httpx.Response) -> bytes:
    if response.headers.get("Content-Encoding", "identity") != "identity":
        return b""  # a few compressed bytes can inflate to megabytes: not worth it for a message
    said = b""
    async for chunk in response.aiter_raw():
        said += chunk
        if len(said) >= REFUSAL_BODY_MAX_BYTES:
            break
    return said[:REFUSAL_BODY_MAX_BYTES]


async def post_json(client: httpx.AsyncClient, url: str, body: bytes) -> Failure | None:
    """POST a JSON body; None on a 2xx answer."""
    return await post(client, url, body, [("Content-Type", "application/json")])


def _ignore(message: str) -> None:
    """The default `on_error`: failures are retried anyway."""


class Sink:
    """The common part of a sink: `offer`, `close`, the HTTP client and reporting."""

    kind = "sink"

    def __init__(
        self,
        url: str,
        *,
        on_error: ErrorCallback = _ignore,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        timeout_s: float = 10.0,
        queue_size: int = 1000,
        backoff: Backoff | None = None,
        grace_s: float = 5.0,
        wall: Callable[[], float] = time.time,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"{self.kind} URL must start with http:// or https://")
        self.url = url
        self.on_error = on_error
        self.transport = transport
        self.clock = clock if clock is not None else Clock()
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self.backoff = backoff if backoff is not None else Backoff()
        # Receivers' clocks are real: times sent to them (and signatures) never follow a fast
        # clock.
        self.wall = wall
        self.tls = tls  # the CA bundle to verify https receivers with; None: the system's
        self.outbox: Outbox[Offered] = Outbox(queue_size)
        self.delivered = 0
        self._reported_drops = 0
        self._deadline: float | None = None  # clock.monotonic() after which close() gives up
        self._closing = anyio.Event()
        self._tasks: anyio.abc.TaskGroup | None = None

    async def run(self) -> None:
        """Deliver until closed (subclasses)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        """Run the sink in the background for the block; on exit, close it and wait for it to
        deliver what is queued (at most `grace_s`)."""
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._run_guarded)
        return self

    async def _run_guarded(self) -> None:
        # A sink's own failure is reported and ends the sink, never the stream it serves.
        try:
            await self.run()
        except Exception as exc:  # any bug in delivery stays inside the sink
            self.report(f"stopped: {type(exc).__name__}: {exc}")

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._tasks is not None
        self.close()
        return await self._tasks.__aexit__(kind, exc, tb)

    def offer(self, event: _Event) -> None:
        """Queue an alert event for delivery; returns at once. Other events are ignored, and
        so are replayed alerts (see `makestream.engine.alerts`: the catch-up raises again
        what is still active when it ends)."""
        if isinstance(event, AlertRaised | AlertResolved) and not event.replayed:
            self.outbox.put(Offered(event, self.wall()))

    def close(self, grace_s: float | None = None) -> None:
        """No more events: `run()` delivers what is queued and returns, giving up after
        `grace_s` (default: the sink's) if the receiver does not take it."""
        if self._deadline is None:
            grace = self.grace_s if grace_s is None else grace_s
            self._deadline = self.clock.monotonic() + grace
            self.outbox.close()
            self._closing.set()

    @property
    def dropped(self) -> int:
        """Alert events dropped because the outbox was full."""
        return self.outbox.dropped

    def report(self, message: str) -> None:
        # A broken callback has nowhere to report to, and must not take the sink down.
        with contextlib.suppress(Exception):
            self.on_error(f"{self.kind} {describe(self.url)}: {message}")

    def report_drops(self) -> None:
        if self.dropped > self._reported_drops:
            self.report(
                f"queue full: dropped {self.dropped - self._reported_drops} oldest alert events"
            )
            self._reported_drops = self.dropped

    def past_deadline(self) -> bool:
        return self._deadline is not None and self.clock.monotonic() >= self._deadline

    async def pause(self, delay_s: float) -> None:
        """Wait `delay_s` clock seconds, cut short by close() and bounded by its grace."""
        if self._deadline is None:
            with anyio.move_on_after(self.clock.real(delay_s)):
                await self._closing.wait()
            return
        await self.clock.sleep(min(delay_s, max(0.0, self._deadline - self.clock.monotonic())))

    def client(self) -> httpx.AsyncClient:
        # The timeout is real time: it is about the network, not the (possibly fast) clock.
        return httpx.AsyncClient(
            transport=self.transport,
            verify=self.tls if self.tls is not None else True,
            timeout=httpx.Timeout(self.timeout_s),
            headers={"User-Agent": f"makestream/{__version__}"},
            follow_redirects=False,
        )

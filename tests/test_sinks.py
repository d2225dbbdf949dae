"""The webhook sink against a real HTTP receiver on 127.0.0.1: delivery, failures, recovery.

`Receiver` is a small HTTP/1.1 server on `asyncio.start_server` whose answer can be switched
between 200, any error status, and never answering at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
import pytest

from makestream.events import AlertRaised, AlertResolved, ExecutionFinished, encode
from makestream.sinks import WebhookSink
from makestream.sinks.base import Backoff, Outbox, describe

pytestmark = pytest.mark.anyio

FAST = Backoff(first_s=0.02, max_s=0.05)


class Receiver:
    """Records every request; answers `status` (with `answer` as the body), or hangs while
    `hang` is set."""

    def __init__(self) -> None:
        self.status = 200
        self.answer = b""
        self.hang = False
        self.requests: list[tuple[str, bytes]] = []  # (path, body) of every request
        self.heads: list[dict[str, str]] = []  # the headers of every request, names lowercased
        self.accepted: list[bytes] = []  # bodies answered with 2xx
        self.port = 0
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *headers = head.decode("latin-1").split("\r\n")
                length = next(
                    (
                        int(h.split(":", 1)[1])
                        for h in headers
                        if h.lower().startswith("content-length:")
                    ),
                    0,
                )
                body = await reader.readexactly(length)
                self.requests.append((request_line.split()[1], body))
                self.heads.append(
                    {
                        name.strip().lower(): value.strip()
                        for name, _, value in (h.partition(":") for h in headers if h)
                    }
                )
                if self.hang:
                    await asyncio.Event().wait()  # until the test ends
                status = self.status
                if 200 <= status < 300:
                    self.accepted.append(body)
                status_line = f"HTTP/1.1 {status} X\r\nContent-Length: {len(self.answer)}\r\n\r\n"
                writer.write(status_line.encode() + self.answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Receiver]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await server.wait_closed()


async def until(check: Callable[[], bool]) -> None:
    """Wait for a condition the sink brings about in the background."""
    with anyio.fail_after(5):
        # Polling keeps the sinks free of test hooks; conditions span receiver and callbacks.
        while not check():  # noqa: ASYNC110
            await anyio.sleep(0.005)


def raised(n: int = 1, **extra: Any) -> AlertRaised:
    return AlertRaised(
        alert_id=f"consecutive_failures:{n}",
        rule="consecutive_failures",
        severity="critical",
        value=3,
        threshold=3,
        scenario_id=n,
        message=f"scenario {n}: 3 runs in a row failed",
        seq=n,
        ts="2026-11-26T10:00:00.000Z",
        cursor="c",
        **extra,
    )


def resolved(n: int = 1) -> AlertResolved:
    return AlertResolved(
        alert_id=f"consecutive_failures:{n}",
        rule="consecutive_failures",
        severity="critical",
        value=0,
        threshold=3,
        scenario_id=n,
        message=f"scenario {n}: back to normal",
    )


@asynccontextmanager
async def started(sink: WebhookSink | Any) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(sink.run)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


def webhook(url: str, errors: list[str], **options: Any) -> WebhookSink:
    return WebhookSink(
        url + "/hooks/T0SECRET/abc",
        on_error=errors.append,
        backoff=options.pop("backoff", FAST),
        **options,
    )


# --- webhook --------------------------------------------------------------------------------------


async def test_each_alert_is_posted_as_its_ndjson_object_and_other_events_are_ignored() -> None:
    errors: list[str] = []
    async with Receiver().running() as receiver:
        sink = webhook(receiver.url, errors)
        async with started(sink):
            sink.offer(ExecutionFinished(scenario_id=1, status="error"))
            sink.offer(raised(1))
            sink.offer(resolved(1))
            # The sink counts a delivery once the receiver's answer is back, a moment after the
            # receiver took it (and `started` cancels the sink on leaving).
            await until(lambda: len(receiver.accepted) == 2 and sink.delivered == 2)
    assert receiver.accepted == [encode(raised(1)).rstrip(b"\n"), encode(resolved(1)).rstrip(b"\n")]
    assert receiver.requests[0][0] == "/hooks/T0SECRET/abc"
    assert errors == []
    assert sink.delivered == 2


async def test_a_failing_receiver_is_reported_retried_and_delivered_once_it_recovers() -> None:
    errors: list[str] = []
    async with Receiver().running() as receiver:
        receiver.status = 500
        sink = webhook(receiver.url, errors)
        async with started(sink):
            sink.offer(raised(1))
            sink.offer(raised(2))
            await until(lambda: len(errors) >= 3)
            receiver.status = 200
            await until(lambda: len(receiver.accepted) == 2)
    assert [orjson.loads(b)["alert_id"] for b in receiver.accepted] == [
        "consecutive_failures:1",
        "consecutive_failures:2",
    ]
    assert errors[0].startswith(
        f"webhook http://127.0.0.1:{receiver.port}/…: HTTP 500 (attempt 1); retrying in "
    )
    assert not any("SECRET" in e for e in errors)


async def test_a_hanging_receiver_never_blocks_the_caller_and_times_out() -> None:
    errors: list[str] = []
    async with Receiver().running() as receiver:
        receiver.hang = True
        sink = webhook(receiver.url, errors, timeout_s=0.1)
        async with started(sink):
            begun = time.perf_counter()
            for n in range(50):
                sink.offer(raised(n))
            assert time.perf_counter() - begun < 0.05
            await until(lambda: any("timed out" in e for e in errors))
            receiver.hang = False
            await until(lambda: len(receiver.accepted) == 50)
    assert errors[0].endswith("timed out (attempt 1); retrying in " + errors[0].split()[-2] + " s")


async def test_an_unreachable_receiver_is_reported_and_retried() -> None:
    errors: list[str] = []
    async with Receiver().running() as receiver:
        port = receiver.port
    sink = webhook(f"http://127.0.0.1:{port}", errors)
    async with started(sink):
        sink.offer(raised(1))
        await until(lambda: len(errors) >= 2)
    assert "cannot deliver" in errors[0]


async def test_a_full_queue_drops_the_oldest_and_says_so() -> None:
    errors: list[str] = []
    async with Receiver().running() as receiver:
        sink = webhook(receiver.url, errors, queue_size=3)
        for n in range(1, 6):
            sink.offer(raised(n))  # nothing delivers yet: the queue overflows
        assert sink.dropped == 2
        async with started(sink):
            await until(lambda: len(receiver.accepted) == 3)
    assert [orjson.loads(b)["scenario_id"] for b in receiver.accepted] == [3, 4, 5]
    assert any(e.endswith("queue full: dropped 2 oldest alert events") for e in errors)


async def test_a_rejected_event_is_not_retried_and_the_next_one_goes_through() -> None:
    errors: list[str] = []
    async with Receiver().running() as receiver:
        receiver.status = 400
        sink = webhook(receiver.url, errors)
        async with started(sink):
            sink.offer(raised(1))
            await until(lambda: len(errors) == 1)
            receiver.status = 204
            sink.offer(raised(2))
            await until(lambda: len(receiver.accepted) == 1)
    assert len(receiver.requests) == 2
    assert errors[0] == (
        f"webhook http://127.0.0.1:{receiver.port}/…: 400 Bad Request (the receiver refused the "
        "payload: is --webhook-format right?); alert consecutive_failures:1 dropped, not retried"
    )


async def test_as_a_context_manager_it_runs_in_the_background_and_flushes_on_exit() -> None:
    async with Receiver().running() as receiver:
        async with webhook(receiver.url, []) as sink:
            for n in range(5):
                sink.offer(raised(n))
        assert len(receiver.accepted) == 5
        assert sink.outbox.closed


async def test_close_delivers_what_is_queued_and_run_returns() -> None:
    async with Receiver().running() as receiver:
        sink = webhook(receiver.url, [])
        for n in range(5):
            sink.offer(raised(n))
        sink.close()
        sink.offer(raised(9))  # after close: ignored
        with anyio.fail_after(5):
            await sink.run()
    assert len(receiver.accepted) == 5


async def test_close_gives_up_after_its_grace_when_the_receiver_stays_down() -> None:
    errors: list[str] = []
    async with Receiver().running() as receiver:
        receiver.status = 503
        sink = webhook(receiver.url, errors, backoff=Backoff(first_s=0.05, max_s=10))
        sink.offer(raised(1))
        sink.offer(raised(2))
        sink.close(grace_s=0.2)
        begun = time.perf_counter()
        with anyio.fail_after(5):
            await sink.run()
        assert time.perf_counter() - begun < 1.0
    assert errors[-1].endswith("giving up at exit: 2 alert events not delivered")


async def test_a_broken_error_callback_does_not_stop_the_sink() -> None:
    def explode(message: str) -> None:
        raise RuntimeError(message)

    async with Receiver().running() as receiver:
        receiver.status = 500
        sink = WebhookSink(receiver.url, on_error=explode, backoff=FAST)
        async with started(sink):
            sink.offer(raised(1))
            await until(lambda: len(receiver.requests) >= 2)
            receiver.status = 200
            await until(lambda: len(receiver.accepted) == 1)


# --- parts ----------------------------------------------------------------------------------------


def test_describe_hides_paths_queries_and_credentials() -> None:
    assert describe("https://user:pw@hooks.slack.com/services/T0/B0/XYZ?x=1") == (
        "https://hooks.slack.com/…"
    )
    assert describe("http://am:9093") == "http://am:9093"


def test_a_sink_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="webhook URL must start with http"):
        WebhookSink("ftp://example.com")


async def test_the_outbox_drops_oldest_and_ends_after_close() -> None:
    box: Outbox[int] = Outbox(2)
    for n in range(4):
        box.put(n)
    assert (box.dropped, box.pending()) == (2, 2)
    box.close()
    box.put(99)
    assert [await box.get(), await box.get()] == [2, 3]
    with pytest.raises(anyio.EndOfStream):
        await box.get()
    box.dispose()


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(first_s=1, max_s=4)
    delays = [backoff.next() for _ in range(5)]
    for delay, nominal in zip(delays, [1, 2, 4, 4, 4], strict=True):
        assert nominal * 0.9 <= delay <= nominal * 1.1
    backoff.reset()
    assert backoff.next() <= 1.1

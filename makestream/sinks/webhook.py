"""`--webhook URL`: POST every alert event as JSON, the same object as its NDJSON line.

Events are delivered one at a time and in order. A timeout, a refused connection, a 5xx, 408 or
429 is retried with backoff until it succeeds (or `close()`'s grace runs out); any other 4xx means
the receiver will never accept the body, so that event is reported and dropped.
"""

from __future__ import annotations

import anyio
import httpx

from makestream.events import encode
from makestream.sinks.base import AlertEvent, Sink, post_json


class WebhookSink(Sink):
    """Deliver alert events to one URL; see `makestream.sinks` for the lifecycle."""

    kind = "webhook"

    async def run(self) -> None:
        """Deliver queued alerts until closed; never raises (except on cancellation)."""
        try:
            async with self.client() as client:
                await self._loop(client)
        finally:
            self.outbox.dispose()

    async def _loop(self, client: httpx.AsyncClient) -> None:
        while True:
            try:
                event = await self.outbox.get()
            except anyio.EndOfStream:
                return
            try:
                delivered = await self._deliver(client, event)
            except Exception as exc:
                # Whatever went wrong, the stream must go on; say so and move to the next.
                self.report(f"alert {event.alert_id} not delivered: {exc!r}")
                delivered = True
            self.report_drops()
            if not delivered:
                self._give_up(event)
                return

    async def _deliver(self, client: httpx.AsyncClient, event: AlertEvent) -> bool:
        """Try until delivered or rejected (True), or until close()'s grace ends (False)."""
        body = encode(event).rstrip(b"\n")
        self.backoff.reset()
        attempt = 0
        while True:
            attempt += 1
            failure = await post_json(client, self.url, body)
            if failure is None:
                self.delivered += 1
                return True
            if not failure.retry:
                self.report(f"{failure.message}: alert {event.alert_id} rejected, not retried")
                return True
            if self.past_deadline():
                self.report(f"{failure.message} (attempt {attempt})")
                return False
            delay = self.backoff.next()
            self.report(f"{failure.message} (attempt {attempt}); retrying in {delay:.1f} s")
            await self.pause(delay)

    def _give_up(self, event: AlertEvent) -> None:
        lost = 1 + self.outbox.pending()
        self.report(f"giving up at exit: {lost} alert event{'s' * (lost != 1)} not delivered")

"""`--webhook URL`: POST every alert event, in the body `--webhook-format` makes of it.

The default format, `json`, is the event itself, the same object as its NDJSON line; the others
(`slack`, `discord`, `teams`, `cloudevents`, `alertmanager`) are in `makestream.sinks.formats`.
`--webhook-header` adds headers to every request (`makestream.sinks.headers`), and
`--webhook-secret-file` signs each one as Standard Webhooks says (`makestream.sinks.signing`).
`makestream.sinks.options` builds the sink from those options.

Events are delivered one at a time and in order. A timeout, a refused connection, a 5xx, 408 or
429 is retried with backoff until it succeeds (or `close()`'s grace runs out); any other answer
means the receiver will never accept the body, so that event is reported and dropped. The report
names the receiver by scheme and host only (paths of chat webhooks hold their secret), its status,
the likely cause, and the start of what it answered, with any part of the URL cut out of it:

    webhook https://hooks.slack.com/…: 400 Bad Request (the receiver refused the payload: is
    --webhook-format right?); it answered "invalid_blocks"; alert x dropped, not retried
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote, urlsplit

import anyio
import httpx

from makestream.clock import Clock
from makestream.events import AlertRaised, rfc3339
from makestream.sinks.base import AlertEvent, Backoff, ErrorCallback, Failure, Sink, _ignore, post
from makestream.sinks.formats import DEFAULT_FORMAT, RENDERERS, Context, Rendered, guess_format
from makestream.sinks.signing import Signer, message_id

RAISED_MEMORY = 10_000  # alerts whose raise time is kept for their resolution (oldest go first)
SAID_MAX_CHARS = 160  # of a refusal's body, in the report
SECRET_MIN_CHARS = 8  # a URL part this long may be a hook's secret, and is cut out of answers
_NAMES = {"slack": "Slack's", "discord": "Discord's", "teams": "Teams'"}


def hint(status: int, format_name: str, url: str) -> str:
    """What a final (non-retried) status most likely means, in words."""
    if status in (400, 415, 422):
        text = "the receiver refused the payload: is --webhook-format right?"
        guess = guess_format(url)
        if guess is not None and guess != format_name:
            text += f" The URL looks like {_NAMES[guess]}: --webhook-format {guess}"
        return text
    if status in (401, 403):
        return "the receiver refused the credentials: check --webhook-header and the secret"
    if status in (404, 410):
        return "no such webhook at the receiver: is the URL right, or was the hook deleted?"
    if status == 405:
        return "the receiver does not take POST: is the URL right?"
    if status == 413:
        return "the payload is too large for the receiver"
    if 300 <= status < 400:
        return "the receiver redirects elsewhere: give --webhook the final URL"
    return "the receiver refused the request"


def _secrets_of(url: str) -> list[str]:
    """The parts of `url` that may be a secret: path segments, query values, user info."""
    parts = urlsplit(url)
    found = [unquote(s) for s in parts.path.split("/")]
    found += [value for _, value in parse_qsl(parts.query)]
    found += [parts.username or "", parts.password or ""]
    # Short parts ("api", "hooks") are no secret, and hiding them would garble the answer.
    return sorted((s for s in found if len(s) >= SECRET_MIN_CHARS), key=len, reverse=True)


def said(body: bytes, url: str) -> str:
    """The start of a refusal's body as one printable line, with every part of the URL that
    may be a secret replaced by …; "" when there is nothing to show."""
    text = body.decode("utf-8", "replace")
    for secret in _secrets_of(url):
        text = text.replace(secret, "…")
    text = re.sub(r"[^\x20-\x7e…]+", " ", text)  # one line, nothing a terminal would obey
    text = " ".join(text.split())
    return text if len(text) <= SAID_MAX_CHARS else text[: SAID_MAX_CHARS - 1] + "…"


def refusal(failure: Failure, format_name: str, url: str) -> str:
    """``400 Bad Request (hint); it answered "…"`` for a final failure."""
    if failure.status is None:
        return failure.message
    try:
        phrase = f" {HTTPStatus(failure.status).phrase}"
    except ValueError:
        phrase = ""  # a status outside the registry: its number says all there is
    text = f"{failure.status}{phrase} ({hint(failure.status, format_name, url)})"
    answer = said(failure.said, url)
    return f'{text}; it answered "{answer}"' if answer else text


class WebhookSink(Sink):
    """Deliver alert events to one URL; see `makestream.sinks` for the lifecycle."""

    kind = "webhook"

    def __init__(
        self,
        url: str,
        *,
        format: str = DEFAULT_FORMAT,
        headers: Sequence[tuple[str, str]] = (),
        signer: Signer | None = None,
        source: str = "makestream",
        labels: Mapping[str, str] | None = None,
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
        if format not in RENDERERS:
            raise ValueError(f"unknown webhook format {format!r}")
        super().__init__(
            url,
            on_error=on_error,
            transport=transport,
            clock=clock,
            timeout_s=timeout_s,
            queue_size=queue_size,
            backoff=backoff,
            grace_s=grace_s,
            wall=wall,
            tls=tls,
        )
        self.format = format
        self.headers = tuple(headers)
        self.signer = signer
        self.source = source
        self.labels = dict(labels or {})
        self._raised_at: dict[str, str] = {}

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
                item = await self.outbox.get()
            except anyio.EndOfStream:
                return
            event = item.event
            try:
                delivered = await self._deliver(client, event, item.at)
            except Exception as exc:
                # Whatever went wrong, the stream must go on; say so and move to the next.
                self.report(f"alert {event.alert_id} not delivered: {exc!r}")
                delivered = True
            self.report_drops()
            if not delivered:
                self._give_up(event)
                return

    def render(self, event: AlertEvent, offered_at: float | None = None) -> Rendered:
        """The request for `event` in this sink's format (and what it remembers of alerts).

        `offered_at` is the wall-clock time (epoch s) the event was offered at, given to the
        formats whose receivers compare times with their own clocks."""
        now = rfc3339(self.clock.now())
        wall = rfc3339(offered_at) if offered_at is not None else None
        if isinstance(event, AlertRaised):
            self._remember(event.alert_id, wall or event.ts or now)
            raised_at = None
        else:
            raised_at = self._raised_at.pop(event.alert_id, None)
        context = Context(
            now=now, source=self.source, labels=self.labels, raised_at=raised_at, wall=wall
        )
        return RENDERERS[self.format](event, context)

    def _remember(self, alert_id: str, ts: str) -> None:
        # A re-notification keeps the first raise time: the incident began then.
        self._raised_at.setdefault(alert_id, ts)
        if len(self._raised_at) > RAISED_MEMORY:
            del self._raised_at[next(iter(self._raised_at))]

    def request_headers(self, rendered: Rendered, msg_id: str) -> list[tuple[str, str]]:
        """Content-Type, the format's headers, --webhook-header's, then the signature."""
        headers = [("Content-Type", rendered.content_type), *rendered.headers, *self.headers]
        if self.signer is not None:
            headers += self.signer.headers(msg_id, rendered.body, self.wall())
        return headers

    async def _deliver(
        self, client: httpx.AsyncClient, event: AlertEvent, offered_at: float | None = None
    ) -> bool:
        """Try until delivered or rejected (True), or until close()'s grace ends (False)."""
        rendered = self.render(event, offered_at)
        msg_id = message_id(event) if self.signer is not None else ""
        self.backoff.reset()
        attempt = 0
        while True:
            attempt += 1
            # Headers are made per attempt: a retry is signed anew, with the same webhook-id.
            headers = self.request_headers(rendered, msg_id)
            failure = await post(client, self.url, rendered.body, headers)
            if failure is None:
                self.delivered += 1
                return True
            if not failure.retry:
                why = refusal(failure, self.format, self.url)
                self.report(f"{why}; alert {event.alert_id} dropped, not retried")
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

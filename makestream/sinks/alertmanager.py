"""`--alertmanager URL`: keep Prometheus Alertmanager told about active alerts.

Alertmanager takes `POST {URL}/api/v2/alerts` with a JSON array of
``{labels, annotations, startsAt, endsAt?, generatorURL?}`` and expects clients to send firing
alerts again and again: one not re-sent within its `resolve_timeout` (5 min by default) is
resolved by Alertmanager itself. So the sink posts every active alert each `resend_s` (60 s), and
at once whenever one is raised or resolved; a resolved alert is sent with ``endsAt`` = now until
one post carrying it succeeds. Labels identify the alert:

``alertname``    ``makestream_<rule>``, e.g. ``makestream_consecutive_failures``
``rule``         the rule key; ``severity`` ``warning`` | ``critical``
``alert_id``     makestream's stable id (one per rule and subject)
``scenario_id``  and ``execution_id`` where the alert concerns them; plus any `labels` given
                 (``--alert-label``)

Annotations: ``summary`` (the alert's message) and ``description`` (rule, value, threshold).
``generatorURL`` is the run's page in Make when the alert names one, else `generator_url` (the
serve-sse page, when serving). ``startsAt`` and ``endsAt`` are wall-clock times, taken when the
event was offered: Alertmanager compares them with its own clock, so they never follow the
watch's clock (which the demo runs many times faster).

Several Alertmanagers (an HA pair) get one sink each: every one of them is told every alert.
`authorization` (``--alertmanager-auth-file``) is sent with every post, and `tls` (a CA bundle,
``--alertmanager-ca``) verifies an https Alertmanager. When makestream exits, active alerts are
left to expire through Alertmanager's resolve_timeout rather than being marked resolved: their
conditions may well still hold.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import orjson

from makestream.clock import Clock
from makestream.events import AlertRaised, rfc3339
from makestream.sinks.base import (
    AlertEvent,
    Backoff,
    ErrorCallback,
    Offered,
    Sink,
    _ignore,
    post,
)
from makestream.sinks.credentials import Credentials


def alerts_url(url: str) -> str:
    """`http://am:9093` → `http://am:9093/api/v2/alerts` (a full alerts URL is kept)."""
    base = url.rstrip("/")
    return base if base.endswith("/api/v2/alerts") else f"{base}/api/v2/alerts"


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def alert_labels(event: AlertEvent, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels that identify an alert to Alertmanager (see the module docstring); `extra`
    labels are added last. The `alertmanager` webhook format uses the same ones."""
    labels = {
        "alertname": f"makestream_{event.rule}",
        "rule": event.rule,
        "severity": event.severity,
        "alert_id": event.alert_id,
    }
    if event.scenario_id is not None:
        labels["scenario_id"] = str(event.scenario_id)
    if event.execution_id is not None:
        labels["execution_id"] = event.execution_id
    labels.update(extra or {})
    return labels


def alert_annotations(event: AlertEvent) -> dict[str, str]:
    """``summary`` (the alert's message) and ``description`` (rule, value, threshold)."""
    return {
        "summary": event.message,
        "description": f"{event.rule}: value {_figure(event.value)}, threshold "
        f"{_figure(event.threshold)}",
    }


@dataclass
class _Alert:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    generator_url: str | None = None
    ends_at: str | None = None

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": self.starts_at,
        }
        if self.ends_at is not None:
            body["endsAt"] = self.ends_at
        if self.generator_url:
            body["generatorURL"] = self.generator_url
        return body


class AlertmanagerSink(Sink):
    """Post alerts to Alertmanager; see `makestream.sinks` for the lifecycle."""

    kind = "alertmanager"

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
        resend_s: float = 60.0,
        labels: Mapping[str, str] | None = None,
        generator_url: str | None = None,
        credentials: Credentials | None = None,
        tls: ssl.SSLContext | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            alerts_url(url),
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
        self.resend_s = resend_s
        self.labels = dict(labels or {})
        self.generator_url = generator_url
        self.credentials = credentials
        self.active: dict[str, _Alert] = {}
        self._resolved: dict[str, _Alert] = {}  # sent with endsAt until one post succeeds
        self._dirty = False  # something changed since the last successful post
        self._next_resend = 0.0
        self._retry_at = 0.0
        self._ended = False  # the outbox is closed and empty

    async def run(self) -> None:
        """Post changes at once and active alerts every `resend_s` until closed; never raises
        (except on cancellation)."""
        try:
            async with self.client() as client:
                await self._loop(client)
        finally:
            self.outbox.dispose()

    async def _loop(self, client: httpx.AsyncClient) -> None:
        while True:
            self._absorb()
            now = self.clock.monotonic()
            due = self._dirty or (self.active and now >= self._next_resend)
            if due and now >= self._retry_at and not (self._ended and self.past_deadline()):
                await self._post(client, now)
                continue
            if self._ended and (not self._dirty or self.past_deadline()):
                if self._dirty:
                    self.report(
                        f"giving up at exit: {len(self._resolved)} resolved alerts not delivered"
                    )
                return
            await self._wait(now)

    # -- state -------------------------------------------------------------------------------

    def _absorb(self) -> None:
        """Take every queued event without waiting."""
        while not self._ended:
            try:
                self._take(self.outbox.get_nowait())
            except anyio.WouldBlock:
                return
            except anyio.EndOfStream:
                self._ended = True

    def _take(self, item: Offered) -> None:
        # Here, not at the top: the formats package imports this module (for the labels).
        from makestream.sinks.formats.text import run_url

        event, now = item.event, rfc3339(item.at)
        labels = alert_labels(event, self.labels)
        annotations = alert_annotations(event)
        link = run_url(event) or self.generator_url
        known = self.active.get(event.alert_id)
        if isinstance(event, AlertRaised):
            self._resolved.pop(event.alert_id, None)  # raised again before the post: still firing
            if known is None:
                self.active[event.alert_id] = _Alert(labels, annotations, now, link)
            else:
                known.annotations = annotations  # a re-notification: it began when first raised
        else:
            alert = self.active.pop(event.alert_id, None) or _Alert(labels, {}, now, link)
            alert.annotations, alert.ends_at = annotations, now
            self._resolved[event.alert_id] = alert
        self._dirty = True

    # -- delivery ----------------------------------------------------------------------------

    async def _post(self, client: httpx.AsyncClient, now: float) -> None:
        alerts = [*self.active.values(), *self._resolved.values()]
        body = orjson.dumps([a.payload() for a in alerts])
        headers = [("Content-Type", "application/json")]
        if self.credentials is not None:
            headers.append(("Authorization", self.credentials.authorization))
        try:
            failure = await post(client, self.url, body, headers)
        except Exception as exc:
            self.report(f"post failed: {exc!r}")
            failure = None  # treated as done: a bug must not turn into a tight retry loop
        self.report_drops()
        if failure is not None and failure.retry:
            delay = self.backoff.next()
            self.report(f"{failure.message}; retrying in {delay:.1f} s")
            self._retry_at = now + delay
            return
        if failure is not None:
            why = ""
            if failure.status in (401, 403):
                why = " (the credentials were refused: check --alertmanager-auth-file)"
            self.report(f"{failure.message}{why}: {len(alerts)} alerts rejected, not retried")
        else:
            self.delivered += len(alerts)
        self.backoff.reset()
        self._resolved.clear()
        self._dirty = False
        self._retry_at = 0.0
        self._next_resend = now + self.resend_s

    async def _wait(self, now: float) -> None:
        """Until the next post is due, or (while open) the next event arrives."""
        wake: list[float] = []
        if self._dirty:
            wake.append(self._retry_at)
        elif self.active:
            wake.append(max(self._next_resend, self._retry_at))
        delay = max(0.0, min(wake) - now) if wake else None
        if self._ended:
            await self.pause(delay if delay is not None else 0.0)
            return
        with anyio.move_on_after(self.clock.real(delay) if delay is not None else None):
            try:
                self._take(await self.outbox.get())
            except anyio.EndOfStream:
                self._ended = True

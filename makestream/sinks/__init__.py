"""Where alerts go besides the event stream: webhooks and Prometheus Alertmanager.

A webhook posts each alert in the body `--webhook-format` chooses (the event's JSON, Slack,
Discord, Teams, CloudEvents or Alertmanager's webhook payload: `makestream.sinks.formats`),
with any `--webhook-header` and, given `--webhook-secret-file`, a Standard Webhooks signature;
`makestream.sinks.alertmanager` keeps Alertmanager told; `makestream.sinks.options` turns the
flags (declared once for `watch` and `serve-sse` in `makestream.sinks.cli`) into sinks.

Each sink is fed with `offer(event)`, which never blocks: it queues alert events in a bounded
buffer (dropping the oldest when full) and ignores every other event type, and alerts marked
`replayed` (the start-up catch-up's). A background task,
`await sink.run()`, delivers them over HTTP with a timeout and retries with backoff; failures are
reported through the `on_error(message)` callback and never end the stream. `close(grace_s)` lets
`run()` deliver what is queued and return, giving up after `grace_s` if the receiver is down.

    async with WebhookSink(url, on_error=report) as sink:   # runs in the background
        async for event in events:
            sink.offer(event)
    # leaving the block closed the sink and waited (at most grace_s) for it to deliver

or, with a task group of one's own: ``tg.start_soon(sink.run)`` … ``sink.close()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from makestream.sinks.alertmanager import AlertmanagerSink
    from makestream.sinks.base import Sink
    from makestream.sinks.options import (
        SinkOptions,
        WebhookOptions,
        build_sinks,
        build_webhook_sink,
        sink_options,
    )
    from makestream.sinks.webhook import WebhookSink

__all__ = ["AlertmanagerSink", "Sink", "SinkOptions", "WebhookOptions", "WebhookSink",
           "build_sinks", "build_webhook_sink", "sink_options"]

_HOMES = {
    "AlertmanagerSink": "alertmanager",
    "Sink": "base",
    "SinkOptions": "options",
    "WebhookOptions": "options",
    "build_sinks": "options",
    "build_webhook_sink": "options",
    "sink_options": "options",
    "WebhookSink": "webhook",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that the commands can import `makestream.sinks.cli` (their option declarations)
    # without loading httpx and the formats before a sink is needed.
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(f"makestream.sinks.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Where alerts go besides the event stream: webhooks and Prometheus Alertmanager.

A webhook posts each alert in the body `--webhook-format` chooses (the event's JSON, Slack,
Discord, Teams, CloudEvents or Alertmanager's webhook payload: `makestream.sinks.formats`),
with any `--webhook-header` and, given `--webhook-secret-file`, a Standard Webhooks signature;
`makestream.sinks.options` turns those flags into a sink.

Each sink is fed with `offer(event)`, which never blocks: it queues alert events in a bounded
buffer (dropping the oldest when full) and ignores every other event type. A background task,
`await sink.run()`, delivers them over HTTP with a timeout and retries with backoff; failures are
reported through the `on_error(message)` callback and never end the stream. `close(grace_s)` lets
`run()` deliver what is queued and return, giving up after `grace_s` if the receiver is down.

    async with WebhookSink(url, on_error=report) as sink:   # runs in the background
        async for event in events:
            sink.offer(event)
    # leaving the block closed the sink and waited (at most grace_s) for it to deliver

or, with a task group of one's own: ``tg.start_soon(sink.run)`` … ``sink.close()``.
"""

from makestream.sinks.alertmanager import AlertmanagerSink
from makestream.sinks.base import Sink
from makestream.sinks.options import WebhookOptions, build_webhook_sink
from makestream.sinks.webhook import WebhookSink

__all__ = ["AlertmanagerSink", "Sink", "WebhookOptions", "WebhookSink", "build_webhook_sink"]

"""`json`: the event itself, the same object as its NDJSON line (what `--webhook` always sent).

Any event renders, not only alerts, so the format also suits a receiver fed every event."""

from __future__ import annotations

from makestream.events import _Event, encode
from makestream.sinks.formats.base import Context, Rendered


def render(event: _Event, context: Context) -> Rendered:
    return Rendered(encode(event).rstrip(b"\n"))

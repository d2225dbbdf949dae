"""`cloudevents`: the event as a CloudEvent 1.0 in structured content mode (the JSON event format),
sent as ``application/cloudevents+json``::

    {"specversion": "1.0", "id": "…", "source": "makestream", "type": "com.makestream.alert.raised",
     "subject": "<alert id>", "time": "<event ts>", "datacontenttype": "application/json",
     "data": {<the event, as its NDJSON line>}}

`id` must be unique per source, and the same when one event is delivered again, so receivers can
drop duplicates: it is a digest of the event's own line, which holds its emission time and seq
(a counter alone restarts with every makestream process and would make new events look like
repeats). Any event renders, as for `json`; `subject` is the alert id for alerts.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from makestream.events import AlertRaised, AlertResolved, _Event, encode
from makestream.sinks.formats.base import Context, Rendered

CONTENT_TYPE = "application/cloudevents+json"
TYPE_PREFIX = "com.makestream."


def event_id(line: bytes) -> str:
    """A stable id for one event: 128 bits of the SHA-256 of its NDJSON line."""
    return hashlib.sha256(line).hexdigest()[:32]


def render(event: _Event, context: Context) -> Rendered:
    line = encode(event).rstrip(b"\n")
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id(line),
        "source": context.source,
        "type": TYPE_PREFIX + event.type,
    }
    if isinstance(event, AlertRaised | AlertResolved) and event.alert_id:
        envelope["subject"] = event.alert_id
    envelope["time"] = event.ts or context.now
    envelope["datacontenttype"] = "application/json"
    envelope["data"] = orjson.loads(line)  # the NDJSON object, key order and all
    return Rendered(orjson.dumps(envelope), content_type=CONTENT_TYPE)

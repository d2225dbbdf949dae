"""`alertmanager`: the payload Alertmanager's own webhook receiver sends (``webhook_config``,
version 4), so tools written for Alertmanager's webhooks take makestream's alerts as they are::

    {"version": "4", "groupKey": "{}:{alert_id=\\"…\\", alertname=\\"…\\"}", "truncatedAlerts": 0,
     "status": "firing" | "resolved", "receiver": "makestream", "groupLabels": {…},
     "commonLabels": {…}, "commonAnnotations": {…}, "externalURL": "",
     "alerts": [{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
                 "fingerprint"}]}

Each post is one group holding one alert, grouped by ``alertname`` and ``alert_id``. Labels and
annotations are those the `--alertmanager` sink sends (`makestream.sinks.alertmanager`), so both
paths name an alert alike; the fingerprint is computed as Alertmanager computes it from the labels.
A firing alert's ``endsAt`` is Go's zero time, as Alertmanager writes it; a resolved one starts
when it was raised where the sender remembers that, else when it was resolved. Times are the
wall-clock times the webhook sink was offered the events (``Context.wall``), as the
`--alertmanager` sink stamps them, so they agree with Alertmanager's clock in a sped-up demo too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import orjson

from makestream.events import AlertResolved, _Event
from makestream.sinks.alertmanager import alert_annotations, alert_labels
from makestream.sinks.formats.base import Context, Rendered, alert_only
from makestream.sinks.formats.text import run_url

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's time.Time{}: "not set"
GROUP_BY = ("alertname", "alert_id")

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF  # never occurs in UTF-8, so no two label sets hash the same bytes


def fingerprint(labels: Mapping[str, str]) -> str:
    """Prometheus' label-set fingerprint (FNV-1a 64 over the sorted names and values, each
    followed by 0xff), as 16 hex digits: what Alertmanager puts in ``fingerprint``."""
    digest = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in (*part.encode(), _SEPARATOR):
                digest = ((digest ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{digest:016x}"


def group_key(group_labels: Mapping[str, str]) -> str:
    """The root route's key for a group, ``{}:{name="value", …}``, as Alertmanager forms it."""
    pairs = ", ".join(
        f"{name}={json.dumps(group_labels[name], ensure_ascii=False)}"
        for name in sorted(group_labels)
    )
    return "{}:{" + pairs + "}"


def render(event: _Event, context: Context) -> Rendered:
    alert = alert_only(event, "alertmanager")
    labels = alert_labels(alert, context.labels)
    annotations = alert_annotations(alert)
    # Alertmanager compares startsAt/endsAt with its own clock: the wall-clock time of the offer
    # where the sender gives one, else the event's emission time.
    at = context.wall or alert.ts or context.now
    resolved = isinstance(alert, AlertResolved)
    status = "resolved" if resolved else "firing"
    groups = {name: labels[name] for name in GROUP_BY}
    payload = {
        "version": "4",
        "groupKey": group_key(groups),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": context.receiver,
        "groupLabels": groups,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": context.external_url,
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": (context.raised_at or at) if resolved else at,
                "endsAt": at if resolved else ZERO_TIME,
                "generatorURL": run_url(alert) or "",
                "fingerprint": fingerprint(labels),
            }
        ],
    }
    return Rendered(orjson.dumps(payload))

"""`teams`: a Microsoft Teams message carrying one Adaptive Card (version 1.4), the shape both
Teams workflows ("When a Teams webhook request is received") and incoming webhooks take::

    {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                         "contentUrl": null, "content": {AdaptiveCard}}]}

The card shows a coloured title, the message, the facts as a FactSet, a footer naming the alert,
and an "Open the run in Make" action when the event has the run's URL. TextBlocks read a
CommonMark subset (emphasis, lists, links) and ``{{DATE(…)}}`` functions, so outside text has
those characters backslash-escaped. Teams refuses messages over about 28 KB; the caps below keep a
card far under it.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from makestream.events import _Event
from makestream.sinks.formats.base import Context, Rendered, alert_only, summarize
from makestream.sinks.formats.text import escape_line_starts, escape_underscores, fit

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
TITLE_MAX = 200
MESSAGE_MAX = 3000
FACT_MAX = 1000
URL_MAX = 2048

COLOURS = {"critical": "Attention", "warning": "Warning", "resolved": "Good"}

_INLINE = re.compile(r"([\\*\[\]`~{}])")
_LIST = re.compile(r"^(\s*)([-+]|\d+\.)(?=\s)", re.MULTILINE)


def escape(text: str) -> str:
    """Outside text with the markup Adaptive Cards read backslash-escaped (a list marker only
    where it starts a line)."""
    text = escape_underscores(_INLINE.sub(r"\\\1", text))
    return escape_line_starts(text, _LIST)


def render(event: _Event, context: Context) -> Rendered:
    alert = summarize(alert_only(event, "teams"), context)
    colour = COLOURS["resolved" if alert.state == "resolved" else alert.severity]
    footer = f"makestream · alert {alert.alert_id} · {alert.when}"
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "fallbackText": fit(f"{alert.title} — {alert.message}", MESSAGE_MAX),
        "body": [
            {
                "type": "TextBlock",
                "text": fit(alert.title, TITLE_MAX, escape),
                "size": "Medium",
                "weight": "Bolder",
                "color": colour,
                "wrap": True,
            },
            {"type": "TextBlock", "text": fit(alert.message, MESSAGE_MAX, escape), "wrap": True},
            {
                "type": "FactSet",
                "facts": [
                    {"title": name, "value": fit(value, FACT_MAX, escape)}
                    for name, value in alert.facts
                ],
            },
            {
                "type": "TextBlock",
                "text": fit(footer, FACT_MAX, escape),
                "size": "Small",
                "isSubtle": True,
                "wrap": True,
            },
        ],
        "msteams": {"width": "Full"},
    }
    if alert.url is not None and len(alert.url) <= URL_MAX:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": "Open the run in Make", "url": alert.url}
        ]
    message = {
        "type": "message",
        "attachments": [{"contentType": CARD_TYPE, "contentUrl": None, "content": card}],
    }
    return Rendered(orjson.dumps(message))

"""`discord`: a message for a Discord webhook (Execute Webhook), ``{"content", "embeds",
"allowed_mentions"}``.

`content` says what happened in one line (it is what notifications show); one embed holds the
facts, coloured by severity, linked to the run in Make when the event has its URL. Outside text is
markdown to Discord, so its markup characters are backslash-escaped, and ``allowed_mentions``
with an empty `parse` list means no ``@everyone``, role or user mention in it can notify anyone.
Caps, from Discord's reference: content 2000 characters; an embed's title 256, a field's name 256
and value 1024, at most 25 fields, a footer 2048, all of an embed's text 6000 (makestream's at
most five fields, each capped, and a shorter footer stay within it).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from makestream.events import _Event
from makestream.sinks.formats.base import Context, Rendered, alert_only, summarize
from makestream.sinks.formats.text import escape_line_starts, escape_underscores, fit

CONTENT_MAX = 2000
TITLE_MAX = 256
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FIELDS_MAX = 25
FOOTER_MAX = 256  # Discord allows 2048; this keeps title, fields and footer within 6000
URL_MAX = 2048

COLOURS = {"critical": 0xE01E5A, "warning": 0xECB22E, "resolved": 0x2EB67D}

# Discord's markdown: emphasis, code, spoilers, masked links ([text](url): escaping the bracket
# is enough), mentions anywhere; headings, subtext, lists and quotes where a line starts.
_INLINE = re.compile(r"([\\*~`|\[\]<@])")
_LINE_START = re.compile(r"^(\s*)(#{1,3}|-#|[-+>]|\d+\.)(?=\s)", re.MULTILINE)


def escape(text: str) -> str:
    """Outside text with its markdown backslash-escaped, so it shows as written."""
    text = escape_underscores(_INLINE.sub(r"\\\1", text))
    return escape_line_starts(text, _LINE_START)


def render(event: _Event, context: Context) -> Rendered:
    alert = summarize(alert_only(event, "discord"), context)
    embed: dict[str, Any] = {
        "title": fit(alert.title, TITLE_MAX, escape),
        "color": COLOURS["resolved" if alert.state == "resolved" else alert.severity],
        "fields": [
            {
                "name": fit(name, FIELD_NAME_MAX, escape),
                "value": fit(value, FIELD_VALUE_MAX, escape),
                "inline": True,
            }
            for name, value in alert.facts[:FIELDS_MAX]
        ],
        "footer": {"text": fit(f"makestream · alert {alert.alert_id}", FOOTER_MAX)},
        "timestamp": alert.when,
    }
    if alert.url is not None and len(alert.url) <= URL_MAX:
        embed["url"] = alert.url
    payload = {
        "content": fit(f"{alert.title} — {alert.message}", CONTENT_MAX, escape),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }
    return Rendered(orjson.dumps(payload))

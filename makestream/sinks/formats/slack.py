"""`slack`: a message for a Slack incoming webhook, ``{"text", "blocks"}``.

`text` is what notifications and clients without Block Kit show; the blocks lay the alert out: a
header, the message, the facts as a two-column field list, a link to the run in Make, and a
context line naming the alert. Slack reads ``&``, ``<`` and ``>`` as markup in mrkdwn
(``<!channel>`` notifies everyone, ``<url|text>`` is a link), so outside text has exactly those
three escaped as HTML entities, as Slack's formatting reference asks. Caps, from Block Kit's
reference: a header's text 150 characters, a section's text 3000, a field 2000, at most 10
fields.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from makestream.events import _Event
from makestream.sinks.formats.base import Context, Rendered, alert_only, summarize
from makestream.sinks.formats.text import fit

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
TEXT_MAX = 3000  # Slack takes far more, but truncates long notifications anyway
URL_MAX = 3000


def escape(text: str) -> str:
    """mrkdwn's three control characters as entities; `&` first, so no entity is escaped twice."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    """``<url|label>``; characters that would end the link early are percent-encoded in it."""
    safe = quote(url, safe=":/?#[]@!$&'()*+,;=%~")
    return f"<{escape(safe)}|{escape(label)}>"


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def render(event: _Event, context: Context) -> Rendered:
    alert = summarize(alert_only(event, "slack"), context)
    blocks: list[dict[str, Any]] = [
        # plain_text shows what it is given, markup and all: nothing to escape.
        {"type": "header", "text": {"type": "plain_text", "text": fit(alert.title, HEADER_MAX)}},
        {"type": "section", "text": _mrkdwn(fit(alert.message, SECTION_MAX, escape))},
        {
            "type": "section",
            "fields": [
                _mrkdwn(fit(f"*{name}*\n{value}", FIELD_MAX, escape))
                for name, value in alert.facts[:FIELDS_MAX]
            ],
        },
    ]
    if alert.url is not None and len(alert.url) <= URL_MAX:
        blocks.append({"type": "section", "text": _mrkdwn(link(alert.url, "Open the run in Make"))})
    footer = f"makestream · alert `{alert.alert_id}` · {alert.when}"
    blocks.append({"type": "context", "elements": [_mrkdwn(fit(footer, SECTION_MAX, escape))]})
    text = fit(f"{alert.title} — {alert.message}", TEXT_MAX, escape)
    return Rendered(orjson.dumps({"text": text, "blocks": blocks}))

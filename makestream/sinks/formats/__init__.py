"""`--webhook-format`: how one event becomes the body of one webhook request.

``json``          the event itself, as its NDJSON line (the default; any event)
``slack``         a Slack incoming-webhook message: ``text`` and Block Kit ``blocks``
``discord``       a Discord webhook message: ``content``, one embed, no mentions
``teams``         a Microsoft Teams message carrying an Adaptive Card 1.4
``cloudevents``   a CloudEvent 1.0 in structured JSON mode (any event)
``alertmanager``  the payload Alertmanager's webhook receiver sends (version 4)

Every renderer is a pure function ``(event, Context) -> Rendered`` (body bytes, Content-Type,
extra headers): delivery, signing and retries are the sink's. The chat formats render alert
events only and raise `NotAnAlert` for others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from makestream.errors import UsageError
from makestream.events import _Event
from makestream.sinks.formats import alertmanager, cloudevent, discord, plain, slack, teams
from makestream.sinks.formats.base import Context, NotAnAlert, Rendered

Renderer = Callable[[_Event, Context], Rendered]

RENDERERS: Mapping[str, Renderer] = {
    "json": plain.render,
    "slack": slack.render,
    "discord": discord.render,
    "teams": teams.render,
    "cloudevents": cloudevent.render,
    "alertmanager": alertmanager.render,
}
FORMATS = tuple(RENDERERS)
DEFAULT_FORMAT = "json"

__all__ = [
    "DEFAULT_FORMAT",
    "FORMATS",
    "RENDERERS",
    "Context",
    "NotAnAlert",
    "Rendered",
    "guess_format",
    "parse_format",
    "render",
]


def render(format_name: str, event: _Event, context: Context) -> Rendered:
    """The request `format_name` makes of `event`; KeyError for an unknown format."""
    return RENDERERS[format_name](event, context)


def parse_format(text: str) -> str:
    """A `--webhook-format` value, checked (case and surrounding blanks are forgiven)."""
    name = text.strip().lower()
    if name not in RENDERERS:
        raise UsageError(
            f"--webhook-format: unknown format {text!r} (expected one of {', '.join(FORMATS)})"
        )
    return name


def guess_format(url: str) -> str | None:
    """The format a well-known receiver's URL calls for (Slack, Discord, Teams), else None.

    Only a hint for messages: a URL proves nothing (proxies, relays), so it never picks one."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "hooks.slack.com":
        return "slack"
    if host in ("discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com") and (
        parts.path.startswith("/api/webhooks/")
    ):
        return "discord"
    teams_hosts = (".webhook.office.com", ".logic.azure.com", ".powerplatform.com")
    if host.endswith(teams_hosts):
        return "teams"
    return None

"""The alert-sink options of `watch` and `serve-sse`, declared once for both commands.

Each command lists these as the defaults of its parameters (``webhook: list[str] = WebhookOpt``)
and hands the values to `makestream.sinks.options.sink_options`, which checks them; so the two
commands take the same flags with the same help, and a change here reaches both (and their man
page and completions, generated from the commands). Only typer is imported here: the sinks
themselves load when a command runs.
"""

from __future__ import annotations

from enum import StrEnum

import typer


class WebhookFormat(StrEnum):
    """The body `--webhook` posts (see `makestream.sinks.formats`)."""

    json = "json"
    slack = "slack"
    discord = "discord"
    teams = "teams"
    cloudevents = "cloudevents"
    alertmanager = "alertmanager"


WebhookOpt = typer.Option(
    [],
    "--webhook",
    metavar="URL",
    help="POST every alert to this URL, in the --webhook-format (repeatable).",
)
WebhookFormatOpt = typer.Option(
    WebhookFormat.json,
    "--webhook-format",
    case_sensitive=False,
    help="The body --webhook posts: the event as JSON, a Slack, Discord or Teams message, "
    "a CloudEvent, or Alertmanager's webhook payload.",
)
WebhookHeaderOpt = typer.Option(
    [],
    "--webhook-header",
    metavar="'NAME: VALUE'",
    help="Send this header with every --webhook request (repeatable), e.g. for auth.",
)
WebhookSecretFileOpt = typer.Option(
    None,
    "--webhook-secret-file",
    metavar="FILE",
    dir_okay=False,
    help="Sign --webhook requests per Standard Webhooks with the whsec_ secret in FILE.",
)
AlertmanagerOpt = typer.Option(
    [],
    "--alertmanager",
    metavar="URL",
    help="Send alerts to this Alertmanager (its base URL; /api/v2/alerts is added). "
    "Repeatable: each one (an HA pair) gets every alert.",
)
AlertmanagerAuthFileOpt = typer.Option(
    None,
    "--alertmanager-auth-file",
    metavar="FILE",
    dir_okay=False,
    help="Authenticate to --alertmanager with the one line in FILE: 'Bearer TOKEN', or "
    "'user:password' for basic auth.",
)
AlertmanagerCaOpt = typer.Option(
    None,
    "--alertmanager-ca",
    metavar="FILE",
    dir_okay=False,
    help="Verify an https --alertmanager against the PEM CA bundle in FILE (instead of the "
    "system's CAs).",
)
AlertLabelOpt = typer.Option(
    [],
    "--alert-label",
    metavar="NAME=VALUE",
    help="Add this label to every alert sent to --alertmanager (and in --webhook-format "
    "alertmanager), e.g. env=prod (repeatable).",
)

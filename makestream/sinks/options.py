"""The sink options as the CLI takes them, checked in one place, and the sinks they describe.

    options = sink_options(webhooks=urls, webhook_format=fmt, webhook_headers=header_texts,
                           webhook_secret_file=path, alertmanagers=am_urls,
                           alertmanager_auth_file=auth, alertmanager_ca=ca, alert_labels=texts)
    sinks = build_sinks(options, on_error=on_error, clock=clock, generator_url=page)

`sink_options` (and `WebhookOptions.from_cli`, `parse_labels`) raise UsageError (exit 2) with a
one-line message naming the option: an unknown format, a refused header, a secret, auth or CA
file that is missing, too large or malformed, a label name Prometheus would refuse, or a
``--webhook-…``/``--alertmanager-…`` option without the URL it qualifies. `build_sinks` raises
UsageError for a URL that is not http(s). Both `watch` and `serve-sse` take these options
(`makestream.sinks.cli` declares them once for both).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from makestream.clock import Clock
from makestream.errors import UsageError
from makestream.sinks.alertmanager import AlertmanagerSink
from makestream.sinks.base import ErrorCallback, Sink, _ignore
from makestream.sinks.credentials import Credentials, ca_context
from makestream.sinks.formats import DEFAULT_FORMAT, parse_format
from makestream.sinks.headers import parse_headers
from makestream.sinks.signing import Signer
from makestream.sinks.webhook import WebhookSink

LABEL_OPTION = "--alert-label"
# Prometheus' label names; those starting with "__" are reserved for its own use.
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Labels makestream sets itself: overriding one would merge distinct alerts into one.
OWN_LABELS = frozenset({"alertname", "rule", "severity", "alert_id", "scenario_id",
                        "execution_id"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class WebhookOptions:
    """One `--webhook` receiver: its URL, body format, extra headers and signing secret."""

    url: str
    format: str = DEFAULT_FORMAT
    headers: tuple[tuple[str, str], ...] = ()
    secret: Signer | None = None  # its repr names no secret, so neither does this one's

    @classmethod
    def from_cli(
        cls,
        url: str,
        *,
        format: str | None = None,
        headers: Iterable[str] = (),
        secret_file: Path | None = None,
    ) -> WebhookOptions:
        """The options from the flags' raw values (`--webhook-format`, each `--webhook-header`,
        `--webhook-secret-file`)."""
        return cls(
            url=url,
            format=DEFAULT_FORMAT if format is None else parse_format(format),
            headers=parse_headers(headers),
            secret=Signer.from_file(secret_file) if secret_file is not None else None,
        )


def parse_label(text: str) -> tuple[str, str]:
    """``name=value`` → ``("name", "value")``; UsageError naming the label if it is refused."""
    name, equals, value = text.partition("=")
    name = name.strip()
    shown = repr(name[:40] + ("…" if len(name) > 40 else ""))
    if not equals:
        raise UsageError(f"{LABEL_OPTION} {shown}: expected NAME=VALUE (no '=')")
    if not _LABEL_NAME.fullmatch(name):
        raise UsageError(f"{LABEL_OPTION} {shown}: not a Prometheus label name (a letter or _, "
                         "then letters, digits and _)")
    if name.startswith("__"):
        raise UsageError(f"{LABEL_OPTION} {name}: names starting with __ are reserved")
    if name in OWN_LABELS:
        raise UsageError(f"{LABEL_OPTION} {name}: refused, makestream sets it on every alert")
    if not value:
        # An empty value is the same as no label to Prometheus and Alertmanager.
        raise UsageError(f"{LABEL_OPTION} {name}: the value is empty")
    if _CONTROL.search(value):
        raise UsageError(f"{LABEL_OPTION} {name}: the value holds a control character")
    return name, value


def parse_labels(texts: Iterable[str]) -> dict[str, str]:
    """Every `--alert-label`, in order; a name given twice is an error."""
    labels: dict[str, str] = {}
    for text in texts:
        name, value = parse_label(text)
        if name in labels:
            raise UsageError(f"{LABEL_OPTION} {name}: given twice")
        labels[name] = value
    return labels


@dataclass(frozen=True)
class AlertmanagerOptions:
    """The `--alertmanager` receivers (each gets every alert) and how to reach them."""

    urls: tuple[str, ...]
    credentials: Credentials | None = None
    tls: ssl.SSLContext | None = None


@dataclass(frozen=True)
class SinkOptions:
    """Every alert sink a command was asked for, checked."""

    webhooks: tuple[WebhookOptions, ...] = ()
    alertmanager: AlertmanagerOptions | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.webhooks) or self.alertmanager is not None


def sink_options(
    *,
    webhooks: Sequence[str] = (),
    webhook_format: str | None = None,
    webhook_headers: Sequence[str] = (),
    webhook_secret_file: Path | None = None,
    alertmanagers: Sequence[str] = (),
    alertmanager_auth_file: Path | None = None,
    alertmanager_ca: Path | None = None,
    alert_labels: Sequence[str] = (),
) -> SinkOptions:
    """The options from the flags' raw values; read (and checked) before anything else is done,
    so that a bad header, secret or label is exit 2 at once."""
    if (webhook_headers or webhook_secret_file) and not webhooks:
        raise UsageError("--webhook-header and --webhook-secret-file need a --webhook URL")
    if (alertmanager_auth_file or alertmanager_ca) and not alertmanagers:
        raise UsageError("--alertmanager-auth-file and --alertmanager-ca need an "
                         "--alertmanager URL")
    if len(set(alertmanagers)) != len(alertmanagers):
        raise UsageError("--alertmanager: the same URL given twice")
    hooks = tuple(
        WebhookOptions.from_cli(url, format=webhook_format, headers=webhook_headers,
                                secret_file=webhook_secret_file)
        for url in webhooks
    )
    am = None
    if alertmanagers:
        am = AlertmanagerOptions(
            urls=tuple(alertmanagers),
            credentials=Credentials.from_file(alertmanager_auth_file)
            if alertmanager_auth_file is not None else None,
            tls=ca_context(alertmanager_ca) if alertmanager_ca is not None else None,
        )
    return SinkOptions(webhooks=hooks, alertmanager=am, labels=parse_labels(alert_labels))


def build_webhook_sink(
    options: WebhookOptions,
    *,
    on_error: ErrorCallback = _ignore,
    clock: Clock | None = None,
    labels: dict[str, str] | None = None,
) -> WebhookSink:
    """The sink that delivers to `options.url` as the options say."""
    return WebhookSink(
        options.url,
        format=options.format,
        headers=options.headers,
        signer=options.secret,
        labels=labels,
        on_error=on_error,
        clock=clock,
    )


def build_sinks(
    options: SinkOptions,
    *,
    on_error: ErrorCallback = _ignore,
    clock: Clock | None = None,
    generator_url: str | None = None,
) -> list[Sink]:
    """One sink per `--webhook` and per `--alertmanager` URL. `generator_url` is the link an
    Alertmanager alert carries when it names no run (serve-sse's page)."""
    sinks: list[Sink] = []
    option = "--webhook"
    try:
        for hook in options.webhooks:
            sinks.append(build_webhook_sink(hook, on_error=on_error, clock=clock,
                                            labels=options.labels))
        option = "--alertmanager"
        am = options.alertmanager
        for url in am.urls if am is not None else ():
            sinks.append(AlertmanagerSink(
                url, on_error=on_error, clock=clock, labels=options.labels,
                generator_url=generator_url, credentials=am.credentials if am else None,
                tls=am.tls if am else None,
            ))
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    return sinks

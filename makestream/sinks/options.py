"""The webhook options as the CLI takes them, checked in one place, and the sink they describe.

    options = WebhookOptions.from_cli(url, format=fmt, headers=header_texts, secret_file=path)
    sink = build_webhook_sink(options, on_error=on_error, clock=clock)

`from_cli` raises UsageError (exit 2) with a one-line message naming the option: an unknown
format, a refused header, a secret file that is missing, too large, or not ``whsec_<base64>``.
`build_webhook_sink` raises ValueError for a URL that is not http(s), as `WebhookSink` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from makestream.clock import Clock
from makestream.sinks.base import ErrorCallback, _ignore
from makestream.sinks.formats import DEFAULT_FORMAT, parse_format
from makestream.sinks.headers import parse_headers
from makestream.sinks.signing import Signer
from makestream.sinks.webhook import WebhookSink


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


def build_webhook_sink(
    options: WebhookOptions,
    *,
    on_error: ErrorCallback = _ignore,
    clock: Clock | None = None,
) -> WebhookSink:
    """The sink that delivers to `options.url` as the options say."""
    return WebhookSink(
        options.url,
        format=options.format,
        headers=options.headers,
        signer=options.secret,
        on_error=on_error,
        clock=clock,
    )

"""`--webhook-secret-file PATH`: sign every webhook request as the Standard Webhooks spec says.

Each request then carries::

    webhook-id         msg_<digest of the event>   the same on every retry, so receivers dedupe
    webhook-timestamp  seconds since the epoch     when this attempt was signed
    webhook-signature  v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">

The file holds the secret as receivers hand it out, ``whsec_`` and base64; during a rotation it
may hold one secret per line, and the request is signed with each (the header lists them all,
space-separated, and a receiver accepts any that matches). The file is read within
TOKEN_MAX_BYTES, may be a pipe (``<(pass show hook)``), and no message ever quotes the secret.
Signing uses the `standardwebhooks` package, the spec's reference implementation.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from pathlib import Path

from standardwebhooks import Webhook

from makestream.errors import UsageError
from makestream.events import _Event, encode
from makestream.sinks.formats.cloudevent import event_id

OPTION = "--webhook-secret-file"
PREFIX = "whsec_"
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def _key(line: str, where: str) -> bytes:
    """The key a ``whsec_<base64>`` secret stands for; UsageError (not naming it) otherwise."""
    if not line.startswith(PREFIX):
        raise UsageError(f"{where}: expected a secret of the form whsec_<base64>")
    encoded = line[len(PREFIX) :]
    if not encoded:
        raise UsageError(f"{where}: the secret is empty")
    try:
        if not _BASE64.fullmatch(encoded):
            raise ValueError
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (ValueError, binascii.Error):
        raise UsageError(f"{where}: the part after whsec_ is not base64") from None
    return key


class Signer:
    """Signs request bodies with one or more secrets; its repr never shows them."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("a signer needs at least one secret")
        self._webhooks = [Webhook(key) for key in keys]

    @classmethod
    def from_text(cls, text: str, where: str = OPTION) -> Signer:
        """Secrets, one per line (blank lines ignored), each ``whsec_<base64>``."""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            raise UsageError(f"{where}: the file is empty")
        return cls([_key(line, f"{where}, line {n}") for n, line in enumerate(lines, start=1)])

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        from makestream.files import read_secret

        where = f"{OPTION} {path}"
        try:
            text = read_secret(path, OPTION)
        except FileNotFoundError:
            raise UsageError(f"{where}: no such file") from None
        return cls.from_text(text, where)

    def __repr__(self) -> str:
        return f"Signer({len(self._webhooks)} secret{'s' * (len(self._webhooks) != 1)})"

    def headers(self, msg_id: str, body: bytes, timestamp: float) -> list[tuple[str, str]]:
        """The three Standard Webhooks headers for `body`, signed at `timestamp` (epoch s)."""
        when = datetime.fromtimestamp(int(timestamp), UTC)
        text = body.decode("utf-8")  # every format renders UTF-8 JSON; older releases sign str
        signatures = " ".join(w.sign(msg_id, when, text) for w in self._webhooks)
        return [
            ("webhook-id", msg_id),
            ("webhook-timestamp", str(int(timestamp))),
            ("webhook-signature", signatures),
        ]


def message_id(event: _Event) -> str:
    """``msg_`` and the event's digest: the same event gives the same id, however often sent
    (the CloudEvents format uses the same digest for its `id`)."""
    return "msg_" + event_id(encode(event).rstrip(b"\n"))

"""`--webhook-header 'Name: value'`: extra request headers for the webhook, checked up front.

A receiver behind an API gateway wants ``Authorization: Bearer …`` or ``X-Api-Key: …``; these
are sent with every request. Refused, each with a one-line error naming the header:

- no colon, an empty name, or a name with characters HTTP does not allow in one;
- a value holding CR, LF, NUL or another control character (a header could be smuggled in),
  or a character beyond ASCII;
- headers that describe the connection or the body rather than the message, which httpx sets
  (Host, Content-Length, Transfer-Encoding, Connection and the other hop-by-hop ones);
- headers makestream sets itself: Content-Type (chosen by --webhook-format) and the Standard
  Webhooks signature headers (from --webhook-secret-file).

The value is never quoted in a message: it is often a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from makestream.errors import UsageError

OPTION = "--webhook-header"

# RFC 9110's token characters: what a field name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters other than tab (which is allowed inside a value).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# Framing and hop-by-hop headers (RFC 9110 §7.6.1, RFC 9112): the HTTP client's to set.
FRAMING = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)
# What the sink itself sets per request.
OWN = {
    "content-type": "it is set by --webhook-format",
    "webhook-id": "it is set by --webhook-secret-file",
    "webhook-timestamp": "it is set by --webhook-secret-file",
    "webhook-signature": "it is set by --webhook-secret-file",
}


def _shown(text: str) -> str:
    """How a header without a usable name is named in a message: its first word, and no more,
    since what follows may be a secret."""
    word = text.strip().split(maxsplit=1)[0] if text.strip() else ""
    word = _CONTROL.sub("?", word)
    return repr(word[:40] + ("…" if len(word) > 40 or len(text.strip()) > len(word) else ""))


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` → ``("Name", "value")``; UsageError naming the header if it is refused.

    Blanks around the name and the value are dropped, as HTTP does; an empty value is allowed."""
    name, colon, value = text.partition(":")
    if not colon:
        raise UsageError(f"{OPTION} {_shown(text)}: expected 'Name: value' (no colon)")
    name, value = name.strip(), value.strip(" \t")
    if not name:
        raise UsageError(f"{OPTION} {_shown(text)}: the header name is empty")
    if not _TOKEN.fullmatch(name):
        raise UsageError(
            f"{OPTION} {_shown(name)}: not a valid header name "
            "(letters, digits and !#$%&'*+-.^_`|~ only)"
        )
    lower = name.lower()
    if lower in FRAMING:
        raise UsageError(f"{OPTION} {name}: refused, the HTTP client sets it")
    if lower in OWN:
        raise UsageError(f"{OPTION} {name}: refused, {OWN[lower]}")
    if _CONTROL.search(value):
        raise UsageError(f"{OPTION} {name}: the value holds CR, LF or another control character")
    if not value.isascii():
        # httpx sends header values as ASCII; a receiver would not agree on another encoding.
        raise UsageError(f"{OPTION} {name}: the value is not ASCII")
    return name, value


def parse_headers(texts: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Every `--webhook-header`, in order; a name may repeat (each is sent)."""
    return tuple(parse_header(text) for text in texts)

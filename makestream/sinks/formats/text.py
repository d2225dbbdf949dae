"""Text helpers the chat formats share: what an alert says, made safe and cut to a receiver's cap.

Alert messages quote Make (scenario names, error messages) and so may carry anything: markup of
the receiving chat (Slack's ``<!channel>``, Discord's ``@everyone``, a markdown link), control
characters, or invisible characters that reorder what a reader sees. Each format escapes its own
markup; `visible` is shared and turns control and invisible formatting characters into visible
escapes (``\\u202e``), so a reader sees that something was there.

Lengths are counted in UTF-16 code units, the strictest way any of the receivers counts (Discord
and Teams count in JavaScript strings), so a cap is never exceeded however it is measured.
`fit` cuts the raw text rather than its escaped form, so an escape (``&amp;``) is never split.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from makestream.events import _Event

ELLIPSIS = "…"

# C0 controls but tab and newline, DEL and C1; bidi marks, embeddings, overrides and isolates;
# zero-width characters and the BOM; the line and paragraph separators.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff]"
)


def units(text: str) -> int:
    """The length of `text` in UTF-16 code units (a character beyond the BMP counts two)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def visible(text: str) -> str:
    """`text` with control and invisible formatting characters written as visible escapes."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# An underscore inside a word (snake_case rule names) emphasises nothing in CommonMark or in
# Discord's markdown; one at a word's edge may.
_EDGE_UNDERSCORE = re.compile(r"_(?![^\W_])|(?<![^\W_])_")


def escape_underscores(text: str) -> str:
    """Backslash every underscore that is not inside a word."""
    return _EDGE_UNDERSCORE.sub(r"\\_", text)


def escape_line_starts(text: str, pattern: re.Pattern[str]) -> str:
    """Backslash the block markers `pattern` finds at line starts (group 1 the indent, group 2
    the marker): ``- x`` → ``\\- x``; ``1. x`` → ``1\\. x`` (a backslash escapes punctuation
    only, so a numbered item's dot takes it)."""

    def one(match: re.Match[str]) -> str:
        indent, marker = match.group(1), match.group(2)
        if marker.endswith("."):
            return f"{indent}{marker[:-1]}\\."
        return f"{indent}\\{marker}"

    return pattern.sub(one, text)


def _same(text: str) -> str:
    return text


def fit(text: str, limit: int, escape: Callable[[str], str] = _same) -> str:
    """`escape(text)`, cut short with an ellipsis so that it is at most `limit` units long."""
    out = escape(text)
    if units(out) <= limit:
        return out
    keep = min(len(text), limit)  # each character is at least one unit, and escapes only add
    while keep > 0:
        out = escape(text[:keep]).rstrip() + ELLIPSIS
        if units(out) <= limit:
            return out
        keep -= max(1, units(out) - limit)
    return ELLIPSIS if limit >= 1 else ""


def figure(value: float | None) -> str:
    """A rule's value or threshold as shown: `3`, `0.25`, `n/a`."""
    return "n/a" if value is None else f"{value:g}"


def extra_text(event: _Event, name: str) -> str | None:
    """A non-empty string field of the event, also one it carries beyond its model (an alert's
    `url` or `scenario_name`, when the engine adds them)."""
    value = getattr(event, name, None)
    return value if isinstance(value, str) and value else None


def run_url(event: _Event) -> str | None:
    """The run's page in Make, when the event has one; only http(s) URLs are ever linked."""
    url = extra_text(event, "url")
    return url if url is not None and urlsplit(url).scheme in ("http", "https") else None

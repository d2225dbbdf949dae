"""Making outside text safe to show on a terminal, and to write as JSON lines.

Scenario names, module names and error messages come from Make, and an error message often
quotes a third-party API's answer, so any of them may carry terminal control sequences: an OSC
that retitles the window or plants a hyperlink, a CSI that clears the screen, a carriage return
or backspace that overwrites what was printed, or bidi overrides that make text read other than
it is. Every human output path runs such text through `clean` first: each unsafe character is
replaced with a visible escape (`\\x1b`, `\\u202e`), so a reader sees that something was there
and the terminal sees only printable characters.

Unsafe are: the C0 controls (ESC, BEL, CR, backspace; newline and tab too, unless `multiline`
keeps newlines), DEL, the C1 controls U+0080-U+009F (which some terminals obey as ESC
sequences), lone surrogates (which cannot be encoded and would crash the write), the line and
paragraph separators U+2028/U+2029, and the invisible formatting characters that reorder or hide
text: bidi marks, embeddings, overrides and isolates, zero-width characters, the BOM.

`escape_json` is the counterpart for JSON output, which must keep the original text: it writes
the same characters (other than C0, which JSON encoders already escape) as `\\u0085`-style JSON
escapes, which parse back to the very same string. `json_dumps`, which every JSON writer uses
(`events.encode` among them), applies it and never fails on an integer orjson refuses.

Everything here is pure and idempotent: `clean(clean(s)) == clean(s)`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

# Invisible formatting characters, as (first, last) code points (`_JSON_UNSAFE` below spells the
# same ranges out in UTF-8).
_FORMAT_RANGES = (
    (0x061C, 0x061C),  # Arabic letter mark (bidi)
    # Zero-width space; left-to-right and right-to-left marks. The zero-width (non-)joiners
    # U+200C/U+200D stay: emoji sequences and Indic and Persian writing need them, and they
    # neither reorder nor hide text.
    (0x200B, 0x200B),
    (0x200E, 0x200F),
    (0x2028, 0x202E),  # line and paragraph separators; bidi embeddings and overrides
    (0x2060, 0x2064),  # word joiner and invisible operators
    (0x2066, 0x206F),  # bidi isolates, and deprecated shaping controls
    (0xFEFF, 0xFEFF),  # zero-width no-break space (BOM)
    (0xFFF9, 0xFFFB),  # interlinear annotation controls
)
# C1 controls, and DEL with them: JSON encoders escape C0 but pass both of these through raw.
_CONTROL_RANGES = ((0x7F, 0x7F), (0x80, 0x9F))


def _char_class(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in ranges)


_ONE_LINE = re.compile(
    f"[\\x00-\\x1f{_char_class(_CONTROL_RANGES + _FORMAT_RANGES)}\\ud800-\\udfff]"
)
# The same, less the newline: for text that is shown over several lines.
_MULTILINE = re.compile(
    f"[\\x00-\\x09\\x0b-\\x1f{_char_class(_CONTROL_RANGES + _FORMAT_RANGES)}\\ud800-\\udfff]"
)
# The escapes a person reads most easily; everything else is \xNN or \uNNNN.
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT.get(char)
    if short is not None:
        return short
    point = ord(char)
    return f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}"


def is_clean(text: str, *, multiline: bool = False) -> bool:
    """Whether `text` has nothing `clean` would escape."""
    return (_MULTILINE if multiline else _ONE_LINE).search(text) is None


def clean(
    text: str, *, max_chars: int | None = None, multiline: bool = False, ellipsis: str = "…"
) -> str:
    """`text` with every unsafe character replaced by a visible escape (`\\x1b`, `\\u202e`).

    `multiline` keeps newlines (for text drawn over several lines); otherwise they become `\\n`
    too, so that the result is one line. With `max_chars`, a longer result is cut to that many
    characters, the last of them `ellipsis`, and never in the middle of an escape.
    """
    pattern = _MULTILINE if multiline else _ONE_LINE
    if max_chars is not None and len(text) > max_chars:
        # Escaping only lengthens text, so the first max_chars + 1 characters decide the result;
        # a megabyte of error body costs no more than its start.
        text = text[: max_chars + 1]
    elif pattern.search(text) is None:
        return text
    if max_chars is None:
        return pattern.sub(_escape, text)
    keep = max(0, max_chars - len(ellipsis))
    parts: list[str] = []
    size = 0
    position = 0
    for match in pattern.finditer(text):
        parts.append(text[position : match.start()])
        size += match.start() - position
        escaped = _escape(match)
        parts.append(escaped)
        size += len(escaped)
        position = match.end()
        if size > max_chars:
            break
    else:
        parts.append(text[position:])
        size += len(text) - position
    if size <= max_chars:
        return "".join(parts)
    # Too long: take whole pieces up to `keep` characters; an escape that does not fit goes.
    out: list[str] = []
    room = keep
    for index, part in enumerate(parts):
        if len(part) <= room:
            out.append(part)
            room -= len(part)
            continue
        if index % 2 == 0:  # plain text (even indexes) may be cut anywhere
            out.append(part[:room])
        break
    return "".join(out) + ellipsis[:max_chars]


def strip_unsafe(text: str) -> str:
    """`text` without its unsafe characters (newlines kept): the last line of defence where
    there is no room to show an escape, such as text already laid out in cells."""
    return _MULTILINE.sub("", text)


# The UTF-8 encoding of each DEL, C1 and formatting character above, written out by hand and
# grouped by lead byte: an alternation whose branches start with plain bytes lets the regex engine
# skip ahead with a quick scan (a generated form with character classes first was five times
# slower). tests/test_safetext.py checks it against the ranges, character by character.
_JSON_UNSAFE = re.compile(
    rb"\x7f"
    rb"|\xc2[\x80-\x9f]"  # U+0080-U+009F
    rb"|\xd8\x9c"  # U+061C
    rb"|\xe2(?:\x80[\x8b\x8e\x8f\xa8-\xae]|\x81[\xa0-\xa4\xa6-\xaf])"  # U+200B-U+206F
    rb"|\xef(?:\xbb\xbf|\xbf[\xb9-\xbb])"  # U+FEFF, U+FFF9-U+FFFB
)


def _json_escape(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(match.group().decode())


def escape_json(data: bytes | bytearray) -> bytes:
    """JSON text (UTF-8, as an encoder wrote it) with DEL, C1 and formatting characters written
    as `\\u0085`-style escapes: the same JSON value, nothing a terminal would obey.

    In valid UTF-8 these byte sequences are always whole characters, and in an encoder's output
    they can only stand inside strings, where an escape means the same character.
    """
    # ASCII is checked many times faster than the pattern is searched, and most lines are ASCII.
    if (data.isascii() and b"\x7f" not in data) or _JSON_UNSAFE.search(data) is None:
        return bytes(data)
    return _JSON_UNSAFE.sub(_json_escape, data)


def json_dumps(value: Any, *, indent: bool = False) -> bytes:
    """`value` as JSON text that is safe on a terminal (without a trailing newline).

    orjson does the work; what it refuses (an integer beyond 64 bits, which a model or an event
    read back from a file may still hold) goes through the standard library instead, rather
    than crashing the writer in the middle of a stream.
    """
    try:
        data = orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        # ASCII only: a lone surrogate (orjson's other refusal) cannot be written as UTF-8.
        data = json.dumps(
            _finite(value), ensure_ascii=True, allow_nan=False, default=str,
            indent=2 if indent else None, separators=None if indent else (",", ":"),
        ).encode()
    return escape_json(data)


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities as null, as orjson writes them (they are not JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value

"""`makestream.safetext`: every class of unsafe character escaped visibly, caps that never split an
escape, idempotence, ordinary Unicode untouched, and JSON escaping that keeps the text."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from makestream.events import StreamHeartbeat
from makestream.render.ndjson import NdjsonWriter, dumps, encode
from makestream.safetext import _JSON_UNSAFE, clean, escape_json, is_clean, strip_unsafe

ORDINARY = "Zürich — 東京 ✓ «quotes» ‘single’ €5 naïve façade Ελλάδα עברית العربية 😀 C:\\path [b]"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        # C0, with the usual suspects of terminal attacks
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("\x1b[2J", "\\x1b[2J"),
        ("over\rwrite", "over\\rwrite"),
        ("back\x08space", "back\\x08space"),
        ("nul\x00", "nul\\x00"),
        ("\x1f", "\\x1f"),
        ("one\ntwo", "one\\ntwo"),
        ("tab\there", "tab\\there"),
        # DEL and C1: \x9b is a one-byte CSI on terminals that take 8-bit controls
        ("del\x7f", "del\\x7f"),
        ("\x80\x85\x9b2J\x9d0;t\x9c\x9f", "\\x80\\x85\\x9b2J\\x9d0;t\\x9c\\x9f"),
        # bidi: override, embeddings, isolates, marks
        ("abc\u202egnp.exe", "abc\\u202egnp.exe"),
        ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),
        # invisible: zero-width characters, the BOM, separators that break lines elsewhere
        ("pay\u200broll", "pay\\u200broll"),
        ("\u200b\u200e\u2060\ufeff", "\\u200b\\u200e\\u2060\\ufeff"),
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),
        # a lone surrogate could not even be encoded to UTF-8
        ("bad\ud800", "bad\\ud800"),
    ],
)
def test_each_unsafe_character_becomes_a_visible_escape(raw: str, shown: str) -> None:
    assert clean(raw) == shown
    assert is_clean(shown) and not is_clean(raw)


def test_zero_width_joiners_stay_for_emoji_and_scripts_that_need_them() -> None:
    text = "\U0001f469\u200d\U0001f4bb \u0645\u06cc\u200c\u062e"  # woman technologist; Persian
    assert clean(text) == text and is_clean(text)


def test_the_osc_8_hyperlink_from_the_brief_is_shown_not_obeyed() -> None:
    raw = "\x1b]8;;http://evil\x1b\\CLICK\x1b]8;;\x1b\\"
    assert clean(raw) == "\\x1b]8;;http://evil\\x1b\\CLICK\\x1b]8;;\\x1b\\"
    assert "\x1b" not in clean(raw)


def test_ordinary_unicode_and_backslashes_are_untouched() -> None:
    assert clean(ORDINARY) is ORDINARY  # no copy when there is nothing to do
    assert clean(ORDINARY, multiline=True) == ORDINARY
    assert clean(ORDINARY, max_chars=len(ORDINARY)) == ORDINARY
    assert escape_json(orjson.dumps(ORDINARY)) == orjson.dumps(ORDINARY)


def test_multiline_keeps_newlines_only() -> None:
    assert clean("one\ntwo\r\n\tthree\x1b", multiline=True) == "one\ntwo\\r\n\\tthree\\x1b"
    assert is_clean("a\nb", multiline=True) and not is_clean("a\nb")


def test_a_cap_cuts_with_an_ellipsis_to_exactly_max_chars() -> None:
    assert clean("abcdefghij", max_chars=5) == "abcd…"
    assert clean("abcdefghij", max_chars=5, ellipsis="...") == "ab..."
    assert clean("abcde", max_chars=5) == "abcde"
    assert clean("", max_chars=0) == ""
    assert len(clean("x" * 10_000, max_chars=80)) == 80


def test_a_cap_never_splits_an_escape() -> None:
    # "ab" + "\x1b" (4 characters) would need 6; with 5 the whole escape goes.
    assert clean("ab\x1bcdef", max_chars=5) == "ab…"
    assert clean("ab\x1b", max_chars=6) == "ab\\x1b"
    assert clean("ab\u202ecd", max_chars=8) == "ab…"
    assert clean("ab\u202ecd", max_chars=9) == "ab\\u202e…"
    assert clean("ab\u202ecd", max_chars=10) == "ab\\u202ecd"
    assert clean("\x1b" * 100, max_chars=10) == "\\x1b\\x1b…"


def test_a_cap_costs_the_start_of_a_huge_text_only() -> None:
    huge = "\x1b" * 5_000_000
    assert clean(huge, max_chars=9) == "\\x1b\\x1b…"


@given(st.text(), st.one_of(st.none(), st.integers(min_value=0, max_value=40)), st.booleans())
def test_clean_is_idempotent_safe_and_capped(
    text: str, max_chars: int | None, multiline: bool
) -> None:
    once = clean(text, max_chars=max_chars, multiline=multiline)
    assert clean(once, max_chars=max_chars, multiline=multiline) == once
    assert is_clean(once, multiline=multiline)
    if max_chars is not None:
        assert len(once) <= max_chars
    else:
        # Nothing is lost: escapes only lengthen, and safe text comes back as it was.
        assert len(once) >= len(text)
    if is_clean(text, multiline=multiline) and (max_chars is None or len(text) <= max_chars):
        assert once == text


@given(st.text())
def test_strip_unsafe_drops_exactly_what_clean_escapes(text: str) -> None:
    stripped = strip_unsafe(text)
    assert is_clean(stripped, multiline=True)
    assert stripped == "".join(c for c in text if is_clean(c, multiline=True))


def test_the_json_pattern_matches_exactly_the_unsafe_characters_above_c0() -> None:
    # Every code point of the BMP but the surrogates, and a sample of the other planes.
    points = [*range(0x20, 0xD800), *range(0xE000, 0x10000), 0x1F600, 0xE0001, 0x10FFFF]
    for point in points:
        char = chr(point)
        assert (_JSON_UNSAFE.fullmatch(char.encode()) is not None) == (not is_clean(char)), (
            f"U+{point:04X}"
        )


@given(st.text())
def test_escape_json_keeps_the_value_and_leaves_nothing_raw(text: str) -> None:
    try:
        raw = orjson.dumps(text)
    except TypeError:  # a lone surrogate: orjson refuses it, dumps() falls back
        raw = dumps(text)
    out = escape_json(raw)
    assert json.loads(out) == text
    assert is_clean(out.decode())  # no control, C1, bidi or invisible character in the bytes


def test_dumps_survives_what_orjson_refuses() -> None:
    big = {"n": 2**70, "f": float("nan"), "s": "\x85\u2028"}
    out = dumps(big)
    assert json.loads(out) == {"n": 2**70, "f": None, "s": "\x85\u2028"}
    assert is_clean(out.decode())
    assert json.loads(dumps("lone \udc80")) == "lone \udc80"
    assert dumps({"a": [1]}, indent=True) == b'{\n  "a": [\n    1\n  ]\n}'
    assert json.loads(dumps({"a": 2**70}, indent=True)) == {"a": 2**70}


class _Bytes:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


def test_the_ndjson_writer_writes_an_event_with_a_huge_integer_instead_of_crashing() -> None:
    # Extra fields survive a round trip (the contract); one read back from a file can be huge.
    event = StreamHeartbeat.model_validate({"running": 1, "odd": 2**64 + 1, "note": "\x9b2J"})
    out = _Bytes()
    writer = NdjsonWriter(out)  # type: ignore[arg-type]
    writer.write(event)
    writer.close()
    assert out.data.endswith(b"\n") and out.data.count(b"\n") == 1
    line = json.loads(out.data)
    assert line["odd"] == 2**64 + 1 and line["note"] == "\x9b2J"
    assert b"\xc2\x9b" not in out.data and b"\\u009b" in out.data
    assert encode(event) == out.data

"""Cursor encoding: round trips, and clear errors for damaged input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from makestream.engine.cursor import Cursor, Position, short_id
from makestream.errors import ExitCode, UsageError


@given(
    st.dictionaries(
        st.integers(1, 10**9),
        st.tuples(st.integers(0, 2**45), st.lists(st.text(min_size=1, max_size=40), max_size=20)),
        max_size=20,
    ),
    st.integers(0, 10**9),
)
def test_round_trip(positions: dict[int, tuple[int, list[str]]], seq: int) -> None:
    cursor = Cursor("k1", seq, {})
    for sid, (floor, ids) in positions.items():
        pos = Position(floor)
        for i in ids:
            pos.add(i, floor + 1)
        cursor.positions[sid] = pos
    back = Cursor.decode(cursor.encode())
    assert back.seq == seq and back.stream == "k1"
    for sid, (floor, ids) in positions.items():
        assert back.positions[sid].floor_ms == floor
        assert {short_id(i) for i in ids} == set(back.positions[sid].done)
        assert all(back.positions[sid].has(i, floor + 1) for i in ids)


@pytest.mark.parametrize("text", ["", "garbage", "1.", "1.!!!~k.1", "1.eJzLSM3JyQcABiwCFQ~k.x"])
def test_damaged_cursor_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as info:
        Cursor.decode(text)
    assert info.value.exit_code == ExitCode.USAGE
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("invalid cursor")


def _version_1(positions: dict[int, tuple[int, list[str]]], stream: str, seq: int) -> str:
    """A cursor as makestream wrote it before version 2: zlib-packed JSON, 48-bit ids."""
    import base64
    import hashlib
    import json
    import zlib

    body = {str(sid): [floor, [hashlib.blake2b(i.encode(), digest_size=6).hexdigest()
                               for i in ids]]
            for sid, (floor, ids) in positions.items()}
    packed = zlib.compress(json.dumps(body).encode(), 6)
    return "1." + base64.urlsafe_b64encode(packed).rstrip(b"=").decode() + f"~{stream}.{seq}"


def test_a_version_1_cursor_still_resumes() -> None:
    floor = 1_790_000_000_000
    old = _version_1({101: (floor, ["run-a", "run-b"]), 102: (floor + 5, [])}, "k0", 41)
    cursor = Cursor.decode(old)
    assert (cursor.stream, cursor.seq) == ("k0", 41)
    assert cursor.positions[101].has("run-a", floor + 10)
    assert cursor.positions[101].has("run-b", floor + 10)
    assert not cursor.positions[101].has("run-c", floor + 10)
    assert cursor.positions[102].floor_ms == floor + 5
    # Written again, it is a version 2 cursor with the same positions.
    again = Cursor.decode(cursor.encode())
    assert again.encode().startswith("2.") and again.positions[101].has("run-a", floor + 10)


def test_version_2_is_a_third_shorter_than_version_1() -> None:
    floor = 1_790_000_000_000
    positions = {100 + n: (floor + n * 1000, [f"{n}-{k:032x}" for k in range(2)])
                 for n in range(20)}
    cursor = Cursor("k1", 9, {})
    for sid, (f, ids) in positions.items():
        pos = cursor.positions[sid] = Position(f)
        for i in ids:
            pos.add(i, f + 1)
    new, old = cursor.encode(), _version_1(positions, "k1", 9)
    assert len(new) <= 0.65 * len(old)


@pytest.mark.parametrize("text", ["2.AGU~k.1", "2.gICAgICAgICAgICAgIAB~k.1", "2.AAEBAQ~k.1"])
def test_a_damaged_version_2_cursor_is_one_line(text: str) -> None:
    with pytest.raises(UsageError) as info:
        Cursor.decode(text)
    assert str(info.value).startswith("invalid cursor") and "\n" not in str(info.value)

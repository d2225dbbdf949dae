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

"""Durations and times typed by users."""

from __future__ import annotations

import pytest

from makestream.errors import UsageError
from makestream.timeutil import parse_duration, parse_since


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("250ms", 0.25),
     ("1.5h", 5400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "ten minutes", "10x", "m10", "-5", "1h 30m", "inf", "nan", "1e300", "400d"]
)
def test_bad_durations_name_the_option(text: str) -> None:
    with pytest.raises(UsageError, match="--timeout"):
        parse_duration(text, option="--timeout")


def test_since_accepts_durations_and_times() -> None:
    assert parse_since("1h", now=10_000) == 6_400
    now = 1_800_000_000
    assert parse_since("2026-09-21T14:13:20Z", now=now) == 1_790_000_000
    assert parse_since("2026-09-21T14:13:20", now=now) == 1_790_000_000  # naive means UTC
    with pytest.raises(UsageError, match="in the future"):
        parse_since("2026-09-21T14:13:20Z", now=1_780_000_000)
    with pytest.raises(UsageError, match="neither a duration"):
        parse_since("yesterday", now=0)
